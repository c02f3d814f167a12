//! [`AwsKmsSigner`]: open once (one `GetPublicKey`), sign many (one `Sign` each).

use std::fmt;

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyUsageType, MessageType};
use pkjwt_core::{Algorithm, AwsKmsUri, PublicKey, Signature, Signer};

use crate::error::{CallContext, Operation, classify};
use crate::options::client_for;
use crate::spec::{
    KmsAlgorithm, algorithms_for_spec, kms_algorithm, spec_matches_key, spec_of_key,
};
use crate::{AwsKmsError, AwsKmsOptions};

/// KMS takes at most this many bytes in a `Sign` request's `Message` (API reference).
pub const MAX_RAW_MESSAGE: usize = 4096;

/// A [`Signer`] whose private key is an asymmetric AWS KMS key.
///
/// [`open`](Self::open) calls `GetPublicKey` once: it checks `KeyUsage = SIGN_VERIFY`, maps the
/// key spec to the JWS algorithms it can produce, refuses a requested algorithm the key cannot
/// produce, and keeps the public key. Each [`sign`](Signer::sign) is then exactly one `Sign`
/// call: ECDSA and RSA hash locally and send `MessageType=DIGEST` (a fixed-size request, no
/// 4096-byte limit); Ed25519 sends the message itself (`ED25519_SHA_512`, `MessageType=RAW`), as
/// the API requires. KMS's DER ECDSA signatures are returned unchanged; the JWS assembler turns
/// them into `r || s`.
///
/// The signer signs with the key **ARN** that `GetPublicKey` resolved, not with the alias it was
/// opened by: if the alias is moved to a new key (rotation), a running signer keeps signing with
/// the key whose public key (and `kid`) it announced, and a reopened signer picks up the new one.
///
/// IAM permissions needed: `kms:GetPublicKey` and `kms:Sign` on the key (plus, for
/// [`generate`](crate::generate), `kms:CreateKey`, `kms:CreateAlias` and `kms:DescribeKey`).
#[derive(Clone)]
pub struct AwsKmsSigner {
    client: Client,
    key_arn: String,
    key_spec: String,
    endpoint: String,
    algorithm: Algorithm,
    kms: KmsAlgorithm,
    public_key: PublicKey,
    max_attempts: u32,
}

