//! The token client's error type. Every variant names what was wrong and what was expected;
//! none carries an access token, an assertion or a key.

use std::fmt;
use std::time::Duration;

/// An RFC 6749 §5.2 error response from the token endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OAuthError {
    /// HTTP status of the response.
    pub status: u16,
    /// `error` (for example `invalid_client`).
    pub error: String,
    /// `error_description`, when sent.
    pub error_description: Option<String>,
    /// `error_uri`, when sent.
    pub error_uri: Option<String>,
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // error, error_description and error_uri are the server's text: escaped, so a
        // description cannot forge a line on the terminal or in a log (issue 12, item 6).
        f.write_str(&self.brief())?;
        if self.error == "invalid_client" {
            f.write_str(
                "; the server refused the client assertion: check that its JWKS has this key's kid \
                 (and has fetched it: servers cache jwks_uri), the aud (issuer or token endpoint, \
                 as the profile's audience says), the algorithm registered for the client, and the \
                 clock",
            )?;
        }
        Ok(())
    }
}

/// Why the token client failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Settings that cannot work (unknown profile, algorithm the profile forbids, bad URL…).
    #[error("configuration: {0}")]
    Config(String),
    /// No metadata could be read from either discovery location.
    #[error("discovery failed for issuer {issuer}: {reason}")]
    Discovery {
        /// The configured issuer.
        issuer: String,
        /// What each location answered.
        reason: String,
    },
    /// The metadata's `issuer` differs from the configured one (FAPI 2.0: exact match).
    #[error(
        "metadata at {url} names issuer {found:?}, but the configured issuer is {expected:?} (they must match exactly)"
    )]
    IssuerMismatch {
        /// Where the metadata came from.
        url: String,
        /// The configured issuer.
        expected: String,
        /// The metadata's value.
        found: String,
    },
    /// The server does not support what this client needs.
    #[error("the authorization server does not support {what}; it supports: {supported}")]
    Unsupported {
        /// What is missing (for example "private_key_jwt").
        what: String,
        /// What the metadata lists instead.
        supported: String,
    },
    /// The client assertion could not be made (the core error is the source).
    #[error("client assertion")]
    Assertion(#[from] pkjwt_core::Error),
    /// The profile sends a certificate thumbprint in the assertion header and the
    /// [`ClientConfig`](crate::ClientConfig) has none.
    #[error("profile {profile} sends the {what}; set ClientConfig::{field}")]
    ThumbprintRequired {
        /// The profile's name.
        profile: String,
        /// The header member, described.
        what: &'static str,
        /// The `ClientConfig` field to set (`x5t_s256` or `x5t`).
        field: &'static str,
    },
    /// The token endpoint answered with an RFC 6749 §5.2 error.
    #[error("token request refused: {0}")]
    OAuth(OAuthError),
    /// The registration endpoint (RFC 7591 §3.2.2) or the client configuration endpoint
    /// (RFC 7592) refused the request.
    #[error("registration request to {url} refused: {}{}", error.brief(), registration_hint(error))]
    Registration {
        /// The endpoint.
        url: String,
        /// The error response.
        error: OAuthError,
    },
    /// A software statement or signed registration request could not be signed (the signer's
    /// error is the source).
    #[error("signing the {what}")]
    Sign {
        /// What was being signed.
        what: &'static str,
        /// The signer's error.
        source: pkjwt_core::Error,
    },
    /// A key whose algorithm the registration's `token_endpoint_auth_signing_alg` does not
    /// accept: the server would refuse the assertions it signs. Nothing was sent.
    #[error(
        "{key} is for {key_alg}, but the client registers token_endpoint_auth_signing_alg \
         {registered}: the server would refuse its assertions"
    )]
    KeyAlgorithm {
        /// The key (`key KID`, or `the new key`).
        key: String,
        /// The key's algorithm (`no algorithm` when its JWK names none).
        key_alg: String,
        /// The registered algorithm.
        registered: pkjwt_core::Algorithm,
    },
    /// The request did not complete (connection refused, reset, DNS…).
    #[error("cannot reach {url}: {reason}")]
    Network {
        /// The URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// No complete answer within the time limit.
    #[error("no answer from {url} within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// The server answered, but not with something usable.
    #[error("unusable response from {url} (HTTP {status}): {reason}")]
    InvalidResponse {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What was wrong and what was expected.
        reason: String,
    },
    /// Retries ran out; the last failure is the source.
    #[error("gave up after {attempts} attempts")]
    RetriesExhausted {
        /// Requests sent.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<ClientError>,
    },
}

impl OAuthError {
    /// `HTTP status: error (description) see uri`, without the token-endpoint hints.
    pub fn brief(&self) -> String {
        use pkjwt_core::escape_controls as esc;
        let mut s = format!("HTTP {}: {}", self.status, esc(&self.error));
        if let Some(d) = &self.error_description {
            s.push_str(&format!(" ({})", esc(d)));
        }
        if let Some(u) = &self.error_uri {
            s.push_str(&format!(" see {}", esc(u)));
        }
        s
    }
}

