//! [`AwsKmsError`] and the translation of SDK errors into it.
//!
//! Every variant says what failed, on which key, and what to do; every error that came from a
//! KMS response carries the AWS request id (the `x-amzn-RequestId` header), which is what
//! CloudTrail and AWS support need to find the call.

use std::fmt;

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::RequestId;
use pkjwt_core::Algorithm;

/// The KMS API operation a failure happened in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// `GetPublicKey`, called once when a signer is opened.
    GetPublicKey,
    /// `Sign`, once per signature.
    Sign,
    /// `DescribeKey` (key generation checks the alias first).
    DescribeKey,
    /// `CreateKey` (key generation).
    CreateKey,
    /// `CreateAlias` (key generation).
    CreateAlias,
    /// `UpdateAlias` (rotation: the alias swap).
    UpdateAlias,
}

impl Operation {
    /// The API name, as in CloudTrail.
    pub fn name(self) -> &'static str {
        match self {
            Operation::GetPublicKey => "GetPublicKey",
            Operation::Sign => "Sign",
            Operation::DescribeKey => "DescribeKey",
            Operation::CreateKey => "CreateKey",
            Operation::CreateAlias => "CreateAlias",
            Operation::UpdateAlias => "UpdateAlias",
        }
    }

    /// The IAM action that allows it.
    pub fn permission(self) -> &'static str {
        match self {
            Operation::GetPublicKey => "kms:GetPublicKey",
            Operation::Sign => "kms:Sign",
            Operation::DescribeKey => "kms:DescribeKey",
            Operation::CreateKey => "kms:CreateKey",
            Operation::CreateAlias => "kms:CreateAlias",
            Operation::UpdateAlias => "kms:UpdateAlias",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Formats ` (AWS request id: …)` when there is one.
struct Rid<'a>(&'a Option<String>);

impl fmt::Display for Rid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " (AWS request id {id})"),
            None => Ok(()),
        }
    }
}

fn rid(id: &Option<String>) -> Rid<'_> {
    Rid(id)
}