impl fmt::Debug for AwsKmsSigner {
    // Hand-written: the SDK client's Debug would print its configuration (credentials provider
    // included); the key ARN, spec and algorithm are all a reader needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKmsSigner")
            .field("key", &self.key_arn)
            .field("key_spec", &self.key_spec)
            .field("algorithm", &self.algorithm)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl AwsKmsSigner {
    /// Opens the key `uri` names (key id, key ARN, `alias/NAME` or alias ARN), with credentials
    /// and region from the URI, `options` and the standard AWS chain; the endpoint from the URI's
    /// `endpoint=`, else `AWS_ENDPOINT_URL_KMS` / `AWS_ENDPOINT_URL`, else the region's public
    /// endpoint.
    ///
    /// `algorithm`: `None` picks the key's default (ES256/ES384/ES512/ES256K by curve, PS256 for
    /// RSA, EdDSA for Ed25519); `Some(alg)` that the key cannot produce is an error here, never
    /// at signing time.
    pub async fn open(
        uri: &AwsKmsUri,
        algorithm: Option<Algorithm>,
        options: &AwsKmsOptions,
    ) -> Result<Self, AwsKmsError> {
        let (client, endpoint) = client_for(uri, options).await?;
        Self::open_with_client(
            client,
            endpoint,
            &uri.key_id,
            algorithm,
            options.max_attempts,
        )
        .await
    }

    /// Opens `key_id` with a KMS client the caller built (its own retry and timeout settings
    /// apply). `endpoint` only appears in messages.
    pub async fn from_client(
        client: Client,
        endpoint: impl Into<String>,
        key_id: &str,
        algorithm: Option<Algorithm>,
    ) -> Result<Self, AwsKmsError> {
        let attempts = client
            .config()
            .retry_config()
            .map_or(1, |r| r.max_attempts());
        Self::open_with_client(client, endpoint.into(), key_id, algorithm, attempts).await
    }

    async fn open_with_client(
        client: Client,
        endpoint: String,
        key_id: &str,
        algorithm: Option<Algorithm>,
        max_attempts: u32,
    ) -> Result<Self, AwsKmsError> {
        let ctx = CallContext {
            operation: Operation::GetPublicKey,
            key: key_id,
            endpoint: &endpoint,
            max_attempts,
        };
        let out = client
            .get_public_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| classify(&ctx, e))?;
        let request_id = out.request_id().map(str::to_owned);
        let invalid = |reason: String| AwsKmsError::InvalidResponse {
            operation: Operation::GetPublicKey,
            key: key_id.to_owned(),
            reason,
            request_id: request_id.clone(),
        };
        // KMS answers the key ARN; an endpoint that answers a bare id (moto) still works.
        let key_arn = out.key_id().unwrap_or(key_id).to_owned();

        match out.key_usage() {
            Some(KeyUsageType::SignVerify) => {}
            Some(other) => {
                return Err(AwsKmsError::NotSigningKey {
                    key: key_arn,
                    detail: format!("its KeyUsage is {}, not SIGN_VERIFY", other.as_str()),
                    request_id,
                });
            }
            // Stock moto answers GetPublicKey for a symmetric key, without KeyUsage.
            #[allow(deprecated)]
            None => {
                let spec = out.key_spec().map(|s| s.as_str().to_owned()).or_else(|| {
                    out.customer_master_key_spec()
                        .map(|s| s.as_str().to_owned())
                });
                return Err(match spec {
                    Some(spec) if algorithms_for_spec(&spec).is_none() => {
                        AwsKmsError::NotSigningKey {
                            key: key_arn,
                            detail: format!("its key spec is {spec}"),
                            request_id,
                        }
                    }
                    _ => invalid("no KeyUsage in the answer".into()),
                });
            }
        }

        let spki = out
            .public_key()
            .ok_or_else(|| invalid("no PublicKey in the answer".into()))?;
        let public_key = PublicKey::from_spki_der(spki.as_ref())
            .map_err(|e| invalid(format!("the public key does not parse: {e}")))?;

        // KeySpec; else the deprecated CustomerMasterKeySpec (all moto answers); else the SPKI.
        #[allow(deprecated)]
        let announced = out.key_spec().map(|s| s.as_str().to_owned()).or_else(|| {
            out.customer_master_key_spec()
                .map(|s| s.as_str().to_owned())
        });
        let key_spec = match announced {
            Some(spec) => spec,
            None => match spec_of_key(&public_key) {
                Some(spec) => spec.to_owned(),
                None => {
                    return Err(AwsKmsError::UnsupportedKeySpec {
                        key: key_arn,
                        key_spec: format!(
                            "(none announced; public key is {})",
                            public_key.describe()
                        ),
                    });
                }
            },
        };
        let Some(mut supported) = algorithms_for_spec(&key_spec) else {
            return Err(AwsKmsError::UnsupportedKeySpec {
                key: key_arn,
                key_spec,
            });
        };
        if !spec_matches_key(&key_spec, &public_key) {
            return Err(invalid(format!(
                "key spec {key_spec} does not match the public key, which is {}",
                public_key.describe()
            )));
        }
        // Trust the key's own list of signing algorithms when KMS sends one.
        let listed = out.signing_algorithms();
        if !listed.is_empty() {
            supported.retain(|a| kms_algorithm(*a).is_some_and(|k| listed.contains(&k.spec)));
        }
        let algorithm = match algorithm {
            Some(a) if supported.contains(&a) => a,
            Some(a) => {
                return Err(AwsKmsError::AlgorithmNotSupported {
                    key: key_arn,
                    key_spec,
                    requested: a,
                    supported: names(&supported),
                });
            }
            None if supported.contains(&public_key.default_algorithm()) => {
                public_key.default_algorithm()
            }
            None => match supported.first() {
                Some(a) => *a,
                None => {
                    return Err(invalid(format!(
                        "key spec {key_spec} lists no signing algorithm pkjwt can use"
                    )));
                }
            },
        };
        let Some(kms) = kms_algorithm(algorithm) else {
            return Err(AwsKmsError::UnsupportedKeySpec {
                key: key_arn,
                key_spec,
            });
        };
        tracing::debug!(
            key = %key_arn, key_spec = %key_spec, alg = %algorithm,
            request_id = request_id.as_deref().unwrap_or("-"),
            "opened AWS KMS key"
        );
        Ok(AwsKmsSigner {
            client,
            key_arn,
            key_spec,
            endpoint,
            algorithm,
            kms,
            public_key,
            max_attempts,
        })
    }

