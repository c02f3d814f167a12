//! [`generate`]: `pkjwt keygen` for Cloud KMS — a new `ASYMMETRIC_SIGN` crypto key in an
//! existing key ring, for users without Terraform (`infra/terraform/gcp-kms/` is the
//! declarative way).
//!
//! Policy (docs/gcp-kms.md, "Key generation"): the key ring must exist (key rings can never be
//! deleted, so pkjwt never creates one as a side effect); the crypto key must not exist (pkjwt
//! never adds versions to someone else's key); the URI names version 1, the version Cloud KMS
//! creates with the key.

use std::time::{Duration, Instant};

use pkjwt_core::{Algorithm, GcpKmsUri, GenerateOptions, RsaSizes};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{CheckFail, KmsClient};
use crate::error::Operation;
use crate::spec::{RSA_SHA256_SIZES, RSA_SHA512_SIZES, for_jws};
use crate::{GcpKmsError, GcpKmsOptions, GcpKmsSigner};

/// Label set on keys pkjwt creates (Cloud KMS labels: lower-case keys and values).
pub const KEY_LABEL: (&str, &str) = ("created-by", "pkjwt");

/// The Cloud KMS algorithm `generate` creates for `alg` and `generate`'s RSA size, or the
/// reason it cannot. RSA defaults: 2048 bits for SHA-256 (as the other backends), 4096 for
/// SHA-512 (the only size Cloud KMS offers).
pub fn algorithm_for(
    resource: &str,
    alg: Algorithm,
    generate: &GenerateOptions,
) -> Result<&'static str, GcpKmsError> {
    let refuse = |reason: String| GcpKmsError::GenerateOption {
        resource: resource.to_owned(),
        reason,
    };
    let sizes = match alg {
        Algorithm::PS512 | Algorithm::RS512 => RSA_SHA512_SIZES,
        _ => RSA_SHA256_SIZES,
    };
    // sizes[0]: both size lists are non-empty constants; their first entry is the default.
    let bits = generate
        .rsa_bits_for(alg, "Google Cloud KMS", sizes[0], RsaSizes::OneOf(sizes))
        .map_err(|e| refuse(e.to_string()))?;
    for_jws(alg, bits).map(|a| a.name).ok_or_else(|| {
        refuse(format!(
            "Cloud KMS has no signing algorithm for {alg} (it offers ES256, ES384, ES256K, EdDSA, \
             PS256, RS256 with 2048/3072/4096-bit keys, and PS512, RS512 with 4096-bit keys)"
        ))
    })
}

/// Creates the crypto key `uri` names (with version 1) for `alg`, waits until the version is
/// `ENABLED`, and opens it.
///
/// IAM permissions: `cloudkms.cryptoKeys.create`, `cloudkms.cryptoKeyVersions.get` and those of
/// [`GcpKmsSigner::open`] (role `roles/cloudkms.admin` on the key ring, plus
/// `roles/cloudkms.signerVerifier`).
pub async fn generate(
    uri: &GcpKmsUri,
    alg: Algorithm,
    generate: &GenerateOptions,
    options: &GcpKmsOptions,
) -> Result<GcpKmsSigner, GcpKmsError> {
    let key_name = uri.crypto_key_name();
    let version_name = uri.version_name();
    if uri.version != 1 {
        return Err(GcpKmsError::GenerateOption {
            resource: key_name,
            reason: format!(
                "the key URI names version {}, but a new key's first version is 1 (name \
                 cryptoKeyVersions/1)",
                uri.version
            ),
        });
    }
    let algorithm = algorithm_for(&key_name, alg, generate)?;
    let client = KmsClient::new(uri.endpoint.as_deref(), options)?;
    let body = json!({
        "purpose": "ASYMMETRIC_SIGN",
        "versionTemplate": {
            "algorithm": algorithm,
            "protectionLevel": options.protection_level.name(),
        },
        "labels": { KEY_LABEL.0: KEY_LABEL.1 },
    });
    let path = format!(
        "{}/cryptoKeys?cryptoKeyId={}",
        uri.key_ring_name(),
        uri.crypto_key
    );
    // cryptoKeys.create is not idempotent: a retry after a lost answer would find the key
    // created (ALREADY_EXISTS); it is still retried on throttling and unavailability, and that
    // case is reported as AlreadyExists, which names the key to inspect.
    let created = client
        .call(
            Operation::CreateCryptoKey,
            &key_name,
            Method::POST,
            &path,
            Some(&body),
            |v| Ok(v.get("name").and_then(Value::as_str).map(str::to_owned)),
        )
        .await;
    match created {
        Ok(_) => {}
        Err(GcpKmsError::NotFound { .. }) => {
            return Err(GcpKmsError::KeyRingNotFound {
                resource: key_name,
                key_ring: uri.key_ring_name(),
            });
        }
        Err(GcpKmsError::Api { status, .. }) if status == "ALREADY_EXISTS" => {
            return Err(GcpKmsError::AlreadyExists { resource: key_name });
        }
        Err(e) => return Err(e),
    }
    tracing::info!(key = %key_name, algorithm, protection_level = options.protection_level.name(), "created Cloud KMS key");
    wait_enabled(&client, &version_name, options.generation_timeout).await?;
    match GcpKmsSigner::open_with(client.clone(), version_name.clone(), Some(alg)).await {
        Ok(signer) => Ok(signer),
        Err(e) => {
            let cleanup = match client
                .call(
                    Operation::DestroyCryptoKeyVersion,
                    &version_name,
                    Method::POST,
                    &format!("{version_name}:destroy"),
                    Some(&json!({})),
                    |_| Ok(()),
                )
                .await
            {
                Ok(()) => "its version was scheduled for destruction (gcloud kms keys versions \
                           restore recovers it during the scheduled period)"
                    .to_owned(),
                Err(_) => format!(
                    "it could not be scheduled for destruction; destroy it with gcloud kms keys \
                     versions destroy 1 --key {} --keyring {} --location {} --project {}",
                    uri.crypto_key, uri.key_ring, uri.location, uri.project
                ),
            };
            Err(GcpKmsError::CreatedKeyNotUsable {
                resource: version_name,
                cleanup,
                cause: Box::new(e),
            })
        }
    }
}

