//! [`AzureKvSigner`]: open once (Get Key, and Get Certificate for `x5c`), sign many (one Sign
//! call each, always with the key version resolved at open).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use pkjwt_core::uri::AzureKvUri;
use pkjwt_core::{Algorithm, Curve, PublicKey, Signature, Signer, b64};
use reqwest::Method;
use serde_json::{Value, json};

use crate::AzureKvOptions;
use crate::error::{AzureKvError, Operation};
use crate::transport::{credential_client, http_client};
use crate::vault::{Call, Vault};

/// A [`Signer`] whose private key is an Azure Key Vault or Managed HSM key.
///
/// [`open`](Self::open) makes one `Get Key` call: the key's JWK gives the public key (`kty`
/// `EC`/`EC-HSM` with `crv` P-256, P-384, P-521 or P-256K, or `RSA`/`RSA-HSM`), `key_ops` must
/// allow `sign`, the key must be enabled and inside its `nbf`/`exp`, and a requested algorithm
/// the key cannot produce is refused there, never at signing time.
///
/// **Version pinning.** A URI without a version is resolved once, at open, to the version the
/// vault calls current (the `kid` of the answer), and every signature is made with exactly that
/// version. If the key is rotated while the signer runs, it keeps signing with the key whose
/// public key (and `kid`) it announced; a reopened signer picks up the new version.
///
/// **Signatures.** The backend hashes (SHA-256/384/512 as the algorithm says) and sends the
/// digest (`POST …/keys/NAME/VERSION/sign`, `alg` = the JWS name). Key Vault returns an ECDSA
/// signature as the fixed-width `r || s` of JWA; the signer checks its length and converts it to
/// DER with [`pkjwt_core::ecdsa_fixed_to_der`], which is the [`Signer`] contract, so that the JWS
/// assembler remains the one place that parses and validates an ECDSA signature (it converts
/// back to `r || s`, rejecting an out-of-range `r` or `s`). RSA signatures must be exactly as
/// long as the modulus.
///
/// **Certificate.** Unless turned off ([`AzureKvOptions::read_certificate`]), open also reads the
/// Key Vault certificate of the same name and version (`GET /certificates/NAME/VERSION`; a Key
/// Vault certificate's key has the certificate's name and version). Its `cer` (the leaf, DER)
/// must carry this key's public key and its `kid` must be this key version; it becomes
/// [`certificate_chain`](Signer::certificate_chain), i.e. `x5c` / `x5t#S256`. No certificate
/// (404) gives an empty chain.
///
/// Permissions: keys/get and keys/sign (RBAC role Key Vault Crypto User), plus certificates/get
/// (Key Vault Certificate User) for the certificate.
#[derive(Clone)]
pub struct AzureKvSigner {
    vault: Arc<Vault>,
    uri: AzureKvUri,
    key_id: String,
    key_type: String,
    algorithm: Algorithm,
    public_key: PublicKey,
    chain: Vec<Vec<u8>>,
}

