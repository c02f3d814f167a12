//! RFC 9068 JWT access tokens, validated by a protected API against the authorization server's
//! key set found through discovery: `typ: at+jwt`, `iss` = the issuer exactly, `aud` naming this
//! resource, `exp`/`iat`, the signature, and the scopes a route requires.

use std::fmt;
use std::sync::Arc;

use pkjwt_core::{ALL_ALGORITHMS, Algorithm, Clock, SystemClock};
use serde_json::{Map, Value};

use crate::check::{self, HeaderRules, Mode, Run, TimeRules};
use crate::jwks::{FetchPolicy, JwksError, RemoteJwks, checked_url, fetch_limited, http_client};
use crate::keys::KeySource;
use crate::policy::TYP_ACCESS_TOKEN;
use crate::{PolicyError, Rejection, Report, TypPolicy};

/// What an access token must meet besides issuer and audience.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessTokenPolicy {
    /// Accepted `alg` values. Default: every asymmetric algorithm (RFC 9068 §4 requires RS256
    /// support).
    pub algorithms: Vec<Algorithm>,
    /// The `typ` rule. Default: `at+jwt` required (RFC 9068 §4), which also keeps ID tokens and
    /// client assertions out.
    pub typ: TypPolicy,
    /// Largest `exp − iat`. Default 86,400 s.
    pub max_lifetime_secs: u64,
    /// Tolerance for `iat`/`nbf` in the future. Default 10 s.
    pub max_future_secs: u64,
    /// Seconds an `exp` may lie in the past. Default 5.
    pub expiry_leeway_secs: u64,
    /// Refuse tokens issued longer ago than this. Default none.
    pub max_age_secs: Option<u64>,
    /// Largest token, in bytes. Default 16 KiB.
    pub max_token_bytes: usize,
    /// Scopes every request must carry (routes can require more). Default none.
    pub required_scopes: Vec<String>,
}

impl Default for AccessTokenPolicy {
    fn default() -> Self {
        AccessTokenPolicy {
            algorithms: ALL_ALGORITHMS.to_vec(),
            typ: TypPolicy::Required(TYP_ACCESS_TOKEN.into()),
            max_lifetime_secs: 86_400,
            max_future_secs: 10,
            expiry_leeway_secs: 5,
            max_age_secs: None,
            max_token_bytes: 16 * 1024,
            required_scopes: Vec::new(),
        }
    }
}

/// The claims of a valid access token.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct AccessTokenClaims {
    /// `iss`.
    pub issuer: String,
    /// `sub` (the resource owner, or the client for client credentials).
    pub subject: String,
    /// `client_id`.
    pub client_id: String,
    /// `scope`, split on spaces.
    pub scopes: Vec<String>,
    /// `exp`.
    pub exp: i64,
    /// `jti`.
    pub jti: String,
    /// Every claim.
    pub claims: Map<String, Value>,
}

impl AccessTokenClaims {
    /// True when the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Why discovery failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The metadata could not be fetched.
    #[error("discovery")]
    Fetch(#[from] JwksError),
    /// The metadata's `issuer` is not the configured issuer (FAPI 2.0: exact match).
    #[error("discovery: metadata issuer is {found:?}, configured issuer is {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The metadata's value.
        found: String,
    },
    /// The metadata is not usable.
    #[error("discovery: {0}")]
    Invalid(String),
    /// The validator settings are incoherent.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// Validates access tokens for one resource (audience) of one authorization server.
pub struct AccessTokenValidator {
    issuer: String,
    audience: String,
    policy: AccessTokenPolicy,
    keys: Arc<dyn KeySource>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for AccessTokenValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenValidator")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("policy", &self.policy)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl AccessTokenValidator {
    /// A validator with an explicit key source.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        keys: Arc<dyn KeySource>,
        policy: AccessTokenPolicy,
    ) -> Result<Self, PolicyError> {
        let (issuer, audience) = (issuer.into(), audience.into());
        if issuer.is_empty() || audience.is_empty() {
            return Err(PolicyError("issuer and audience must not be empty".into()));
        }
        if policy.algorithms.is_empty() {
            return Err(PolicyError("the algorithm allow-list is empty".into()));
        }
        if !(10..=60).contains(&policy.max_future_secs) {
            return Err(PolicyError(format!(
                "max_future_secs is {}; it must lie in 10..=60",
                policy.max_future_secs
            )));
        }
        Ok(AccessTokenValidator {
            issuer,
            audience,
            policy,
            keys,
            clock: Arc::new(SystemClock),
        })
    }

