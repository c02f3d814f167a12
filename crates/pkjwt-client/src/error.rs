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
        write!(f, "HTTP {}: {}", self.status, self.error)?;
        if let Some(d) = &self.error_description {
            write!(f, " ({d})")?;
        }
        if let Some(u) = &self.error_uri {
            write!(f, " see {u}")?;
        }
        if self.error == "invalid_client" {
            f.write_str(
                "; the server refused the client assertion: check that its JWKS has this key's kid \
                 (and has fetched it: servers cache jwks_uri), the aud (issuer or token endpoint, \
                 see --profile), the algorithm registered for the client, and the clock",
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
    /// The client assertion could not be made.
    #[error("client assertion: {0}")]
    Assertion(#[from] pkjwt_core::Error),
    /// The token endpoint answered with an RFC 6749 §5.2 error.
    #[error("token request refused: {0}")]
    OAuth(OAuthError),
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
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// Requests sent.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<ClientError>,
    },
}

impl ClientError {
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
            ClientError::InvalidResponse { status, .. } => Some(*status),
            ClientError::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }
}
