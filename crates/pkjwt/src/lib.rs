#![doc = include_str!("../README.md")]

use std::sync::Arc;

/// The AWS KMS backend crate (key creation and alias moves for rotation live there).
#[cfg(feature = "aws-kms")]
pub use pkjwt_aws_kms as aws_kms;
/// The Azure Key Vault backend crate (credential choice, key creation).
#[cfg(feature = "azure-kv")]
pub use pkjwt_azure_kv as azure_kv;
pub use pkjwt_core::*;
pub use pkjwt_file::{FileError, FileOptions, FileSigner, generate_in_memory};
/// The Google Cloud KMS backend crate (its options, credentials and key creation).
#[cfg(feature = "gcp-kms")]
pub use pkjwt_gcp_kms as gcp_kms;

/// Options for [`open`] and [`generate`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Algorithm to sign with; `None` derives it from the key (P-256 → ES256, RSA → PS256,
    /// Ed25519 → EdDSA). Must be one the key can produce.
    pub alg: Option<Algorithm>,
    /// File backend options.
    pub file: FileOptions,
    /// Key generation options (RSA size), passed to [`generate`] of every backend alike; a
    /// backend refuses an option it cannot honour.
    pub generate: GenerateOptions,
    /// PKCS#11 backend options (session pool, retries, module allow-list).
    #[cfg(feature = "pkcs11")]
    pub pkcs11: pkjwt_pkcs11::Pkcs11Options,
    /// AWS KMS backend options (retries, timeouts, an SDK config).
    #[cfg(feature = "aws-kms")]
    pub aws_kms: pkjwt_aws_kms::AwsKmsOptions,
    /// Azure Key Vault backend options (credential, retries, trust roots, certificate read).
    #[cfg(feature = "azure-kv")]
    pub azure_kv: pkjwt_azure_kv::AzureKvOptions,
    /// Google Cloud KMS backend options (retries, timeouts, credentials, protection level).
    #[cfg(feature = "gcp-kms")]
    pub gcp_kms: pkjwt_gcp_kms::GcpKmsOptions,
}

impl OpenOptions {
    /// Sets the algorithm.
    pub fn alg(mut self, alg: Option<Algorithm>) -> Self {
        self.alg = alg;
        self
    }
}

/// True when this build includes the backend of `scheme` (a row of [`SCHEMES`]).
pub fn is_built(scheme: &SchemeInfo) -> bool {
    // `cfg!` needs the feature name as a literal: this is the one line per optional backend.
    match scheme.feature {
        None => true,
        Some("pkcs11") => cfg!(feature = "pkcs11"),
        Some("aws-kms") => cfg!(feature = "aws-kms"),
        Some("azure-kv") => cfg!(feature = "azure-kv"),
        Some("gcp-kms") => cfg!(feature = "gcp-kms"),
        Some(_) => false,
    }
}

/// The backends compiled into this build ([`SchemeInfo::id`], in [`SCHEMES`] order).
pub fn backends() -> &'static [&'static str] {
    static BUILT: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        SCHEMES
            .iter()
            .filter(|s| is_built(s))
            .map(|s| s.id)
            .collect()
    })
}

/// Parses a key reference and opens the key in its backend.
pub async fn open(uri: &str, options: &OpenOptions) -> Result<Arc<dyn Signer>> {
    open_uri(&KeyUri::parse(uri)?, options).await
}