/// Everything that can go wrong in the AWS KMS backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AwsKmsError {
    /// No region in the URI, the ARN, the environment or the profile.
    #[error(
        "no AWS region for KMS key {key}: add region= to the key URI \
         (awskms:key-id={key};region=eu-west-1), use a key ARN, or set AWS_REGION or a profile region"
    )]
    NoRegion {
        /// The key as given.
        key: String,
    },
    /// A key-generation option ([`pkjwt_core::GenerateOptions`]) that the algorithm or KMS
    /// cannot honour; nothing was created.
    #[error("cannot create KMS key {key}")]
    GenerateOption {
        /// The key as given.
        key: String,
        /// The option refused, and why.
        #[source]
        source: pkjwt_core::Error,
    },
    /// The next key of a rotation names an alias that points at a key other than the one that
    /// signs now; nothing was created.
    #[error(
        "{alias} points to KMS key {target}, not to the key that signs now ({signing}); refusing \
         to take the alias over. Name the new key with a new alias, or move the alias yourself"
    )]
    AliasTakeover {
        /// The alias the new key's URI names.
        alias: String,
        /// The key ARN the alias points to.
        target: String,
        /// The URI of the key that signs now (printable form, no PIN).
        signing: String,
    },
    /// Key generation needs an alias to name the new key.
    #[error(
        "cannot create KMS key {key}: KMS assigns key ids itself, so keygen needs key-id=alias/NAME \
         (for example awskms:key-id=alias/payments-client;region=eu-west-1)"
    )]
    KeygenNeedsAlias {
        /// The key as given.
        key: String,
    },
    /// An alias operation was given something that is not a customer alias name.
    #[error(
        "{name} is not an alias that can be moved: expected alias/NAME (AWS managed aliases, \
         alias/aws/…, belong to AWS)"
    )]
    NotAnAlias {
        /// The name as given.
        name: String,
    },
    /// Key generation would take over an alias that already names a key.
    #[error(
        "alias {alias} already points to KMS key {target}; pick a new alias, or rotate by creating \
         a new key under a new alias and then moving the old alias (aws kms update-alias)"
    )]
    AliasExists {
        /// The alias.
        alias: String,
        /// The key it names.
        target: String,
    },
    /// Key generation created the key but not its alias. The message shows the cause (it sits
    /// before the cleanup note), so the cause is not also a `source()`.
    #[error("created KMS key {key} but not its alias {alias}: {cause}; {cleanup}")]
    AliasNotCreated {
        /// The alias asked for.
        alias: String,
        /// The key that was created.
        key: String,
        /// Why CreateAlias failed.
        cause: Box<AwsKmsError>,
        /// What happened to the new key.
        cleanup: String,
    },
    /// A key was created but could not be opened (its public key read back). The message shows
    /// the cause, which is therefore not also a `source()`.
    #[error("created KMS key {key} but could not open it: {cause}; {cleanup}")]
    CreatedKeyNotUsable {
        /// The key that was created.
        key: String,
        /// Why opening it failed.
        cause: Box<AwsKmsError>,
        /// What happened to the new key.
        cleanup: String,
    },
    /// The caller's IAM identity is not allowed to call the operation on the key.
    #[error(
        "access denied: {operation} on KMS key {key} needs the IAM permission {permission} \
         (grant it in the key policy or an IAM policy of the caller; pkjwt needs kms:GetPublicKey \
         and kms:Sign): {message}{}",
        rid(.request_id)
    )]
    AccessDenied {
        /// The operation refused.
        operation: Operation,
        /// The missing IAM action.
        permission: &'static str,
        /// The key.
        key: String,
        /// AWS's message (names the principal).
        message: String,
        /// AWS request id.
        request_id: Option<String>,
    },
    /// No such key or alias in this account and region.
    #[error(
        "KMS key {key} not found in {region_hint}: check the key id or alias, the region and the \
         account of the credentials ({message}){}",
        rid(.request_id)
    )]
    NotFound {
        /// The key as given.
        key: String,
        /// Where it was looked up.
        region_hint: String,
        /// AWS's message.
        message: String,
        /// AWS request id.
        request_id: Option<String>,
    },
    /// The key is disabled.
    #[error(
        "KMS key {key} is disabled: enable it (aws kms enable-key) or point the URI at another key{}",
        rid(.request_id)
    )]
    Disabled {
        /// The key.
        key: String,
        /// AWS request id.
        request_id: Option<String>,
    },
    /// The key is in a state that forbids signing, typically pending deletion.
    #[error(
        "KMS key {key} cannot be used in its current state: {message}; a key pending deletion \
         can be recovered with aws kms cancel-key-deletion (then enable-key){}",
        rid(.request_id)
    )]
    InvalidState {
        /// The key.
        key: String,
        /// AWS's message (for example "… is pending deletion.").
        message: String,
        /// AWS request id.
        request_id: Option<String>,
    },
    /// KMS refused the key for the operation (`InvalidKeyUsageException`): not a signing key,
    /// or an algorithm the key does not support.
    #[error(
        "KMS refused key {key} for {operation} (InvalidKeyUsageException): {message}; pkjwt needs an \
         asymmetric key with KeyUsage SIGN_VERIFY{}",
        rid(.request_id)
    )]
    InvalidKeyUsage {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// AWS's message.
        message: String,
        /// AWS request id.
        request_id: Option<String>,
    },
    /// The key is not an asymmetric signing key (symmetric, HMAC, or ENCRYPT_DECRYPT usage).
    #[error(
        "KMS key {key} is not an asymmetric signing key ({detail}); create one with KeyUsage \
         SIGN_VERIFY and a key spec such as ECC_NIST_P256{}",
        rid(.request_id)
    )]
    NotSigningKey {
        /// The key.
        key: String,
        /// What KMS said about it.
        detail: String,
        /// AWS request id.
        request_id: Option<String>,
    },
    /// A key spec pkjwt cannot sign JWS with (SM2, ML-DSA, …).
    #[error(
        "KMS key {key} has key spec {key_spec}, which has no JWS algorithm; supported: ECC_NIST_P256, \
         ECC_NIST_P384, ECC_NIST_P521, ECC_SECG_P256K1, RSA_2048, RSA_3072, RSA_4096, ECC_NIST_EDWARDS25519"
    )]
    UnsupportedKeySpec {
        /// The key.
        key: String,
        /// The key spec.
        key_spec: String,
    },
    /// The requested algorithm is not one this key can produce.
    #[error(
        "algorithm {requested} cannot be used with KMS key {key} (key spec {key_spec}); this key can \
         sign with {supported}"
    )]
    AlgorithmNotSupported {
        /// The key.
        key: String,
        /// The key spec.
        key_spec: String,
        /// What was asked for.
        requested: Algorithm,
        /// What the key can do, comma separated.
        supported: String,
    },
    /// The key's custom key store (CloudHSM / external) is unavailable.
    #[error(
        "KMS key {key} is unavailable (KeyUnavailableException): {message}; if it lives in a custom \
         key store, check that the store is connected{}",
        rid(.request_id)
    )]
    KeyUnavailable {
        /// The key.
        key: String,
        /// AWS's message.
        message: String,
        /// AWS request id.
        request_id: Option<String>,
    },
    /// KMS kept throttling after every allowed attempt.
    #[error(
        "KMS throttled {operation} on key {key} ({code}: {message}) and retrying (up to {attempts} \
         attempts) did not get through; lower the request rate, raise max_attempts, or ask AWS \
         for a higher KMS request quota{}",
        rid(.request_id)
    )]
    Throttled {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// The error code (`ThrottlingException`, …).
        code: String,
        /// AWS's message.
        message: String,
        /// Maximum attempts configured (the SDK's retry quota can stop retrying earlier).
        attempts: u32,
        /// AWS request id of the last attempt.
        request_id: Option<String>,
    },
    /// KMS kept failing on its side (5xx, `KMSInternalException`, `DependencyTimeoutException`).
    #[error(
        "KMS failed {operation} on key {key} with HTTP {status} {code}: {message} (after up to \
         {attempts} attempts); this is on the AWS side, retry later{}",
        rid(.request_id)
    )]
    ServiceUnavailable {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// HTTP status.
        status: u16,
        /// Error code.
        code: String,
        /// AWS's message.
        message: String,
        /// Maximum attempts configured.
        attempts: u32,
        /// AWS request id.
        request_id: Option<String>,
    },
    /// The credentials were refused (unknown access key, bad signature, expired session).
    #[error(
        "AWS rejected the credentials for {operation} on KMS key {key} ({code}: {message}); check \
         AWS_PROFILE / AWS_ACCESS_KEY_ID, refresh an expired SSO or STS session, and check the clock{}",
        rid(.request_id)
    )]
    Credentials {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// Error code.
        code: String,
        /// AWS's message.
        message: String,
        /// AWS request id.
        request_id: Option<String>,
    },
    /// Any other error answered by KMS.
    #[error("KMS refused {operation} on key {key}: {code}: {message}{}", rid(.request_id))]
    Service {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// Error code.
        code: String,
        /// AWS's message.
        message: String,
        /// AWS request id.
        request_id: Option<String>,
    },
    /// A timeout: connecting, one attempt, or the whole operation.
    #[error(
        "KMS {operation} on key {key} timed out ({what}) talking to {endpoint}; raise the timeout in \
         AwsKmsOptions or check the network path to KMS: {detail}"
    )]
    Timeout {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// Which timeout fired.
        what: &'static str,
        /// The endpoint.
        endpoint: String,
        /// The SDK's description.
        detail: String,
    },
    /// No credentials anywhere in the chain (or none in the given `SdkConfig`).
    #[error(
        "no AWS credentials for {operation} on KMS key {key}: run with an IAM role (EC2 instance \
         profile, ECS task role, EKS IRSA / Pod Identity), or set AWS_PROFILE (aws sso login) or \
         AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY: {detail}"
    )]
    NoCredentials {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// The SDK's description.
        detail: String,
    },
    /// The request could not be sent (connection refused, DNS, TLS, …).
    #[error(
        "cannot reach KMS for {operation} on key {key} at {endpoint}: {detail}; check the endpoint \
         URL and the network path (VPC endpoint, proxy, DNS, TLS)"
    )]
    Unreachable {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// The endpoint.
        endpoint: String,
        /// The SDK's description.
        detail: String,
    },
    /// A KMS answer that does not make sense (missing field, unparsable public key, …).
    #[error("unexpected KMS {operation} response for key {key}: {reason}{}", rid(.request_id))]
    InvalidResponse {
        /// The operation.
        operation: Operation,
        /// The key.
        key: String,
        /// What was wrong.
        reason: String,
        /// AWS request id.
        request_id: Option<String>,
    },
    /// Ed25519 signs the message itself and KMS takes 1 to 4096 bytes.
    #[error(
        "message of {len} bytes cannot be signed with EdDSA by KMS key {key}: KMS signs 1 to 4096 \
         bytes with ED25519_SHA_512"
    )]
    MessageLength {
        /// The key.
        key: String,
        /// The message length.
        len: usize,
    },
}

