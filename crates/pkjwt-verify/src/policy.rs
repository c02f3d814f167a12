//! What a verifier accepts: [`VerifyPolicy`] for client assertions and the `typ` rule shared with
//! access-token validation.
//!
//! Defaults follow `standards.md`: every asymmetric algorithm pkjwt knows (MACs and `none` cannot
//! even be expressed), `aud` = the issuer identifier as a single string, a 300-second maximum
//! lifetime, `iat`/`nbf` tolerated 10 s in the future, `jti` mandatory and single-use.

use std::fmt;

use pkjwt_core::{ALL_ALGORITHMS, Algorithm};

/// `typ` registered for client assertions by draft-ietf-oauth-rfc7523bis.
pub const TYP_CLIENT_ASSERTION: &str = "client-authentication+jwt";
/// `typ` of JWT access tokens (RFC 9068 §2.1).
pub const TYP_ACCESS_TOKEN: &str = "at+jwt";

/// How the `typ` header is judged. Values compare case-insensitively and with an optional
/// `application/` prefix, as RFC 7515 §4.1.9 says media types do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TypPolicy {
    /// `typ` must be present and equal to this value.
    Required(String),
    /// `typ` may be absent; when present it must be one of these values. The default for client
    /// assertions accepts `client-authentication+jwt` and the generic `JWT`, so that an access
    /// token (`at+jwt`) or a DPoP proof cannot be replayed as a client assertion.
    Optional(Vec<String>),
    /// `typ` is not looked at.
    Any,
}

impl TypPolicy {
    /// rfc7523bis explicit typing: `typ` must be `client-authentication+jwt`.
    pub fn explicit() -> Self {
        TypPolicy::Required(TYP_CLIENT_ASSERTION.into())
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            TypPolicy::Required(v) => format!("\"{v}\""),
            TypPolicy::Optional(v) => {
                let list = v
                    .iter()
                    .map(|s| format!("\"{s}\""))
                    .collect::<Vec<_>>()
                    .join(" or ");
                format!("{list} or no typ")
            }
            TypPolicy::Any => "anything".into(),
        }
    }
}

impl Default for TypPolicy {
    fn default() -> Self {
        TypPolicy::Optional(vec![TYP_CLIENT_ASSERTION.into(), "JWT".into()])
    }
}

/// Normalises a media type for comparison (RFC 7515 §4.1.9).
pub(crate) fn typ_eq(a: &str, b: &str) -> bool {
    fn strip(s: &str) -> &str {
        // `get` rather than slicing: typ is untrusted and may put a multi-byte character
        // across byte 12.
        match (s.get(..12), s.get(12..)) {
            (Some(p), Some(rest)) if !rest.is_empty() && p.eq_ignore_ascii_case("application/") => {
                rest
            }
            _ => s,
        }
    }
    strip(a).eq_ignore_ascii_case(strip(b))
}

/// A policy setting that makes no sense (returned by [`VerifyPolicy::validate`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid verify policy: {0}")]
pub struct PolicyError(pub String);

/// The rules a client assertion must meet. Build with [`VerifyPolicy::default`] (or
/// [`VerifyPolicy::fapi2`]) and adjust fields; [`crate::AssertionVerifier::new`] validates it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyPolicy {
    /// Algorithms accepted in `alg`. `none` and MACs cannot be listed: [`Algorithm`] has no such
    /// values. Default: all of [`ALL_ALGORITHMS`].
    pub algorithms: Vec<Algorithm>,
    /// The `typ` rule. Default: [`TypPolicy::default`].
    pub typ: TypPolicy,
    /// Audiences accepted besides the verifier's own (the issuer identifier), e.g. the token
    /// endpoint URL for clients built for older servers. Default: none (rfc7523bis: the issuer is
    /// the sole audience, which closes the audience-injection attack, CVE-2025-27370).
    pub additional_audiences: Vec<String>,
    /// Accept `aud` as an array containing an accepted audience. Default: false (FAPI 2.0 and
    /// rfc7523bis want a single string).
    pub allow_audience_array: bool,
    /// Largest accepted `exp − iat` and `exp − now`, in seconds. Default 300.
    pub max_lifetime_secs: u64,
    /// How far in the future `iat` and `nbf` may be, in seconds. FAPI 2.0 requires accepting 10
    /// and rejecting more than 60, so this must lie in 10..=60. Default 10.
    pub max_future_secs: u64,
    /// Seconds an `exp` may lie in the past (clock skew). Default 5. `jti`s are remembered until
    /// `exp` plus this leeway.
    pub expiry_leeway_secs: u64,
    /// Require an `iat` claim. Default false (RFC 7523 makes it optional).
    pub require_iat: bool,
    /// Require a `kid` header. Default false: without one, every key of the client that fits
    /// `alg` is tried.
    pub require_kid: bool,
    /// `crit` extensions this deployment understands. Default none: any `crit` is refused.
    pub understood_crit: Vec<String>,
    /// Largest accepted token, in bytes, checked before parsing. Default 8192.
    pub max_token_bytes: usize,
    /// Longest accepted `jti`, in bytes. Default 256.
    pub max_jti_bytes: usize,
}

