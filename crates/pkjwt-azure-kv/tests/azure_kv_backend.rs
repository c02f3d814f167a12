//! The Azure Key Vault backend against the double (`infra/azure-kv/azure_kv_double.py`): the
//! shared conformance suite for every key type, version pinning, the certificate for `x5c`,
//! key creation, and each fault with the error it must give.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pkjwt_azure_kv::{AzureKvError, AzureKvOptions, AzureKvSigner, CredentialSource, Operation};
use pkjwt_core::{Algorithm, GenerateOptions, PublicKey, Signer};
use serde_json::json;

macro_rules! require {
    () => {
        match common::double() {
            Some(d) => d,
            None => return,
        }
    };
}

async fn open(
    d: &common::Double,
    name: &str,
    alg: Option<Algorithm>,
) -> Result<AzureKvSigner, AzureKvError> {
    AzureKvSigner::open(&common::uri(d, name), alg, &common::options(d)).await
}

#[tokio::test]
async fn conformance_for_every_key_type() {
    let d = require!();
    let cases = [
        (json!({"kty": "EC", "crv": "P-256"}), Algorithm::ES256),
        (json!({"kty": "EC-HSM", "crv": "P-384"}), Algorithm::ES384),
        (json!({"kty": "EC", "crv": "P-521"}), Algorithm::ES512),
        (json!({"kty": "EC", "crv": "P-256K"}), Algorithm::ES256K),
        (json!({"kty": "RSA", "key_size": 2048}), Algorithm::PS256),
        (
            json!({"kty": "RSA-HSM", "key_size": 2048}),
            Algorithm::RS256,
        ),
        (json!({"kty": "RSA", "key_size": 3072}), Algorithm::PS384),
        (json!({"kty": "RSA", "key_size": 2048}), Algorithm::RS512),
    ];
    for (spec, alg) in cases {
        let name = common::name("conf");
        common::create(d, &name, spec.clone()).await;
        let signer = open(d, &name, Some(alg))
            .await
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(signer.algorithm(), alg);
        pkjwt_conformance::check_signer(Arc::new(signer)).await;
        // Exactly one Get Key at open; each signature is one Sign call on the vault.
        assert_eq!(common::calls(d, &name, "get_key").await, 1, "{spec}");
        assert!(common::calls(d, &name, "sign").await >= 1, "{spec}");
    }
}

