//! [`GcpKmsSigner`]: open once (one `getPublicKey`), sign many (one `asymmetricSign` each).

use std::fmt;

use async_trait::async_trait;
use pkjwt_core::{Algorithm, GcpKmsUri, HashAlg, PublicKey, Signature, Signer, b64};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{CheckFail, KmsClient};
use crate::crc32c::crc32c;
use crate::error::Operation;
use crate::spec::{GcpAlgorithm, by_name, is_not_signing, matches_key};
use crate::{GcpKmsError, GcpKmsOptions};

/// Cloud KMS takes at most this many bytes of `data` (Ed25519, which signs the message itself).
pub const MAX_DATA: usize = 64 * 1024;

/// A [`Signer`] whose private key is a Google Cloud KMS asymmetric key version.
///
/// [`open`](Self::open) calls `getPublicKey` once: it checks `pemCrc32c` and the version's
/// `name`, maps the version's algorithm to its one JWS algorithm, refuses a requested algorithm
/// the version cannot produce, and checks that the PEM public key is of the kind the algorithm
/// names. Each [`sign`](Signer::sign) is then one `asymmetricSign` call: the message is hashed
/// here and the digest is sent with its `digestCrc32c` (Ed25519 sends the message as `data` with
/// `dataCrc32c`); the answer must report `verifiedDigestCrc32c` (`verifiedDataCrc32c`) true,
/// carry a `signatureCrc32c` that matches the signature, and name this version. A failed check
/// is retried (the corruption was in transit) within the attempt budget. ECDSA signatures are
/// DER, returned unchanged: the JWS assembler converts them to `r || s`.
///
/// IAM permissions: `cloudkms.cryptoKeyVersions.viewPublicKey` (role
/// `roles/cloudkms.publicKeyViewer`) and `cloudkms.cryptoKeyVersions.useToSign` (role
/// `roles/cloudkms.signerVerifier`, which includes both).
#[derive(Clone)]
pub struct GcpKmsSigner {
    client: KmsClient,
    name: String,
    spec: GcpAlgorithm,
    protection_level: String,
    public_key: PublicKey,
}

impl fmt::Debug for GcpKmsSigner {
    // Hand-written: the client holds the token source; the name and algorithm are what matters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpKmsSigner")
            .field("key", &self.name)
            .field("algorithm", &self.spec.name)
            .field("protection_level", &self.protection_level)
            .field("endpoint", &self.client.endpoint)
            .finish_non_exhaustive()
    }
}

