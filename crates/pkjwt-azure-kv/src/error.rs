//! [`AzureKvError`]: every way a Key Vault call or key can fail, each naming the operation, the
//! key and — for a refusal — the permission (RBAC role or access-policy permission) it needs.

use std::fmt;
use std::time::Duration;

use pkjwt_core::Algorithm;

/// A Key Vault REST operation, named as in the REST API reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// `GET {vault}/keys/{name}[/{version}]`.
    GetKey,
    /// `POST {vault}/keys/{name}/{version}/sign`.
    Sign,
    /// `POST {vault}/keys/{name}/create`.
    CreateKey,
    /// `GET {vault}/certificates/{name}/{version}`.
    GetCertificate,
}

impl Operation {
    /// What the caller must be granted for this operation: the RBAC role and the access-policy
    /// permission of a vault, or the local RBAC role of a Managed HSM.
    pub fn permission(self, managed_hsm: bool) -> &'static str {
        match (self, managed_hsm) {
            (Operation::GetKey, false) => {
                "keys/get: the RBAC role Key Vault Crypto User, or an access policy with the key permission Get"
            }
            (Operation::Sign, false) => {
                "keys/sign: the RBAC role Key Vault Crypto User, or an access policy with the key permission Sign"
            }
            (Operation::CreateKey, false) => {
                "keys/create: the RBAC role Key Vault Crypto Officer, or an access policy with the key permission Create"
            }
            (Operation::GetCertificate, false) => {
                "certificates/get: the RBAC role Key Vault Certificate User (or Key Vault Reader), or an access policy with the certificate permission Get"
            }
            (Operation::GetKey, true) => {
                "the Managed HSM local RBAC role Managed HSM Crypto User (data action keys/read/action)"
            }
            (Operation::Sign, true) => {
                "the Managed HSM local RBAC role Managed HSM Crypto User (data action keys/sign/action)"
            }
            (Operation::CreateKey, true) => {
                "the Managed HSM local RBAC role Managed HSM Crypto User (data action keys/create)"
            }
            (Operation::GetCertificate, true) => "nothing: a Managed HSM stores no certificates",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::GetKey => "Get Key",
            Operation::Sign => "Sign",
            Operation::CreateKey => "Create Key",
            Operation::GetCertificate => "Get Certificate",
        })
    }
}

