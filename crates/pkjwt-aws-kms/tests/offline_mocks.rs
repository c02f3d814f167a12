//! Offline tests with the SDK's own mocks (`aws-smithy-mocks`): no endpoint, no Python. The mock
//! answers are made from real keys (RustCrypto `p256`, `ed25519-dalek`): `GetPublicKey` returns
//! the key's SPKI and `Sign` signs what the request carries exactly as the KMS API reference says
//! (DIGEST: the digest itself; RAW Ed25519: the message), after checking the request's shape
//! (key ARN, algorithm, message type, digest length). These complement the KMS double
//! (`kms_backend.rs`), which exercises the wire protocol, retries and timeouts.

mod verify;

use std::sync::Arc;

use aws_sdk_kms::Client;
use aws_sdk_kms::operation::get_public_key::{GetPublicKeyError, GetPublicKeyOutput};
use aws_sdk_kms::operation::sign::{SignError, SignOutput};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::error::{
    DisabledException, KeyUnavailableException, KmsInvalidStateException, NotFoundException,
};
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::EncodePublicKey;
use pkjwt_aws_kms::{AwsKmsError, AwsKmsSigner};
use pkjwt_core::{Algorithm, AssertionOptions, ClientAssertion, Signer};

/// The error metadata the SDK's deserializer attaches to every modeled error it reads from the
/// wire (the `__type` code and the message); a builder alone leaves it empty.
fn meta(code: &str, message: &str) -> aws_sdk_kms::error::ErrorMetadata {
    aws_sdk_kms::error::ErrorMetadata::builder()
        .code(code)
        .message(message)
        .build()
}

const ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn p256_key() -> p256::ecdsa::SigningKey {
    // A fixed, valid scalar: a real key pair, deterministic across runs.
    p256::ecdsa::SigningKey::from_slice(&[0x5a; 32]).expect("valid P-256 scalar")
}

fn ed25519_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[0x21; 32])
}

fn p256_spki() -> Vec<u8> {
    p256_key()
        .verifying_key()
        .to_public_key_der()
        .expect("SPKI")
        .as_bytes()
        .to_vec()
}

fn ed25519_spki() -> Vec<u8> {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    ed25519_key()
        .verifying_key()
        .to_public_key_der()
        .expect("SPKI")
        .as_bytes()
        .to_vec()
}

fn public_key_output(
    spec: KeySpec,
    spki: Vec<u8>,
    algs: &[SigningAlgorithmSpec],
) -> GetPublicKeyOutput {
    let mut b = GetPublicKeyOutput::builder()
        .key_id(ARN)
        .key_usage(KeyUsageType::SignVerify)
        .key_spec(spec)
        .public_key(Blob::new(spki));
    for a in algs {
        b = b.signing_algorithms(a.clone());
    }
    b.build()
}

#[tokio::test]
async fn es256_sends_a_digest_to_the_key_arn_and_verifies() {
    let gpk = mock!(Client::get_public_key)
        .match_requests(|r| r.key_id() == Some("alias/payments"))
        .then_output(|| {
            public_key_output(
                KeySpec::EccNistP256,
                p256_spki(),
                &[SigningAlgorithmSpec::EcdsaSha256],
            )
        });
    let sign = mock!(Client::sign)
        .match_requests(|r| {
            r.key_id() == Some(ARN)
                && r.message_type() == Some(&MessageType::Digest)
                && r.signing_algorithm() == Some(&SigningAlgorithmSpec::EcdsaSha256)
                && r.message().map(|m| m.as_ref().len()) == Some(32)
        })
        .then_compute_output(|r| {
            let digest = r.message().map(|m| m.as_ref().to_vec()).unwrap_or_default();
            let sig: p256::ecdsa::Signature = p256_key().sign_prehash(&digest).expect("sign");
            SignOutput::builder()
                .key_id(ARN)
                .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
                .signature(Blob::new(sig.to_der().as_bytes().to_vec()))
                .build()
        });
    let client = mock_client!(aws_sdk_kms, RuleMode::MatchAny, [&gpk, &sign]);
    let signer = AwsKmsSigner::from_client(client, "mock", "alias/payments", None)
        .await
        .expect("open");
    assert_eq!(signer.algorithm(), Algorithm::ES256);
    assert_eq!(signer.key_arn(), ARN);
    let signer: Arc<dyn Signer> = Arc::new(signer);
    let assertion =
        ClientAssertion::new(signer, AssertionOptions::new("c", "https://as")).expect("options");
    for _ in 0..5 {
        let jwt = assertion.sign().await.expect("assertion");
        verify::verify_jws(&jwt, &p256_spki()).expect("verifies with the real key's public key");
    }
    assert_eq!(gpk.num_calls(), 1);
    assert_eq!(sign.num_calls(), 5);
}

