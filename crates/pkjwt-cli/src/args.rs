//! The pieces every subcommand shares: its result type, the key arguments (`--key` and
//! `--allow-insecure-key-permissions`, with the `pin-value` warning), the options keys are
//! opened with, and the key's certificate chain (`--cert FILE` or the one kept with the key).
//!
//! Subcommand modules import from here, from `output` and from the libraries, never from one
//! another: what two subcommands need lives here (or in a library).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use pkjwt::{Algorithm, Jwk, KeyUri, OpenOptions, Signer};

/// Any error a subcommand returns; `main` prints its cause chain.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What every subcommand's `run` returns: the exit code, or the error `main` prints (exit 1).
pub(crate) type CmdResult = Result<ExitCode, BoxError>;

// One key: `--key URI` (or PKJWT_KEY). Required, except where a command relaxes it with
// `#[command(mut_arg("key", …))]` (token: `--key` or `--state`). No doc comment: on a flattened
// struct it would become the subcommand's about text.
#[derive(Args)]
pub(crate) struct KeyArgs {
    /// Key reference: file:PATH (or a path) or a backend's key URI; `pkjwt --help` lists the forms.
    #[arg(long, env = "PKJWT_KEY", value_name = "URI", required = true)]
    key: Option<String>,
    /// Accept a private key file that group or others can read (ssh refuses those; so do we).
    #[arg(long, env = "PKJWT_ALLOW_INSECURE_KEY_PERMISSIONS")]
    allow_insecure_key_permissions: bool,
}

impl KeyArgs {
    /// Whether `--key` was given (it may be left out only where the command allows it).
    pub(crate) fn given(&self) -> bool {
        self.key.is_some()
    }

    /// The parsed `--key`, with the `pin-value` warning.
    pub(crate) fn uri(&self) -> Result<KeyUri, BoxError> {
        // Invariant: clap requires --key unless the command declares another source, and those
        // commands check `given()` first.
        let key = self.key.as_deref().ok_or("give --key")?;
        Ok(key_uri(key)?)
    }

    pub(crate) fn options(&self, alg: Option<Algorithm>) -> Result<OpenOptions, String> {
        open_options(alg, self.allow_insecure_key_permissions)
    }

    /// Opens `--key`.
    pub(crate) async fn open(&self, alg: Option<Algorithm>) -> Result<Arc<dyn Signer>, BoxError> {
        // An out-of-range PKJWT_* variable is reported as itself, as every other command does
        // (it is not an assertion setting).
        let options = self.options(alg)?;
        Ok(pkjwt::open_uri(&self.uri()?, &options).await?)
    }
}

// Several keys: `--key URI`, repeatable, no environment variable (serve, register). Commands
// give `--key` their own help text (and requirement) with `#[command(mut_arg("key", …))]`.
#[derive(Args)]
pub(crate) struct KeysArgs {
    /// Key reference: file:PATH (or a path) or a backend's key URI (`pkjwt --help` lists the
    /// forms); repeat for several.
    #[arg(long, value_name = "URI")]
    key: Vec<String>,
    /// Accept private key files that group or others can read.
    #[arg(long, env = "PKJWT_ALLOW_INSECURE_KEY_PERMISSIONS")]
    allow_insecure_key_permissions: bool,
}

impl KeysArgs {
    /// The `--key` references, as given.
    pub(crate) fn keys(&self) -> &[String] {
        &self.key
    }

    pub(crate) fn options(&self, alg: Option<Algorithm>) -> Result<OpenOptions, String> {
        open_options(alg, self.allow_insecure_key_permissions)
    }

    /// Opens each `--key`, in order.
    pub(crate) async fn open_all(
        &self,
        alg: Option<Algorithm>,
    ) -> Result<Vec<Arc<dyn Signer>>, BoxError> {
        let options = self.options(alg)?;
        let mut out = Vec::with_capacity(self.key.len());
        for k in &self.key {
            out.push(open_key(k, &options).await?);
        }
        Ok(out)
    }
}

/// Parses a key reference; warns on stderr when a PKCS#11 URI carries its PIN.
pub(crate) fn key_uri(s: &str) -> Result<KeyUri, pkjwt::Error> {
    let uri = KeyUri::parse(s)?;
    if let KeyUri::Pkcs11(p) = &uri
        && p.has_pin_value()
    {
        eprintln!(
            "pkjwt: warning: the key URI carries pin-value; prefer pin-source=env:NAME or \
             file:PATH (a PIN on the command line ends up in shell history and process lists)"
        );
    }
    Ok(uri)
}

/// Opens the key `s` names (with [`key_uri`]'s warning).
pub(crate) async fn open_key(s: &str, options: &OpenOptions) -> Result<Arc<dyn Signer>, BoxError> {
    Ok(pkjwt::open_uri(&key_uri(s)?, options).await?)
}