/// An Azure Key Vault backend error. `key` is the key identifier (`https://VAULT/keys/NAME[/V]`);
/// `code` and `message` are the service's `error.code` (or `error.innererror.code`) and
/// `error.message`, control characters escaped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AzureKvError {
    /// No credential could be built (a required environment variable or option is missing).
    #[error("Azure Key Vault: no credential for {vault}: {reason}")]
    Credential {
        /// The vault.
        vault: String,
        /// What is missing.
        reason: String,
    },
    /// The credential could not get a Microsoft Entra ID token for the vault.
    #[error(
        "Azure Key Vault {operation} on {key}: could not get a Microsoft Entra ID token for {scope}: {reason}"
    )]
    Token {
        /// The operation that needed the token.
        operation: Operation,
        /// The key.
        key: String,
        /// The token scope (`https://vault.azure.net/.default`, …).
        scope: String,
        /// The credential's error.
        reason: String,
    },
    /// The vault's 401 challenge is missing, malformed, or names a resource that is not the
    /// vault's (a token is never requested for it).
    #[error("Azure Key Vault {operation} on {key}: unusable authentication challenge: {reason}")]
    Challenge {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// The vault refused the token (401 after a fresh token).
    #[error(
        "Azure Key Vault {operation} on {key}: the vault refused the token (401 {code}: {message}); \
         check that the credential's tenant is the vault's tenant"
    )]
    Unauthorized {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// Service error code.
        code: String,
        /// Service message.
        message: String,
    },
    /// 403: the caller lacks the permission the operation needs.
    #[error(
        "Azure Key Vault denied {operation} on {key} (403 {code}: {message}); the caller needs {permission}"
    )]
    Forbidden {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// Service error code (`ForbiddenByRbac`, `ForbiddenByPolicy`, `Forbidden`).
        code: String,
        /// Service message.
        message: String,
        /// The role or permission that grants the operation.
        permission: &'static str,
    },
    /// The key is disabled (its `attributes.enabled` is false, or 403 `KeyDisabled`).
    #[error(
        "Azure Key Vault {operation} on {key}: the key is disabled ({message}); enable it, or point \
         the key URI at an enabled version"
    )]
    KeyDisabled {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// Service message.
        message: String,
    },
    /// The key is outside its `nbf`/`exp` validity (attributes of the key).
    #[error("Azure Key Vault key {key} is not valid now: {detail}")]
    KeyNotValidNow {
        /// The key.
        key: String,
        /// Which bound.
        detail: String,
    },
    /// 404: no such key, version or certificate.
    #[error("Azure Key Vault {operation}: {key} not found (404 {code}: {message})")]
    NotFound {
        /// The operation.
        operation: Operation,
        /// The key (or certificate) identifier.
        key: String,
        /// Service error code (`KeyNotFound`, `CertificateNotFound`).
        code: String,
        /// Service message.
        message: String,
    },
    /// 400: the vault rejected the request (`BadParameter`: e.g. an algorithm the key cannot
    /// sign with).
    #[error("Azure Key Vault {operation} on {key}: request rejected (400 {code}: {message})")]
    BadRequest {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// Service error code.
        code: String,
        /// Service message.
        message: String,
    },
    /// 429 on every attempt, or a `Retry-After` longer than the options allow to wait.
    #[error(
        "Azure Key Vault {operation} on {key}: throttled (429) after {attempts} attempt(s){}",
        retry_after.map(|d| format!("; the vault asks to retry after {} s", d.as_secs())).unwrap_or_default()
    )]
    Throttled {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// Attempts made.
        attempts: u32,
        /// The last `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Another HTTP error status (5xx after the retries, 409, …).
    #[error(
        "Azure Key Vault {operation} on {key}: HTTP {status} {code}: {message} (after {attempts} attempt(s))"
    )]
    Service {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// HTTP status.
        status: u16,
        /// Service error code.
        code: String,
        /// Service message.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The vault could not be reached (connection, TLS, timeout).
    #[error(
        "Azure Key Vault {operation} on {key}: could not reach {vault} after {attempts} attempt(s): {reason}"
    )]
    Transport {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// The vault URL.
        vault: String,
        /// Attempts made.
        attempts: u32,
        /// The HTTP client's error.
        reason: String,
    },
    /// The vault answered something the REST reference does not allow.
    // `reason` quotes the answer: shown with control characters escaped.
    #[error("Azure Key Vault {operation} on {key}: unexpected answer: {}", pkjwt_core::escape_controls(.reason))]
    InvalidResponse {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// The key cannot sign (an `oct` key, or `key_ops` without `sign`).
    #[error("Azure Key Vault key {key} cannot sign: {}", pkjwt_core::escape_controls(.detail))]
    NotSigningKey {
        /// The key.
        key: String,
        /// Why.
        detail: String,
    },
    /// The key cannot produce the requested algorithm.
    #[error(
        "Azure Key Vault key {key} ({key_type}) cannot sign {requested}; it can sign {supported}"
    )]
    AlgorithmNotSupported {
        /// The key.
        key: String,
        /// `kty` and curve or size.
        key_type: String,
        /// The algorithm asked for.
        requested: Algorithm,
        /// What it can sign.
        supported: String,
    },
    /// The certificate of the key's name does not belong to the key.
    #[error(
        "Azure Key Vault key {key}: its certificate {certificate} does not match it: {}",
        pkjwt_core::escape_controls(.reason)
    )]
    CertificateMismatch {
        /// The key.
        key: String,
        /// The certificate identifier.
        certificate: String,
        /// What differs.
        reason: String,
    },
    /// Key creation refused before any request (a version in the URI, an existing key, an
    /// algorithm Key Vault cannot create).
    #[error("cannot create Azure Key Vault key {key}: {reason}")]
    Generate {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A [`pkjwt_core::GenerateOptions`] value this backend cannot honour.
    #[error(transparent)]
    GenerateOption(pkjwt_core::Error),
    /// The HTTPS client could not be built (an unreadable root certificate, …).
    #[error("Azure Key Vault: cannot build the HTTPS client: {0}")]
    Client(String),
}

impl AzureKvError {
    /// The HTTP status of a service error, if the error came from one.
    pub fn status(&self) -> Option<u16> {
        match self {
            AzureKvError::Unauthorized { .. } => Some(401),
            AzureKvError::Forbidden { .. } | AzureKvError::KeyDisabled { .. } => Some(403),
            AzureKvError::NotFound { .. } => Some(404),
            AzureKvError::BadRequest { .. } => Some(400),
            AzureKvError::Throttled { .. } => Some(429),
            AzureKvError::Service { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<AzureKvError> for pkjwt_core::Error {
    fn from(e: AzureKvError) -> Self {
        pkjwt_core::Error::backend("Azure Key Vault", e)
    }
}