#[tokio::test]
async fn eddsa_sends_the_raw_message() {
    let gpk = mock!(Client::get_public_key).then_output(|| {
        public_key_output(
            KeySpec::EccNistEdwards25519,
            ed25519_spki(),
            &[
                SigningAlgorithmSpec::Ed25519Sha512,
                SigningAlgorithmSpec::Ed25519PhSha512,
            ],
        )
    });
    let sign = mock!(Client::sign)
        .match_requests(|r| {
            r.message_type() == Some(&MessageType::Raw)
                && r.signing_algorithm() == Some(&SigningAlgorithmSpec::Ed25519Sha512)
        })
        .then_compute_output(|r| {
            use ed25519_dalek::Signer as _;
            let msg = r.message().map(|m| m.as_ref().to_vec()).unwrap_or_default();
            SignOutput::builder()
                .key_id(ARN)
                .signing_algorithm(SigningAlgorithmSpec::Ed25519Sha512)
                .signature(Blob::new(ed25519_key().sign(&msg).to_bytes().to_vec()))
                .build()
        });
    let client = mock_client!(aws_sdk_kms, RuleMode::MatchAny, [&gpk, &sign]);
    let signer = AwsKmsSigner::from_client(client, "mock", ARN, None)
        .await
        .expect("open");
    assert_eq!(signer.algorithm(), Algorithm::EdDSA);
    let input = b"eyJhbGciOiJFZERTQSJ9.eyJpc3MiOiJjIn0";
    let sig = signer.sign(input).await.expect("sign");
    verify::verify_raw("EdDSA", input, sig.as_bytes(), &ed25519_spki()).expect("verifies");
    // KMS takes at most 4096 bytes; a longer message is refused before any call.
    let e = signer
        .try_sign(&vec![b'a'; 4097])
        .await
        .expect_err("too long");
    assert!(
        matches!(e, AwsKmsError::MessageLength { len: 4097, .. }),
        "{e:?}"
    );
    assert_eq!(sign.num_calls(), 1);
}