/// What a registration error usually means, per RFC 7591 §3.2.2 and RFC 7592 §2.
fn registration_hint(e: &OAuthError) -> &'static str {
    match e.error.as_str() {
        "invalid_token" if e.status == 401 => {
            "; the server wants a valid bearer token: an initial access token for registration \
             (RegisterOptions::initial_access_token), or the registration access token of the \
             saved registration for read/update/delete (a deleted client's token no longer works)"
        }
        "invalid_client_metadata" => {
            "; a metadata value was refused (see the description; expected private_key_jwt with \
             an algorithm the server lists, and jwks or jwks_uri)"
        }
        "invalid_software_statement" => {
            "; the software statement was refused (expired, signed by a key the server does not \
             trust, or with claims it rejects)"
        }
        "unapproved_software_statement" => {
            "; the server does not approve this software statement for registration"
        }
        "invalid_redirect_uri" => "; a redirect URI was refused",
        _ => "",
    }
}

impl ClientError {
    /// A short, stable name of the failure's kind for metrics labels: `network`, `timeout`,
    /// `oauth_<error>` for the RFC 6749 codes (`oauth_other` for any other code),
    /// `invalid_response`, `assertion`, `discovery`, `config`, `other`. Retries exhausted
    /// report the last failure's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Network { .. } => "network",
            ClientError::Timeout { .. } => "timeout",
            ClientError::OAuth(e) => match e.error.as_str() {
                "invalid_client" => "oauth_invalid_client",
                "invalid_grant" => "oauth_invalid_grant",
                "invalid_scope" => "oauth_invalid_scope",
                "invalid_request" => "oauth_invalid_request",
                "unauthorized_client" => "oauth_unauthorized_client",
                "unsupported_grant_type" => "oauth_unsupported_grant_type",
                "invalid_target" => "oauth_invalid_target",
                "temporarily_unavailable" => "oauth_temporarily_unavailable",
                "server_error" => "oauth_server_error",
                _ => "oauth_other",
            },
            ClientError::InvalidResponse { .. } => "invalid_response",
            ClientError::Assertion(_) | ClientError::Sign { .. } => "assertion",
            ClientError::Discovery { .. } | ClientError::IssuerMismatch { .. } => "discovery",
            ClientError::Config(_)
            | ClientError::Unsupported { .. }
            | ClientError::ThumbprintRequired { .. }
            | ClientError::KeyAlgorithm { .. } => "config",
            ClientError::RetriesExhausted { last, .. } => last.kind(),
            ClientError::Registration { .. } => "other",
        }
    }

    /// The RFC 6749 error, when the server sent one (also behind [`ClientError::RetriesExhausted`]).
    pub fn oauth(&self) -> Option<&OAuthError> {
        match self {
            ClientError::OAuth(e) => Some(e),
            ClientError::RetriesExhausted { last, .. } => last.oauth(),
            _ => None,
        }
    }

    /// The HTTP status behind this error, if a response arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::OAuth(e) => Some(e.status),
            ClientError::Registration { error, .. } => Some(error.status),
            ClientError::InvalidResponse { status, .. } => Some(*status),
            ClientError::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ClientError, OAuthError};

    /// The hints name API fields, not CLI flags (the CLI adds those; issue 13, item 2).
    #[test]
    fn hints_name_no_cli_flag() {
        let oauth = |status: u16, error: &str| OAuthError {
            status,
            error: error.into(),
            error_description: None,
            error_uri: None,
        };
        let cases = [
            (
                ClientError::OAuth(oauth(401, "invalid_client")).to_string(),
                "the profile's audience",
            ),
            (
                ClientError::Registration {
                    url: "https://as/reg".into(),
                    error: oauth(401, "invalid_token"),
                }
                .to_string(),
                "RegisterOptions::initial_access_token",
            ),
        ];
        for (shown, field) in cases {
            assert!(!shown.contains("--"), "names a CLI flag: {shown}");
            assert!(shown.contains(field), "{shown} (wanted {field:?})");
        }
    }

    #[test]
    fn server_text_cannot_forge_lines() {
        let e = OAuthError {
            status: 400,
            error: "invalid_request\u{1b}[2K".into(),
            error_description: Some("bad\r\npkjwt: token issued\u{1b}[32m".into()),
            error_uri: Some("https://as.example/\u{7}".into()),
        };
        for shown in [e.to_string(), e.brief()] {
            assert!(!shown.chars().any(char::is_control), "{shown:?}");
            assert!(
                shown.contains("bad\\u{d}\\u{a}pkjwt: token issued"),
                "{shown}"
            );
        }
    }
}
