//! Client key sets from a `jwks_uri` ([`RemoteJwks`]) or a file ([`load_jwks`]).
//!
//! The rules (`standards.md`, "Keys and key sets"): HTTPS except for loopback; no redirects;
//! bounded response size and time; `Cache-Control: max-age` honoured between a floor and a
//! ceiling; a token with an unknown `kid` triggers a refetch at most every N seconds (so a
//! rotated-in key is picked up quickly, and garbage kids cannot turn the verifier into a request
//! amplifier); duplicate kids and malformed keys refuse the whole set; only public addresses
//! are connected to unless the policy allows more (see `address.rs`).
//!
//! When the JWKS host fails, [`RemoteJwks`] keeps serving the last good set for a bounded grace
//! period after it expired, makes at most one request at a time (every caller that needs the
//! result shares it), and after a failure makes no new request until an exponential backoff
//! has passed. Its state sits behind a short-lived lock that is never held across I/O: the
//! fetch runs in its own task, and callers with a usable set do not wait for it.

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use pkjwt_core::{Clock, JwkSet, SystemClock};
use tokio::sync::watch;
use url::Url;

use crate::Rejection;
use crate::address::{AddressRule, Class, GuardedResolver, Lookup, Refused, system_lookup};
use crate::keys::{KeySet, KeySource};

/// Limits and cache settings for fetching JWKS and discovery documents.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchPolicy {
    /// Shortest time a fetched set is kept, whatever `Cache-Control` says. Default 60 s.
    pub min_cache_secs: u64,
    /// Longest time a fetched set is kept, whatever `Cache-Control` says. Default 86,400 s
    /// (Keycloak's ceiling).
    pub max_cache_secs: u64,
    /// Cache time when the response has no usable `max-age`. Default 300 s.
    pub default_cache_secs: u64,
    /// Least time between two fetches caused by unknown kids. Default 10 s (as Keycloak).
    pub unknown_kid_refetch_secs: u64,
    /// Largest accepted response body. Default 256 KiB.
    pub max_bytes: usize,
    /// Time limit for one request (connect + headers + body). Default 5 s.
    pub timeout: Duration,
    /// Allow loopback addresses (127.0.0.0/8, ::1), over plain `http://` as well as `https://`
    /// (tests, sidecars). Default true; any other `http://` URL is always refused. When false,
    /// a URL whose host is or resolves to a loopback address is refused.
    pub allow_loopback_http: bool,
    /// How long past its expiry (the end of its cache time) a set keeps serving while it cannot
    /// be refetched. Callers get it at once, without waiting for the refetch; past this they
    /// get [`JwksError::Stale`]. Bounded because a client that withdraws a compromised key
    /// from its JWKS relies on the verifier noticing: an attacker who can keep the JWKS host
    /// unreachable keeps the key usable for at most this long. Default 3,600 s.
    pub stale_grace_secs: u64,
    /// Wait after a failed fetch before the next one (negative caching): every further
    /// consecutive failure doubles it, up to `max_failure_backoff_secs`. Values below 1 count
    /// as 1, so a failing host never gets one request per inbound token. Default 10 s.
    pub failure_backoff_secs: u64,
    /// Ceiling of the failure backoff. Default 300 s.
    pub max_failure_backoff_secs: u64,
    /// Allow hosts that are, or resolve to, non-public addresses other than loopback: RFC 1918
    /// private ranges, 100.64.0.0/10, link-local (169.254.0.0/16, which holds the cloud
    /// metadata service; fe80::/10), unique local fc00::/7, multicast, broadcast,
    /// documentation and reserved ranges, the unspecified address, and their IPv4-mapped
    /// forms. Default false: a server that fetches client-registered `jwks_uri`s must not
    /// become a way to reach its own network. Set it when your JWKS host is on a private
    /// network. While it is false, HTTP proxies from the environment are not used, since the
    /// check must see the address actually connected to.
    pub allow_private_addresses: bool,
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
            stale_grace_secs: 3600,
            failure_backoff_secs: 10,
            max_failure_backoff_secs: 300,
            allow_private_addresses: false,
        }
    }
}

impl FetchPolicy {
    fn address_rule(&self) -> AddressRule {
        AddressRule {
            allow_loopback: self.allow_loopback_http,
            allow_private: self.allow_private_addresses,
        }
    }