impl AwsKmsError {
    /// The AWS request id, when the error came from a KMS response.
    pub fn request_id(&self) -> Option<&str> {
        use AwsKmsError::*;
        match self {
            AccessDenied { request_id, .. }
            | NotFound { request_id, .. }
            | Disabled { request_id, .. }
            | InvalidState { request_id, .. }
            | InvalidKeyUsage { request_id, .. }
            | NotSigningKey { request_id, .. }
            | KeyUnavailable { request_id, .. }
            | Throttled { request_id, .. }
            | ServiceUnavailable { request_id, .. }
            | Credentials { request_id, .. }
            | Service { request_id, .. }
            | InvalidResponse { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }
}

impl From<AwsKmsError> for pkjwt_core::Error {
    fn from(e: AwsKmsError) -> Self {
        use AwsKmsError::*;
        let kind = match &e {
            Throttled { .. } => "throttled",
            AccessDenied { .. } => "access_denied",
            NotFound { .. } => "not_found",
            Disabled { .. } | InvalidState { .. } | KeyUnavailable { .. } => "key_unavailable",
            ServiceUnavailable { .. } | Timeout { .. } | Unreachable { .. } => "unavailable",
            Credentials { .. } | NoCredentials { .. } => "credentials",
            InvalidResponse { .. } => "invalid_response",
            _ => "other",
        };
        pkjwt_core::Error::backend_kind("AWS KMS", kind, e)
    }
}

/// Where a call went, for messages.
pub(crate) struct CallContext<'a> {
    pub operation: Operation,
    pub key: &'a str,
    pub endpoint: &'a str,
    pub max_attempts: u32,
}

const THROTTLING: [&str; 6] = [
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "LimitExceededException",
];

const BAD_CREDENTIALS: [&str; 6] = [
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "IncompleteSignature",
    "SignatureDoesNotMatch",
];

/// The SDK error and its sources as text, through pkjwt's one chain walker (the SDK's own
/// `DisplayErrorContext` appends a Debug dump that helps nobody reading a CLI message).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    pkjwt_core::ErrorChain(err).to_string()
}