/// An int64 field, which proto3 JSON writes as a string (numbers are accepted too).
pub(crate) fn int64(v: &Value, field: &str) -> Option<u64> {
    match v.get(field)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

impl GcpKmsSigner {
    /// Opens the key version `uri` names, with `options`' credentials; the endpoint is the URI's
    /// `;endpoint=`, else `options.endpoint`.
    ///
    /// `algorithm`: `None` takes the version's algorithm; `Some(alg)` that the version does not
    /// produce is an error here, never at signing time.
    pub async fn open(
        uri: &GcpKmsUri,
        algorithm: Option<Algorithm>,
        options: &GcpKmsOptions,
    ) -> Result<Self, GcpKmsError> {
        let client = KmsClient::new(uri.endpoint.as_deref(), options)?;
        Self::open_with(client, uri.version_name(), algorithm).await
    }

    pub(crate) async fn open_with(
        client: KmsClient,
        name: String,
        algorithm: Option<Algorithm>,
    ) -> Result<Self, GcpKmsError> {
        let (pem, alg_name, protection_level) = client
            .call(
                Operation::GetPublicKey,
                &name,
                Method::GET,
                &format!("{name}/publicKey"),
                None,
                |v| check_public_key_answer(v, &name),
            )
            .await?;
        let (spec, public_key) = key_from_answer(&name, &pem, &alg_name, algorithm)?;
        tracing::debug!(key = %name, algorithm = spec.name, protection_level, "opened Cloud KMS key");
        Ok(GcpKmsSigner {
            client,
            name,
            spec,
            protection_level,
            public_key,
        })
    }

    /// The key version's resource name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version's algorithm as the API names it (`EC_SIGN_P256_SHA256`).
    pub fn gcp_algorithm(&self) -> &'static str {
        self.spec.name
    }

    /// The version's protection level (`HSM`, `SOFTWARE`, …) as `getPublicKey` reported it.
    pub fn protection_level(&self) -> &str {
        &self.protection_level
    }

    /// Signs `message` with one `asymmetricSign` call (retries included), returning the typed
    /// error.
    pub async fn try_sign(&self, message: &[u8]) -> Result<Signature, GcpKmsError> {
        let op = Operation::AsymmetricSign;
        let name = &self.name;
        // The request: a digest with its CRC32C, or (Ed25519) the data with its CRC32C.
        let (body, verified_field) = match self.spec.jws.hash() {
            Some(h) => {
                let digest = h.digest(message);
                let field = match h {
                    HashAlg::Sha256 => "sha256",
                    HashAlg::Sha384 => "sha384",
                    HashAlg::Sha512 => "sha512",
                    // The algorithm table names none other; a new hash needs its field here.
                    _ => {
                        return Err(GcpKmsError::UnsupportedAlgorithm {
                            resource: name.clone(),
                            algorithm: self.spec.name.to_owned(),
                        });
                    }
                };
                (
                    json!({
                        "digest": { field: b64::encode_std(&digest) },
                        "digestCrc32c": crc32c(&digest).to_string(),
                    }),
                    "verifiedDigestCrc32c",
                )
            }
            None => {
                if message.is_empty() || message.len() > MAX_DATA {
                    return Err(GcpKmsError::InvalidArgument {
                        operation: op,
                        resource: name.clone(),
                        message: format!(
                            "an Ed25519 message of {} bytes; Cloud KMS signs 1 to {MAX_DATA} bytes",
                            message.len()
                        ),
                    });
                }
                (
                    json!({
                        "data": b64::encode_std(message),
                        "dataCrc32c": crc32c(message).to_string(),
                    }),
                    "verifiedDataCrc32c",
                )
            }
        };
        let expected_len = match &self.public_key {
            PublicKey::Rsa { .. } => Some(self.public_key.bits().div_ceil(8)),
            PublicKey::Ed25519(_) => Some(64),
            _ => None, // DER ECDSA varies in length; the JWS assembler parses it strictly
        };
        let path = format!("{name}:asymmetricSign");
        let sig = self
            .client
            .call(op, name, Method::POST, &path, Some(&body), |v| {
                check_sign_answer(v, name, verified_field, expected_len, self.spec.jws)
            })
            .await?;
        tracing::trace!(key = %name, alg = %self.spec.jws, "Cloud KMS asymmetricSign");
        Ok(Signature::new(sig))
    }
}

/// Checks a `getPublicKey` answer for `name`: `pem` with a matching `pemCrc32c`, this version's
/// `name`, an `algorithm`; returns (pem, algorithm, protection level).
pub(crate) fn check_public_key_answer(
    v: &Value,
    name: &str,
) -> Result<(String, String, String), CheckFail> {
    let invalid = |reason: String| {
        CheckFail::Fatal(GcpKmsError::InvalidResponse {
            operation: Operation::GetPublicKey,
            resource: name.to_owned(),
            reason,
        })
    };
    let pem = v
        .get("pem")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("no pem in the answer".into()))?;
    let Some(want) = int64(v, "pemCrc32c") else {
        return Err(invalid("no pemCrc32c in the answer".into()));
    };
    let got = crc32c(pem.as_bytes());
    if u64::from(got) != want {
        return Err(CheckFail::Integrity(format!(
            "pemCrc32c is {want}, the received PEM's CRC32C is {got}"
        )));
    }
    match v.get("name").and_then(Value::as_str) {
        Some(n) if n == name => {}
        Some(n) => return Err(invalid(format!("it names {n}"))),
        None => return Err(invalid("no name in the answer".into())),
    }
    let alg = v
        .get("algorithm")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("no algorithm in the answer".into()))?;
    let level = v
        .get("protectionLevel")
        .and_then(Value::as_str)
        .unwrap_or("-");
    Ok((pem.to_owned(), alg.to_owned(), level.to_owned()))
}