    /// The wait before the next fetch after `failures` consecutive failures (at least 1).
    fn backoff_secs(&self, failures: u32) -> u64 {
        let first = self.failure_backoff_secs.max(1);
        let doublings = failures.saturating_sub(1).min(32);
        first
            .saturating_mul(1u64 << doublings)
            .min(self.max_failure_backoff_secs.max(first))
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
    /// The URL's host is, or resolves to, an address the policy does not allow (see
    /// [`FetchPolicy::allow_private_addresses`]). Nothing was sent to it.
    #[error(
        "refusing {url}: {}, a {range} address; key sets are fetched from public addresses \
         only, unless FetchPolicy::{option} is set",
        host_is(host, address)
    )]
    ForbiddenAddress {
        /// The URL.
        url: String,
        /// The URL's host (a name or the address itself).
        host: String,
        /// The refused address.
        address: IpAddr,
        /// Its range ("private (10.0.0.0/8, RFC 1918)", "loopback", …).
        range: String,
        /// The [`FetchPolicy`] field that would allow it.
        option: &'static str,
    },
    /// The cached set expired more than [`FetchPolicy::stale_grace_secs`] ago and could not be
    /// refetched (or the failure backoff has not passed yet).
    #[error(
        "the key set from {url} expired {expired_secs} s ago, beyond the {grace_secs} s a stale \
         set is served, and cannot be refetched: {last_failure}"
    )]
    Stale {
        /// The URL.
        url: String,
        /// Seconds since the set expired.
        expired_secs: u64,
        /// The grace period.
        grace_secs: u64,
        /// Why the last fetch failed.
        last_failure: Box<JwksError>,
    },
    /// No set was ever fetched, the last attempts failed, and the failure backoff has not
    /// passed yet: no request is made until it has.
    #[error(
        "no key set from {url}: {failures} fetch(es) failed in a row, next attempt in \
         {retry_in_secs} s; last failure: {last_failure}"
    )]
    BackingOff {
        /// The URL.
        url: String,
        /// Consecutive failed fetches.
        failures: u32,
        /// Seconds until a fetch is allowed again.
        retry_in_secs: u64,
        /// Why the last fetch failed.
        last_failure: Box<JwksError>,
    },
}

fn host_is(host: &str, address: &IpAddr) -> String {
    if host.trim_matches(|c| c == '[' || c == ']') == address.to_string() {
        format!("{address} is")
    } else {
        format!("{host} resolves to {address}")
    }
}

impl JwksError {
    fn forbidden(url: &str, host: &str, address: IpAddr, class: Class) -> Self {
        JwksError::ForbiddenAddress {
            url: url.into(),
            host: host.into(),
            address,
            range: class.describe().into(),
            option: match class {
                Class::Loopback => "allow_loopback_http",
                Class::NonPublic(_) => "allow_private_addresses",
            },
        }
    }
}

/// Parses and vets a URL under `policy`: HTTPS, or http to loopback when allowed; and a host
/// that is an IP literal must be an address the policy allows (host names are checked by the
/// HTTP client's resolver at connect time; a literal is connected to without resolving).
pub(crate) fn checked_url(url: &str, policy: &FetchPolicy) -> Result<Url, JwksError> {
    let parsed = Url::parse(url).map_err(|e| JwksError::InvalidUrl {
        url: url.into(),
        reason: e.to_string(),
    })?;
    match parsed.scheme() {
        "https" => {}
        "http" if policy.allow_loopback_http && is_loopback(&parsed) => {}
        _ => return Err(JwksError::InsecureUrl { url: url.into() }),
    }
    let literal = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    };
    if let Some(ip) = literal
        && let Some(class) = policy.address_rule().refusal(ip)
    {
        return Err(JwksError::forbidden(url, &ip.to_string(), ip, class));
    }
    Ok(parsed)
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
    http_client_with(policy, system_lookup())
}

