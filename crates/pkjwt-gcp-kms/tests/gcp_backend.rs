//! The Cloud KMS backend against the double (infra/gcp-kms/gcp_kms_double.py): the conformance
//! suite for every key type, the calls each operation makes, every error variant with its
//! message, retries, integrity checks, credentials, and key generation.

mod common;

use std::sync::Arc;

use common::{calls, control, count, create_key, deny, double, faults, options, uri};
use pkjwt_core::{Algorithm, GenerateOptions, Signer};
use pkjwt_gcp_kms::{Credentials, GcpKmsError, GcpKmsOptions, GcpKmsSigner, ProtectionLevel};
use serde_json::json;

macro_rules! require {
    () => {
        match double() {
            Some(d) => d,
            None => return,
        }
    };
}

async fn open(d: &common::Double, name: &str) -> Result<GcpKmsSigner, GcpKmsError> {
    GcpKmsSigner::open(&uri(d, name), None, &options(d)).await
}

#[tokio::test]
async fn conformance_every_key_type() {
    let d = require!();
    for (algorithm, jws, level) in [
        ("EC_SIGN_P256_SHA256", Algorithm::ES256, "SOFTWARE"),
        ("EC_SIGN_P384_SHA384", Algorithm::ES384, "SOFTWARE"),
        ("EC_SIGN_SECP256K1_SHA256", Algorithm::ES256K, "HSM"),
        ("EC_SIGN_ED25519", Algorithm::EdDSA, "SOFTWARE"),
        ("RSA_SIGN_PSS_2048_SHA256", Algorithm::PS256, "SOFTWARE"),
        ("RSA_SIGN_PSS_3072_SHA256", Algorithm::PS256, "SOFTWARE"),
        ("RSA_SIGN_PSS_4096_SHA256", Algorithm::PS256, "HSM"),
        ("RSA_SIGN_PSS_4096_SHA512", Algorithm::PS512, "SOFTWARE"),
        ("RSA_SIGN_PKCS1_2048_SHA256", Algorithm::RS256, "SOFTWARE"),
        ("RSA_SIGN_PKCS1_3072_SHA256", Algorithm::RS256, "SOFTWARE"),
        ("RSA_SIGN_PKCS1_4096_SHA256", Algorithm::RS256, "SOFTWARE"),
        ("RSA_SIGN_PKCS1_4096_SHA512", Algorithm::RS512, "SOFTWARE"),
    ] {
        let name = create_key(d, "conf", algorithm, json!({"protectionLevel": level}));
        let signer = open(d, &name)
            .await
            .unwrap_or_else(|e| panic!("{algorithm}: {e}"));
        assert_eq!(signer.algorithm(), jws, "{algorithm}");
        assert_eq!(signer.gcp_algorithm(), algorithm);
        assert_eq!(signer.protection_level(), level);
        assert_eq!(signer.name(), name);
        pkjwt_conformance::check_signer(Arc::new(signer)).await;
    }
}

#[tokio::test]
async fn open_reads_the_public_key_once_and_each_sign_is_one_call() {
    let d = require!();
    let name = create_key(d, "calls", "EC_SIGN_P256_SHA256", json!({}));
    let signer = open(d, &name).await.unwrap();
    assert_eq!(calls(d, Some(&name)), json!({"getPublicKey": 1}));
    for _ in 0..3 {
        signer.sign(b"header.payload").await.unwrap();
    }
    assert_eq!(
        calls(d, Some(&name)),
        json!({"getPublicKey": 1, "asymmetricSign": 3})
    );
    // public_key() never reaches the service.
    let _ = signer.public_key();
    assert_eq!(count(d, &name, "getPublicKey"), 1);
}

