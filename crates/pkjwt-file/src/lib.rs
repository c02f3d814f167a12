#![doc = include_str!("../README.md")]
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use pkjwt_core::{KeyUri, Signer};
//! let KeyUri::File(uri) = KeyUri::parse("file:client.pem")? else { unreachable!() };
//! let signer = pkjwt_file::FileSigner::open(&uri, None, &Default::default())?;
//! let sig = signer.sign(b"header.payload").await?;
//! # Ok(()) }
//! ```

mod error;
mod generate;
mod load;
pub mod pkcs12;

use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use pkjwt_core::{Algorithm, FileUri, PublicKey, Signature, Signer};

pub use error::FileError;
pub use generate::{generate, generate_in_memory};
pub use load::KeyFormat;

/// Options for opening key files.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct FileOptions {
    /// Load a private key file even when group or others can read it. Off by default, as in
    /// ssh: a world-readable private key is usually a mistake worth stopping for.
    pub allow_insecure_permissions: bool,
}

impl FileOptions {
    /// Options that accept group- or world-readable key files.
    pub fn allow_insecure_permissions(mut self, allow: bool) -> Self {
        self.allow_insecure_permissions = allow;
        self
    }
}

/// The private key inside a [`FileSigner`]. AWS-LC clears private key memory when the key is
/// freed (`EVP_PKEY_free` → `BN_clear_free`), so dropping the signer zeroizes the key.
pub(crate) enum PrivateKey {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A [`Signer`] over a private key held in memory, loaded from a file or JWK.
pub struct FileSigner {
    key: PrivateKey,
    alg: Algorithm,
    public_key: PublicKey,
    format: KeyFormat,
    path: Option<PathBuf>,
    certificates: Vec<Vec<u8>>,
    rng: SystemRandom,
}

impl fmt::Debug for FileSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key: only what identifies it.
        f.debug_struct("FileSigner")
            .field("alg", &self.alg)
            .field("key", &self.public_key)
            .field("format", &self.format)
            .field("path", &self.path)
            .finish()
    }
}

impl FileSigner {
    /// Opens the key named by a `file:` URI. `alg` overrides the key's default algorithm, and
    /// must be one the key can produce.
    pub fn open(
        uri: &FileUri,
        alg: Option<Algorithm>,
        options: &FileOptions,
    ) -> Result<Self, FileError> {
        let passphrase = uri
            .passphrase
            .as_ref()
            .map(|s| s.read("passphrase"))
            .transpose()?;
        if let Some(source) = &uri.password {
            let password = source.read("keystore password")?;
            let bytes = load::read_private_file(&uri.path, options)?;
            let mut signer =
                Self::from_pkcs12(&bytes, &password, alg).map_err(|e| e.with_path(&uri.path))?;
            signer.path = Some(uri.path.clone());
            return Ok(signer);
        }
        if pkcs12::is_keystore_path(&uri.path) {
            return Err(FileError::Unsupported {
                path: uri.path.clone(),
                what: "a PKCS#12 keystore needs its password: add ?password-source=env:NAME or \
                       file:PATH"
                    .into(),
            });
        }
        Self::open_path(
            &uri.path,
            passphrase.as_deref().map(|s| s.as_str()),
            alg,
            options,
        )
    }

    /// Opens a key file with an optional passphrase.
    pub fn open_path(
        path: &Path,
        passphrase: Option<&str>,
        alg: Option<Algorithm>,
        options: &FileOptions,
    ) -> Result<Self, FileError> {
        let bytes = load::read_private_file(path, options)?;
        let mut signer =
            Self::from_bytes(&bytes, passphrase, alg).map_err(|e| e.with_path(path))?;
        signer.path = Some(path.to_path_buf());
        Ok(signer)
    }

    /// Parses a private key from PEM, DER or JWK bytes.
    pub fn from_bytes(
        bytes: &[u8],
        passphrase: Option<&str>,
        alg: Option<Algorithm>,
    ) -> Result<Self, FileError> {
        let (key, format) = load::parse_private_key(bytes, passphrase)?;
        Self::from_key(key, format, alg)
    }