/// [`http_client`] resolving names with `lookup` (tests use a fixed table).
pub(crate) fn http_client_with(
    policy: &FetchPolicy,
    lookup: Lookup,
) -> Result<reqwest::Client, JwksError> {
    let rule = policy.address_rule();
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(policy.timeout)
        .connect_timeout(policy.timeout)
        .https_only(!policy.allow_loopback_http);
    if !rule.allows_all() {
        // Every connection's addresses pass through the guarded resolver. A proxy would make
        // the connection (and resolve the name) itself, out of the check's sight.
        // No idle connections are kept, so every fetch resolves and is checked again (fetches
        // are minutes apart: a pooled connection would rarely be reused anyway).
        builder = builder
            .dns_resolver(Arc::new(GuardedResolver::new(rule, lookup)))
            .no_proxy()
            .pool_max_idle_per_host(0);
    }
    builder.build().map_err(|e| JwksError::Http {
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
    let http = |e: reqwest::Error| {
        if let Some(r) = refused_in(&e) {
            return JwksError::forbidden(&u, &r.host, r.address, r.class);
        }
        JwksError::Http {
            url: u.clone(),
            reason: if e.is_timeout() {
                format!("no complete answer within {:?}", policy.timeout)
            } else {
                error_chain(&e)
            },
        }
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

/// The resolver's refusal, if that is why a request failed.
fn refused_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(r) = c.downcast_ref::<Refused>() {
            return Some(r);
        }
        cur = c.source();
    }
    None
}

/// A transport error and its causes as text, through pkjwt's one chain walker.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    pkjwt_core::ErrorChain(e).to_string()
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

/// What a finished fetch hands to the callers waiting for it.
type Outcome = Result<Arc<KeySet>, JwksError>;

/// A fetch in progress. Callers that need its result subscribe to `done`; the value is set
/// once, when the fetch ends (after the state was updated).
struct Flight {
    id: u64,
    done: watch::Receiver<Option<Outcome>>,
}

#[derive(Default)]
struct State {
    keys: Option<Arc<KeySet>>,
    /// The set is fresh before this; stale but servable before `fresh_until + stale_grace_secs`.
    fresh_until: i64,
    /// When the last fetch started (the unknown-kid rate limit counts from it).
    last_attempt: Option<i64>,
    /// Consecutive failed fetches (0 after a success).
    failures: u32,
    /// No fetch starts before this (negative caching after a failure).
    retry_at: i64,
    /// Why the last fetch failed, while `failures > 0`.
    last_failure: Option<JwksError>,
    in_flight: Option<Flight>,
    /// Identifies flights, so a finished one never clears its successor.
    flights: u64,
}

/// Shared between a [`RemoteJwks`] and the fetch task it spawns (which may outlive the
/// caller that started it).
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    fetches: AtomicU64,
}

impl Shared {
    /// The state. Every critical section leaves it consistent and none panics in practice, so
    /// the data behind a poisoned lock is still valid: use it rather than propagate the panic.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What [`RemoteJwks::keys`] does after looking at the state.
enum Decision {
    Serve(Arc<KeySet>),
    Fail(JwksError),
    Wait(watch::Receiver<Option<Outcome>>),
}

/// Clears the flight from the state if its task ends without doing so (a panic, or the runtime
/// shutting down), so that later callers start a new fetch instead of waiting forever.
struct FlightGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        if st.in_flight.as_ref().is_some_and(|f| f.id == self.id) {
            st.in_flight = None;
        }
    }
}

/// A client's `jwks_uri`, fetched on demand and cached (see the module documentation).
///
/// - Fresh set (within its cache time): served; a token with an unknown `kid` refetches at
///   most every `unknown_kid_refetch_secs`, and waits for that fetch.
/// - Stale set within `stale_grace_secs` of its expiry: served at once; a refetch starts in
///   the background unless one is running or the failure backoff has not passed.
/// - No set, or stale past the grace: the caller waits for a fetch (joining the one in
///   progress), or, while backing off after a failure, gets an error at once.
///
/// One fetch runs at a time, whatever the number of callers; after a failure the next starts
/// only once `failure_backoff_secs` (doubling per consecutive failure, up to
/// `max_failure_backoff_secs`) has passed.
pub struct RemoteJwks {
    url: Url,
    policy: FetchPolicy,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    shared: Arc<Shared>,
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
    /// A key source for `url`; nothing is fetched until the first token needs a key. An IP
    /// literal host the policy does not allow is refused here; a host name, when connecting.
    pub fn new(url: &str, policy: FetchPolicy) -> Result<Self, JwksError> {
        Self::with_lookup(url, policy, system_lookup())
    }

