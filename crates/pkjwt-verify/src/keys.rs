//! Verification keys: a [`JwkSet`] turned into keys parsed once for aws-lc-rs, and the
//! [`KeySource`] trait through which a verifier asks for them (a fixed set, or a client's
//! `jwks_uri` via [`crate::RemoteJwks`]).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lc_rs::signature::{self as sig, ParsedPublicKey, VerificationAlgorithm};
use pkjwt_core::{Algorithm, Jwk, JwkSet, PublicKey};

use crate::Rejection;

/// The aws-lc-rs verification algorithm for a JWS algorithm. ECDSA uses the FIXED (`r || s`)
/// encodings of RFC 7518 §3.4; PSS uses MGF1 with the same hash and a hash-length salt.
pub(crate) fn verification_algorithm(alg: Algorithm) -> &'static dyn VerificationAlgorithm {
    match alg {
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::ES512 => &sig::ECDSA_P521_SHA512_FIXED,
        Algorithm::ES256K => &sig::ECDSA_P256K1_SHA256_FIXED,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        // `Algorithm` is non_exhaustive in pkjwt-core; EdDSA is the remaining known value and
        // any future one is refused earlier, by `VerifyingKey::new` not listing it.
        _ => &sig::ED25519,
    }
}

/// The bytes aws-lc-rs parses for a key: the uncompressed point for EC, the raw 32 bytes for
/// Ed25519, the SubjectPublicKeyInfo for RSA.
fn key_bytes(key: &PublicKey) -> Vec<u8> {
    match key {
        PublicKey::Ec { .. } => key.ec_point().unwrap_or_default(),
        PublicKey::Ed25519(x) => x.to_vec(),
        _ => key.to_spki_der(),
    }
}

/// One public key of a client, parsed for every algorithm it may verify.
pub struct VerifyingKey {
    kid: Option<String>,
    jwk_alg: Option<String>,
    key: PublicKey,
    parsed: Vec<(Algorithm, ParsedPublicKey)>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.jwk_alg)
            .field("key", &self.key)
            .finish()
    }
}

impl VerifyingKey {
    /// Parses a JWK. Keys whose `use` is not `sig` are skipped by [`KeySet::from_jwks`]; here
    /// the JWK is taken as a signature key.
    pub fn new(jwk: &Jwk) -> Result<Self, pkjwt_core::Error> {
        let key = jwk.to_public_key()?;
        let bytes = key_bytes(&key);
        let mut parsed = Vec::new();
        for alg in key.algorithms() {
            if let Ok(p) = ParsedPublicKey::new(verification_algorithm(alg), &bytes) {
                parsed.push((alg, p));
            }
        }
        if parsed.is_empty() {
            return Err(pkjwt_core::Error::UnsupportedKey(format!(
                "{} (kid {:?}) is not a valid public key for any algorithm",
                key.describe(),
                jwk.kid
            )));
        }
        Ok(VerifyingKey {
            kid: jwk.kid.clone(),
            jwk_alg: jwk.alg.clone(),
            key,
            parsed,
        })
    }

    /// The key's `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The JWK's `alg` member, if it had one.
    pub fn jwk_alg(&self) -> Option<&str> {
        self.jwk_alg.as_deref()
    }

    pub(crate) fn label(&self) -> String {
        match &self.kid {
            Some(k) => format!("\"{k}\""),
            None => "(no kid)".into(),
        }
    }

    /// Why this key cannot verify `alg`, or `None` when it can.
    pub(crate) fn unfit_reason(&self, alg: Algorithm) -> Option<String> {
        if !self.key.supports(alg) {
            let can = self
                .key
                .algorithms()
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(", ");
            return Some(format!("it verifies only {can}"));
        }
        // Compare parsed algorithms, so that the fully-specified name `Ed25519` in a JWK
        // matches a token's `EdDSA` (draft-ietf-jose-fully-specified-algorithms).
        if let Some(ja) = &self.jwk_alg
            && ja.parse::<Algorithm>().ok() != Some(alg)
        {
            return Some(format!("its JWK restricts it to \"alg\": \"{ja}\""));
        }
        None
    }

    pub(crate) fn parsed(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
        self.parsed.iter().find(|(a, _)| *a == alg).map(|(_, p)| p)
    }

    /// The exact signature length this key produces for `alg`: 2 × field size for ECDSA, 64
    /// for Ed25519, the modulus length for RSA.
    pub(crate) fn signature_len(&self, alg: Algorithm) -> usize {
        match (&self.key, alg.fixed_signature_len()) {
            (_, Some(n)) => n,
            (PublicKey::Rsa { n, .. }, None) => n.len(),
            // Unreachable in practice: unfit_reason refused the pair already.
            _ => 0,
        }
    }
}

/// A client's keys, parsed once. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    /// Parses every signature key of `jwks` (keys with `use` other than `sig` are skipped; the
    /// set's kids are already unique, [`JwkSet`] guarantees it).
    pub fn from_jwks(jwks: &JwkSet) -> Result<Self, pkjwt_core::Error> {
        let mut keys = Vec::with_capacity(jwks.keys().len());
        for jwk in jwks.keys() {
            if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            keys.push(VerifyingKey::new(jwk)?);
        }
        Ok(KeySet { keys })
    }

    /// Parses JWKS JSON text strictly (see [`JwkSet::from_json`]).
    pub fn from_json(text: &str) -> Result<Self, pkjwt_core::Error> {
        KeySet::from_jwks(&JwkSet::from_json(text)?)
    }

    /// The keys.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// The key with this kid.
    pub fn find(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }

    pub(crate) fn kids_text(&self) -> String {
        let kids: Vec<_> = self.keys.iter().map(|k| k.label()).collect();
        if kids.is_empty() {
            "none".into()
        } else {
            kids.join(", ")
        }
    }

    pub(crate) fn describe(&self) -> String {
        if self.keys.is_empty() {
            return "the set is empty".into();
        }
        self.keys
            .iter()
            .map(|k| format!("{} {}", k.label(), k.key.describe()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where a verifier gets a client's keys.
#[async_trait]
pub trait KeySource: fmt::Debug + Send + Sync {
    /// The current key set. `kid` is the token's `kid`: a source that can refresh (a
    /// `jwks_uri`) may refetch when it does not know it, within its rate limit.
    async fn key_set(&self, kid: Option<&str>) -> Result<Arc<KeySet>, Rejection>;
}

#[async_trait]
impl KeySource for Arc<KeySet> {
    async fn key_set(&self, _kid: Option<&str>) -> Result<Arc<KeySet>, Rejection> {
        Ok(self.clone())
    }
}