    /// Reads a PKCS#12 keystore (`.p12` / `.pfx`) from memory: the private key, and the
    /// certificate chain (leaf first) that [`Signer::certificate_chain`] then returns.
    pub fn from_pkcs12(
        bytes: &[u8],
        password: &str,
        alg: Option<Algorithm>,
    ) -> Result<Self, FileError> {
        let (key, chain) = pkcs12::read(bytes, password)?;
        let mut signer = Self::from_key(key, KeyFormat::Pkcs12, alg)?;
        signer.certificates = chain;
        Ok(signer)
    }

    pub(crate) fn from_key(
        key: PrivateKey,
        format: KeyFormat,
        alg: Option<Algorithm>,
    ) -> Result<Self, FileError> {
        let public_key = public_key_of(&key)?;
        let alg = public_key.resolve_algorithm(alg)?;
        Ok(FileSigner {
            key,
            alg,
            public_key,
            format,
            path: None,
            certificates: Vec::new(),
            rng: SystemRandom::new(),
        })
    }

    /// The format the key was read from.
    pub fn format(&self) -> KeyFormat {
        self.format
    }

    /// Signs synchronously, returning the typed [`FileError`] (the work is a few microseconds to a
    /// millisecond of CPU; the async [`Signer::sign`] calls this directly).
    pub fn try_sign(&self, message: &[u8]) -> Result<Signature, FileError> {
        match &self.key {
            PrivateKey::Ecdsa(k) => {
                // The key pair was created for the curve's ASN.1 (DER) signing algorithm, which is
                // the Signer contract's encoding for ECDSA.
                let s = k
                    .sign(&self.rng, message)
                    .map_err(|_| FileError::Sign { alg: self.alg })?;
                Ok(Signature::new(s.as_ref().to_vec()))
            }
            PrivateKey::Rsa(k) => {
                let padding: &'static dyn sig::RsaEncoding = match self.alg {
                    Algorithm::PS256 => &sig::RSA_PSS_SHA256,
                    Algorithm::PS384 => &sig::RSA_PSS_SHA384,
                    Algorithm::PS512 => &sig::RSA_PSS_SHA512,
                    Algorithm::RS256 => &sig::RSA_PKCS1_SHA256,
                    Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
                    other => return Err(FileError::Sign { alg: other }),
                };
                let mut out = vec![0u8; k.public_modulus_len()];
                k.sign(padding, &self.rng, message, &mut out)
                    .map_err(|_| FileError::Sign { alg: self.alg })?;
                Ok(Signature::new(out))
            }
            PrivateKey::Ed25519(k) => Ok(Signature::new(k.sign(message).as_ref().to_vec())),
        }
    }
}

#[async_trait]
impl Signer for FileSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }

    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The certificate chain stored with the key (PKCS#12), leaf first; empty otherwise.
    fn certificate_chain(&self) -> &[Vec<u8>] {
        &self.certificates
    }

    async fn sign(&self, message: &[u8]) -> pkjwt_core::Result<Signature> {
        self.try_sign(message)
            .map_err(|e| pkjwt_core::Error::backend("file", e))
    }
}

fn public_key_of(key: &PrivateKey) -> Result<PublicKey, FileError> {
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    let pk = match key {
        PrivateKey::Ecdsa(k) => {
            let spki: PublicKeyX509Der = k
                .public_key()
                .as_der()
                .map_err(|_| FileError::Internal("cannot encode EC public key"))?;
            PublicKey::from_spki_der(spki.as_ref())?
        }
        PrivateKey::Rsa(k) => {
            let spki: PublicKeyX509Der = k
                .public_key()
                .as_der()
                .map_err(|_| FileError::Internal("cannot encode RSA public key"))?;
            PublicKey::from_spki_der(spki.as_ref())?
        }
        PrivateKey::Ed25519(k) => PublicKey::ed25519(k.public_key().as_ref())?,
    };
    Ok(pk)
}

/// The aws-lc-rs ECDSA signing algorithm (DER output) for a curve.
pub(crate) fn ecdsa_alg(curve: pkjwt_core::Curve) -> &'static sig::EcdsaSigningAlgorithm {
    match curve {
        pkjwt_core::Curve::P256 => &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
        pkjwt_core::Curve::P384 => &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
        pkjwt_core::Curve::P521 => &sig::ECDSA_P521_SHA512_ASN1_SIGNING,
        pkjwt_core::Curve::Secp256k1 => &sig::ECDSA_P256K1_SHA256_ASN1_SIGNING,
        // Curve is non_exhaustive; a curve added to core must be wired here deliberately.
        #[allow(unreachable_patterns)]
        _ => &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
    }
}