#[tokio::test]
async fn answers_that_do_not_fit_are_refused() {
    // Key spec says P-384, the SPKI is P-256.
    let gpk = mock!(Client::get_public_key)
        .then_output(|| public_key_output(KeySpec::EccNistP384, p256_spki(), &[]));
    let client = mock_client!(aws_sdk_kms, [&gpk]);
    let e = AwsKmsSigner::from_client(client, "mock", ARN, None)
        .await
        .expect_err("mismatch");
    assert!(matches!(e, AwsKmsError::InvalidResponse { .. }), "{e:?}");
    assert!(e.to_string().contains("ECC_NIST_P384"), "{e}");

    // The key's own algorithm list offers nothing pkjwt can use with this key.
    let gpk = mock!(Client::get_public_key).then_output(|| {
        public_key_output(
            KeySpec::EccNistP256,
            p256_spki(),
            &[SigningAlgorithmSpec::EcdsaSha384],
        )
    });
    let client = mock_client!(aws_sdk_kms, [&gpk]);
    let e = AwsKmsSigner::from_client(client, "mock", ARN, None)
        .await
        .expect_err("no alg");
    assert!(matches!(e, AwsKmsError::InvalidResponse { .. }), "{e:?}");

    // Sign answers with another algorithm, or an Ed25519 signature of the wrong size.
    let gpk = mock!(Client::get_public_key).then_output(|| {
        public_key_output(
            KeySpec::EccNistEdwards25519,
            ed25519_spki(),
            &[SigningAlgorithmSpec::Ed25519Sha512],
        )
    });
    let sign = mock!(Client::sign)
        .sequence()
        .output(|| {
            SignOutput::builder()
                .signing_algorithm(SigningAlgorithmSpec::Ed25519PhSha512)
                .signature(Blob::new(vec![0; 64]))
                .build()
        })
        .output(|| {
            SignOutput::builder()
                .signing_algorithm(SigningAlgorithmSpec::Ed25519Sha512)
                .signature(Blob::new(vec![0; 63]))
                .build()
        })
        .build();
    let client = mock_client!(aws_sdk_kms, RuleMode::MatchAny, [&gpk, &sign]);
    let signer = AwsKmsSigner::from_client(client, "mock", ARN, None)
        .await
        .expect("open");
    let e = signer.try_sign(b"a.b").await.expect_err("other algorithm");
    assert!(e.to_string().contains("ED25519_PH_SHA_512"), "{e}");
    let e = signer.try_sign(b"a.b").await.expect_err("short signature");
    assert!(e.to_string().contains("63 bytes, expected 64"), "{e}");
}

#[tokio::test]
async fn modeled_kms_errors_map_to_specific_variants() {
    type Case = (fn() -> GetPublicKeyError, fn(&AwsKmsError) -> bool);
    let cases: Vec<Case> = vec![
        (
            || {
                GetPublicKeyError::NotFoundException(
                    NotFoundException::builder()
                        .message("no such key")
                        .meta(meta("NotFoundException", "no such key"))
                        .build(),
                )
            },
            |e| matches!(e, AwsKmsError::NotFound { .. }),
        ),
        (
            || {
                GetPublicKeyError::DisabledException(
                    DisabledException::builder()
                        .message("disabled")
                        .meta(meta("DisabledException", "disabled"))
                        .build(),
                )
            },
            |e| matches!(e, AwsKmsError::Disabled { .. }),
        ),
        (
            || {
                GetPublicKeyError::KmsInvalidStateException(
                    KmsInvalidStateException::builder()
                        .message("is pending deletion.")
                        .meta(meta("KMSInvalidStateException", "is pending deletion."))
                        .build(),
                )
            },
            |e| matches!(e, AwsKmsError::InvalidState { .. }),
        ),
        (
            || {
                GetPublicKeyError::KeyUnavailableException(
                    KeyUnavailableException::builder()
                        .message("store disconnected")
                        .meta(meta("KeyUnavailableException", "store disconnected"))
                        .build(),
                )
            },
            |e| matches!(e, AwsKmsError::KeyUnavailable { .. }),
        ),
    ];
    for (error, expected) in cases {
        let text = format!("{:?}", error());
        let rule = mock!(Client::get_public_key).then_error(error);
        let client = mock_client!(aws_sdk_kms, [&rule]);
        let e = AwsKmsSigner::from_client(client, "mock", ARN, None)
            .await
            .expect_err("error");
        assert!(expected(&e), "{text} became {e:?}");
        assert!(e.to_string().contains(ARN), "{e}");
    }
    // Sign errors too.
    let gpk = mock!(Client::get_public_key).then_output(|| {
        public_key_output(
            KeySpec::EccNistP256,
            p256_spki(),
            &[SigningAlgorithmSpec::EcdsaSha256],
        )
    });
    let sign = mock!(Client::sign).then_error(|| {
        SignError::DisabledException(
            DisabledException::builder()
                .message("disabled")
                .meta(meta("DisabledException", "disabled"))
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_kms, RuleMode::MatchAny, [&gpk, &sign]);
    let signer = AwsKmsSigner::from_client(client, "mock", ARN, None)
        .await
        .expect("open");
    let e = signer.try_sign(b"a.b").await.expect_err("disabled");
    assert!(matches!(e, AwsKmsError::Disabled { .. }), "{e:?}");
}