impl fmt::Debug for AzureKvSigner {
    // Hand-written: the vault holds a credential, which has no business in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKvSigner")
            .field("key", &self.key_id)
            .field("key_type", &self.key_type)
            .field("algorithm", &self.algorithm)
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl AzureKvSigner {
    /// Opens the key `uri` names with the credential of `options`.
    ///
    /// `algorithm`: `None` picks the key's default (ES256/ES384/ES512/ES256K by curve, PS256
    /// for RSA).
    pub async fn open(
        uri: &AzureKvUri,
        algorithm: Option<Algorithm>,
        options: &AzureKvOptions,
    ) -> Result<Self, AzureKvError> {
        let vault = Arc::new(connect(uri, options)?);
        Self::open_in(vault, uri, algorithm, options.read_certificate).await
    }

    pub(crate) async fn open_in(
        vault: Arc<Vault>,
        uri: &AzureKvUri,
        algorithm: Option<Algorithm>,
        read_certificate: bool,
    ) -> Result<Self, AzureKvError> {
        let asked = key_url(uri);
        let path = match &uri.version {
            Some(v) => format!("/keys/{}/{v}", uri.name),
            None => format!("/keys/{}", uri.name),
        };
        let answer = vault
            .call(&Call {
                operation: Operation::GetKey,
                key: &asked,
                method: Method::GET,
                path,
                body: None,
                idempotent: true,
            })
            .await?;
        let key = parse_key_bundle(&answer, uri, &asked)?;
        let supported = algorithms_for(&key.public_key);
        let algorithm = match algorithm {
            None => key.public_key.default_algorithm(),
            Some(a) => a,
        };
        if !supported.contains(&algorithm) {
            return Err(AzureKvError::AlgorithmNotSupported {
                key: key.key_id,
                key_type: key.key_type,
                requested: algorithm,
                supported: names(&supported),
            });
        }
        let pinned = uri.with_version(key.version.clone());
        let chain = if read_certificate && !vault.managed_hsm {
            read_chain(&vault, &pinned, &key.key_id, &key.public_key).await?
        } else {
            Vec::new()
        };
        tracing::debug!(key = %key.key_id, key_type = %key.key_type, alg = %algorithm, certificates = chain.len(), "opened Azure Key Vault key");
        Ok(AzureKvSigner {
            vault,
            uri: pinned,
            key_id: key.key_id,
            key_type: key.key_type,
            algorithm,
            public_key: key.public_key,
            chain,
        })
    }

    /// The key identifier this signer signs with, version included
    /// (`https://VAULT/keys/NAME/VERSION`).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The key URI with the version resolved at open.
    pub fn pinned_uri(&self) -> &AzureKvUri {
        &self.uri
    }

    /// `kty` and curve or size, e.g. `EC-HSM P-256`.
    pub fn key_type(&self) -> &str {
        &self.key_type
    }

    /// Signs `message` with one Sign call, returning the typed error.
    pub async fn try_sign(&self, message: &[u8]) -> Result<Signature, AzureKvError> {
        // Every algorithm this backend offers has a hash (no EdDSA in Key Vault).
        let hash = self
            .algorithm
            .hash()
            .ok_or_else(|| AzureKvError::AlgorithmNotSupported {
                key: self.key_id.clone(),
                key_type: self.key_type.clone(),
                requested: self.algorithm,
                supported: names(&algorithms_for(&self.public_key)),
            })?;
        let digest = hash.digest(message);
        let version = self.uri.version.as_deref().unwrap_or_default();
        let answer = self
            .vault
            .call(&Call {
                operation: Operation::Sign,
                key: &self.key_id,
                method: Method::POST,
                path: format!("/keys/{}/{version}/sign", self.uri.name),
                body: Some(json!({ "alg": self.algorithm.name(), "value": b64::encode(&digest) })),
                idempotent: true,
            })
            .await?;
        sign_answer(
            &answer,
            &self.key_id,
            &self.key_type,
            &self.public_key,
            self.algorithm,
        )
    }
}

/// Checks a Sign answer of the pinned key `key_id`: signed by that version, a base64url
/// `value` of the algorithm's exact length; returns it in the `Signer` contract's form (RSA as
/// is, ECDSA `r || s` converted to DER).
pub(crate) fn sign_answer(
    answer: &Value,
    key_id: &str,
    key_type: &str,
    public_key: &PublicKey,
    algorithm: Algorithm,
) -> Result<Signature, AzureKvError> {
    let invalid = |reason: String| AzureKvError::InvalidResponse {
        operation: Operation::Sign,
        key: key_id.to_owned(),
        reason,
    };
    if let Some(kid) = answer["kid"].as_str()
        && kid.trim_end_matches('/') != key_id
    {
        return Err(invalid(format!(
            "signed with {kid}, not the pinned {key_id}"
        )));
    }
    let value = answer["value"]
        .as_str()
        .ok_or_else(|| invalid("no \"value\" in the answer".into()))?;
    let sig = b64::decode("signature value", value)
        .map_err(|e| invalid(format!("the signature is not base64url: {e}")))?;
    match (public_key, algorithm.curve()) {
        (PublicKey::Rsa { .. }, _) => {
            let len = public_key.bits().div_ceil(8);
            if sig.len() != len {
                return Err(invalid(format!(
                    "{algorithm} signature of {} bytes, expected {len}",
                    sig.len()
                )));
            }
            Ok(Signature::new(sig))
        }
        (_, Some(curve)) => {
            let len = 2 * curve.field_len();
            if sig.len() != len {
                return Err(invalid(format!(
                    "{algorithm} signature of {} bytes, expected r || s of {len}",
                    sig.len()
                )));
            }
            let der = pkjwt_core::ecdsa_fixed_to_der(&sig, curve)
                .map_err(|e| invalid(format!("the ECDSA signature does not convert: {e}")))?;
            Ok(Signature::new(der))
        }
        _ => Err(invalid(format!(
            "{algorithm} is not an algorithm of a {key_type} key"
        ))),
    }
}

#[async_trait]
impl Signer for AzureKvSigner {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    async fn sign(&self, message: &[u8]) -> pkjwt_core::Result<Signature> {
        Ok(self.try_sign(message).await?)
    }

