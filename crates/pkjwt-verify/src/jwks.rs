//! Client key sets from a `jwks_uri` ([`RemoteJwks`]) or a file ([`load_jwks`]).
//!
//! The rules (`standards.md`, "Keys and key sets"): HTTPS except for loopback; no redirects;
//! bounded response size and time; `Cache-Control: max-age` honoured between a floor and a
//! ceiling; a token with an unknown `kid` triggers a refetch at most every N seconds (so a
//! rotated-in key is picked up quickly, and garbage kids cannot turn the verifier into a request
//! amplifier); duplicate kids and malformed keys refuse the whole set.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pkjwt_core::{Clock, JwkSet, SystemClock};
use tokio::sync::Mutex;
use url::Url;

use crate::Rejection;
use crate::keys::{KeySet, KeySource};

/// Limits and cache settings for fetching JWKS and discovery documents.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchPolicy {
    /// Shortest time a fetched set is kept, whatever `Cache-Control` says. Default 60 s.
    pub min_cache_secs: u64,
    /// Longest time a fetched set is kept, whatever `Cache-Control` says; also how long a stale
    /// set keeps serving while refetches fail. Default 86,400 s (Keycloak's ceiling).
    pub max_cache_secs: u64,
    /// Cache time when the response has no usable `max-age`. Default 300 s.
    pub default_cache_secs: u64,
    /// Least time between two fetches caused by unknown kids. Default 10 s (as Keycloak).
    pub unknown_kid_refetch_secs: u64,
    /// Largest accepted response body. Default 256 KiB.
    pub max_bytes: usize,
    /// Time limit for one request (connect + headers + body). Default 5 s.
    pub timeout: Duration,
    /// Allow plain `http://` to loopback addresses (tests, sidecars). Default true; any other
    /// `http://` URL is always refused.
    pub allow_loopback_http: bool,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            min_cache_secs: 60,
            max_cache_secs: 86_400,
            default_cache_secs: 300,
            unknown_kid_refetch_secs: 10,
            max_bytes: 256 * 1024,
            timeout: Duration::from_secs(5),
            allow_loopback_http: true,
        }
    }
}

/// Why a key set or discovery document could not be obtained.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The URL cannot be parsed.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// The parser's message.
        reason: String,
    },
    /// Not HTTPS, and not an allowed loopback `http://` URL.
    #[error("refusing {url}: key sets are fetched over https (plain http only to loopback)")]
    InsecureUrl {
        /// The URL.
        url: String,
    },
    /// The request failed (connection, TLS, timeout).
    #[error("fetching {url} failed: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A status other than 200 (redirects are not followed).
    #[error("fetching {url} returned HTTP {status}; expected 200")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body exceeds the size limit.
    #[error("response from {url} exceeds {max} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        max: usize,
    },
    /// The body is not an acceptable JWKS (or discovery document).
    #[error("{source_desc} is not acceptable: {reason}")]
    Invalid {
        /// The URL or file.
        source_desc: String,
        /// What is wrong (duplicate kid, malformed key, …).
        reason: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        reason: String,
    },
}

/// Parses and vets a URL under `policy` (HTTPS, or http to loopback when allowed).
pub(crate) fn checked_url(url: &str, policy: &FetchPolicy) -> Result<Url, JwksError> {
    let parsed = Url::parse(url).map_err(|e| JwksError::InvalidUrl {
        url: url.into(),
        reason: e.to_string(),
    })?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if policy.allow_loopback_http && is_loopback(&parsed) => Ok(parsed),
        _ => Err(JwksError::InsecureUrl { url: url.into() }),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

pub(crate) fn http_client(policy: &FetchPolicy) -> Result<reqwest::Client, JwksError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(policy.timeout)
        .connect_timeout(policy.timeout)
        .https_only(!policy.allow_loopback_http)
        .build()
        .map_err(|e| JwksError::Http {
            url: String::new(),
            reason: format!("cannot build HTTP client: {e}"),
        })
}

/// A fetched body and its cache lifetime in seconds (already clamped).
pub(crate) struct Fetched {
    pub(crate) body: String,
    pub(crate) cache_secs: u64,
}