    /// The key ARN this signer signs with (as `GetPublicKey` resolved it).
    pub fn key_arn(&self) -> &str {
        &self.key_arn
    }

    /// The key spec, e.g. `ECC_NIST_P256`.
    pub fn key_spec(&self) -> &str {
        &self.key_spec
    }

    /// The KMS client (for callers that want to reuse its connection pool).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Signs `message` with one KMS `Sign` call, returning the typed error.
    pub async fn try_sign(&self, message: &[u8]) -> Result<Signature, AwsKmsError> {
        let payload = match self.kms.message_type {
            MessageType::Digest => match self.algorithm.hash() {
                Some(h) => h.digest(message),
                // spec::kms_algorithm picks DIGEST only for algorithms with a hash; never send
                // an unhashed message as a digest, even if that mapping changes.
                None => {
                    return Err(AwsKmsError::AlgorithmNotSupported {
                        key: self.key_arn.clone(),
                        key_spec: self.key_spec.clone(),
                        requested: self.algorithm,
                        supported: "(no digest for this algorithm)".into(),
                    });
                }
            },
            _ => {
                if message.len() > MAX_RAW_MESSAGE || message.is_empty() {
                    return Err(AwsKmsError::MessageLength {
                        key: self.key_arn.clone(),
                        len: message.len(),
                    });
                }
                message.to_vec()
            }
        };
        let ctx = CallContext {
            operation: Operation::Sign,
            key: &self.key_arn,
            endpoint: &self.endpoint,
            max_attempts: self.max_attempts,
        };
        let out = self
            .client
            .sign()
            .key_id(&self.key_arn)
            .message(Blob::new(payload))
            .message_type(self.kms.message_type.clone())
            .signing_algorithm(self.kms.spec.clone())
            .send()
            .await
            .map_err(|e| {
                let e = classify(&ctx, e);
                tracing::debug!(key = %self.key_arn, request_id = e.request_id().unwrap_or("-"), error = %e, "KMS Sign failed");
                e
            })?;
        let request_id = out.request_id().map(str::to_owned);
        tracing::trace!(key = %self.key_arn, alg = %self.algorithm, request_id = request_id.as_deref().unwrap_or("-"), "KMS Sign");
        let invalid = |reason: String| AwsKmsError::InvalidResponse {
            operation: Operation::Sign,
            key: self.key_arn.clone(),
            reason,
            request_id: request_id.clone(),
        };
        if let Some(used) = out.signing_algorithm()
            && *used != self.kms.spec
        {
            return Err(invalid(format!(
                "signed with {} instead of {}",
                used.as_str(),
                self.kms.spec.as_str()
            )));
        }
        let sig = out
            .signature()
            .ok_or_else(|| invalid("no Signature in the answer".into()))?
            .as_ref()
            .to_vec();
        let expected = match &self.public_key {
            PublicKey::Rsa { .. } => Some(self.public_key.bits().div_ceil(8)),
            PublicKey::Ed25519(_) => Some(64),
            _ => None, // DER ECDSA: its length varies; the JWS assembler parses it strictly
        };
        if let Some(len) = expected
            && sig.len() != len
        {
            return Err(invalid(format!(
                "{} signature of {} bytes, expected {len}",
                self.algorithm,
                sig.len()
            )));
        }
        Ok(Signature::new(sig))
    }
}

#[async_trait]
impl Signer for AwsKmsSigner {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    async fn sign(&self, message: &[u8]) -> pkjwt_core::Result<Signature> {
        Ok(self.try_sign(message).await?)
    }
}

fn names(algs: &[Algorithm]) -> String {
    algs.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
}