/// The version's algorithm and public key from a checked `getPublicKey` answer: the algorithm
/// must be a signing one pkjwt knows, the PEM one `PUBLIC KEY` of the kind it names, and a
/// `requested` JWS algorithm the one it produces.
pub(crate) fn key_from_answer(
    name: &str,
    pem: &str,
    alg_name: &str,
    requested: Option<Algorithm>,
) -> Result<(GcpAlgorithm, PublicKey), GcpKmsError> {
    let fail = |reason: String| GcpKmsError::InvalidResponse {
        operation: Operation::GetPublicKey,
        resource: name.to_owned(),
        reason,
    };
    let Some(spec) = by_name(alg_name) else {
        return Err(if is_not_signing(alg_name) {
            GcpKmsError::NotSigningKey {
                resource: name.to_owned(),
                algorithm: alg_name.to_owned(),
            }
        } else {
            GcpKmsError::UnsupportedAlgorithm {
                resource: name.to_owned(),
                algorithm: alg_name.to_owned(),
            }
        });
    };
    let blocks = pkjwt_core::pem::decode_all(pem)
        .map_err(|e| fail(format!("the public key PEM does not parse: {e}")))?;
    let der = match blocks.as_slice() {
        [b] if b.label == "PUBLIC KEY" => &b.der,
        _ => return Err(fail("the pem is not one PUBLIC KEY block".into())),
    };
    let public_key = PublicKey::from_spki_der(der)
        .map_err(|e| fail(format!("the public key does not parse: {e}")))?;
    if !matches_key(&spec, &public_key) {
        return Err(fail(format!(
            "algorithm {alg_name} does not match the public key, which is {}",
            public_key.describe()
        )));
    }
    if let Some(requested) = requested
        && requested != spec.jws
    {
        return Err(GcpKmsError::AlgorithmNotSupported {
            resource: name.to_owned(),
            algorithm: alg_name.to_owned(),
            requested,
            supported: spec.jws,
        });
    }
    Ok((spec, public_key))
}

/// Checks an `asymmetricSign` answer for `name`: `verified_field` true, this version's `name`,
/// a base64 `signature` whose `signatureCrc32c` matches and, where fixed, of `expected_len`
/// bytes; returns the signature as the service sent it (DER for ECDSA).
pub(crate) fn check_sign_answer(
    v: &Value,
    name: &str,
    verified_field: &str,
    expected_len: Option<usize>,
    jws: Algorithm,
) -> Result<Vec<u8>, CheckFail> {
    let invalid = |reason: String| {
        CheckFail::Fatal(GcpKmsError::InvalidResponse {
            operation: Operation::AsymmetricSign,
            resource: name.to_owned(),
            reason,
        })
    };
    if v.get(verified_field).and_then(Value::as_bool) != Some(true) {
        return Err(CheckFail::Integrity(format!(
            "the service did not report {verified_field} = true: the request was corrupted on \
             its way"
        )));
    }
    match v.get("name").and_then(Value::as_str) {
        Some(n) if n == name => {}
        Some(n) => return Err(invalid(format!("it was signed by {n}"))),
        None => return Err(invalid("no name in the answer".into())),
    }
    let sig_b64 = v
        .get("signature")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("no signature in the answer".into()))?;
    let sig = b64::decode_std("signature", sig_b64).map_err(|e| invalid(format!("{e}")))?;
    let Some(want) = int64(v, "signatureCrc32c") else {
        return Err(invalid("no signatureCrc32c in the answer".into()));
    };
    let got = crc32c(&sig);
    if u64::from(got) != want {
        return Err(CheckFail::Integrity(format!(
            "signatureCrc32c is {want}, the received signature's CRC32C is {got}"
        )));
    }
    if let Some(len) = expected_len
        && sig.len() != len
    {
        return Err(invalid(format!(
            "{jws} signature of {} bytes, expected {len}",
            sig.len()
        )));
    }
    Ok(sig)
}

#[async_trait]
impl Signer for GcpKmsSigner {
    fn algorithm(&self) -> Algorithm {
        self.spec.jws
    }

    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    async fn sign(&self, message: &[u8]) -> pkjwt_core::Result<Signature> {
        Ok(self.try_sign(message).await?)
    }
}
