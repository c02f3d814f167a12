//! The [`Signer`] trait every backend implements, and its signature contract.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{Algorithm, PublicKey, Result};

/// A signature as a backend returns it, in the encoding the [`Signer`] contract prescribes.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature(Vec<u8>);

impl Signature {
    /// Wraps bytes returned by a backend.
    pub fn new(bytes: Vec<u8>) -> Self {
        Signature(bytes)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Takes the bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({} bytes)", self.0.len())
    }
}

impl AsRef<[u8]> for Signature {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A private key that can sign, wherever it lives (a file, a PKCS#11 token, AWS KMS).
///
/// # Contract
///
/// * [`algorithm`](Signer::algorithm) is fixed for the signer's lifetime and is one that
///   [`public_key`](Signer::public_key) can produce ([`PublicKey::supports`]).
/// * [`public_key`](Signer::public_key) is read once, when the signer is opened; calling it never
///   reaches the backend.
/// * [`sign`](Signer::sign) receives the whole message (for a JWS, the ASCII signing input
///   `BASE64URL(header) || '.' || BASE64URL(payload)`) and applies the hash that `algorithm()`
///   names itself; EdDSA signs the message with no pre-hash (RFC 8032).
/// * The returned [`Signature`] is encoded as the algorithm's *native* form:
///   - **ECDSA** (ES256, ES384, ES512, ES256K): a DER `ECDSA-Sig-Value` (RFC 3279 §2.2.3), which is
///     what AWS KMS, X.509 and most crypto libraries produce. A backend whose device returns raw
///     `r || s` (PKCS#11 `CKM_ECDSA`) converts with [`crate::ecdsa_fixed_to_der`].
///   - **RSA** (PS*, RS*): the signature octets, exactly as long as the modulus.
///   - **EdDSA**: the 64 signature bytes.
///
/// The JWS assembler ([`crate::jws`]) is the one place where DER becomes the fixed-width
/// `r || s` of RFC 7518 §3.4 (64/96/132 bytes). The conversion is strict and never panics; a
/// signature that does not fit the contract is an error, never a malformed JWS.
///
/// Implementations are `Send + Sync` and object safe: pkjwt passes them around as
/// `Arc<dyn Signer>`. A `Debug` implementation must never print key material or secrets.
#[async_trait]
pub trait Signer: fmt::Debug + Send + Sync {
    /// The JWS algorithm this signer produces.
    fn algorithm(&self) -> Algorithm;

    /// The public key, read once when the signer was opened.
    fn public_key(&self) -> &PublicKey;

    /// Signs `message` as described in the trait documentation.
    async fn sign(&self, message: &[u8]) -> Result<Signature>;

    /// The DER certificate chain stored with the key (leaf first), where the backend keeps one
    /// (a PKCS#12 keystore); empty otherwise. It feeds `x5c` / `x5t#S256`.
    fn certificate_chain(&self) -> &[Vec<u8>] {
        &[]
    }
}

#[async_trait]
impl<T: Signer + ?Sized> Signer for &T {
    fn algorithm(&self) -> Algorithm {
        (**self).algorithm()
    }
    fn public_key(&self) -> &PublicKey {
        (**self).public_key()
    }
    async fn sign(&self, message: &[u8]) -> Result<Signature> {
        (**self).sign(message).await
    }
    fn certificate_chain(&self) -> &[Vec<u8>] {
        (**self).certificate_chain()
    }
}

#[async_trait]
impl<T: Signer + ?Sized> Signer for Box<T> {
    fn algorithm(&self) -> Algorithm {
        (**self).algorithm()
    }
    fn public_key(&self) -> &PublicKey {
        (**self).public_key()
    }
    async fn sign(&self, message: &[u8]) -> Result<Signature> {
        (**self).sign(message).await
    }
    fn certificate_chain(&self) -> &[Vec<u8>] {
        (**self).certificate_chain()
    }
}

#[async_trait]
impl<T: Signer + ?Sized> Signer for Arc<T> {
    fn algorithm(&self) -> Algorithm {
        (**self).algorithm()
    }
    fn public_key(&self) -> &PublicKey {
        (**self).public_key()
    }
    async fn sign(&self, message: &[u8]) -> Result<Signature> {
        (**self).sign(message).await
    }
    fn certificate_chain(&self) -> &[Vec<u8>] {
        (**self).certificate_chain()
    }
}
