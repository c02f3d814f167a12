#![doc = include_str!("../README.md")]

use std::sync::Arc;

pub use pkjwt_core::*;
pub use pkjwt_file::{FileError, FileOptions, FileSigner, GenerateOptions};

/// Options for [`open`] and [`generate`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Algorithm to sign with; `None` derives it from the key (P-256 → ES256, RSA → PS256,
    /// Ed25519 → EdDSA). Must be one the key can produce.
    pub alg: Option<Algorithm>,
    /// File backend options.
    pub file: FileOptions,
    /// Key generation options (RSA size).
    pub generate: GenerateOptions,
    /// PKCS#11 backend options (session pool, retries, module allow-list).
    #[cfg(feature = "pkcs11")]
    pub pkcs11: pkjwt_pkcs11::Pkcs11Options,
    /// AWS KMS backend options (retries, timeouts, an SDK config).
    #[cfg(feature = "aws-kms")]
    pub aws_kms: pkjwt_aws_kms::AwsKmsOptions,
}

impl OpenOptions {
    /// Sets the algorithm.
    pub fn alg(mut self, alg: Option<Algorithm>) -> Self {
        self.alg = alg;
        self
    }
}

/// The backends compiled into this build.
pub fn backends() -> &'static [&'static str] {
    &[
        "file",
        #[cfg(feature = "pkcs11")]
        "pkcs11",
        #[cfg(feature = "aws-kms")]
        "aws-kms",
    ]
}

/// Parses a key reference and opens the key in its backend.
pub async fn open(uri: &str, options: &OpenOptions) -> Result<Arc<dyn Signer>> {
    open_uri(&KeyUri::parse(uri)?, options).await
}

/// Opens the key a parsed [`KeyUri`] names.
pub async fn open_uri(uri: &KeyUri, options: &OpenOptions) -> Result<Arc<dyn Signer>> {
    match uri {
        KeyUri::File(f) => Ok(Arc::new(
            FileSigner::open(f, options.alg, &options.file)
                .map_err(|e| Error::backend("file", e))?,
        )),
        #[cfg(feature = "pkcs11")]
        KeyUri::Pkcs11(p) => Ok(Arc::new(
            pkjwt_pkcs11::Pkcs11Signer::open(p, options.alg, &options.pkcs11)
                .await
                .map_err(|e| Error::backend("PKCS#11", e))?,
        )),
        #[cfg(feature = "aws-kms")]
        KeyUri::AwsKms(k) => Ok(Arc::new(
            pkjwt_aws_kms::AwsKmsSigner::open(k, options.alg, &options.aws_kms)
                .await
                .map_err(|e| Error::backend("AWS KMS", e))?,
        )),
        #[allow(unreachable_patterns)]
        _ => Err(not_built(uri)),
    }
}

/// Creates a new key for `alg` in the backend `uri` names and returns its signer.
pub async fn generate(
    uri: &KeyUri,
    alg: Algorithm,
    options: &OpenOptions,
) -> Result<Arc<dyn Signer>> {
    match uri {
        KeyUri::File(f) => Ok(Arc::new(
            pkjwt_file::generate(f, alg, &options.generate)
                .map_err(|e| Error::backend("file", e))?,
        )),
        #[cfg(feature = "pkcs11")]
        KeyUri::Pkcs11(p) => {
            pkjwt_pkcs11::generate(p, alg, &options.pkcs11)
                .await
                .map_err(|e| Error::backend("PKCS#11", e))?;
            open_uri(uri, &options.clone().alg(Some(alg))).await
        }
        #[cfg(feature = "aws-kms")]
        KeyUri::AwsKms(k) => {
            pkjwt_aws_kms::generate(k, alg, &options.aws_kms)
                .await
                .map_err(|e| Error::backend("AWS KMS", e))?;
            open_uri(uri, &options.clone().alg(Some(alg))).await
        }
        _ => Err(not_built(uri)),
    }
}

#[allow(dead_code)]
fn not_built(uri: &KeyUri) -> Error {
    let (backend, feature) = match uri {
        KeyUri::Pkcs11(_) => ("PKCS#11", "pkcs11"),
        KeyUri::AwsKms(_) => ("AWS KMS", "aws-kms"),
        _ => ("this", "?"),
    };
    Error::BackendNotBuilt {
        uri: uri.to_string(),
        backend,
        feature,
    }
}
