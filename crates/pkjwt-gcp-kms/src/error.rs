//! [`GcpKmsError`]: every way the Cloud KMS backend fails, each naming the operation, the
//! resource, and what to do; and the translation of the API's error bodies
//! (`{"error": {"code": 403, "message": "…", "status": "PERMISSION_DENIED"}}`) into it.

use std::fmt;

use pkjwt_core::Algorithm;

/// The Cloud KMS (or credentials) call a failure happened in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// `cryptoKeyVersions.getPublicKey`, once when a signer is opened.
    GetPublicKey,
    /// `cryptoKeyVersions.asymmetricSign`, once per signature.
    AsymmetricSign,
    /// `cryptoKeys.create` (key generation).
    CreateCryptoKey,
    /// `cryptoKeyVersions.get` (key generation waits for the new version).
    GetCryptoKeyVersion,
    /// `cryptoKeyVersions.destroy` (clean-up of a generated key that cannot be used).
    DestroyCryptoKeyVersion,
}

impl Operation {
    /// The API method's name.
    pub fn name(self) -> &'static str {
        match self {
            Operation::GetPublicKey => "cryptoKeyVersions.getPublicKey",
            Operation::AsymmetricSign => "cryptoKeyVersions.asymmetricSign",
            Operation::CreateCryptoKey => "cryptoKeys.create",
            Operation::GetCryptoKeyVersion => "cryptoKeyVersions.get",
            Operation::DestroyCryptoKeyVersion => "cryptoKeyVersions.destroy",
        }
    }

    /// The IAM permission that allows it.
    pub fn permission(self) -> &'static str {
        match self {
            Operation::GetPublicKey => "cloudkms.cryptoKeyVersions.viewPublicKey",
            Operation::AsymmetricSign => "cloudkms.cryptoKeyVersions.useToSign",
            Operation::CreateCryptoKey => "cloudkms.cryptoKeys.create",
            Operation::GetCryptoKeyVersion => "cloudkms.cryptoKeyVersions.get",
            Operation::DestroyCryptoKeyVersion => "cloudkms.cryptoKeyVersions.destroy",
        }
    }

    /// A predefined role that grants [`permission`](Self::permission).
    pub fn role(self) -> &'static str {
        match self {
            Operation::GetPublicKey => "roles/cloudkms.publicKeyViewer",
            Operation::AsymmetricSign => "roles/cloudkms.signerVerifier",
            Operation::CreateCryptoKey
            | Operation::GetCryptoKeyVersion
            | Operation::DestroyCryptoKeyVersion => "roles/cloudkms.admin",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that can go wrong in the Google Cloud KMS backend.
///
/// Messages name the operation and the resource; none contains a token, a private key or a
/// credentials file's contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcpKmsError {
    /// No credentials could be found or read (Application Default Credentials, an explicit
    /// file, the metadata server), or the token endpoint refused them.
    #[error("Google Cloud credentials ({source_name}): {detail}")]
    Credentials {
        /// Where pkjwt looked (`GOOGLE_APPLICATION_CREDENTIALS=/path`, `the metadata server`, …).
        source_name: String,
        /// What was wrong and what to do.
        detail: String,
    },
    /// The resource does not exist (HTTP 404 `NOT_FOUND`).
    #[error(
        "Cloud KMS {operation} on {resource}: not found (NOT_FOUND at {endpoint}): {message}; \
         check the project, location, key ring, key and version in the key URI"
    )]
    NotFound {
        /// The call.
        operation: Operation,
        /// The resource name.
        resource: String,
        /// The endpoint asked.
        endpoint: String,
        /// The service's message.
        message: String,
    },
    /// The caller lacks the permission (HTTP 403 `PERMISSION_DENIED`).
    #[error(
        "Cloud KMS {operation} on {resource} was denied (PERMISSION_DENIED): the caller needs \
         {} on the key (role {}): {message}",
        operation.permission(),
        operation.role()
    )]
    PermissionDenied {
        /// The call.
        operation: Operation,
        /// The resource name.
        resource: String,
        /// The service's message.
        message: String,
    },
    /// The access token was refused (HTTP 401 `UNAUTHENTICATED`), also after one fresh token.
    #[error(
        "Cloud KMS {operation} on {resource}: the access token was refused (UNAUTHENTICATED): \
         {message}; check the credentials (GOOGLE_APPLICATION_CREDENTIALS, the service account \
         key's validity)"
    )]
    Unauthenticated {
        /// The call.
        operation: Operation,
        /// The resource name.
        resource: String,
        /// The service's message.
        message: String,
    },
    /// The key version is not enabled (HTTP 400 `FAILED_PRECONDITION`: disabled, destroyed,
    /// scheduled for destruction, or still being generated).
    #[error(
        "Cloud KMS {operation} on {resource}: the key version cannot be used \
         (FAILED_PRECONDITION): {message}; enable it (gcloud kms keys versions enable) or name \
         an enabled version"
    )]
    VersionNotEnabled {
        /// The call.
        operation: Operation,
        /// The resource name.
        resource: String,
        /// The service's message (it names the state, e.g. `DISABLED`, `DESTROYED`).
        message: String,
    },
    /// The service refused the request as malformed (HTTP 400 `INVALID_ARGUMENT`), for example
    /// a digest whose `digestCrc32c` it computed differently, or a digest of the wrong length
    /// for the key's algorithm.
    #[error("Cloud KMS {operation} on {resource}: invalid argument (INVALID_ARGUMENT): {message}")]
    InvalidArgument {
        /// The call.
        operation: Operation,
        /// The resource name.
        resource: String,
        /// The service's message.
        message: String,
    },
    /// Quota or rate exceeded (HTTP 429 `RESOURCE_EXHAUSTED`) on every attempt.
    #[error(
        "Cloud KMS {operation} on {resource}: throttled (RESOURCE_EXHAUSTED) on all {attempts} \
         attempts: {message}; lower the request rate or raise the Cloud KMS quota \
         (cryptographic requests per minute)"
    )]
    Throttled {
        /// The call.
        operation: Operation,
        /// The resource name.
        resource: String,
        /// Attempts made.
        attempts: u32,
        /// The last message.
        message: String,
    },
    /// The service or the network failed (HTTP 503 `UNAVAILABLE`, 504 `DEADLINE_EXCEEDED`, 500
    /// `INTERNAL`, a refused connection, a timeout) on every attempt.
    #[error(
        "Cloud KMS {operation} on {resource}: unavailable at {endpoint} on all {attempts} \
         attempts: {message}"
    )]
    Unavailable {
        /// The call.
        operation: Operation,
        /// The resource name.
        resource: String,
        /// The endpoint asked.
        endpoint: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        message: String,
    },
    /// The key already exists (HTTP 409 `ALREADY_EXISTS`; key generation).
    #[error(
        "cannot create Cloud KMS key {resource}: it already exists; pkjwt creates new keys only. \
         Name a new key id, or add a version to this key yourself \
         (gcloud kms keys versions create) and name that version in the key URI"
    )]
    AlreadyExists {
        /// The crypto key's name.
        resource: String,
    },
    /// Key generation was asked for a key ring that does not exist.
    #[error(
        "cannot create Cloud KMS key {resource}: its key ring {key_ring} does not exist. Key \
         rings can never be deleted, so pkjwt does not create them: create it first (gcloud kms \
         keyrings create, or infra/terraform/gcp-kms)"
    )]
    KeyRingNotFound {
        /// The crypto key's name.
        resource: String,
        /// The key ring's name.
        key_ring: String,
    },
    /// Any other error status from the service.
    #[error("Cloud KMS {operation} on {resource}: HTTP {http_status} {status}: {message}")]
    Api {
        /// The call.
        operation: Operation,
        /// The resource name.
        resource: String,
        /// The HTTP status code.
        http_status: u16,
        /// The `google.rpc.Code` name (`ABORTED`, …), or `-` when the body had none.
        status: String,
        /// The service's message.
        message: String,
    },
    /// A CRC32C integrity check failed on every attempt: the request or the response was
    /// corrupted in transit.
    #[error(
        "Cloud KMS {operation} on {resource}: integrity check failed on all {attempts} attempts: \
         {detail}"
    )]
    Integrity {
        /// The call.
        operation: Operation,
        /// The resource name.
        resource: String,
        /// Attempts made.
        attempts: u32,
        /// Which check failed.
        detail: String,
    },
    /// The answer does not have the shape the API reference gives it, or names another key.
    /// (`reason` quotes the answer: shown with control characters escaped.)
    #[error("Cloud KMS {operation} on {resource}: unexpected answer: {}", pkjwt_core::escape_controls(.reason))]
    InvalidResponse {
        /// The call.
        operation: Operation,
        /// The resource name.
        resource: String,
        /// What was wrong.
        reason: String,
    },
    /// The key version's algorithm is not a signing algorithm (a decryption or MAC key).
    #[error(
        "Cloud KMS key {resource} cannot sign: its algorithm is {} (an ASYMMETRIC_SIGN key is \
         needed)",
        pkjwt_core::escape_controls(.algorithm)
    )]
    NotSigningKey {
        /// The version's name.
        resource: String,
        /// The API's algorithm name.
        algorithm: String,
    },
    /// The key version's algorithm signs, but has no JWS algorithm pkjwt supports.
    #[error(
        "Cloud KMS key {resource} uses {}, which has no JWS algorithm pkjwt supports \
         (supported: EC_SIGN_P256_SHA256, EC_SIGN_P384_SHA384, EC_SIGN_SECP256K1_SHA256, \
         EC_SIGN_ED25519, RSA_SIGN_PSS_*, RSA_SIGN_PKCS1_*)",
        pkjwt_core::escape_controls(.algorithm)
    )]
    UnsupportedAlgorithm {
        /// The version's name.
        resource: String,
        /// The API's algorithm name.
        algorithm: String,
    },
    /// The caller asked for a JWS algorithm the key version does not produce.
    #[error(
        "Cloud KMS key {resource} is {algorithm}, which signs {supported} only; {requested} was \
         asked for"
    )]
    AlgorithmNotSupported {
        /// The version's name.
        resource: String,
        /// The API's algorithm name.
        algorithm: String,
        /// What was asked for.
        requested: Algorithm,
        /// What the version produces.
        supported: Algorithm,
    },
    /// Key generation was asked for something Cloud KMS cannot create (an algorithm, an RSA
    /// size, a version other than 1); nothing was created.
    #[error("cannot create Cloud KMS key {resource}: {reason}")]
    GenerateOption {
        /// The crypto key's name.
        resource: String,
        /// What was refused and what is possible.
        reason: String,
    },
    /// The new key version did not become `ENABLED` in time, or ended in another state.
    #[error(
        "Cloud KMS key {resource} was created but its version is {state} after {waited_ms} ms \
         (expected ENABLED): {detail}"
    )]
    GenerationNotReady {
        /// The version's name.
        resource: String,
        /// The last state seen.
        state: String,
        /// How long pkjwt waited.
        waited_ms: u128,
        /// What to do.
        detail: String,
    },
    /// A key pkjwt just created cannot be opened; says what became of it.
    #[error("Cloud KMS key {resource} was created but cannot be used ({cleanup})")]
    CreatedKeyNotUsable {
        /// The version's name.
        resource: String,
        /// What pkjwt did with it.
        cleanup: String,
        /// Why it cannot be used.
        #[source]
        cause: Box<GcpKmsError>,
    },
}