/// GETs `url` within the size and time limits of `policy`.
pub(crate) async fn fetch_limited(
    client: &reqwest::Client,
    url: &Url,
    policy: &FetchPolicy,
) -> Result<Fetched, JwksError> {
    let u = url.to_string();
    let http = |e: reqwest::Error| JwksError::Http {
        url: u.clone(),
        reason: if e.is_timeout() {
            format!("no complete answer within {:?}", policy.timeout)
        } else {
            error_chain(&e)
        },
    };
    let mut resp = client
        .get(url.clone())
        .header("accept", "application/jwk-set+json, application/json")
        .send()
        .await
        .map_err(http)?;
    if resp.status().as_u16() != 200 {
        return Err(JwksError::Status {
            url: u,
            status: resp.status().as_u16(),
        });
    }
    let too_large = || JwksError::TooLarge {
        url: u.clone(),
        max: policy.max_bytes,
    };
    if resp
        .content_length()
        .is_some_and(|n| n > policy.max_bytes as u64)
    {
        return Err(too_large());
    }
    let cache_secs = resp
        .headers()
        .get_all("cache-control")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .fold(None, |acc, v| acc.or(parse_max_age(v)))
        .unwrap_or(policy.default_cache_secs)
        .clamp(
            policy.min_cache_secs,
            policy.max_cache_secs.max(policy.min_cache_secs),
        );
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(http)? {
        if body.len() + chunk.len() > policy.max_bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    let body = String::from_utf8(body).map_err(|_| JwksError::Invalid {
        source_desc: u.clone(),
        reason: "body is not UTF-8".into(),
    })?;
    Ok(Fetched { body, cache_secs })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// `max-age` from a Cache-Control value; `no-store`/`no-cache` mean "as short as allowed" (0,
/// raised to the floor by the caller).
pub(crate) fn parse_max_age(v: &str) -> Option<u64> {
    let mut out = None;
    for d in v.split(',') {
        let d = d.trim();
        if d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache") {
            return Some(0);
        }
        if let Some((k, val)) = d.split_once('=')
            && k.trim().eq_ignore_ascii_case("max-age")
        {
            out = val.trim().trim_matches('"').parse::<u64>().ok();
        }
    }
    out
}

/// Reads a JWKS from a file path (optionally `file:`-prefixed) or fetches it from an
/// `https://` URL (or `http://` loopback), with the default [`FetchPolicy`]. For
/// `pkjwt verify --jwks FILE|URL`.
pub async fn load_jwks(source: &str) -> Result<JwkSet, JwksError> {
    load_jwks_with(source, &FetchPolicy::default()).await
}

/// [`load_jwks`] with explicit limits.
pub async fn load_jwks_with(source: &str, policy: &FetchPolicy) -> Result<JwkSet, JwksError> {
    let lower = source.get(..8).unwrap_or(source).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        let url = checked_url(source, policy)?;
        let client = http_client(policy)?;
        let f = fetch_limited(&client, &url, policy).await?;
        return parse_jwks(&f.body, source);
    }
    let path = source.strip_prefix("file:").unwrap_or(source);
    let io = |e: std::io::Error| JwksError::Io {
        path: path.into(),
        reason: e.to_string(),
    };
    let meta = tokio::fs::metadata(path).await.map_err(io)?;
    if meta.len() > policy.max_bytes as u64 {
        return Err(JwksError::TooLarge {
            url: path.into(),
            max: policy.max_bytes,
        });
    }
    let text = tokio::fs::read_to_string(path).await.map_err(io)?;
    parse_jwks(&text, path)
}

fn parse_jwks(text: &str, source_desc: &str) -> Result<JwkSet, JwksError> {
    JwkSet::from_json(text).map_err(|e| JwksError::Invalid {
        source_desc: source_desc.into(),
        reason: e.to_string(),
    })
}

#[derive(Default)]
struct State {
    keys: Option<Arc<KeySet>>,
    fetched_at: i64,
    fresh_until: i64,
    last_attempt: Option<i64>,
}