#[tokio::test]
async fn default_algorithm_by_key_and_refused_algorithm() {
    let d = require!();
    let ec = common::name("defalg");
    common::create(d, &ec, json!({"kty": "EC", "crv": "P-384"})).await;
    assert_eq!(
        open(d, &ec, None).await.unwrap().algorithm(),
        Algorithm::ES384
    );
    let e = open(d, &ec, Some(Algorithm::PS256)).await.unwrap_err();
    assert!(
        matches!(
            e,
            AzureKvError::AlgorithmNotSupported {
                requested: Algorithm::PS256,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("EC P-384") && msg.contains("it can sign ES384"),
        "{msg}"
    );
    assert!(
        open(d, &ec, Some(Algorithm::EdDSA)).await.is_err(),
        "Key Vault has no EdDSA"
    );
    let rsa = common::name("defalg-rsa");
    common::create(d, &rsa, json!({"kty": "RSA"})).await;
    assert_eq!(
        open(d, &rsa, None).await.unwrap().algorithm(),
        Algorithm::PS256
    );
}

#[tokio::test]
async fn challenge_first_and_no_body_before_it() {
    let d = require!();
    let name = common::name("challenge");
    common::create(d, &name, json!({"kty": "EC"})).await;
    let before = common::admin(d, "GET", "calls", None).await;
    let signer = open(d, &name, None).await.unwrap();
    signer.sign(b"x.y").await.unwrap();
    let after = common::admin(d, "GET", "calls", None).await;
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    // One challenge per vault client, never a body sent unauthenticated.
    assert!(n(&after, "unauthenticated") > n(&before, "unauthenticated"));
    assert_eq!(
        n(&after, "unauthenticated_with_body"),
        n(&before, "unauthenticated_with_body")
    );
    assert!(n(&after, "token") > n(&before, "token"));
}

#[tokio::test]
async fn version_is_pinned_at_open_and_survives_rotation() {
    let d = require!();
    let name = common::name("pin");
    let first = common::create(d, &name, json!({"kty": "EC"})).await;
    let signer = open(d, &name, None).await.unwrap();
    assert_eq!(signer.key_id(), first);
    assert_eq!(
        signer.pinned_uri().version.as_deref(),
        first.rsplit('/').next()
    );
    // Rotation under the running signer: a new current version.
    let second = common::create(d, &name, json!({"kty": "EC"})).await;
    assert_ne!(first, second);
    // Still signs with (and verifies under) the first version's key.
    pkjwt_conformance::check_signer(Arc::new(signer.clone())).await;
    let reopened = open(d, &name, None).await.unwrap();
    assert_eq!(reopened.key_id(), second);
    assert_ne!(reopened.public_key(), signer.public_key());
    // A URI with the version opens exactly that version.
    let version = first.rsplit('/').next().unwrap();
    let pinned = common::uri(d, &name).with_version(version);
    let old = AzureKvSigner::open(&pinned, None, &common::options(d))
        .await
        .unwrap();
    assert_eq!(old.public_key(), signer.public_key());
}

#[tokio::test]
async fn certificate_of_the_key_feeds_x5c() {
    let d = require!();
    let name = common::name("cert");
    let made = common::admin(
        d,
        "POST",
        &format!("certificates/{name}"),
        Some(json!({"kty": "EC", "crv": "P-256", "subject": "CN=pkjwt-client"})),
    )
    .await;
    let der = pkjwt_core::b64::decode_std("cer", made["cer"].as_str().unwrap()).unwrap();
    let signer = open(d, &name, None).await.unwrap();
    assert_eq!(signer.certificate_chain(), std::slice::from_ref(&der));
    pkjwt_x509::check_matches(&der, signer.public_key()).unwrap();
    // Not read when turned off.
    let before = common::calls(d, &name, "get_certificate").await;
    let plain = AzureKvSigner::open(
        &common::uri(d, &name),
        None,
        &common::options(d).read_certificate(false),
    )
    .await
    .unwrap();
    assert!(plain.certificate_chain().is_empty());
    assert_eq!(common::calls(d, &name, "get_certificate").await, before);

    // A key without a certificate: empty chain (404 CertificateNotFound is "none").
    let bare = common::name("nocert");
    common::create(d, &bare, json!({"kty": "EC"})).await;
    assert!(
        open(d, &bare, None)
            .await
            .unwrap()
            .certificate_chain()
            .is_empty()
    );

    // A certificate over another key is refused, never announced.
    let wrong = common::name("badcert");
    common::admin(
        d,
        "POST",
        &format!("certificates/{wrong}"),
        Some(json!({"kty": "EC", "mismatch": true})),
    )
    .await;
    let e = open(d, &wrong, None).await.unwrap_err();
    assert!(
        matches!(e, AzureKvError::CertificateMismatch { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("does not match"), "{e}");

    // 403 on the certificate names the role that reads it.
    let denied = common::name("certdenied");
    common::admin(
        d,
        "POST",
        &format!("certificates/{denied}"),
        Some(json!({})),
    )
    .await;
    common::faults(
        d,
        json!([{"op": "get_certificate", "name": denied, "status": 403, "code": "Forbidden",
                "inner": "ForbiddenByRbac", "message": "Caller is not authorized to perform action on resource."}]),
    )
    .await;
    let e = open(d, &denied, None).await.unwrap_err().to_string();
    assert!(
        e.contains("Get Certificate") && e.contains("Key Vault Certificate User"),
        "{e}"
    );
}

#[tokio::test]
async fn missing_key_is_not_found() {
    let d = require!();
    let e = open(d, "pkjwt-no-such-key", None).await.unwrap_err();
    assert!(
        matches!(e, AzureKvError::NotFound { operation: Operation::GetKey, ref code, .. } if code == "KeyNotFound"),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("Get Key") && msg.contains("/keys/pkjwt-no-such-key") && msg.contains("404"),
        "{msg}"
    );
    // A version that does not exist.
    let name = common::name("nover");
    common::create(d, &name, json!({"kty": "EC"})).await;
    let uri = common::uri(d, &name).with_version("0123456789abcdef0123456789abcdef");
    let e = AzureKvSigner::open(&uri, None, &common::options(d))
        .await
        .unwrap_err();
    assert!(matches!(e, AzureKvError::NotFound { .. }), "{e:?}");
}

#[tokio::test]
async fn disabled_key_is_refused_at_open_and_at_sign() {
    let d = require!();
    let name = common::name("disabled");
    common::create(d, &name, json!({"kty": "EC"})).await;
    let signer = open(d, &name, None).await.unwrap();
    common::admin(
        d,
        "POST",
        &format!("keys/{name}"),
        Some(json!({"enabled": false})),
    )
    .await;
    // Disabled under a running signer: the vault's 403 Forbidden/KeyDisabled.
    let e = signer.try_sign(b"a.b").await.unwrap_err();
    assert!(
        matches!(
            e,
            AzureKvError::KeyDisabled {
                operation: Operation::Sign,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("disabled"), "{e}");
    // Disabled before open: refused from the key's attributes.
    let e = open(d, &name, None).await.unwrap_err();
    assert!(
        matches!(
            e,
            AzureKvError::KeyDisabled {
                operation: Operation::GetKey,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn key_without_sign_op_cannot_sign() {
    let d = require!();
    let name = common::name("verifyonly");
    common::create(d, &name, json!({"kty": "EC", "key_ops": ["verify"]})).await;
    let e = open(d, &name, None).await.unwrap_err();
    assert!(matches!(e, AzureKvError::NotSigningKey { .. }), "{e:?}");
    assert!(e.to_string().contains("do not include sign"), "{e}");
}

#[tokio::test]
async fn permission_denied_names_the_role() {
    let d = require!();
    let name = common::name("rbac");
    common::create(d, &name, json!({"kty": "EC"})).await;
    let signer = open(d, &name, None).await.unwrap();
    common::faults(
        d,
        json!([{"op": "sign", "name": name, "status": 403, "code": "Forbidden", "inner": "ForbiddenByRbac",
                "message": "Caller is not authorized to perform action on resource.\r\nAction: 'Microsoft.KeyVault/vaults/keys/sign/action'"}]),
    )
    .await;
    let e = signer.try_sign(b"a.b").await.unwrap_err();
    match &e {
        AzureKvError::Forbidden {
            operation, code, ..
        } => {
            assert_eq!(*operation, Operation::Sign);
            assert_eq!(code, "ForbiddenByRbac");
        }
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("Key Vault Crypto User") && msg.contains("keys/sign"),
        "{msg}"
    );
    // The service's CR/LF is escaped, not passed into a log line.
    assert!(!msg.contains('\r') && !msg.contains('\n'), "{msg:?}");
    // Only one attempt: a 403 is not retried.
    assert_eq!(common::calls(d, &name, "sign").await, 1);
}

#[tokio::test]
async fn throttling_is_retried_within_bounds() {
    let d = require!();
    let name = common::name("throttle");
    common::create(d, &name, json!({"kty": "EC"})).await;
    let signer = open(d, &name, None).await.unwrap();
    // Two 429s with Retry-After: 1, then success on the third attempt.
    common::faults(
        d,
        json!([{"op": "sign", "name": name, "status": 429, "code": "Throttled", "retry_after": 1, "times": 2}]),
    )
    .await;
    let t = Instant::now();
    signer.try_sign(b"a.b").await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "Retry-After honoured: {:?}",
        t.elapsed()
    );
    assert_eq!(common::calls(d, &name, "sign").await, 3);

    // Throttled on every attempt: Throttled after max_attempts (3).
    common::faults(
        d,
        json!([{"op": "sign", "name": name, "status": 429, "code": "Throttled", "retry_after": 0, "times": 3}]),
    )
    .await;
    let e = signer.try_sign(b"a.b").await.unwrap_err();
    assert!(
        matches!(e, AzureKvError::Throttled { attempts: 3, .. }),
        "{e:?}"
    );
    assert_eq!(common::calls(d, &name, "sign").await, 6);

    // A Retry-After beyond max_retry_after is not slept through: one attempt, the wait reported.
    common::faults(
        d,
        json!([{"op": "sign", "name": name, "status": 429, "code": "Throttled", "retry_after": 120, "times": 1}]),
    )
    .await;
    let t = Instant::now();
    let e = signer.try_sign(b"a.b").await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(e, AzureKvError::Throttled { attempts: 1, retry_after: Some(r), .. } if r == Duration::from_secs(120)),
        "{e:?}"
    );
    assert!(e.to_string().contains("retry after 120 s"), "{e}");
}

#[tokio::test]
async fn unavailable_is_retried_then_reported() {
    let d = require!();
    let name = common::name("unavail");
    common::create(d, &name, json!({"kty": "EC"})).await;
    let signer = open(d, &name, None).await.unwrap();
    common::faults(
        d,
        json!([{"op": "sign", "name": name, "status": 503, "code": "ServiceUnavailable", "times": 2}]),
    )
    .await;
    signer.try_sign(b"a.b").await.unwrap();
    common::faults(
        d,
        json!([{"op": "sign", "name": name, "status": 500, "code": "InternalServerError", "message": "boom", "times": 3}]),
    )
    .await;
    let e = signer.try_sign(b"a.b").await.unwrap_err();
    assert!(
        matches!(
            e,
            AzureKvError::Service {
                status: 500,
                attempts: 3,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("InternalServerError: boom"), "{e}");
}

#[tokio::test]
async fn wrong_algorithm_for_the_key_is_bad_parameter() {
    let d = require!();
    let name = common::name("badparam");
    common::create(d, &name, json!({"kty": "EC"})).await;
    let signer = open(d, &name, None).await.unwrap();
    common::faults(
        d,
        json!([{"op": "sign", "name": name, "status": 400, "code": "BadParameter",
                "message": "Key and signing algorithm are incompatible."}]),
    )
    .await;
    let e = signer.try_sign(b"a.b").await.unwrap_err();
    assert!(
        matches!(e, AzureKvError::BadRequest { ref code, .. } if code == "BadParameter"),
        "{e:?}"
    );
    assert!(e.to_string().contains("incompatible"), "{e}");
    // No retry of a 400.
    assert_eq!(common::calls(d, &name, "sign").await, 1);
}

#[tokio::test]
async fn malformed_signatures_are_refused() {
    let d = require!();
    let name = common::name("short");
    common::create(d, &name, json!({"kty": "EC"})).await;
    let signer = open(d, &name, None).await.unwrap();
    common::faults(
        d,
        json!([{"op": "sign", "name": name, "mutate": "truncate_signature"}]),
    )
    .await;
    let e = signer.try_sign(b"a.b").await.unwrap_err();
    assert!(matches!(e, AzureKvError::InvalidResponse { .. }), "{e:?}");
    assert!(e.to_string().contains("expected r || s of 64"), "{e}");
    common::faults(d, json!([{"op": "sign", "name": name, "mutate": "kid"}])).await;
    let e = signer.try_sign(b"a.b").await.unwrap_err().to_string();
    assert!(e.contains("not the pinned"), "{e}");

    let rsa = common::name("short-rsa");
    common::create(d, &rsa, json!({"kty": "RSA"})).await;
    let signer = open(d, &rsa, None).await.unwrap();
    common::faults(
        d,
        json!([{"op": "sign", "name": rsa, "mutate": "truncate_signature"}]),
    )
    .await;
    let e = signer.try_sign(b"a.b").await.unwrap_err().to_string();
    assert!(e.contains("of 255 bytes, expected 256"), "{e}");
}

#[tokio::test]
async fn bad_credentials_are_token_errors_without_the_secret() {
    let d = require!();
    let name = common::name("badcred");
    common::create(d, &name, json!({"kty": "EC"})).await;
    let options = common::options(d).credential(CredentialSource::ClientSecret {
        tenant_id: common::TENANT.into(),
        client_id: common::CLIENT_ID.into(),
        secret: "wrong-secret-value".into(),
    });
    let e = AzureKvSigner::open(&common::uri(d, &name), None, &options)
        .await
        .unwrap_err();
    assert!(matches!(e, AzureKvError::Token { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("https://vault.azure.net/.default") && msg.contains("AADSTS7000215"),
        "{msg}"
    );
    assert!(!msg.contains("wrong-secret-value"), "{msg}");
    assert!(!format!("{options:?}").contains("wrong-secret-value"));
}

#[tokio::test]
async fn unreachable_vault_is_a_transport_error() {
    let d = require!();
    // A port nothing listens on (bound then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = format!("azurekv:https://127.0.0.1:{port}/keys/k");
    let Ok(pkjwt_core::KeyUri::AzureKv(uri)) = pkjwt_core::KeyUri::parse(&text) else {
        panic!()
    };
    let e = AzureKvSigner::open(&uri, None, &common::options(d))
        .await
        .unwrap_err();
    assert!(
        matches!(e, AzureKvError::Transport { attempts: 3, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("could not reach"), "{e}");
}

#[tokio::test]
async fn keygen_creates_each_key_type_and_honours_rsa_bits() {
    let d = require!();
    let o = common::options(d);
    for (alg, bits, kty) in [
        (Algorithm::ES256, None, "EC P-256"),
        (Algorithm::ES256K, None, "EC P-256K"),
        (Algorithm::ES512, None, "EC P-521"),
        (Algorithm::PS256, Some(3072), "RSA 3072"),
        (Algorithm::RS384, None, "RSA 3072"),
    ] {
        let name = common::name("gen");
        let mut g = GenerateOptions::default();
        if let Some(b) = bits {
            g = g.rsa_bits(b);
        }
        let (pk, kid) = pkjwt_azure_kv::generate(&common::uri(d, &name), alg, &g, &o)
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert!(kid.contains(&format!("/keys/{name}/")));
        let signer = open(d, &name, Some(alg)).await.unwrap();
        assert_eq!(signer.public_key(), &pk);
        assert_eq!(signer.key_type(), kty, "{alg}");
        if let PublicKey::Rsa { .. } = pk {
            assert_eq!(pk.bits(), 3072);
        }
        pkjwt_conformance::check_signer(Arc::new(signer)).await;
    }
}

#[tokio::test]
async fn keygen_refusals() {
    let d = require!();
    let o = common::options(d);
    let g = GenerateOptions::default();
    // An existing name: no new version.
    let name = common::name("exists");
    common::create(d, &name, json!({"kty": "EC"})).await;
    let e = pkjwt_azure_kv::generate(&common::uri(d, &name), Algorithm::ES256, &g, &o)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("a key of this name exists"), "{e}");
    assert_eq!(common::calls(d, &name, "create_key").await, 0);
    // A version in the URI.
    let v = common::uri(d, "x").with_version("0123456789abcdef0123456789abcdef");
    let e = pkjwt_azure_kv::generate(&v, Algorithm::ES256, &g, &o)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("names no version"), "{e}");
    // EdDSA, and an RSA size Key Vault cannot make / an RSA size for EC.
    let fresh = common::uri(d, &common::name("refused"));
    let e = pkjwt_azure_kv::generate(&fresh, Algorithm::EdDSA, &g, &o)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("cannot create a key for EdDSA"),
        "{e}"
    );
    for (alg, bits) in [(Algorithm::PS256, 1024), (Algorithm::ES256, 2048)] {
        let e =
            pkjwt_azure_kv::generate(&fresh, alg, &GenerateOptions::default().rsa_bits(bits), &o)
                .await
                .unwrap_err();
        assert!(matches!(e, AzureKvError::GenerateOption(_)), "{e:?}");
    }
    assert_eq!(common::calls(d, &fresh.name, "create_key").await, 0);
}

#[tokio::test]
async fn debug_output_holds_no_secret() {
    let d = require!();
    let name = common::name("debug");
    common::create(d, &name, json!({"kty": "EC"})).await;
    let signer = open(d, &name, None).await.unwrap();
    let text = format!("{signer:?} {:?}", common::options(d));
    assert!(!text.contains(common::CLIENT_SECRET), "{text}");
    assert!(
        text.contains("<redacted>") && text.contains(&name),
        "{text}"
    );
    let _ = AzureKvOptions::default();
}

#[tokio::test]
async fn challenges_for_another_resource_and_refused_tokens() {
    let d = require!();
    let name = common::name("chall");
    common::create(d, &name, json!({"kty": "EC"})).await;
    let signer = open(d, &name, None).await.unwrap();
    let tokens = |v: serde_json::Value| v["token"].as_u64().unwrap_or(0);

    // A 401 asking for a token for another resource: no token is requested for it.
    common::faults(
        d,
        json!([{"op": "sign", "name": name, "status": 401, "code": "Unauthorized",
                "www_authenticate": "Bearer authorization=\"{base}/t\", resource=\"https://graph.microsoft.com\""}]),
    )
    .await;
    let before = tokens(common::admin(d, "GET", "calls", None).await);
    let e = signer.try_sign(b"a.b").await.unwrap_err();
    assert!(
        matches!(
            e,
            AzureKvError::Challenge {
                operation: Operation::Sign,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("not a Key Vault or Managed HSM resource"),
        "{e}"
    );
    assert_eq!(tokens(common::admin(d, "GET", "calls", None).await), before);

    // A 401 without a challenge.
    common::faults(
        d,
        json!([{"op": "sign", "name": name, "status": 401, "code": "Unauthorized"}]),
    )
    .await;
    let e = signer.try_sign(b"a.b").await.unwrap_err().to_string();
    assert!(e.contains("401 without a WWW-Authenticate header"), "{e}");

    // The vault refuses the token twice: answered once, then Unauthorized (no loop).
    common::faults(
        d,
        json!([{"op": "sign", "name": name, "status": 401, "code": "Unauthorized", "times": 2,
                "message": "AKV10032: Invalid issuer.",
                "www_authenticate": "Bearer authorization=\"{base}/t\", resource=\"https://vault.azure.net\""}]),
    )
    .await;
    let signs = common::calls(d, &name, "sign").await;
    let e = signer.try_sign(b"a.b").await.unwrap_err();
    assert!(matches!(e, AzureKvError::Unauthorized { .. }), "{e:?}");
    assert!(e.to_string().contains("AKV10032"), "{e}");
    assert_eq!(common::calls(d, &name, "sign").await, signs + 2);
    // And the signer works again once the vault accepts the token.
    signer.try_sign(b"a.b").await.unwrap();
}