impl fmt::Debug for VerifyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyPolicy")
            .field("algorithms", &self.algorithms_text())
            .field("typ", &self.typ)
            .field("additional_audiences", &self.additional_audiences)
            .field("allow_audience_array", &self.allow_audience_array)
            .field("max_lifetime_secs", &self.max_lifetime_secs)
            .field("max_future_secs", &self.max_future_secs)
            .field("expiry_leeway_secs", &self.expiry_leeway_secs)
            .field("require_iat", &self.require_iat)
            .field("require_kid", &self.require_kid)
            .field("understood_crit", &self.understood_crit)
            .field("max_token_bytes", &self.max_token_bytes)
            .field("max_jti_bytes", &self.max_jti_bytes)
            .finish()
    }
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        VerifyPolicy {
            algorithms: ALL_ALGORITHMS.to_vec(),
            typ: TypPolicy::default(),
            additional_audiences: Vec::new(),
            allow_audience_array: false,
            max_lifetime_secs: 300,
            max_future_secs: 10,
            expiry_leeway_secs: 5,
            require_iat: false,
            require_kid: false,
            understood_crit: Vec::new(),
            max_token_bytes: 8192,
            max_jti_bytes: 256,
        }
    }
}

impl VerifyPolicy {
    /// FAPI 2.0 Security Profile: PS256, ES256 and EdDSA only; `iat` required. The `typ` rule
    /// stays the default (absent, `client-authentication+jwt` or `JWT`): FAPI 2.0 does not require
    /// explicit typing; use [`TypPolicy::explicit`] to demand it.
    pub fn fapi2() -> Self {
        VerifyPolicy {
            algorithms: ALL_ALGORITHMS
                .into_iter()
                .filter(|a| a.is_fapi2())
                .collect(),
            require_iat: true,
            ..VerifyPolicy::default()
        }
    }

    /// Checks that the settings are coherent.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.algorithms.is_empty() {
            return Err(PolicyError("the algorithm allow-list is empty".into()));
        }
        if !(10..=60).contains(&self.max_future_secs) {
            return Err(PolicyError(format!(
                "max_future_secs is {}; FAPI 2.0 requires accepting iat/nbf 10 s ahead and rejecting more than 60 s, so it must lie in 10..=60",
                self.max_future_secs
            )));
        }
        if self.max_lifetime_secs == 0 {
            return Err(PolicyError("max_lifetime_secs is 0".into()));
        }
        if self.expiry_leeway_secs > 300 {
            return Err(PolicyError(format!(
                "expiry_leeway_secs is {}; more than 300 s defeats expiry",
                self.expiry_leeway_secs
            )));
        }
        if self.max_token_bytes < 64 {
            return Err(PolicyError(format!(
                "max_token_bytes is {}; no signed token fits",
                self.max_token_bytes
            )));
        }
        if self.max_jti_bytes == 0 {
            return Err(PolicyError("max_jti_bytes is 0".into()));
        }
        if let TypPolicy::Required(v) = &self.typ
            && v.is_empty()
        {
            return Err(PolicyError("required typ is empty".into()));
        }
        if self.understood_crit.iter().any(|c| c == "b64") {
            return Err(PolicyError(
                "understood_crit lists \"b64\", but unencoded payloads (RFC 7797) are not implemented".into(),
            ));
        }
        if self.additional_audiences.iter().any(|a| a.is_empty()) {
            return Err(PolicyError("an additional audience is empty".into()));
        }
        Ok(())
    }

    pub(crate) fn algorithms_text(&self) -> String {
        self.algorithms
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn typ_comparison_follows_rfc7515() {
        assert!(typ_eq("application/at+jwt", "at+JWT"));
        assert!(typ_eq("JWT", "jwt"));
        assert!(!typ_eq("at+jwt", "client-authentication+jwt"));
        assert!(!typ_eq("application/", "x"));
        // Multi-byte characters across the prefix boundary must not panic.
        assert!(!typ_eq("applicatio€n/x", "x"));
        assert!(!typ_eq("€€€€€€€€", "JWT"));
    }

    #[test]
    fn validation_names_the_setting() {
        assert!(VerifyPolicy::default().validate().is_ok());
        let p = VerifyPolicy {
            max_future_secs: 120,
            ..VerifyPolicy::default()
        };
        assert!(
            p.validate()
                .unwrap_err()
                .0
                .contains("max_future_secs is 120")
        );
        let p = VerifyPolicy {
            algorithms: vec![],
            ..VerifyPolicy::default()
        };
        assert!(p.validate().unwrap_err().0.contains("allow-list is empty"));
        assert_eq!(VerifyPolicy::fapi2().algorithms.len(), 3);
        let p = VerifyPolicy {
            understood_crit: vec!["b64".into()],
            ..VerifyPolicy::default()
        };
        assert!(p.validate().unwrap_err().0.contains("RFC 7797"));
    }
}
