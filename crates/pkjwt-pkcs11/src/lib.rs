#![doc = include_str!("../README.md")]
// Tests may unwrap: a panic is how they fail.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod certificate;
mod error;
mod keygen;
mod mechanism;
mod module;
mod object;
mod signer;
mod token;

use std::path::PathBuf;

pub use certificate::store_certificate;
pub use cryptoki;
pub use error::Pkcs11Error;
pub use keygen::generate;
pub use module::{ALLOWED_MODULES_ENV, DEFAULT_MODULE_ENV};
pub use signer::{Pkcs11Signer, Pkcs11Stats};

/// Attempts made for one signature when sessions die underneath (the first try included).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;

/// Settings for [`Pkcs11Signer::open`] and [`generate`] that do not belong in a key URI.
///
/// Built with [`Default`] and the chaining setters:
///
/// ```
/// let opts = pkjwt_pkcs11::Pkcs11Options::default().pool_size(4).max_attempts(3);
/// assert_eq!(opts.pool_size, Some(4));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pkcs11Options {
    /// Sessions kept open per signer (and concurrent `C_Sign` calls). `None`: the number of
    /// CPUs (`std::thread::available_parallelism`), capped by the token's `ulMaxSessionCount`.
    pub pool_size: Option<usize>,
    /// Attempts per signature when sessions die (`CKR_SESSION_HANDLE_INVALID`, logout, device
    /// removal, …), each after rebuilding the sessions and logging in again. `None`:
    /// [`DEFAULT_MAX_ATTEMPTS`].
    pub max_attempts: Option<u32>,
    /// Module used when the URI has neither `module-path` nor `module-name`; `None` falls back to
    /// the environment variable `PKJWT_PKCS11_MODULE`.
    pub default_module: Option<PathBuf>,
    /// Module paths that may be loaded. `None`: the colon-separated list in the environment
    /// variable `PKJWT_PKCS11_ALLOWED_MODULES` if set, otherwise any module.
    pub allowed_modules: Option<Vec<PathBuf>>,
    /// Hash on the host for RSA too: sign with `CKM_RSA_PKCS` (over a DigestInfo) and
    /// `CKM_RSA_PKCS_PSS` (over the digest) instead of the token's `CKM_SHA*_RSA_PKCS[_PSS]`,
    /// when the token has them. For tokens with hashing limits (AWS CloudHSM hashes at most
    /// 16 KB) or slow on-token hashing. ECDSA always hashes on the host. Default `false`.
    pub local_hashing: bool,
}

impl Pkcs11Options {
    /// Sets [`pool_size`](Self::pool_size).
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = Some(n);
        self
    }

    /// Sets [`max_attempts`](Self::max_attempts).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// Sets [`default_module`](Self::default_module).
    pub fn default_module(mut self, path: impl Into<PathBuf>) -> Self {
        self.default_module = Some(path.into());
        self
    }

    /// Sets [`allowed_modules`](Self::allowed_modules).
    pub fn allowed_modules(mut self, paths: Vec<PathBuf>) -> Self {
        self.allowed_modules = Some(paths);
        self
    }

    /// Sets [`local_hashing`](Self::local_hashing).
    pub fn local_hashing(mut self, on: bool) -> Self {
        self.local_hashing = on;
        self
    }
}

/// Runs blocking PKCS#11 work off the async runtime's worker threads (`spawn_blocking`), or
/// inline when there is no Tokio runtime (a synchronous caller is allowed to block).
pub(crate) async fn run_blocking<T, F>(f: F) -> Result<T, Pkcs11Error>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Pkcs11Error> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle
            .spawn_blocking(f)
            .await
            .map_err(|e| Pkcs11Error::Worker(e.to_string()))?,
        Err(_) => f(),
    }
}