/// Options for opening keys: the algorithm, the file-permission opt-out, and backend tuning
/// from the environment — `PKJWT_PKCS11_POOL_SIZE`, `PKJWT_PKCS11_MAX_ATTEMPTS`,
/// `PKJWT_AWS_KMS_MAX_ATTEMPTS`, `PKJWT_AWS_KMS_CONNECT_TIMEOUT` and `PKJWT_AWS_KMS_TIMEOUT`
/// (seconds per attempt), `PKJWT_AZURE_KV_CREDENTIAL` (auto, environment, workload-identity,
/// managed-identity, azure-cli), `PKJWT_AZURE_KV_MAX_ATTEMPTS`, `PKJWT_AZURE_KV_CA_FILE`,
/// `PKJWT_GCP_KMS_MAX_ATTEMPTS`, `PKJWT_GCP_KMS_TIMEOUT` (seconds per attempt) and
/// `PKJWT_GCP_KMS_PROTECTION_LEVEL` (`HSM` or `SOFTWARE`, for keygen).
pub(crate) fn open_options(
    alg: Option<Algorithm>,
    allow_insecure_key_permissions: bool,
) -> Result<OpenOptions, String> {
    let mut o = OpenOptions::default().alg(alg);
    o.file = o
        .file
        .allow_insecure_permissions(allow_insecure_key_permissions);
    #[cfg(feature = "pkcs11")]
    {
        if let Some(n) = env_number("PKJWT_PKCS11_POOL_SIZE", 1, 1024)? {
            o.pkcs11 = o.pkcs11.pool_size(n as usize);
        }
        if let Some(n) = env_number("PKJWT_PKCS11_MAX_ATTEMPTS", 1, 100)? {
            o.pkcs11 = o.pkcs11.max_attempts(n as u32);
        }
    }
    #[cfg(feature = "aws-kms")]
    {
        use std::time::Duration;
        if let Some(n) = env_number("PKJWT_AWS_KMS_MAX_ATTEMPTS", 1, 100)? {
            o.aws_kms = o.aws_kms.max_attempts(n as u32);
        }
        if let Some(n) = env_number("PKJWT_AWS_KMS_CONNECT_TIMEOUT", 1, 600)? {
            o.aws_kms = o.aws_kms.connect_timeout(Duration::from_secs(n));
        }
        if let Some(n) = env_number("PKJWT_AWS_KMS_TIMEOUT", 1, 600)? {
            let attempt = Duration::from_secs(n);
            let attempts = o.aws_kms.max_attempts.max(1);
            // Every attempt, plus the longest backoff before each retry.
            let operation = attempt
                .saturating_mul(attempts)
                .saturating_add(o.aws_kms.max_backoff.saturating_mul(attempts - 1));
            o.aws_kms = o.aws_kms.timeouts(attempt, operation);
        }
    }
    #[cfg(feature = "azure-kv")]
    {
        use pkjwt::azure_kv::CredentialSource;
        if let Ok(name) = std::env::var("PKJWT_AZURE_KV_CREDENTIAL") {
            let source = CredentialSource::from_name(name.trim())
                .map_err(|e| format!("PKJWT_AZURE_KV_CREDENTIAL: {e}"))?;
            o.azure_kv = o.azure_kv.credential(source);
        }
        if let Some(n) = env_number("PKJWT_AZURE_KV_MAX_ATTEMPTS", 1, 100)? {
            o.azure_kv = o.azure_kv.max_attempts(n as u32);
        }
        // Extra trust anchors for the vault and Entra ID (a TLS-inspecting proxy, a test double).
        if let Some(path) = std::env::var_os("PKJWT_AZURE_KV_CA_FILE") {
            let pem = std::fs::read(&path).map_err(|e| {
                format!("PKJWT_AZURE_KV_CA_FILE={}: {e}", Path::new(&path).display())
            })?;
            o.azure_kv = o.azure_kv.root_certificates_pem(pem);
        }
    }
    #[cfg(feature = "gcp-kms")]
    {
        use pkjwt::gcp_kms::ProtectionLevel;
        if let Some(n) = env_number("PKJWT_GCP_KMS_MAX_ATTEMPTS", 1, 100)? {
            o.gcp_kms = o.gcp_kms.max_attempts(n as u32);
        }
        if let Some(n) = env_number("PKJWT_GCP_KMS_TIMEOUT", 1, 600)? {
            o.gcp_kms = o.gcp_kms.attempt_timeout(std::time::Duration::from_secs(n));
        }
        if let Ok(v) = std::env::var("PKJWT_GCP_KMS_PROTECTION_LEVEL") {
            let level = match v.trim().to_ascii_uppercase().as_str() {
                "HSM" => ProtectionLevel::Hsm,
                "SOFTWARE" => ProtectionLevel::Software,
                _ => {
                    return Err(format!(
                        "PKJWT_GCP_KMS_PROTECTION_LEVEL={v:?}: expected HSM or SOFTWARE"
                    ));
                }
            };
            o.gcp_kms = o.gcp_kms.protection_level(level);
        }
    }
    Ok(o)
}

/// A whole number from environment variable `name`, within `min..=max`; `None` when unset.
#[cfg(any(
    feature = "pkcs11",
    feature = "aws-kms",
    feature = "azure-kv",
    feature = "gcp-kms"
))]
fn env_number(name: &str, min: u64, max: u64) -> Result<Option<u64>, String> {
    let Ok(v) = std::env::var(name) else {
        return Ok(None);
    };
    match v.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(format!(
            "{name}={v:?}: expected a whole number from {min} to {max}"
        )),
    }
}

/// The key's certificate chain, leaf first: from `--cert FILE` (checked against the key), else
/// the one the backend keeps with the key ([`pkjwt_x509::key_chain`]); `None` when neither exists.
pub(crate) fn chain_for(
    cert: Option<&Path>,
    signer: &dyn Signer,
) -> Result<Option<Vec<Vec<u8>>>, BoxError> {
    // A kept certificate of another key: the error's flag hint names --cert (output.rs).
    Ok(pkjwt_x509::key_chain(cert, signer)?)
}

/// Adds `x5c` (the chain) and `x5t#S256` (of the leaf) to a JWK.
pub(crate) fn add_chain_to_jwk(jwk: &mut Jwk, chain: &[Vec<u8>], sha1: bool) {
    jwk.x5c = Some(chain.iter().map(|c| pkjwt_x509::x5c_entry(c)).collect());
    jwk.x5t_s256 = Some(pkjwt_x509::x5t_s256(&chain[0]));
    if sha1 {
        jwk.x5t = Some(pkjwt_x509::x5t_sha1(&chain[0]));
    }
}