/// Polls `cryptoKeyVersions.get` until the state is `ENABLED` (HSM keys are generated
/// asynchronously: `PENDING_GENERATION` first).
async fn wait_enabled(
    client: &KmsClient,
    version_name: &str,
    timeout: Duration,
) -> Result<(), GcpKmsError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let state = client
            .call(
                Operation::GetCryptoKeyVersion,
                version_name,
                Method::GET,
                version_name,
                None,
                |v| {
                    v.get("state")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            CheckFail::Fatal(GcpKmsError::InvalidResponse {
                                operation: Operation::GetCryptoKeyVersion,
                                resource: version_name.to_owned(),
                                reason: "no state in the answer".into(),
                            })
                        })
                },
            )
            .await?;
        match state.as_str() {
            "ENABLED" => return Ok(()),
            "PENDING_GENERATION" if start.elapsed() < timeout => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            _ => {
                return Err(GcpKmsError::GenerationNotReady {
                    resource: version_name.to_owned(),
                    waited_ms: start.elapsed().as_millis(),
                    detail: if state == "PENDING_GENERATION" {
                        "raise GcpKmsOptions::generation_timeout, or open the key later".into()
                    } else {
                        "the version cannot sign; inspect it with gcloud kms keys versions \
                         describe"
                            .into()
                    },
                    state,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_and_sizes() {
        let none = GenerateOptions::default();
        let r = "k";
        assert_eq!(
            algorithm_for(r, Algorithm::ES256, &none).unwrap(),
            "EC_SIGN_P256_SHA256"
        );
        assert_eq!(
            algorithm_for(r, Algorithm::EdDSA, &none).unwrap(),
            "EC_SIGN_ED25519"
        );
        assert_eq!(
            algorithm_for(r, Algorithm::PS256, &none).unwrap(),
            "RSA_SIGN_PSS_2048_SHA256"
        );
        assert_eq!(
            algorithm_for(r, Algorithm::RS256, &none.clone().rsa_bits(3072)).unwrap(),
            "RSA_SIGN_PKCS1_3072_SHA256"
        );
        assert_eq!(
            algorithm_for(r, Algorithm::PS512, &none).unwrap(),
            "RSA_SIGN_PSS_4096_SHA512"
        );
        for (alg, opts, want) in [
            (
                Algorithm::ES512,
                none.clone(),
                "no signing algorithm for ES512",
            ),
            (
                Algorithm::PS384,
                none.clone(),
                "no signing algorithm for PS384",
            ),
            (Algorithm::PS256, none.clone().rsa_bits(1024), "2048, 3072"),
            (Algorithm::PS512, none.clone().rsa_bits(2048), "4096"),
            (
                Algorithm::ES256,
                none.clone().rsa_bits(2048),
                "RS*/PS* keys only",
            ),
        ] {
            let e = algorithm_for(r, alg, &opts).unwrap_err().to_string();
            assert!(e.contains(want), "{alg}: {e}");
        }
    }
}