/// True when a dispatch failure is the SDK finding no credentials. The SDK exposes this only as
/// an error text (identity resolution happens inside the orchestrator), so match its wording:
/// "no identity resolver" (no provider configured) and the chain's "failed to load credentials"
/// / "CredentialsNotLoaded".
fn lacks_credentials(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("no identity resolver")
        || d.contains("failed to load credentials")
        || d.contains("credentialsnotloaded")
        || d.contains("credential provider was not enabled")
        || d.contains("no providers in chain provided credentials")
        || d.contains("no credentials")
}

/// Turns an SDK error into a specific [`AwsKmsError`].
pub(crate) fn classify<E>(
    ctx: &CallContext<'_>,
    err: SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
) -> AwsKmsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let request_id = err.request_id().map(str::to_owned);
    let key = ctx.key.to_owned();
    let operation = ctx.operation;
    let detail = || error_chain(&err);
    match &err {
        SdkError::TimeoutError(_) => AwsKmsError::Timeout {
            operation,
            key,
            what: "attempt or operation timeout",
            endpoint: ctx.endpoint.to_owned(),
            detail: detail(),
        },
        SdkError::DispatchFailure(d) if d.is_timeout() => AwsKmsError::Timeout {
            operation,
            key,
            what: "connect or read timeout",
            endpoint: ctx.endpoint.to_owned(),
            detail: detail(),
        },
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_)
            if lacks_credentials(&detail()) =>
        {
            let detail = detail();
            AwsKmsError::NoCredentials {
                operation,
                key,
                // The SDK's text for a config without any provider is a paragraph about
                // Smithy models; say what it means instead.
                detail: if detail.contains("no identity resolver") {
                    "the AWS SDK configuration has no credentials provider".into()
                } else {
                    detail
                },
            }
        }
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => {
            AwsKmsError::Unreachable {
                operation,
                key,
                endpoint: ctx.endpoint.to_owned(),
                detail: detail(),
            }
        }
        SdkError::ResponseError(r) => AwsKmsError::InvalidResponse {
            operation,
            key,
            reason: format!(
                "HTTP {} that is not a KMS answer: {}",
                r.raw().status(),
                detail()
            ),
            request_id,
        },
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let code = err.code().unwrap_or("").to_owned();
            let message = err.message().unwrap_or("").to_owned();
            match code.as_str() {
                "AccessDeniedException" | "AccessDenied" => AwsKmsError::AccessDenied {
                    operation,
                    permission: operation.permission(),
                    key,
                    message,
                    request_id,
                },
                "NotFoundException" => AwsKmsError::NotFound {
                    key,
                    region_hint: ctx.endpoint.to_owned(),
                    message,
                    request_id,
                },
                "DisabledException" => AwsKmsError::Disabled { key, request_id },
                "KMSInvalidStateException" => AwsKmsError::InvalidState {
                    key,
                    message,
                    request_id,
                },
                "InvalidKeyUsageException" => AwsKmsError::InvalidKeyUsage {
                    operation,
                    key,
                    message,
                    request_id,
                },
                "UnsupportedOperationException" if operation == Operation::GetPublicKey => {
                    AwsKmsError::NotSigningKey {
                        key,
                        detail: format!("UnsupportedOperationException: {message}"),
                        request_id,
                    }
                }
                "KeyUnavailableException" => AwsKmsError::KeyUnavailable {
                    key,
                    message,
                    request_id,
                },
                c if THROTTLING.contains(&c) || status == 429 => AwsKmsError::Throttled {
                    operation,
                    key,
                    code,
                    message,
                    attempts: ctx.max_attempts,
                    request_id,
                },
                c if BAD_CREDENTIALS.contains(&c) => AwsKmsError::Credentials {
                    operation,
                    key,
                    code,
                    message,
                    request_id,
                },
                c if status >= 500
                    || c == "KMSInternalException"
                    || c == "DependencyTimeoutException" =>
                {
                    AwsKmsError::ServiceUnavailable {
                        operation,
                        key,
                        status,
                        code,
                        message,
                        attempts: ctx.max_attempts,
                        request_id,
                    }
                }
                _ => AwsKmsError::Service {
                    operation,
                    key,
                    code: if code.is_empty() {
                        format!("HTTP {status}")
                    } else {
                        code
                    },
                    message,
                    request_id,
                },
            }
        }
        _ => AwsKmsError::Unreachable {
            operation,
            key,
            endpoint: ctx.endpoint.to_owned(),
            detail: detail(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_is_printed_when_present() {
        let e = AwsKmsError::Disabled {
            key: "arn:aws:kms:eu-west-1:111122223333:key/k".into(),
            request_id: Some("req-123".into()),
        };
        let s = e.to_string();
        assert!(s.contains("is disabled"), "{s}");
        assert!(s.ends_with("(AWS request id req-123)"), "{s}");
        assert_eq!(e.request_id(), Some("req-123"));
        let e = AwsKmsError::Disabled {
            key: "k".into(),
            request_id: None,
        };
        assert!(!e.to_string().contains("request id"));
    }

    #[test]
    fn permissions_match_operations() {
        assert_eq!(Operation::Sign.permission(), "kms:Sign");
        assert_eq!(Operation::GetPublicKey.permission(), "kms:GetPublicKey");
    }
}