    /// [`RemoteJwks::new`] resolving host names with `lookup`.
    pub(crate) fn with_lookup(
        url: &str,
        policy: FetchPolicy,
        lookup: Lookup,
    ) -> Result<Self, JwksError> {
        let url = checked_url(url, &policy)?;
        let client = http_client_with(&policy, lookup)?;
        Ok(RemoteJwks {
            url,
            policy,
            client,
            clock: Arc::new(SystemClock),
            shared: Arc::new(Shared::default()),
        })
    }

    /// Uses `clock` for cache ages, the grace period and backoff (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The URL.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// How many HTTP fetches were started so far (for monitoring and tests).
    pub fn fetch_count(&self) -> u64 {
        self.shared.fetches.load(Ordering::Relaxed)
    }

    /// Whether a fetch is running now (for monitoring and tests).
    pub fn fetch_in_flight(&self) -> bool {
        self.shared.lock().in_flight.is_some()
    }

    /// The set to verify a token with `kid`, following the rules in the type's documentation.
    /// A set is returned even when it does not hold `kid` (the verifier then reports the
    /// unknown kid).
    pub async fn keys(&self, kid: Option<&str>) -> Result<Arc<KeySet>, JwksError> {
        let mut done = match self.decide(kid) {
            Decision::Serve(keys) => return Ok(keys),
            Decision::Fail(e) => return Err(e),
            Decision::Wait(done) => done,
        };
        // No lock is held here: the fetch runs in its own task and we only wait for its result.
        let outcome = match done.wait_for(Option::is_some).await {
            Ok(v) => v.clone(),
            Err(_) => None,
        };
        match outcome {
            Some(Ok(keys)) => Ok(keys),
            Some(Err(e)) => self.after_failure(e),
            None => Err(JwksError::Http {
                url: self.url.to_string(),
                reason: "the fetch ended without a result (runtime shutting down?)".into(),
            }),
        }
    }

    /// Looks at the state under the lock (never held across I/O) and decides; may start a fetch.
    fn decide(&self, kid: Option<&str>) -> Decision {
        let now = self.clock.now();
        let mut st = self.shared.lock();
        let backoff_over = now >= st.retry_at;
        let Some(keys) = st.keys.clone() else {
            if let Some(f) = &st.in_flight {
                return Decision::Wait(f.done.clone());
            }
            if backoff_over {
                return self.start(&mut st, now);
            }
            return Decision::Fail(JwksError::BackingOff {
                url: self.url.to_string(),
                failures: st.failures,
                retry_in_secs: u64::try_from(st.retry_at.saturating_sub(now)).unwrap_or(0),
                last_failure: Box::new(self.last_failure(&st)),
            });
        };
        let fresh = now < st.fresh_until;
        let in_grace = now
            < st.fresh_until
                .saturating_add(secs(self.policy.stale_grace_secs));
        let known = kid.is_none_or(|k| keys.find(k).is_some());
        if !fresh && st.in_flight.is_none() && backoff_over {
            // A refresh is due; it runs in the background and is shared by everyone.
            let _ = self.start(&mut st, now);
        }
        if known && in_grace {
            // Fresh, or stale within the grace: answer now, never wait for the refetch.
            return Decision::Serve(keys);
        }
        if let Some(f) = &st.in_flight {
            // An unknown kid (the running fetch may bring it), or a set past its grace.
            return Decision::Wait(f.done.clone());
        }
        if in_grace {
            // Unknown kid, nothing running: refetch within the rate limit and the backoff.
            let refetch_allowed = st.last_attempt.is_none_or(|t| {
                now.saturating_sub(t) >= secs(self.policy.unknown_kid_refetch_secs)
            });
            if refetch_allowed && backoff_over {
                return self.start(&mut st, now);
            }
            return Decision::Serve(keys);
        }
        // Past the grace and backing off.
        Decision::Fail(self.stale_error(&st, now, self.last_failure(&st)))
    }