    /// Reads the server's metadata (`/.well-known/openid-configuration`, then RFC 8414
    /// `/.well-known/oauth-authorization-server`), checks that its `issuer` equals `issuer`
    /// exactly, and uses its `jwks_uri` (HTTPS, or loopback http when allowed).
    pub async fn discover(
        issuer: &str,
        audience: &str,
        policy: AccessTokenPolicy,
        fetch: FetchPolicy,
    ) -> Result<Self, DiscoveryError> {
        let base = checked_url(issuer, &fetch)?;
        let client = http_client(&fetch)?;
        let trimmed = issuer.trim_end_matches('/');
        let openid = format!("{trimmed}/.well-known/openid-configuration");
        let path = base.path().trim_end_matches('/');
        let mut oauth = base.clone();
        oauth.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
        let mut last = None;
        let mut body = None;
        for url in [openid.as_str(), oauth.as_str()] {
            let u = checked_url(url, &fetch)?;
            match fetch_limited(&client, &u, &fetch).await {
                Ok(f) => {
                    body = Some((f.body, url.to_string()));
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some((body, from)) = body else {
            return Err(DiscoveryError::Fetch(last.unwrap_or(JwksError::Invalid {
                source_desc: issuer.into(),
                reason: "no metadata".into(),
            })));
        };
        let meta = pkjwt_core::jwk::parse_json_no_duplicates(&body)
            .map_err(|e| DiscoveryError::Invalid(format!("{from}: {e}")))?;
        let found = meta
            .get("issuer")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if found != issuer {
            return Err(DiscoveryError::IssuerMismatch {
                expected: issuer.into(),
                found: found.into(),
            });
        }
        let jwks_uri = meta
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| DiscoveryError::Invalid(format!("{from} has no jwks_uri")))?;
        let keys = RemoteJwks::new(jwks_uri, fetch)?;
        Ok(AccessTokenValidator::new(
            issuer,
            audience,
            Arc::new(keys),
            policy,
        )?)
    }

    /// Uses `clock` as the time source (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Validates `token` with the policy's required scopes.
    pub async fn validate(&self, token: &str) -> Result<AccessTokenClaims, Rejection> {
        self.validate_with_scopes(token, &[]).await
    }

    /// Validates `token`, also requiring every scope in `scopes`.
    pub async fn validate_with_scopes(
        &self,
        token: &str,
        scopes: &[&str],
    ) -> Result<AccessTokenClaims, Rejection> {
        let mut run = Run::new(Mode::Verify);
        match self.run(&mut run, token, scopes).await {
            Ok(Some(c)) => Ok(c),
            _ => Err(run.first_rejection()),
        }
    }

    /// Every check on `token`, for debugging.
    pub async fn explain(&self, token: &str, scopes: &[&str]) -> Report {
        let mut run = Run::new(Mode::Explain);
        let _ = self.run(&mut run, token, scopes).await;
        check::into_report(run)
    }

    async fn run(
        &self,
        run: &mut Run,
        token: &str,
        scopes: &[&str],
    ) -> Result<Option<AccessTokenClaims>, check::Stop> {
        let p = &self.policy;
        let Some(jws) = check::parse(run, token, p.max_token_bytes) else {
            return Err(check::Stop);
        };
        let rules = HeaderRules {
            algorithms: &p.algorithms,
            typ: &p.typ,
            understood_crit: &[],
            require_kid: false,
        };
        let (alg, kid) = check::check_header(run, &jws.header, &rules)?;
        match self.keys.key_set(kid.as_deref()).await {
            Ok(set) => check::check_signature(run, &jws, alg, kid.as_deref(), &set)?,
            Err(r) => run.fail("keys", r)?,
        }
        let c = &jws.claims;
        let iss = check::string_claim(run, c, "iss")?;
        if let Some(iss) = iss {
            if iss == self.issuer {
                run.pass("iss", format!("{iss:?}"));
            } else {
                run.fail(
                    "iss",
                    Rejection::IssuerMismatch {
                        found: iss.into(),
                        expected: self.issuer.clone(),
                    },
                )?;
            }
        }
        check::check_audience(run, c, &[self.audience.as_str()], true)?;
        let exp = check::check_times(
            run,
            c,
            &TimeRules {
                now: self.clock.now(),
                max_lifetime: p.max_lifetime_secs,
                max_future: p.max_future_secs,
                leeway: p.expiry_leeway_secs,
                require_iat: true,
                max_age: p.max_age_secs,
            },
        )?;
        let sub = check::string_claim(run, c, "sub")?;
        if let Some(s) = sub {
            run.pass("sub", format!("{s:?}"));
        }
        let client_id = check::string_claim(run, c, "client_id")?;
        if let Some(s) = client_id {
            run.pass("client_id", format!("{s:?}"));
        }
        let jti = check::check_jti(run, c, 256)?;
        if let Some(j) = jti {
            run.pass("jti", format!("{j:?}"));
        }
        let granted: Vec<String> = match c.get("scope") {
            None => Vec::new(),
            Some(Value::String(s)) => s
                .split(' ')
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect(),
            Some(v) => {
                run.fail(
                    "scope",
                    Rejection::ClaimType {
                        claim: "scope",
                        expected: "a space-separated string",
                        found: check::json_type(v),
                    },
                )?;
                Vec::new()
            }
        };
        let required: Vec<&str> = p
            .required_scopes
            .iter()
            .map(String::as_str)
            .chain(scopes.iter().copied())
            .collect();
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|r| !granted.iter().any(|g| g == r))
            .collect();
        if missing.is_empty() {
            run.pass(
                "scope",
                format!("{:?} covers {:?}", granted.join(" "), required.join(" ")),
            );
        } else {
            run.fail(
                "scope",
                Rejection::InsufficientScope {
                    granted: granted.join(" "),
                    required: required.join(" "),
                },
            )?;
        }
        match (iss, exp, sub, client_id, jti, run.failed()) {
            (Some(iss), Some(exp), Some(sub), Some(cid), Some(jti), false) => {
                Ok(Some(AccessTokenClaims {
                    issuer: iss.into(),
                    subject: sub.into(),
                    client_id: cid.into(),
                    scopes: granted,
                    exp,
                    jti: jti.into(),
                    claims: c.clone(),
                }))
            }
            _ => Ok(None),
        }
    }
}