    fn certificate_chain(&self) -> &[Vec<u8>] {
        &self.chain
    }
}

/// The vault client and credential for `uri`.
pub(crate) fn connect(uri: &AzureKvUri, options: &AzureKvOptions) -> Result<Vault, AzureKvError> {
    let http = http_client(options)?;
    let credential = options.build_credential(&uri.vault, &credential_client(options)?)?;
    Ok(Vault::new(
        http,
        uri.vault.clone(),
        credential,
        uri.is_loopback(),
        uri.is_managed_hsm(),
        options,
    ))
}

/// `https://VAULT/keys/NAME[/VERSION]`, the identifier messages show.
pub(crate) fn key_url(uri: &AzureKvUri) -> String {
    match &uri.version {
        Some(v) => format!("{}/keys/{}/{v}", uri.vault, uri.name),
        None => format!("{}/keys/{}", uri.vault, uri.name),
    }
}

/// The JWS algorithms Key Vault signs with for a key (the same names in its `alg`).
pub(crate) fn algorithms_for(key: &PublicKey) -> Vec<Algorithm> {
    match key {
        PublicKey::Rsa { .. } => vec![
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
        ],
        PublicKey::Ed25519(_) => Vec::new(),
        ec => vec![ec.default_algorithm()],
    }
}

fn names(algs: &[Algorithm]) -> String {
    if algs.is_empty() {
        return "nothing".into();
    }
    algs.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
}

pub(crate) struct KeyBundle {
    pub key_id: String,
    pub version: String,
    pub key_type: String,
    pub public_key: PublicKey,
}

/// Checks a Get Key (or Create Key) answer and reads its public key.
pub(crate) fn parse_key_bundle(
    answer: &Value,
    uri: &AzureKvUri,
    asked: &str,
) -> Result<KeyBundle, AzureKvError> {
    let invalid = |reason: String| AzureKvError::InvalidResponse {
        operation: Operation::GetKey,
        key: asked.to_owned(),
        reason,
    };
    let jwk = &answer["key"];
    let kid = jwk["kid"]
        .as_str()
        .ok_or_else(|| invalid("no key.kid in the answer".into()))?
        .trim_end_matches('/');
    // The kid must be this vault's key of this name; its last segment is the version.
    let prefix = format!("{}/keys/{}/", uri.vault, uri.name);
    let version = match kid.get(..prefix.len()) {
        Some(p) if p.eq_ignore_ascii_case(&prefix) => kid[prefix.len()..].to_ascii_lowercase(),
        _ => {
            return Err(invalid(format!(
                "key.kid {kid} is not a version of {}/keys/{}",
                uri.vault, uri.name
            )));
        }
    };
    if version.len() != 32 || !version.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid(format!(
            "key.kid {kid} has no 32-hex-digit version"
        )));
    }
    if let Some(v) = &uri.version
        && *v != version
    {
        return Err(invalid(format!(
            "asked for version {v}, the vault answered {version}"
        )));
    }
    let key_id = format!("{prefix}{version}");
    let kty = jwk["kty"]
        .as_str()
        .ok_or_else(|| invalid("no key.kty in the answer".into()))?;
    let field = |name: &str| -> Result<Vec<u8>, AzureKvError> {
        let text = jwk[name]
            .as_str()
            .ok_or_else(|| invalid(format!("no key.{name} in the {kty} key")))?;
        b64::decode(name, text).map_err(|e| invalid(format!("key.{name}: {e}")))
    };
    let (public_key, key_type) = match kty {
        "EC" | "EC-HSM" => {
            let crv = jwk["crv"].as_str().unwrap_or("(none)");
            let curve = match crv {
                "P-256" => Curve::P256,
                "P-384" => Curve::P384,
                "P-521" => Curve::P521,
                "P-256K" => Curve::Secp256k1,
                other => {
                    return Err(AzureKvError::NotSigningKey {
                        key: key_id,
                        detail: format!("curve {other} is not one pkjwt signs with"),
                    });
                }
            };
            let pk = PublicKey::ec(curve, &field("x")?, &field("y")?)
                .map_err(|e| invalid(format!("the EC public key does not parse: {e}")))?;
            (pk, format!("{kty} {crv}"))
        }
        "RSA" | "RSA-HSM" => {
            let pk = PublicKey::rsa(&field("n")?, &field("e")?)
                .map_err(|e| invalid(format!("the RSA public key does not parse: {e}")))?;
            let bits = pk.bits();
            (pk, format!("{kty} {bits}"))
        }
        other => {
            return Err(AzureKvError::NotSigningKey {
                key: key_id,
                detail: format!("its kty is {other}, not EC, EC-HSM, RSA or RSA-HSM"),
            });
        }
    };
    if let Some(ops) = jwk["key_ops"].as_array()
        && !ops.iter().any(|o| o.as_str() == Some("sign"))
    {
        return Err(AzureKvError::NotSigningKey {
            key: key_id,
            detail: format!(
                "its key_ops {} do not include sign",
                Value::Array(ops.clone())
            ),
        });
    }
    let attributes = &answer["attributes"];
    if attributes["enabled"].as_bool() == Some(false) {
        return Err(AzureKvError::KeyDisabled {
            operation: Operation::GetKey,
            key: key_id,
            message: "attributes.enabled is false".into(),
        });
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if let Some(nbf) = attributes["nbf"].as_i64()
        && now < nbf
    {
        return Err(AzureKvError::KeyNotValidNow {
            key: key_id,
            detail: format!("its nbf ({nbf}) is in the future"),
        });
    }
    if let Some(exp) = attributes["exp"].as_i64()
        && now >= exp
    {
        return Err(AzureKvError::KeyNotValidNow {
            key: key_id,
            detail: format!("it expired (exp {exp})"),
        });
    }
    Ok(KeyBundle {
        key_id,
        version,
        key_type,
        public_key,
    })
}