    /// Starts a fetch in its own task and records it as the flight in progress.
    fn start(&self, st: &mut State, now: i64) -> Decision {
        let handle = match tokio::runtime::Handle::try_current() {
            Ok(h) => h,
            Err(_) => {
                return Decision::Fail(JwksError::Http {
                    url: self.url.to_string(),
                    reason: "key sets are fetched from within a tokio runtime".into(),
                });
            }
        };
        st.last_attempt = Some(now);
        st.flights += 1;
        let id = st.flights;
        let (tx, rx) = watch::channel(None);
        st.in_flight = Some(Flight {
            id,
            done: rx.clone(),
        });
        self.shared.fetches.fetch_add(1, Ordering::Relaxed);
        let guard = FlightGuard {
            shared: self.shared.clone(),
            id,
        };
        let (client, url, policy, clock) = (
            self.client.clone(),
            self.url.clone(),
            self.policy.clone(),
            self.clock.clone(),
        );
        // A task of its own, so the fetch completes (and the state learns the result) even
        // when every caller was answered from the stale set or has gone away.
        handle.spawn(async move {
            let result = fetch_set(&client, &url, &policy).await;
            let now = clock.now();
            let outcome = {
                let mut st = guard.shared.lock();
                let outcome = match result {
                    Ok((set, cache_secs)) => {
                        let set = Arc::new(set);
                        st.keys = Some(set.clone());
                        st.fresh_until = now.saturating_add(secs(cache_secs));
                        st.failures = 0;
                        st.retry_at = i64::MIN;
                        st.last_failure = None;
                        Ok(set)
                    }
                    Err(e) => {
                        st.failures = st.failures.saturating_add(1);
                        st.retry_at = now.saturating_add(secs(policy.backoff_secs(st.failures)));
                        st.last_failure = Some(e.clone());
                        Err(e)
                    }
                };
                if st.in_flight.as_ref().is_some_and(|f| f.id == guard.id) {
                    st.in_flight = None;
                }
                outcome
            };
            // Waiters may all be gone; nothing to do then.
            let _ = tx.send(Some(outcome));
        });
        Decision::Wait(rx)
    }

    /// A fetch this caller waited for failed: the set, if it is still within its grace (the
    /// verifier then reports an unknown kid), or the failure.
    fn after_failure(&self, e: JwksError) -> Result<Arc<KeySet>, JwksError> {
        let now = self.clock.now();
        let st = self.shared.lock();
        match &st.keys {
            Some(keys)
                if now
                    < st.fresh_until
                        .saturating_add(secs(self.policy.stale_grace_secs)) =>
            {
                Ok(keys.clone())
            }
            Some(_) => Err(self.stale_error(&st, now, e)),
            None => Err(e),
        }
    }

    fn stale_error(&self, st: &State, now: i64, last_failure: JwksError) -> JwksError {
        JwksError::Stale {
            url: self.url.to_string(),
            expired_secs: u64::try_from(now.saturating_sub(st.fresh_until)).unwrap_or(0),
            grace_secs: self.policy.stale_grace_secs,
            last_failure: Box::new(last_failure),
        }
    }

    fn last_failure(&self, st: &State) -> JwksError {
        st.last_failure.clone().unwrap_or_else(|| JwksError::Http {
            url: self.url.to_string(),
            reason: "no successful fetch".into(),
        })
    }
}

/// Seconds as the clock's signed type, saturating.
fn secs(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX)
}