/// A client's `jwks_uri`, fetched on demand and cached (see the module documentation).
/// Concurrent callers share one fetch.
pub struct RemoteJwks {
    url: Url,
    policy: FetchPolicy,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    fetches: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.url.as_str())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl RemoteJwks {
    /// A key source for `url`; nothing is fetched until the first token needs a key.
    pub fn new(url: &str, policy: FetchPolicy) -> Result<Self, JwksError> {
        let url = checked_url(url, &policy)?;
        let client = http_client(&policy)?;
        Ok(RemoteJwks {
            url,
            policy,
            client,
            clock: Arc::new(SystemClock),
            state: Mutex::new(State::default()),
            fetches: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Uses `clock` for cache ages (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The URL.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// How many HTTP fetches were made so far (for monitoring and tests).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The current set, fetching when there is none or it is stale, and refetching for an
    /// unknown `kid` at most every `unknown_kid_refetch_secs`.
    pub async fn keys(&self, kid: Option<&str>) -> Result<Arc<KeySet>, JwksError> {
        let mut st = self.state.lock().await;
        let now = self.clock.now();
        if let Some(keys) = &st.keys {
            let fresh = now < st.fresh_until;
            let known = kid.is_none_or(|k| keys.find(k).is_some());
            let refetch_allowed = st.last_attempt.is_none_or(|t| {
                now.saturating_sub(t)
                    >= i64::try_from(self.policy.unknown_kid_refetch_secs).unwrap_or(i64::MAX)
            });
            if fresh && (known || !refetch_allowed) {
                return Ok(keys.clone());
            }
            if !fresh && !known && !refetch_allowed {
                // Stale and the kid is unknown, but we fetched very recently: don't hammer.
                return Ok(keys.clone());
            }
        }
        st.last_attempt = Some(now);
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.fetch().await {
            Ok((set, cache_secs)) => {
                let set = Arc::new(set);
                st.keys = Some(set.clone());
                st.fetched_at = now;
                st.fresh_until = now.saturating_add(i64::try_from(cache_secs).unwrap_or(i64::MAX));
                Ok(set)
            }
            Err(e) => {
                // Keep serving the last good set while it is within the ceiling, so a JWKS
                // outage does not lock out every client at once.
                let ceiling = i64::try_from(self.policy.max_cache_secs).unwrap_or(i64::MAX);
                match &st.keys {
                    Some(keys) if now.saturating_sub(st.fetched_at) < ceiling => Ok(keys.clone()),
                    _ => Err(e),
                }
            }
        }
    }

    async fn fetch(&self) -> Result<(KeySet, u64), JwksError> {
        let f = fetch_limited(&self.client, &self.url, &self.policy).await?;
        let jwks = parse_jwks(&f.body, self.url.as_str())?;
        let set = KeySet::from_jwks(&jwks).map_err(|e| JwksError::Invalid {
            source_desc: self.url.to_string(),
            reason: e.to_string(),
        })?;
        Ok((set, f.cache_secs))
    }
}

#[async_trait]
impl KeySource for RemoteJwks {
    async fn key_set(&self, kid: Option<&str>) -> Result<Arc<KeySet>, Rejection> {
        self.keys(kid)
            .await
            .map_err(|e| Rejection::KeySetUnavailable {
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn max_age_parsing() {
        assert_eq!(parse_max_age("public, max-age=120"), Some(120));
        assert_eq!(parse_max_age("no-store"), Some(0));
        assert_eq!(parse_max_age("max-age=\"30\", must-revalidate"), Some(30));
        assert_eq!(parse_max_age("private"), None);
        assert_eq!(parse_max_age("max-age=-1"), None);
    }

    #[test]
    fn https_required_except_loopback() {
        let p = FetchPolicy::default();
        assert!(checked_url("https://as.example/jwks", &p).is_ok());
        assert!(checked_url("http://127.0.0.1:8080/jwks", &p).is_ok());
        assert!(checked_url("http://[::1]:8080/jwks", &p).is_ok());
        assert!(checked_url("http://localhost/jwks", &p).is_ok());
        for bad in [
            "http://as.example/jwks",
            "http://10.0.0.1/jwks",
            "ftp://x/y",
            "file:///etc/passwd",
        ] {
            assert!(
                matches!(checked_url(bad, &p), Err(JwksError::InsecureUrl { .. })),
                "{bad}"
            );
        }
        let strict = FetchPolicy {
            allow_loopback_http: false,
            ..FetchPolicy::default()
        };
        assert!(checked_url("http://127.0.0.1/jwks", &strict).is_err());
    }
}