/// The certificate of `pinned` (same name and version), checked against the key.
async fn read_chain(
    vault: &Vault,
    pinned: &AzureKvUri,
    key_id: &str,
    public_key: &PublicKey,
) -> Result<Vec<Vec<u8>>, AzureKvError> {
    let version = pinned.version.as_deref().unwrap_or_default();
    let cert_id = format!("{}/certificates/{}/{version}", pinned.vault, pinned.name);
    let answer = match vault
        .call(&Call {
            operation: Operation::GetCertificate,
            key: &cert_id,
            method: Method::GET,
            path: format!("/certificates/{}/{version}", pinned.name),
            body: None,
            idempotent: true,
        })
        .await
    {
        Ok(a) => a,
        // A key made with the keys API has no certificate: nothing to announce.
        Err(AzureKvError::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    certificate_answer(&answer, key_id, &cert_id, public_key)
}

/// Checks a Get Certificate answer `cert_id` for the key `key_id`: its `kid` (when present) is
/// the key's, and its `cer` (base64) is a certificate holding `public_key`; returns the chain
/// (the leaf: `cer` holds no more).
pub(crate) fn certificate_answer(
    answer: &Value,
    key_id: &str,
    cert_id: &str,
    public_key: &PublicKey,
) -> Result<Vec<Vec<u8>>, AzureKvError> {
    let mismatch = |reason: String| AzureKvError::CertificateMismatch {
        key: key_id.to_owned(),
        certificate: cert_id.to_owned(),
        reason,
    };
    if let Some(kid) = answer["kid"].as_str()
        && !kid.trim_end_matches('/').eq_ignore_ascii_case(key_id)
    {
        return Err(mismatch(format!("its kid is {kid}")));
    }
    let cer = answer["cer"]
        .as_str()
        .ok_or_else(|| AzureKvError::InvalidResponse {
            operation: Operation::GetCertificate,
            key: cert_id.to_owned(),
            reason: "no \"cer\" in the answer".into(),
        })?;
    // The REST reference types `cer` as base64url; accept the standard alphabet too.
    let der = b64::decode("cer", cer)
        .or_else(|_| b64::decode_std("cer", cer))
        .map_err(|e| AzureKvError::InvalidResponse {
            operation: Operation::GetCertificate,
            key: cert_id.to_owned(),
            reason: format!("cer is not base64: {e}"),
        })?;
    pkjwt_x509::check_matches(&der, public_key).map_err(|e| mismatch(e.to_string()))?;
    Ok(vec![der])
}