/// Fetches and parses the set at `url`.
async fn fetch_set(
    client: &reqwest::Client,
    url: &Url,
    policy: &FetchPolicy,
) -> Result<(KeySet, u64), JwksError> {
    let f = fetch_limited(client, url, policy).await?;
    let jwks = parse_jwks(&f.body, url.as_str())?;
    let set = KeySet::from_jwks(&jwks).map_err(|e| JwksError::Invalid {
        source_desc: url.to_string(),
        reason: e.to_string(),
    })?;
    Ok((set, f.cache_secs))
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

    #[test]
    fn literal_addresses_follow_the_address_rule() {
        let p = FetchPolicy::default();
        let e = checked_url("https://[::ffff:a9fe:a9fe]/latest", &p).unwrap_err();
        assert_eq!(
            e,
            JwksError::ForbiddenAddress {
                url: "https://[::ffff:a9fe:a9fe]/latest".into(),
                host: "::ffff:169.254.169.254".into(),
                address: "::ffff:169.254.169.254".parse().unwrap(),
                range: "link-local (169.254.0.0/16, includes the cloud metadata service \
                        169.254.169.254)"
                    .into(),
                option: "allow_private_addresses",
            }
        );
        // Loopback literals follow allow_loopback_http, for https too.
        assert!(checked_url("https://127.0.0.1/jwks", &p).is_ok());
        let strict = FetchPolicy {
            allow_loopback_http: false,
            allow_private_addresses: true,
            ..FetchPolicy::default()
        };
        let e = checked_url("https://127.0.0.1/jwks", &strict).unwrap_err();
        assert!(
            matches!(
                &e,
                JwksError::ForbiddenAddress {
                    option: "allow_loopback_http",
                    ..
                }
            ),
            "{e}"
        );
        assert!(checked_url("https://10.0.0.1/jwks", &strict).is_ok());
        assert!(checked_url("https://[fe80::1]/jwks", &strict).is_ok());
    }

    fn table_policy() -> FetchPolicy {
        FetchPolicy {
            timeout: Duration::from_secs(2),
            ..FetchPolicy::default()
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_non_public_address_is_refused_before_connecting() {
        let (lookup, calls) = crate::address::table_lookup(&[
            ("jwks.internal.example", "10.1.2.3"),
            ("metadata.example", "::ffff:169.254.169.254"),
            ("ula.example", "fd00::5"),
        ]);
        for (host, addr) in [
            ("jwks.internal.example", "10.1.2.3"),
            ("metadata.example", "::ffff:169.254.169.254"),
            ("ula.example", "fd00::5"),
        ] {
            let url = format!("https://{host}/jwks");
            let r = RemoteJwks::with_lookup(&url, table_policy(), lookup.clone()).unwrap();
            let started = std::time::Instant::now();
            let e = r.keys(None).await.unwrap_err();
            // Refused by the resolver: no connection attempt, which to a silent address would
            // have run into the timeout.
            assert!(started.elapsed() < Duration::from_secs(1), "{e}");
            match &e {
                JwksError::ForbiddenAddress {
                    host: h,
                    address,
                    option,
                    ..
                } => {
                    assert_eq!(h, host);
                    assert_eq!(address.to_string(), addr);
                    assert_eq!(*option, "allow_private_addresses");
                }
                other => panic!("{host}: expected ForbiddenAddress, got {other:?}"),
            }
            let msg = e.to_string();
            assert!(
                msg.contains(host) && msg.contains(addr) && msg.contains("allow_private_addresses"),
                "{msg}"
            );
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    /// A minimal HTTP server on 127.0.0.1 answering every request with `body`.
    async fn loopback_server(body: String) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        (port, hits)
    }

    #[tokio::test]
    async fn rebinding_a_name_between_fetches_is_caught_at_connect_time() {
        let (port, hits) = loopback_server(r#"{"keys":[]}"#.into()).await;
        // "localhost" first answers 127.0.0.1 (allowed: loopback), then 10.0.0.7.
        let (lookup, calls) =
            crate::address::table_lookup(&[("localhost", "127.0.0.1"), ("localhost", "10.0.0.7")]);
        let policy = table_policy();
        let client = http_client_with(&policy, lookup).unwrap();
        let url = checked_url(&format!("http://localhost:{port}/jwks"), &policy).unwrap();
        fetch_limited(&client, &url, &policy).await.unwrap();
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        let e = fetch_limited(&client, &url, &policy).await.err().unwrap();
        assert!(
            matches!(&e, JwksError::ForbiddenAddress { address, .. } if address.to_string() == "10.0.0.7"),
            "{e}"
        );
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn allow_private_addresses_skips_the_screen() {
        // With both switches on, names are not screened (the table would refuse nothing
        // anyway); checked at the unit level, without connecting.
        let p = FetchPolicy {
            allow_private_addresses: true,
            ..FetchPolicy::default()
        };
        assert!(p.address_rule().allows_all());
        for url in [
            "https://10.0.0.1/jwks",
            "https://169.254.169.254/jwks",
            "https://[::ffff:192.168.0.1]/jwks",
            "https://[fe80::1]/jwks",
        ] {
            assert!(RemoteJwks::new(url, p.clone()).is_ok(), "{url}");
            assert!(
                RemoteJwks::new(url, FetchPolicy::default()).is_err(),
                "{url}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let p = FetchPolicy::default();
        let got: Vec<u64> = (1..=8).map(|n| p.backoff_secs(n)).collect();
        assert_eq!(got, vec![10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(p.backoff_secs(u32::MAX), 300);
        let zero = FetchPolicy {
            failure_backoff_secs: 0,
            max_failure_backoff_secs: 0,
            ..FetchPolicy::default()
        };
        assert_eq!(zero.backoff_secs(1), 1, "never zero");
    }
}