/// Opens the key a parsed [`KeyUri`] names.
pub async fn open_uri(uri: &KeyUri, options: &OpenOptions) -> Result<Arc<dyn Signer>> {
    match uri {
        // Each backend error converts into Error::Backend through its From impl.
        KeyUri::File(f) => Ok(Arc::new(FileSigner::open(f, options.alg, &options.file)?)),
        #[cfg(feature = "pkcs11")]
        KeyUri::Pkcs11(p) => Ok(Arc::new(
            pkjwt_pkcs11::Pkcs11Signer::open(p, options.alg, &options.pkcs11).await?,
        )),
        #[cfg(feature = "aws-kms")]
        KeyUri::AwsKms(k) => Ok(Arc::new(
            pkjwt_aws_kms::AwsKmsSigner::open(k, options.alg, &options.aws_kms).await?,
        )),
        #[cfg(feature = "azure-kv")]
        KeyUri::AzureKv(k) => Ok(Arc::new(
            pkjwt_azure_kv::AzureKvSigner::open(k, options.alg, &options.azure_kv).await?,
        )),
        #[cfg(feature = "gcp-kms")]
        KeyUri::GcpKms(k) => Ok(Arc::new(
            pkjwt_gcp_kms::GcpKmsSigner::open(k, options.alg, &options.gcp_kms).await?,
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
        KeyUri::File(f) if f.password.is_some() => generate_keystore(f, alg, options).await,
        KeyUri::File(f) => Ok(Arc::new(pkjwt_file::generate(f, alg, &options.generate)?)),
        #[cfg(feature = "pkcs11")]
        KeyUri::Pkcs11(p) => {
            pkjwt_pkcs11::generate(p, alg, &options.generate, &options.pkcs11).await?;
            open_uri(uri, &options.clone().alg(Some(alg))).await
        }
        #[cfg(feature = "aws-kms")]
        KeyUri::AwsKms(k) => {
            pkjwt_aws_kms::generate(k, alg, &options.generate, &options.aws_kms).await?;
            open_uri(uri, &options.clone().alg(Some(alg))).await
        }
        #[cfg(feature = "azure-kv")]
        KeyUri::AzureKv(k) => {
            // Open exactly the version just created, not whatever is current a moment later.
            let (_, kid) =
                pkjwt_azure_kv::generate(k, alg, &options.generate, &options.azure_kv).await?;
            let version = kid.rsplit('/').next().unwrap_or_default();
            open_uri(
                &KeyUri::AzureKv(k.with_version(version)),
                &options.clone().alg(Some(alg)),
            )
            .await
        }
        #[cfg(feature = "gcp-kms")]
        KeyUri::GcpKms(k) => Ok(Arc::new(
            pkjwt_gcp_kms::generate(k, alg, &options.generate, &options.gcp_kms).await?,
        )),
        _ => Err(not_built(uri)),
    }
}

/// Stores a DER certificate next to its key in the backend `uri` names (PKCS#11: an X.509
/// certificate object with the key's id and label). Backends without certificate storage
/// answer with a clear error.
pub async fn store_certificate(uri: &KeyUri, cert_der: &[u8], options: &OpenOptions) -> Result<()> {
    match uri {
        #[cfg(feature = "pkcs11")]
        KeyUri::Pkcs11(p) => {
            Ok(pkjwt_pkcs11::store_certificate(p, cert_der.to_vec(), &options.pkcs11).await?)
        }
        #[cfg(not(feature = "pkcs11"))]
        KeyUri::Pkcs11(_) => Err(not_built(uri)),
        _ => {
            let _ = (cert_der, options);
            Err(Error::NoCertificateStorage {
                uri: uri.to_string(),
            })
        }
    }
}

/// A new key in a PKCS#12 keystore, with a self-signed certificate (CN = the file's stem, one
/// year) so that servers and tools that exchange keystores get the certificate they expect.
async fn generate_keystore(
    f: &FileUri,
    alg: Algorithm,
    options: &OpenOptions,
) -> Result<Arc<dyn Signer>> {
    // `generate` only calls this with a password source; a URI without one is still refused
    // as a URI problem rather than assumed.
    let source = f.password.as_ref().ok_or_else(|| Error::KeyUri {
        uri: KeyUri::File(f.clone()).to_string(),
        reason: "a PKCS#12 keystore needs password-source=env:NAME or file:PATH".into(),
    })?;
    let password = source.read("keystore password")?;
    let (signer, pkcs8) = pkjwt_file::generate_in_memory(alg, &options.generate)?;
    let cn = f
        .path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty() && !s.contains([',', '+', '=', '"', '\\', '<', '>', ';']))
        .unwrap_or("pkjwt-client");
    // Certificate failures are Error::Certificate (From<X509Error>), not the file backend's.
    let opts = pkjwt_x509::CertOptions::new(&format!("CN={cn}")).and_then(|o| o.days(365))?;
    let cert = pkjwt_x509::self_signed(&signer, &opts).await?;
    pkjwt_file::pkcs12::write_new(&f.path, &pkcs8, &[cert], &password)?;
    open_uri(&KeyUri::File(f.clone()), &options.clone().alg(Some(alg))).await
}

#[allow(dead_code)]
fn not_built(uri: &KeyUri) -> Error {
    let scheme = uri.scheme();
    Error::BackendNotBuilt {
        uri: uri.to_string(),
        backend: scheme.backend,
        feature: scheme.feature.unwrap_or("?"),
    }
}
