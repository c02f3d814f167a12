//! The AWS KMS backend against pkjwt's KMS double (moto 5.2.5 patched to the KMS API reference,
//! see `infra/kms/kms_double.py`): conformance for every key spec with an independent verifier,
//! call counting, faults, and key generation.

mod common;
mod verify;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use pkjwt_aws_kms::{AwsKmsError, AwsKmsOptions, AwsKmsSigner, Operation, generate};
use pkjwt_core::{Algorithm, AssertionOptions, ClientAssertion, GenerateOptions, Signer};
use serde_json::json;

use common::{Double, admin, calls, create_key, faults, options, uri};

async fn spki(d: &Double, key: &str) -> Vec<u8> {
    admin(d)
        .get_public_key()
        .key_id(key)
        .send()
        .await
        .expect("GetPublicKey")
        .public_key()
        .expect("PublicKey")
        .as_ref()
        .to_vec()
}

async fn open(d: &Double, key: &str, alg: Option<Algorithm>) -> Result<AwsKmsSigner, AwsKmsError> {
    AwsKmsSigner::open(&uri(d, key), alg, &options()).await
}

/// Opens the key by alias, signs a client assertion and checks it with the independent verifier,
/// plus a tampered copy that must fail.
async fn conformance(d: &Double, spec: KeySpec, alg: Option<Algorithm>, expect: Algorithm) {
    let (alias, arn) = create_key(d, spec.clone(), KeyUsageType::SignVerify, "conf").await;
    let signer = open(d, &alias, alg)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", spec.as_str()));
    assert_eq!(signer.algorithm(), expect, "{}", spec.as_str());
    let key_arn = signer.key_arn().to_owned();
    let key_spec = signer.key_spec().to_owned();
    let der = spki(d, &arn).await;
    assert_eq!(
        signer.public_key().to_spki_der(),
        der,
        "public key round-trips"
    );
    let jwk = pkjwt_core::Jwk::from_public_key(signer.public_key());
    assert_eq!(jwk.to_public_key().ok().as_ref(), Some(signer.public_key()));

    let signer: Arc<dyn Signer> = Arc::new(signer);
    let assertion = ClientAssertion::new(
        signer.clone(),
        AssertionOptions::new("client-1", "https://as.example.com"),
    )
    .expect("assertion options");
    for _ in 0..3 {
        let jwt = assertion
            .sign()
            .await
            .unwrap_or_else(|e| panic!("{expect}: {e}"));
        let (header, claims) = verify::verify_jws(&jwt, &der).unwrap_or_else(|e| {
            panic!("{expect}: independent verifier rejected the assertion: {e}")
        });
        assert_eq!(header["alg"], expect.name());
        assert_eq!(header["kid"], pkjwt_core::thumbprint(signer.public_key()));
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["aud"], "https://as.example.com");
        // The verifier is not vacuous: one flipped signature bit fails.
        let (head, sig) = jwt.rsplit_once('.').expect("three parts");
        let mut sig = sig.as_bytes().to_vec();
        sig[3] = if sig[3] == b'A' { b'B' } else { b'A' };
        let tampered = format!("{head}.{}", String::from_utf8(sig).expect("ascii"));
        assert!(
            verify::verify_jws(&tampered, &der).is_err(),
            "{expect}: tampered JWS verified"
        );
    }
    // Checked last so that an unfaithful endpoint (PKJWT_KMS_STOCK_MOTO=1) shows its signature
    // failures first.
    assert_eq!(key_arn, arn, "the signer pins the key ARN, not the alias");
    assert_eq!(key_spec, spec.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_ecdsa() {
    let Some(d) = require!() else { return };
    conformance(d, KeySpec::EccNistP256, None, Algorithm::ES256).await;
    conformance(d, KeySpec::EccNistP384, None, Algorithm::ES384).await;
    conformance(d, KeySpec::EccNistP521, None, Algorithm::ES512).await;
    conformance(d, KeySpec::EccSecgP256K1, None, Algorithm::ES256K).await;
    conformance(
        d,
        KeySpec::EccNistP256,
        Some(Algorithm::ES256),
        Algorithm::ES256,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_rsa() {
    let Some(d) = require!() else { return };
    conformance(d, KeySpec::Rsa2048, None, Algorithm::PS256).await;
    for alg in [
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
    ] {
        conformance(d, KeySpec::Rsa2048, Some(alg), alg).await;
    }
    conformance(
        d,
        KeySpec::Rsa3072,
        Some(Algorithm::PS384),
        Algorithm::PS384,
    )
    .await;
    // RSA_4096 is the spec keygen makes for *512 (spec::key_spec_for).
    for alg in [Algorithm::PS512, Algorithm::RS512] {
        conformance(d, KeySpec::Rsa4096, Some(alg), alg).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_ed25519() {
    let Some(d) = require!() else { return };
    conformance(d, KeySpec::EccNistEdwards25519, None, Algorithm::EdDSA).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_by_key_id_key_arn_and_alias_arn() {
    let Some(d) = require!() else { return };
    let (alias, arn) = create_key(d, KeySpec::EccNistP256, KeyUsageType::SignVerify, "ids").await;
    let key_id = arn.rsplit('/').next().expect("key id");
    let alias_arn = format!("arn:aws:kms:{}:123456789012:{alias}", common::REGION);
    for key in [key_id, arn.as_str(), alias.as_str(), alias_arn.as_str()] {
        let s = open(d, key, None)
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(s.key_arn(), arn);
        s.sign(b"x.y")
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_assertions_make_n_sign_calls_and_one_get_public_key() {
    let Some(d) = require!() else { return };
    let (alias, arn) = create_key(d, KeySpec::EccNistP256, KeyUsageType::SignVerify, "count").await;
    let signer: Arc<dyn Signer> = Arc::new(open(d, &alias, None).await.expect("open"));
    let assertion = Arc::new(
        ClientAssertion::new(signer.clone(), AssertionOptions::new("c", "https://as"))
            .expect("options"),
    );
    const N: u64 = 25;
    let mut tasks = Vec::new();
    for _ in 0..N {
        let a = assertion.clone();
        tasks.push(tokio::spawn(async move { a.sign().await }));
    }
    for t in tasks {
        t.await.expect("task").expect("concurrent assertion");
    }
    let _ = signer.public_key(); // never reaches KMS
    assert_eq!(calls(d, &alias, "GetPublicKey"), 1);
    assert_eq!(calls(d, &arn, "GetPublicKey"), 0);
    assert_eq!(calls(d, &arn, "Sign"), N);
    assert_eq!(
        calls(d, &alias, "Sign"),
        0,
        "signing goes to the pinned ARN"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_spec_fallbacks_for_answers_without_key_spec() {
    let Some(d) = require!() else { return };
    // Stock moto: only the deprecated CustomerMasterKeySpec.
    let (alias, _) = create_key(d, KeySpec::EccNistP384, KeyUsageType::SignVerify, "cmks").await;
    faults(
        d,
        json!([{ "operation": "GetPublicKey", "key_id": alias, "drop_fields": ["KeySpec"] }]),
    );
    let s = open(d, &alias, None)
        .await
        .expect("open with CustomerMasterKeySpec only");
    assert_eq!(
        (s.key_spec(), s.algorithm()),
        ("ECC_NIST_P384", Algorithm::ES384)
    );
    // Neither field and no algorithm list: the SPKI decides.
    let (alias, _) = create_key(d, KeySpec::Rsa2048, KeyUsageType::SignVerify, "nospec").await;
    faults(
        d,
        json!([{ "operation": "GetPublicKey", "key_id": alias,
                 "drop_fields": ["KeySpec", "CustomerMasterKeySpec", "SigningAlgorithms"] }]),
    );
    let s = open(d, &alias, Some(Algorithm::RS256))
        .await
        .expect("open from SPKI");
    assert_eq!(
        (s.key_spec(), s.algorithm()),
        ("RSA_2048", Algorithm::RS256)
    );
    let sig = s.sign(b"a.b").await.expect("sign");
    verify::verify_raw(
        "RS256",
        b"a.b",
        sig.as_bytes(),
        &s.public_key().to_spki_der(),
    )
    .expect("verifies");
    // No KeyUsage at all: refused, not guessed.
    let (alias, _) = create_key(d, KeySpec::EccNistP256, KeyUsageType::SignVerify, "nousage").await;
    faults(
        d,
        json!([{ "operation": "GetPublicKey", "key_id": alias, "drop_fields": ["KeyUsage"] }]),
    );
    let e = open(d, &alias, None).await.expect_err("no KeyUsage");
    assert!(matches!(e, AwsKmsError::InvalidResponse { .. }), "{e:?}");
    assert!(e.to_string().contains("KeyUsage"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_and_other_service_errors() {
    let Some(d) = require!() else { return };
    let (alias, _) = create_key(d, KeySpec::EccNistP256, KeyUsageType::SignVerify, "creds").await;
    faults(
        d,
        json!([
            { "operation": "GetPublicKey", "key_id": alias, "type": "ExpiredTokenException",
              "message": "The security token included in the request is expired" },
            { "operation": "GetPublicKey", "key_id": alias, "type": "ValidationException",
              "message": "1 validation error detected" },
        ]),
    );
    let e = open(d, &alias, None).await.expect_err("expired token");
    assert!(matches!(e, AwsKmsError::Credentials { .. }), "{e:?}");
    assert!(e.to_string().contains("refresh"), "{e}");
    let e = open(d, &alias, None).await.expect_err("validation");
    match &e {
        AwsKmsError::Service {
            code, request_id, ..
        } => {
            assert_eq!(code, "ValidationException");
            assert!(request_id.is_some());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calls(d, &alias, "GetPublicKey"), 2, "neither is retried");
}

// ---- faults -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_alias_and_key_are_not_found() {
    let Some(d) = require!() else { return };
    for key in [
        "alias/pkjwt-no-such-alias".to_string(),
        format!(
            "arn:aws:kms:{}:123456789012:key/00000000-0000-0000-0000-000000000000",
            common::REGION
        ),
    ] {
        let e = open(d, &key, None).await.expect_err("unknown key");
        assert!(matches!(e, AwsKmsError::NotFound { .. }), "{key}: {e:?}");
        assert!(e.request_id().is_some(), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(&key) && msg.contains("not found"), "{msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_of_key_pending_deletion_is_invalid_state() {
    let Some(d) = require!() else { return };
    let (alias, arn) =
        create_key(d, KeySpec::EccNistP256, KeyUsageType::SignVerify, "deleted").await;
    let signer = open(d, &alias, None).await.expect("open before deletion");
    admin(d)
        .schedule_key_deletion()
        .key_id(arn.rsplit('/').next().expect("id"))
        .pending_window_in_days(7)
        .send()
        .await
        .expect("ScheduleKeyDeletion");
    let e = open(d, &alias, None).await.expect_err("pending deletion");
    assert!(matches!(e, AwsKmsError::InvalidState { .. }), "{e:?}");
    assert!(e.to_string().contains("pending deletion"), "{e}");
    let e = signer
        .try_sign(b"a.b")
        .await
        .expect_err("sign after deletion was scheduled");
    assert!(matches!(e, AwsKmsError::InvalidState { .. }), "{e:?}");
    assert!(e.request_id().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symmetric_key_is_refused_at_open() {
    let Some(d) = require!() else { return };
    let (alias, _) = create_key(
        d,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
        "sym",
    )
    .await;
    let e = open(d, &alias, None).await.expect_err("symmetric key");
    assert!(matches!(e, AwsKmsError::NotSigningKey { .. }), "{e:?}");
    assert!(e.to_string().contains("SIGN_VERIFY"), "{e}");
    // An endpoint that answers GetPublicKey for it anyway (stock moto does) is caught by KeyUsage.
    let (alias, _) = create_key(d, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt, "encrypt").await;
    let e = open(d, &alias, None)
        .await
        .expect_err("ENCRYPT_DECRYPT key");
    assert!(matches!(e, AwsKmsError::NotSigningKey { .. }), "{e:?}");
    assert!(e.to_string().contains("ENCRYPT_DECRYPT"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_key_at_open_and_at_sign() {
    let Some(d) = require!() else { return };
    let (alias, arn) = create_key(
        d,
        KeySpec::EccNistP256,
        KeyUsageType::SignVerify,
        "disabled",
    )
    .await;
    let signer = open(d, &alias, None).await.expect("open while enabled");
    let id = arn.rsplit('/').next().expect("id").to_owned();
    admin(d)
        .disable_key()
        .key_id(&id)
        .send()
        .await
        .expect("DisableKey");
    let e = signer.try_sign(b"a.b").await.expect_err("disabled at sign");
    assert!(matches!(e, AwsKmsError::Disabled { .. }), "{e:?}");
    assert!(e.to_string().contains("enable-key"), "{e}");
    assert!(e.request_id().is_some());
    let e = open(d, &alias, None).await.expect_err("disabled at open");
    assert!(matches!(e, AwsKmsError::Disabled { .. }), "{e:?}");
    // Through the Signer trait the cause chain is kept (the KMS error is the source of
    // `AWS KMS backend`, so the chain printer shows both).
    let e = Signer::sign(&signer, b"a.b").await.expect_err("disabled");
    let e = pkjwt_core::display_chain(&e);
    assert!(e.contains("AWS KMS") && e.contains("disabled"), "{e}");
    admin(d)
        .enable_key()
        .key_id(&id)
        .send()
        .await
        .expect("EnableKey");
    signer.try_sign(b"a.b").await.expect("enabled again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_algorithm_is_an_error_at_open_without_sign_calls() {
    let Some(d) = require!() else { return };
    let (alias, arn) = create_key(d, KeySpec::EccNistP256, KeyUsageType::SignVerify, "alg").await;
    for alg in [
        Algorithm::ES384,
        Algorithm::PS256,
        Algorithm::EdDSA,
        Algorithm::ES256K,
    ] {
        let e = open(d, &alias, Some(alg))
            .await
            .expect_err("unsupported alg");
        match &e {
            AwsKmsError::AlgorithmNotSupported {
                requested,
                supported,
                key_spec,
                ..
            } => {
                assert_eq!(*requested, alg);
                assert_eq!(supported, "ES256");
                assert_eq!(key_spec, "ECC_NIST_P256");
            }
            other => panic!("{alg}: {other:?}"),
        }
    }
    assert_eq!(calls(d, &arn, "Sign"), 0);
    // KMS's own InvalidKeyUsageException at Sign time still maps to a specific error.
    let signer = open(d, &alias, None).await.expect("open");
    faults(
        d,
        json!([{ "operation": "Sign", "key_id": arn, "type": "InvalidKeyUsageException",
                       "message": "Algorithm ECDSA_SHA_256 is incompatible" }]),
    );
    let e = signer.try_sign(b"a.b").await.expect_err("injected");
    assert!(
        matches!(
            e,
            AwsKmsError::InvalidKeyUsage {
                operation: Operation::Sign,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_names_the_permission_and_the_key() {
    let Some(d) = require!() else { return };
    let (alias, arn) =
        create_key(d, KeySpec::EccNistP256, KeyUsageType::SignVerify, "denied").await;
    let msg = "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: {op} on resource: {key_id} because no identity-based policy allows the {op} action";
    faults(
        d,
        json!([{ "operation": "GetPublicKey", "key_id": alias, "type": "AccessDeniedException",
                       "message": msg.replace("{op}", "kms:GetPublicKey") }]),
    );
    let e = open(d, &alias, None).await.expect_err("denied");
    match &e {
        AwsKmsError::AccessDenied {
            permission,
            key,
            request_id,
            ..
        } => {
            assert_eq!(*permission, "kms:GetPublicKey");
            assert_eq!(key, &alias);
            assert!(request_id.is_some());
        }
        other => panic!("{other:?}"),
    }
    assert!(
        e.to_string()
            .contains("needs the IAM permission kms:GetPublicKey"),
        "{e}"
    );

    let signer = open(d, &alias, None).await.expect("open");
    faults(
        d,
        json!([{ "operation": "Sign", "key_id": arn, "type": "AccessDeniedException",
                       "message": msg.replace("{op}", "kms:Sign") }]),
    );
    let e = signer.try_sign(b"a.b").await.expect_err("denied");
    assert!(
        matches!(
            e,
            AwsKmsError::AccessDenied {
                permission: "kms:Sign",
                ..
            }
        ),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("kms:Sign") && text.contains(&arn) && text.contains("AWS request id"),
        "{text}"
    );
    assert_eq!(calls(d, &arn, "Sign"), 1, "access denied is not retried");
    eprintln!("access denied: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_unavailable() {
    let Some(d) = require!() else { return };
    let (alias, arn) =
        create_key(d, KeySpec::EccNistP256, KeyUsageType::SignVerify, "unavail").await;
    let signer = open(d, &alias, None).await.expect("open");
    faults(
        d,
        json!([{ "operation": "Sign", "key_id": arn, "status": 500, "times": -1,
                       "type": "KeyUnavailableException", "message": "custom key store disconnected" }]),
    );
    let e = signer.try_sign(b"a.b").await.expect_err("unavailable");
    assert!(matches!(e, AwsKmsError::KeyUnavailable { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_burst_is_retried_then_succeeds() {
    let Some(d) = require!() else { return };
    let (alias, arn) = create_key(d, KeySpec::EccNistP256, KeyUsageType::SignVerify, "burst").await;
    let signer = open(d, &alias, None).await.expect("open");
    faults(
        d,
        json!([{ "operation": "Sign", "key_id": arn, "times": 2,
                       "type": "ThrottlingException", "message": "Rate exceeded" }]),
    );
    let sig = signer
        .try_sign(b"a.b")
        .await
        .expect("third attempt succeeds");
    assert!(!sig.as_bytes().is_empty());
    assert_eq!(calls(d, &arn, "Sign"), 3);
    // 5xx too.
    faults(
        d,
        json!([{ "operation": "Sign", "key_id": arn, "times": 2, "status": 500,
                       "type": "KMSInternalException", "message": "internal" }]),
    );
    signer
        .try_sign(b"a.b")
        .await
        .expect("retried past two 500s");
    assert_eq!(calls(d, &arn, "Sign"), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_5xx_exhaust_the_retries_with_a_clear_error() {
    let Some(d) = require!() else { return };
    let (alias, arn) = create_key(
        d,
        KeySpec::EccNistP256,
        KeyUsageType::SignVerify,
        "throttle",
    )
    .await;
    let signer = AwsKmsSigner::open(&uri(d, &alias), None, &options().max_attempts(4))
        .await
        .expect("open");
    faults(
        d,
        json!([{ "operation": "Sign", "key_id": arn, "times": 4,
                       "type": "ThrottlingException", "message": "Rate exceeded" }]),
    );
    let e = signer.try_sign(b"a.b").await.expect_err("throttled");
    match &e {
        AwsKmsError::Throttled {
            attempts,
            code,
            request_id,
            ..
        } => {
            assert_eq!(*attempts, 4);
            assert_eq!(code, "ThrottlingException");
            assert!(request_id.is_some());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calls(d, &arn, "Sign"), 4, "exactly max_attempts attempts");
    assert!(e.to_string().contains("up to 4 attempts"), "{e}");
    eprintln!("throttled: {e}");
    // Through the Signer interface the kind survives, for metrics (pkjwt agent).
    assert_eq!(pkjwt_core::Error::from(e).kind(), "throttled");

    faults(
        d,
        json!([{ "operation": "Sign", "key_id": arn, "times": 4, "status": 503,
                       "type": "ServiceUnavailableException", "message": "try later" }]),
    );
    let e = signer.try_sign(b"a.b").await.expect_err("5xx");
    assert!(
        matches!(e, AwsKmsError::ServiceUnavailable { status: 503, .. }),
        "{e:?}"
    );
    assert_eq!(pkjwt_core::Error::from(e).kind(), "unavailable");
    assert_eq!(calls(d, &arn, "Sign"), 8);

    // Retries disabled: one attempt.
    let once = AwsKmsSigner::open(&uri(d, &alias), None, &options().max_attempts(1))
        .await
        .expect("open");
    faults(
        d,
        json!([{ "operation": "Sign", "key_id": arn, "times": 1,
                       "type": "ThrottlingException", "message": "Rate exceeded" }]),
    );
    let e = once.try_sign(b"a.b").await.expect_err("no retry");
    assert!(
        matches!(e, AwsKmsError::Throttled { attempts: 1, .. }),
        "{e:?}"
    );
    assert_eq!(calls(d, &arn, "Sign"), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_endpoint_times_out_without_hanging() {
    let Some(d) = require!() else { return };
    let (alias, arn) = create_key(d, KeySpec::EccNistP256, KeyUsageType::SignVerify, "slow").await;
    let opts = options()
        .max_attempts(2)
        .timeouts(Duration::from_millis(300), Duration::from_millis(1500));
    let signer = AwsKmsSigner::open(&uri(d, &alias), None, &opts)
        .await
        .expect("open");
    faults(
        d,
        json!([{ "operation": "Sign", "key_id": arn, "times": -1, "delay_ms": 3000 }]),
    );
    let start = Instant::now();
    let e = signer.try_sign(b"a.b").await.expect_err("timeout");
    let took = start.elapsed();
    assert!(
        matches!(
            e,
            AwsKmsError::Timeout {
                operation: Operation::Sign,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert!(e.to_string().contains("timed out"), "{e}");
    eprintln!("timeout: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_down_is_unreachable_without_hanging() {
    let Some(_d) = require!() else { return };
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let text = format!(
        "awskms:key-id=alias/x;region={};endpoint=http://127.0.0.1:{port}",
        common::REGION
    );
    let Ok(pkjwt_core::KeyUri::AwsKms(u)) = pkjwt_core::KeyUri::parse(&text) else {
        panic!("{text}")
    };
    let start = Instant::now();
    let e = AwsKmsSigner::open(&u, None, &options())
        .await
        .expect_err("down");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    match &e {
        AwsKmsError::Unreachable {
            endpoint,
            operation,
            ..
        } => {
            assert_eq!(endpoint, &format!("http://127.0.0.1:{port}"));
            assert_eq!(*operation, Operation::GetPublicKey);
        }
        other => panic!("{other:?}"),
    }
    eprintln!("endpoint down: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_region_is_a_specific_error() {
    let Some(d) = require!() else { return };
    let text = format!("awskms:key-id=alias/x;endpoint={}", d.endpoint());
    let Ok(pkjwt_core::KeyUri::AwsKms(u)) = pkjwt_core::KeyUri::parse(&text) else {
        panic!("{text}")
    };
    let no_region = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let e = AwsKmsSigner::open(&u, None, &AwsKmsOptions::default().sdk_config(no_region))
        .await
        .expect_err("no region");
    assert!(matches!(e, AwsKmsError::NoRegion { .. }), "{e:?}");
    assert!(e.to_string().contains("AWS_REGION"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_is_a_specific_error() {
    let Some(d) = require!() else { return };
    let (alias, _) = create_key(d, KeySpec::EccNistP256, KeyUsageType::SignVerify, "nocreds").await;
    let no_creds = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(common::REGION))
        .build();
    let e = AwsKmsSigner::open(
        &uri(d, &alias),
        None,
        &AwsKmsOptions::default().sdk_config(no_creds),
    )
    .await
    .expect_err("no credentials");
    assert!(matches!(e, AwsKmsError::NoCredentials { .. }), "{e:?}");
    assert!(e.to_string().contains("AWS_PROFILE"), "{e}");
    eprintln!("no credentials: {e}");
}

// ---- generate ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_creates_key_and_alias() {
    let Some(d) = require!() else { return };
    for alg in [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::PS256,
        Algorithm::EdDSA,
    ] {
        let alias = common::alias("gen");
        let u = uri(d, &alias);
        let pk = generate(&u, alg, &GenerateOptions::default(), &options())
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert!(pk.supports(alg));
        let signer = AwsKmsSigner::open(&u, Some(alg), &options())
            .await
            .expect("open generated");
        assert_eq!(signer.public_key(), &pk);
        let sig = signer.sign(b"a.b").await.expect("sign");
        let jws_sig = pkjwt_core::jws::jws_signature(alg, &pk, &sig).expect("jws form");
        verify::verify_raw(alg.name(), b"a.b", &jws_sig, &pk.to_spki_der()).expect("verifies");
        let meta = admin(d)
            .describe_key()
            .key_id(&alias)
            .send()
            .await
            .expect("describe");
        let meta = meta.key_metadata().expect("meta");
        assert_eq!(meta.key_usage(), Some(&KeyUsageType::SignVerify));
        assert_eq!(meta.description(), Some(pkjwt_aws_kms::KEY_DESCRIPTION));
        // The alias is taken now: a second keygen is refused and creates nothing.
        let e = generate(&u, alg, &GenerateOptions::default(), &options())
            .await
            .expect_err("alias exists");
        assert!(matches!(e, AwsKmsError::AliasExists { .. }), "{e:?}");
    }
    let e = generate(
        &uri(d, "1234abcd-12ab-34cd-56ef-1234567890ab"),
        Algorithm::ES256,
        &GenerateOptions::default(),
        &options(),
    )
    .await
    .expect_err("not an alias");
    assert!(matches!(e, AwsKmsError::KeygenNeedsAlias { .. }), "{e:?}");
}

// ---- the standard AWS chain -------------------------------------------------------------------

/// Region, credentials and endpoint from the environment only (`AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL_KMS`), as a user's process has
/// them, through `aws-config`'s default chain; and the same chain with no credentials anywhere.
/// Runs in child processes (this test binary, re-executed) so that the environment is their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_chain_from_environment() {
    const CHILD: &str = "PKJWT_KMS_CHILD_KEY";
    const NO_CREDS: &str = "PKJWT_KMS_CHILD_NO_CREDENTIALS";
    if let Ok(key) = std::env::var(CHILD) {
        let Ok(pkjwt_core::KeyUri::AwsKms(u)) =
            pkjwt_core::KeyUri::parse(&format!("awskms:key-id={key}"))
        else {
            panic!("URI")
        };
        assert_eq!((u.region.as_deref(), u.endpoint.as_deref()), (None, None));
        let opened = AwsKmsSigner::open(&u, None, &AwsKmsOptions::default()).await;
        if std::env::var_os(NO_CREDS).is_some() {
            let e = opened.expect_err("no credentials in the chain");
            assert!(matches!(e, AwsKmsError::NoCredentials { .. }), "{e:?}");
            println!("CHILD-OK {e}");
            return;
        }
        let signer: Arc<dyn Signer> = Arc::new(opened.expect("open through the standard chain"));
        let a = ClientAssertion::new(signer, AssertionOptions::new("env-client", "https://as"))
            .expect("options");
        println!("CHILD-OK {}", a.sign().await.expect("sign"));
        return;
    }
    let Some(d) = require!() else { return };
    let (alias, arn) = create_key(d, KeySpec::EccNistP256, KeyUsageType::SignVerify, "env").await;
    let child = |credentials: bool| {
        let mut cmd = std::process::Command::new(std::env::current_exe().expect("test binary"));
        cmd.args([
            "--exact",
            "standard_chain_from_environment",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent/pkjwt-test-home")
        .env(CHILD, &alias)
        .env("AWS_ENDPOINT_URL_KMS", d.endpoint())
        .env("AWS_REGION", common::REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/pkjwt-test-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/pkjwt-test-credentials",
        );
        if credentials {
            cmd.env("AWS_ACCESS_KEY_ID", "AKIDENV")
                .env("AWS_SECRET_ACCESS_KEY", "env-secret");
        } else {
            cmd.env(NO_CREDS, "1");
        }
        let out = cmd.output().expect("run child");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .find_map(|l| {
                l.split_once("CHILD-OK ")
                    .map(|(_, rest)| rest.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no result from the child:\n{stdout}"))
    };
    let jwt = child(true);
    verify::verify_jws(&jwt, &spki(d, &arn).await).expect("child's assertion verifies");
    assert_eq!(calls(d, &alias, "GetPublicKey"), 1);
    assert_eq!(calls(d, &arn, "Sign"), 1);
    let message = child(false);
    eprintln!("no credentials in the chain: {message}");
    assert_eq!(
        calls(d, &alias, "GetPublicKey"),
        1,
        "nothing is sent without credentials"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_cleans_up_when_the_alias_cannot_be_created() {
    let Some(d) = require!() else { return };
    let alias = common::alias("noalias");
    faults(
        d,
        json!([{ "operation": "CreateAlias", "key_id": alias, "type": "AccessDeniedException",
                 "message": "not authorized to perform: kms:CreateAlias" }]),
    );
    let e = generate(
        &uri(d, &alias),
        Algorithm::ES256,
        &GenerateOptions::default(),
        &options(),
    )
    .await
    .expect_err("CreateAlias denied");
    let AwsKmsError::AliasNotCreated { key, cause, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(
        matches!(
            **cause,
            AwsKmsError::AccessDenied {
                permission: "kms:CreateAlias",
                ..
            }
        ),
        "{cause:?}"
    );
    assert!(e.to_string().contains("scheduled for deletion"), "{e}");
    let meta = admin(d)
        .describe_key()
        .key_id(key)
        .send()
        .await
        .expect("describe");
    assert_eq!(
        meta.key_metadata()
            .and_then(|m| m.key_state())
            .map(|s| s.as_str()),
        Some("PendingDeletion"),
        "the orphan key is scheduled for deletion"
    );
    assert_eq!(calls(d, &alias, "CreateAlias"), 1);
}

// ---- trace events carry the AWS request id ----------------------------------------------------

/// The fields of every `pkjwt_aws_kms` event emitted on the thread where it is the default
/// subscriber (the test's own: `block_on` polls the test body there).
#[derive(Clone, Default)]
struct Events(Arc<std::sync::Mutex<Vec<std::collections::BTreeMap<String, String>>>>);

impl Events {
    /// The recorded events whose message is `message`.
    fn named(&self, message: &str) -> Vec<std::collections::BTreeMap<String, String>> {
        let all = self.0.lock().expect("events lock");
        all.iter()
            .filter(|e| e.get("message").map(String::as_str) == Some(message))
            .cloned()
            .collect()
    }
}

impl tracing::Subscriber for Events {
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.target().starts_with("pkjwt_aws_kms")
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields<'a>(&'a mut std::collections::BTreeMap<String, String>);
        impl tracing::field::Visit for Fields<'_> {
            fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                self.0.insert(f.name().to_owned(), v.to_owned());
            }
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0.insert(f.name().to_owned(), format!("{v:?}"));
            }
        }
        let mut fields = std::collections::BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().expect("events lock").push(fields);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The request id an event carries; fails when it has none (`-` is what the events log for an
/// answer without one, and the double gives every answer one).
fn assert_request_id(event: &std::collections::BTreeMap<String, String>) -> String {
    let id = event.get("request_id").cloned().unwrap_or_default();
    assert!(
        !id.is_empty() && id != "-" && id.chars().all(|c| c == '-' || c.is_ascii_alphanumeric()),
        "no AWS request id in {event:?}"
    );
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_and_alias_events_carry_the_request_id() {
    let Some(d) = require!() else { return };
    let events = Events::default();
    let guard = tracing::dispatcher::set_default(&tracing::Dispatch::new(events.clone()));
    let alias = common::alias("traced");
    let u = uri(d, &alias);
    generate(
        &u,
        Algorithm::ES256,
        &GenerateOptions::default(),
        &options(),
    )
    .await
    .expect("generate");
    let first = admin(d)
        .describe_key()
        .key_id(&alias)
        .send()
        .await
        .expect("describe")
        .key_metadata()
        .and_then(|m| m.arn())
        .expect("ARN")
        .to_owned();
    let next = pkjwt_aws_kms::create_key(
        &u,
        Algorithm::ES256,
        &GenerateOptions::default(),
        &options(),
    )
    .await
    .expect("create_key");
    // The alias exists: UpdateAlias. A new alias: CreateAlias.
    pkjwt_aws_kms::point_alias(&u, &alias, next.key_arn(), &options())
        .await
        .expect("UpdateAlias");
    let fresh = common::alias("traced-new");
    pkjwt_aws_kms::point_alias(&u, &fresh, next.key_arn(), &options())
        .await
        .expect("CreateAlias");
    drop(guard);

    // The info events carry the id of the CreateKey answer their debug event logged.
    let create_keys: Vec<String> = events
        .named("CreateKey")
        .iter()
        .map(assert_request_id)
        .collect();
    assert_eq!(create_keys.len(), 2, "two CreateKey calls");
    let [generated] = events
        .named("created KMS key")
        .try_into()
        .expect("one keygen event");
    assert_eq!(assert_request_id(&generated), create_keys[0]);
    assert_eq!(generated["key"], first);
    assert_eq!(generated["alias"], alias);
    let [created] = events
        .named("created KMS key (no alias yet)")
        .try_into()
        .expect("one create_key event");
    assert_eq!(assert_request_id(&created), create_keys[1]);
    assert_eq!(created["key"], next.key_arn());
    // Each alias move carries the id of its own UpdateAlias / CreateAlias answer.
    let [updated, made] = events.named("alias moved").try_into().expect("two moves");
    assert_eq!(
        (updated["alias"].as_str(), updated["previous"].as_str()),
        (alias.as_str(), first.as_str())
    );
    assert_eq!(
        (made["alias"].as_str(), made["previous"].as_str()),
        (fresh.as_str(), "-")
    );
    let mut ids = vec![assert_request_id(&updated), assert_request_id(&made)];
    ids.extend(create_keys);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "one request id per answer: {ids:?}");
}