#[tokio::test]
async fn one_token_for_concurrent_callers_and_it_is_reused() {
    let d = require!();
    let sa = common::service_account_file(d, "sa-token-cache.json");
    let email: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sa).unwrap()).unwrap();
    let email = email["client_email"].as_str().unwrap().to_owned();
    let name = create_key(d, "tok", "EC_SIGN_P256_SHA256", json!({}));
    let opts = options(d).credentials(Credentials::File(sa));
    let signer = Arc::new(
        GcpKmsSigner::open(&uri(d, &name), None, &opts)
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let s = signer.clone();
        tasks.push(tokio::spawn(async move { s.sign(b"m").await.map(|_| ()) }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        count(d, &email, "token"),
        1,
        "one grant for open and 20 signatures"
    );
    assert_eq!(count(d, &name, "asymmetricSign"), 20);
}

#[tokio::test]
async fn requested_algorithm_must_be_the_versions() {
    let d = require!();
    let name = create_key(d, "alg", "EC_SIGN_P256_SHA256", json!({}));
    let ok = GcpKmsSigner::open(&uri(d, &name), Some(Algorithm::ES256), &options(d)).await;
    assert!(ok.is_ok());
    let e = GcpKmsSigner::open(&uri(d, &name), Some(Algorithm::ES384), &options(d))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            GcpKmsError::AlgorithmNotSupported {
                requested: Algorithm::ES384,
                supported: Algorithm::ES256,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("EC_SIGN_P256_SHA256")
            && msg.contains("signs ES256 only")
            && msg.contains("ES384"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_decryption_key_is_not_a_signing_key() {
    let d = require!();
    let name = create_key(
        d,
        "dec",
        "RSA_DECRYPT_OAEP_2048_SHA256",
        json!({"purpose": "ASYMMETRIC_DECRYPT"}),
    );
    let e = open(d, &name).await.unwrap_err();
    assert!(matches!(e, GcpKmsError::NotSigningKey { .. }), "{e:?}");
    assert!(
        e.to_string().contains("RSA_DECRYPT_OAEP_2048_SHA256")
            && e.to_string().contains("ASYMMETRIC_SIGN")
    );
}

#[tokio::test]
async fn not_found_names_the_key() {
    let d = require!();
    let name = format!("{}/cryptoKeys/absent/cryptoKeyVersions/1", common::RING);
    let e = open(d, &name).await.unwrap_err();
    assert!(matches!(e, GcpKmsError::NotFound { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("cryptoKeyVersions.getPublicKey")
            && msg.contains(&name)
            && msg.contains("NOT_FOUND"),
        "{msg}"
    );
}

#[tokio::test]
async fn disabled_and_destroyed_versions() {
    let d = require!();
    for state in ["DISABLED", "DESTROYED", "DESTROY_SCHEDULED"] {
        let name = create_key(d, "state", "EC_SIGN_P256_SHA256", json!({"state": state}));
        let e = open(d, &name).await.unwrap_err();
        assert!(
            matches!(e, GcpKmsError::VersionNotEnabled { .. }),
            "{state}: {e:?}"
        );
        assert!(
            e.to_string().contains(state) && e.to_string().contains("FAILED_PRECONDITION"),
            "{e}"
        );
    }
    // Disabled after opening: signing fails with the same variant, naming asymmetricSign.
    let name = create_key(d, "state", "EC_SIGN_P256_SHA256", json!({}));
    let signer = open(d, &name).await.unwrap();
    control(
        d,
        "POST",
        "/_pkjwt/state",
        Some(json!({"name": name, "state": "DISABLED"})),
    );
    let e = signer.try_sign(b"m").await.unwrap_err();
    assert!(matches!(e, GcpKmsError::VersionNotEnabled { .. }), "{e:?}");
    assert!(
        e.to_string().contains("cryptoKeyVersions.asymmetricSign"),
        "{e}"
    );
    assert_eq!(count(d, &name, "asymmetricSign"), 1, "not retried");
}

#[tokio::test]
async fn permission_denied_names_the_permission_and_role() {
    let d = require!();
    let name = create_key(d, "iam", "EC_SIGN_P256_SHA256", json!({}));
    deny(d, "cloudkms.cryptoKeyVersions.useToSign", &name);
    let signer = open(d, &name).await.unwrap();
    let e = signer.try_sign(b"m").await.unwrap_err();
    assert!(matches!(e, GcpKmsError::PermissionDenied { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("cloudkms.cryptoKeyVersions.useToSign")
            && msg.contains("roles/cloudkms.signerVerifier")
            && msg.contains(&name),
        "{msg}"
    );
    let name = create_key(d, "iam", "EC_SIGN_P256_SHA256", json!({}));
    deny(d, "cloudkms.cryptoKeyVersions.viewPublicKey", &name);
    let msg = open(d, &name).await.unwrap_err().to_string();
    assert!(
        msg.contains("cloudkms.cryptoKeyVersions.viewPublicKey")
            && msg.contains("roles/cloudkms.publicKeyViewer"),
        "{msg}"
    );
}

#[tokio::test]
async fn throttling_is_retried_then_reported() {
    let d = require!();
    let name = create_key(d, "429", "EC_SIGN_P256_SHA256", json!({}));
    let signer = open(d, &name).await.unwrap();
    let quota = json!({"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded for quota metric 'Cryptographic requests'"});
    faults(
        d,
        json!([{"op": "asymmetricSign", "name": name, "times": 2, "error": quota}]),
    );
    signer.try_sign(b"m").await.unwrap();
    assert_eq!(
        count(d, &name, "asymmetricSign"),
        3,
        "two throttled, the third signs"
    );
    faults(
        d,
        json!([{"op": "asymmetricSign", "name": name, "times": -1, "error": quota}]),
    );
    let e = signer.try_sign(b"m").await.unwrap_err();
    assert!(
        matches!(e, GcpKmsError::Throttled { attempts: 4, .. }),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("throttled (RESOURCE_EXHAUSTED) on all 4 attempts")
            && e.to_string().contains("Quota exceeded"),
        "{e}"
    );
    assert_eq!(
        count(d, &name, "asymmetricSign"),
        7,
        "bounded: 4 more attempts"
    );
}

#[tokio::test]
async fn unavailability_is_retried_then_reported() {
    let d = require!();
    let name = create_key(d, "503", "EC_SIGN_P256_SHA256", json!({}));
    let signer = open(d, &name).await.unwrap();
    faults(
        d,
        json!([{"op": "asymmetricSign", "name": name, "times": -1,
        "error": {"code": 503, "status": "UNAVAILABLE", "message": "The service is currently unavailable."}}]),
    );
    let e = signer.try_sign(b"m").await.unwrap_err();
    assert!(
        matches!(e, GcpKmsError::Unavailable { attempts: 4, .. }),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("unavailable at http://127.0.0.1")
            && e.to_string().contains("UNAVAILABLE"),
        "{e}"
    );
    // Nothing listening: a transport failure, retried the same way.
    let opts = options(d).max_attempts(2);
    let mut u = uri(d, &name);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    u.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let e = GcpKmsSigner::open(&u, None, &opts).await.unwrap_err();
    assert!(
        matches!(e, GcpKmsError::Unavailable { attempts: 2, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("connection failed"), "{e}");
}

#[tokio::test]
async fn invalid_argument_and_other_statuses_are_not_retried() {
    let d = require!();
    let name = create_key(d, "400", "EC_SIGN_P256_SHA256", json!({}));
    let signer = open(d, &name).await.unwrap();
    faults(
        d,
        json!([{"op": "asymmetricSign", "name": name, "times": 1,
        "error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "The checksum in field digest_crc32c did not match the data in field digest."}}]),
    );
    let e = signer.try_sign(b"m").await.unwrap_err();
    assert!(matches!(e, GcpKmsError::InvalidArgument { .. }), "{e:?}");
    assert!(e.to_string().contains("digest_crc32c"), "{e}");
    faults(
        d,
        json!([{"op": "asymmetricSign", "name": name, "times": 1,
        "error": {"code": 409, "status": "ABORTED", "message": "try later"}}]),
    );
    let e = signer.try_sign(b"m").await.unwrap_err();
    assert!(
        matches!(
            e,
            GcpKmsError::Api {
                http_status: 409,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("HTTP 409 ABORTED: try later"), "{e}");
    assert_eq!(count(d, &name, "asymmetricSign"), 2);
}

#[tokio::test]
async fn integrity_failures_are_retried_then_reported() {
    let d = require!();
    let name = create_key(d, "crc", "EC_SIGN_P256_SHA256", json!({}));
    let signer = open(d, &name).await.unwrap();
    for field in ["signatureCrc32c", "signature", "verifiedDigestCrc32c"] {
        // Once: the retry gets a good answer.
        faults(
            d,
            json!([{"op": "asymmetricSign", "name": name, "times": 1, "corrupt": field}]),
        );
        let before = count(d, &name, "asymmetricSign");
        signer
            .try_sign(b"m")
            .await
            .unwrap_or_else(|e| panic!("{field}: {e}"));
        assert_eq!(count(d, &name, "asymmetricSign"), before + 2, "{field}");
        // Always: reported after the attempts.
        faults(
            d,
            json!([{"op": "asymmetricSign", "name": name, "times": 4, "corrupt": field}]),
        );
        let e = signer.try_sign(b"m").await.unwrap_err();
        assert!(
            matches!(e, GcpKmsError::Integrity { attempts: 4, .. }),
            "{field}: {e:?}"
        );
        let want = if field == "verifiedDigestCrc32c" {
            "verifiedDigestCrc32c"
        } else {
            "signatureCrc32c"
        };
        assert!(e.to_string().contains(want), "{field}: {e}");
    }
    // The public key's checksum.
    let name = create_key(d, "crc", "EC_SIGN_P256_SHA256", json!({}));
    faults(
        d,
        json!([{"op": "getPublicKey", "name": name, "times": -1, "corrupt": "pemCrc32c"}]),
    );
    let e = open(d, &name).await.unwrap_err();
    assert!(
        matches!(e, GcpKmsError::Integrity { .. }) && e.to_string().contains("pemCrc32c"),
        "{e:?}"
    );
    let name = create_key(d, "crc", "EC_SIGN_P256_SHA256", json!({}));
    faults(
        d,
        json!([{"op": "getPublicKey", "name": name, "times": -1, "corrupt": "pem"}]),
    );
    let e = open(d, &name).await.unwrap_err();
    assert!(
        matches!(e, GcpKmsError::Integrity { .. }),
        "a PEM altered in transit: {e:?}"
    );
}

#[tokio::test]
async fn answers_naming_another_version_or_missing_fields_are_refused() {
    let d = require!();
    let name = create_key(d, "shape", "EC_SIGN_P256_SHA256", json!({}));
    let signer = open(d, &name).await.unwrap();
    faults(
        d,
        json!([{"op": "asymmetricSign", "name": name, "times": 1, "corrupt": "name"}]),
    );
    let e = signer.try_sign(b"m").await.unwrap_err();
    assert!(matches!(e, GcpKmsError::InvalidResponse { .. }), "{e:?}");
    assert!(e.to_string().contains("cryptoKeyVersions/999"), "{e}");
    faults(
        d,
        json!([{"op": "asymmetricSign", "name": name, "times": 1, "drop": ["signatureCrc32c"]}]),
    );
    let e = signer.try_sign(b"m").await.unwrap_err();
    assert!(e.to_string().contains("no signatureCrc32c"), "{e}");
    let name = create_key(d, "shape", "EC_SIGN_P256_SHA256", json!({}));
    faults(
        d,
        json!([{"op": "getPublicKey", "name": name, "times": 1, "drop": ["algorithm"]}]),
    );
    let e = open(d, &name).await.unwrap_err();
    assert!(e.to_string().contains("no algorithm"), "{e}");
}

#[tokio::test]
async fn credentials_errors() {
    let d = require!();
    let name = create_key(d, "cred", "EC_SIGN_P256_SHA256", json!({}));
    // The token endpoint refuses the grant.
    let sa = common::service_account_file(d, "sa-refused.json");
    let text = std::fs::read_to_string(&sa).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let email = v["client_email"].as_str().unwrap();
    faults(
        d,
        json!([{"op": "token", "name": email, "times": -1,
        "error": {"code": 400, "status": "invalid_grant", "message": "Invalid JWT Signature."}}]),
    );
    let e = GcpKmsSigner::open(
        &uri(d, &name),
        None,
        &options(d).credentials(Credentials::File(sa.clone())),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, GcpKmsError::Credentials { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("invalid_grant: Invalid JWT Signature.")
            && msg.contains(&sa.display().to_string())
            && msg.contains("/token"),
        "{msg}"
    );
    let key_pem = v["private_key"].as_str().unwrap();
    let key_line = key_pem.lines().nth(1).unwrap();
    assert!(!msg.contains(key_line) && !format!("{e:?}").contains(key_line));
    // A token the service does not accept: one fresh token is tried, then UNAUTHENTICATED.
    let opts = options(d).credentials(Credentials::AccessToken(
        "ya29.not-issued".to_owned().into(),
    ));
    let e = GcpKmsSigner::open(&uri(d, &name), None, &opts)
        .await
        .unwrap_err();
    assert!(matches!(e, GcpKmsError::Unauthenticated { .. }), "{e:?}");
    assert!(
        !e.to_string().contains("ya29.not-issued")
            && !format!("{opts:?}").contains("ya29.not-issued")
    );
    // A missing file.
    let e = GcpKmsSigner::open(
        &uri(d, &name),
        None,
        &options(d).credentials(Credentials::File("/nonexistent/sa.json".into())),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("/nonexistent/sa.json") && e.to_string().contains("cannot read"),
        "{e}"
    );
}

#[tokio::test]
async fn workload_identity_federation_with_impersonation() {
    let d = require!();
    let dir = common::scratch();
    let token_file = dir.join("wif-subject-token");
    let out = control(
        d,
        "POST",
        "/_pkjwt/external-account",
        Some(json!({"subject_token_file": token_file.display().to_string()})),
    );
    std::fs::write(&token_file, out["subject_token"].as_str().unwrap()).unwrap();
    let config = dir.join("wif.json");
    std::fs::write(&config, out["config"].to_string()).unwrap();
    let email = out["email"].as_str().unwrap();
    let name = create_key(d, "wif", "EC_SIGN_P256_SHA256", json!({}));
    let signer = GcpKmsSigner::open(
        &uri(d, &name),
        None,
        &options(d).credentials(Credentials::File(config)),
    )
    .await
    .unwrap();
    signer.sign(b"m").await.unwrap();
    assert!(
        count(d, "sts", "sts") >= 1,
        "the subject token was exchanged at STS"
    );
    assert_eq!(count(d, email, "generateAccessToken"), 1);
}

#[tokio::test]
async fn debug_output_has_no_secrets() {
    let d = require!();
    let name = create_key(d, "dbg", "EC_SIGN_P256_SHA256", json!({}));
    let signer = open(d, &name).await.unwrap();
    let text = format!("{signer:?}");
    assert!(
        text.contains(&name) && text.contains("EC_SIGN_P256_SHA256"),
        "{text}"
    );
    assert!(
        !text.contains("ya29") && !text.contains("PRIVATE"),
        "{text}"
    );
}

#[tokio::test]
async fn generate_creates_waits_and_opens() {
    let d = require!();
    let ring = "projects/pkjwt-test/locations/europe-west1/keyRings/gen";
    control(d, "POST", "/_pkjwt/key-ring", Some(json!({"name": ring})));
    let id = common::key_id("gen");
    let name = format!("{ring}/cryptoKeys/{id}/cryptoKeyVersions/1");
    let u = uri(d, &name);
    let opts = options(d);
    let signer = pkjwt_gcp_kms::generate(&u, Algorithm::ES256, &GenerateOptions::default(), &opts)
        .await
        .unwrap();
    assert_eq!(signer.protection_level(), "HSM", "HSM by default");
    assert!(
        count(d, &name, "getCryptoKeyVersion") >= 2,
        "the HSM version was PENDING_GENERATION first"
    );
    pkjwt_conformance::check_signer(Arc::new(signer)).await;
    // Again: the key exists.
    let e = pkjwt_gcp_kms::generate(&u, Algorithm::ES256, &GenerateOptions::default(), &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(e, GcpKmsError::AlreadyExists { .. }) && e.to_string().contains("already exists"),
        "{e:?}"
    );
    // RSA size reaches the API.
    let name = format!(
        "{ring}/cryptoKeys/{}/cryptoKeyVersions/1",
        common::key_id("gen")
    );
    let signer = pkjwt_gcp_kms::generate(
        &uri(d, &name),
        Algorithm::PS256,
        &GenerateOptions::default().rsa_bits(3072),
        &opts.clone().protection_level(ProtectionLevel::Software),
    )
    .await
    .unwrap();
    assert_eq!(signer.gcp_algorithm(), "RSA_SIGN_PSS_3072_SHA256");
    assert_eq!(signer.public_key().bits(), 3072);
    assert_eq!(signer.protection_level(), "SOFTWARE");
}

#[tokio::test]
async fn generate_refusals() {
    let d = require!();
    let opts: GcpKmsOptions = options(d);
    let missing = format!(
        "projects/pkjwt-test/locations/global/keyRings/no-ring-{}/cryptoKeys/k/cryptoKeyVersions/1",
        std::process::id()
    );
    // What generate says for a version path and an algorithm, before or instead of creating.
    let refused = |version: String, alg| {
        let opts = &opts;
        async move {
            pkjwt_gcp_kms::generate(&uri(d, &version), alg, &GenerateOptions::default(), opts)
                .await
                .unwrap_err()
        }
    };
    let e = refused(missing, Algorithm::ES256).await;
    assert!(matches!(e, GcpKmsError::KeyRingNotFound { .. }), "{e:?}");
    assert!(
        e.to_string().contains("key ring") && e.to_string().contains("gcloud kms keyrings create"),
        "{e}"
    );
    let v2 = format!(
        "{}/cryptoKeys/{}/cryptoKeyVersions/2",
        common::RING,
        common::key_id("gen")
    );
    let e = refused(v2, Algorithm::ES256).await;
    assert!(e.to_string().contains("names version 2"), "{e}");
    let v1 = format!(
        "{}/cryptoKeys/{}/cryptoKeyVersions/1",
        common::RING,
        common::key_id("gen")
    );
    let e = refused(v1.clone(), Algorithm::ES512).await;
    assert!(
        matches!(e, GcpKmsError::GenerateOption { .. }) && e.to_string().contains("ES512"),
        "{e:?}"
    );
    assert_eq!(
        calls(d, Some(v1.rsplit_once("/cryptoKeyVersions").unwrap().0)),
        json!({}),
        "nothing sent"
    );
}

#[tokio::test]
async fn error_kinds_survive_the_signer_interface() {
    let d = require!();
    // Through `Signer::sign` (what the facade and pkjwt agent see) the kind is kept, for metrics.
    let kind_of_sign = |rules: serde_json::Value, tag: &'static str| async move {
        let name = create_key(d, tag, "EC_SIGN_P256_SHA256", json!({}));
        let signer = open(d, &name).await.unwrap();
        let mut rules = rules;
        for r in rules.as_array_mut().unwrap() {
            r["name"] = json!(name);
        }
        faults(d, rules);
        signer.sign(b"m").await.unwrap_err().kind()
    };
    let err = |code: u16, status: &str| {
        json!([{"op": "asymmetricSign", "times": -1,
        "error": {"code": code, "status": status, "message": "x"}}])
    };
    assert_eq!(
        kind_of_sign(err(429, "RESOURCE_EXHAUSTED"), "kind").await,
        "throttled"
    );
    assert_eq!(
        kind_of_sign(err(503, "UNAVAILABLE"), "kind").await,
        "unavailable"
    );
    assert_eq!(
        kind_of_sign(err(403, "PERMISSION_DENIED"), "kind").await,
        "access_denied"
    );
    assert_eq!(
        kind_of_sign(err(404, "NOT_FOUND"), "kind").await,
        "not_found"
    );
    assert_eq!(
        kind_of_sign(err(400, "FAILED_PRECONDITION"), "kind").await,
        "key_unavailable"
    );
    assert_eq!(
        kind_of_sign(
            json!([{"op": "asymmetricSign", "times": -1, "corrupt": "signatureCrc32c"}]),
            "kind"
        )
        .await,
        "invalid_response"
    );
    assert_eq!(
        kind_of_sign(err(400, "INVALID_ARGUMENT"), "kind").await,
        "other"
    );
    let e = GcpKmsSigner::open(
        &uri(d, &create_key(d, "kind", "EC_SIGN_P256_SHA256", json!({}))),
        None,
        &options(d).credentials(Credentials::File("/nonexistent/sa.json".into())),
    )
    .await
    .unwrap_err();
    assert_eq!(pkjwt_core::Error::from(e).kind(), "credentials");
}

#[tokio::test]
async fn gcloud_user_credentials_refresh_token_grant() {
    let d = require!();
    let user = control(d, "POST", "/_pkjwt/authorized-user", Some(json!({})));
    let file = common::scratch().join("authorized-user.json");
    common::write_secret(&file, &user.to_string());
    let name = create_key(d, "user", "EC_SIGN_P256_SHA256", json!({}));
    let signer = GcpKmsSigner::open(
        &uri(d, &name),
        None,
        &options(d).credentials(Credentials::File(file.clone())),
    )
    .await
    .unwrap();
    signer.sign(b"m").await.unwrap();
    let client_id = user["client_id"].as_str().unwrap();
    assert_eq!(count(d, client_id, "token"), 1);
    // A revoked refresh token: the grant's error, never the secret or the refresh token.
    let mut revoked = user.clone();
    revoked["refresh_token"] = json!("1//revoked-refresh-token");
    common::write_secret(&file, &revoked.to_string());
    let e = GcpKmsSigner::open(
        &uri(d, &name),
        None,
        &options(d).credentials(Credentials::File(file)),
    )
    .await
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("invalid_grant: Token has been expired or revoked."),
        "{msg}"
    );
    assert!(
        !msg.contains("1//revoked") && !msg.contains(user["client_secret"].as_str().unwrap()),
        "{msg}"
    );
}

#[tokio::test]
async fn generate_reports_a_version_not_ready_and_destroys_an_unusable_one() {
    let d = require!();
    let ring = "projects/pkjwt-test/locations/europe-west1/keyRings/gen-faults";
    control(d, "POST", "/_pkjwt/key-ring", Some(json!({"name": ring})));
    // HSM versions stay PENDING_GENERATION for 300 ms in the double: a 50 ms budget runs out.
    let name = format!(
        "{ring}/cryptoKeys/{}/cryptoKeyVersions/1",
        common::key_id("slow")
    );
    let e = pkjwt_gcp_kms::generate(
        &uri(d, &name),
        Algorithm::ES256,
        &GenerateOptions::default(),
        &options(d).generation_timeout(std::time::Duration::from_millis(50)),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, GcpKmsError::GenerationNotReady { .. }), "{e:?}");
    assert!(
        e.to_string().contains("PENDING_GENERATION")
            && e.to_string().contains("generation_timeout"),
        "{e}"
    );
    // The new version cannot be opened: it is scheduled for destruction, and the error says so.
    let name = format!(
        "{ring}/cryptoKeys/{}/cryptoKeyVersions/1",
        common::key_id("bad")
    );
    faults(
        d,
        json!([{"op": "getPublicKey", "name": name, "times": -1,
        "error": {"code": 403, "status": "PERMISSION_DENIED", "message": "no viewPublicKey"}}]),
    );
    let e = pkjwt_gcp_kms::generate(
        &uri(d, &name),
        Algorithm::ES256,
        &GenerateOptions::default(),
        &options(d),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, GcpKmsError::CreatedKeyNotUsable { cause, .. } if matches!(**cause, GcpKmsError::PermissionDenied { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("scheduled for destruction"), "{e}");
    assert_eq!(count(d, &name, "destroy"), 1);
}

#[tokio::test]
async fn secret_credentials_files_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let d = require!();
    let name = create_key(d, "perm", "EC_SIGN_P256_SHA256", json!({}));
    // A service account key readable by others is refused, like a key file of pkjwt's own, and
    // no grant is attempted.
    let sa = common::service_account_file(d, "sa-0644.json");
    let email: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sa).unwrap()).unwrap();
    let email = email["client_email"].as_str().unwrap().to_owned();
    std::fs::set_permissions(&sa, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = GcpKmsSigner::open(
        &uri(d, &name),
        None,
        &options(d).credentials(Credentials::File(sa.clone())),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, GcpKmsError::Credentials { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&sa.display().to_string())
            && msg.contains("0644")
            && msg.contains("0600 or 0400"),
        "{msg}"
    );
    assert_eq!(count(d, &email, "token"), 0);
    // 0400 is accepted.
    std::fs::set_permissions(&sa, std::fs::Permissions::from_mode(0o400)).unwrap();
    GcpKmsSigner::open(
        &uri(d, &name),
        None,
        &options(d).credentials(Credentials::File(sa)),
    )
    .await
    .unwrap();
    // A workload identity configuration holds no secret: others may read it (the WIF test uses
    // 0644), but not write it.
    let dir = common::scratch();
    let cfg = dir.join("wif-0666.json");
    let out = control(
        d,
        "POST",
        "/_pkjwt/external-account",
        Some(json!({"subject_token_file": dir.join("t").display().to_string()})),
    );
    std::fs::write(&cfg, out["config"].to_string()).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = GcpKmsSigner::open(
        &uri(d, &name),
        None,
        &options(d).credentials(Credentials::File(cfg)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, GcpKmsError::Credentials { .. }) && e.to_string().contains("0666"),
        "{e}"
    );
}