impl GcpKmsError {
    /// The [`Operation`] of an error that came from an API call.
    pub fn operation(&self) -> Option<Operation> {
        use GcpKmsError::*;
        match self {
            NotFound { operation, .. }
            | PermissionDenied { operation, .. }
            | Unauthenticated { operation, .. }
            | VersionNotEnabled { operation, .. }
            | InvalidArgument { operation, .. }
            | Throttled { operation, .. }
            | Unavailable { operation, .. }
            | Api { operation, .. }
            | Integrity { operation, .. }
            | InvalidResponse { operation, .. } => Some(*operation),
            _ => None,
        }
    }
}

impl GcpKmsError {
    /// The kind of failure, as [`pkjwt_core::Error::kind`] names it (metrics, retry decisions).
    pub fn kind(&self) -> &'static str {
        use GcpKmsError::*;
        match self {
            Throttled { .. } => "throttled",
            PermissionDenied { .. } => "access_denied",
            NotFound { .. } | KeyRingNotFound { .. } => "not_found",
            VersionNotEnabled { .. } | GenerationNotReady { .. } => "key_unavailable",
            Unavailable { .. } => "unavailable",
            Credentials { .. } | Unauthenticated { .. } => "credentials",
            InvalidResponse { .. } | Integrity { .. } => "invalid_response",
            _ => "other",
        }
    }
}

impl From<GcpKmsError> for pkjwt_core::Error {
    fn from(e: GcpKmsError) -> Self {
        pkjwt_core::Error::backend_kind("Google Cloud KMS", e.kind(), e)
    }
}

/// The parts of a `google.rpc.Status` error body.
#[derive(Debug, Default)]
pub(crate) struct ApiStatus {
    pub status: String,
    pub message: String,
}

/// Reads `{"error": {"code", "message", "status"}}`; a body of another shape is quoted (cut to
/// 200 characters, control characters escaped) so that a proxy's HTML page stays readable.
pub(crate) fn parse_status(body: &[u8]) -> ApiStatus {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    match err {
        Some(e) => ApiStatus {
            status: e
                .get("status")
                .and_then(|s| s.as_str())
                .unwrap_or("-")
                .to_owned(),
            message: pkjwt_core::escape_controls(
                e.get("message").and_then(|s| s.as_str()).unwrap_or(""),
            )
            .into_owned(),
        },
        None => {
            let text = String::from_utf8_lossy(body);
            let cut: String = text.chars().take(200).collect();
            ApiStatus {
                status: "-".into(),
                message: pkjwt_core::escape_controls(&cut).into_owned(),
            }
        }
    }
}
