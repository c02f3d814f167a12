//! A token cache: one token reused until shortly before it expires; concurrent callers that
//! need a new one share a single request (single flight); a failed refresh leaves the cache as
//! it was, so the next caller simply tries again.
//!
//! [`TokenCache::serve`] is the long-running-process variant (the `pkjwt agent`): while the
//! cached token is still valid no caller ever waits — a due refresh runs in the background, and
//! a failed one is retried only after a back-off, the valid token being served meanwhile. Only
//! when no valid token exists do callers wait, all on the same single request; during the
//! back-off after a failure they get that failure at once instead of another request to the
//! server.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Longest `expires_in` the cache honours (one year); larger values (up to `u64::MAX`, which a
/// broken or hostile server may send) would overflow `Instant` arithmetic.
const MAX_TOKEN_LIFETIME_SECS: u64 = 365 * 24 * 3600;

use crate::{ClientError, TokenClient, TokenRequest, TokenResponse};

/// Cache settings.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CacheOptions {
    /// Refresh this long before `expires_in` runs out (at most half the token's lifetime, so a
    /// short-lived token is still reused). Default 30 s.
    pub margin: Duration,
    /// How long to reuse a token whose response has no `expires_in`. Default 60 s.
    pub lifetime_without_expiry: Duration,
    /// Refresh at this fraction of the token's lifetime instead of `margin` before its end
    /// (for example 0.75). `None` (the default) keeps `margin`. Values outside (0, 1] are
    /// clamped into it.
    pub refresh_fraction: Option<f64>,
    /// Bring each refresh forward by a random part of up to this fraction of the lifetime
    /// (0.0 to 0.5), so that many processes or profiles that fetched together do not refresh
    /// together. Default 0.
    pub jitter: f64,
    /// [`TokenCache::serve`]: wait this long after a failed fetch before the next one; doubled
    /// after each further failure up to `backoff_max`. Default 1 s.
    pub backoff_min: Duration,
    /// The longest back-off. Default 60 s.
    pub backoff_max: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            margin: Duration::from_secs(30),
            lifetime_without_expiry: Duration::from_secs(60),
            refresh_fraction: None,
            jitter: 0.0,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

#[derive(Debug)]
struct Cached {
    token: Arc<TokenResponse>,
    refresh_at: Instant,
    // The end of the token's validity (`refresh_at` when the response had no expires_in).
    expires_at: Instant,
}

/// How [`TokenCache::serve`] got the token it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The cached token, not yet due for refresh.
    Cached,
    /// The cached token, still valid, while a refresh runs, waits out its back-off or failed.
    CachedRefreshDue,
    /// A token fetched for this call (no valid one was cached).
    Fetched,
}

/// A token from [`TokenCache::serve`].
#[derive(Clone, Debug)]
pub struct Served {
    /// The token response.
    pub token: Arc<TokenResponse>,
    /// Where it came from.
    pub source: Source,
}

/// Counters of one cache, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Token requests started (each may retry inside the client).
    pub fetches: u64,
    /// Failed token requests by [`ClientError::kind`].
    pub fetch_errors: BTreeMap<&'static str, u64>,
}

/// The timing of a cached token ([`TokenCache::validity`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Validity {
    /// Until it expires.
    pub expires_in: Duration,
    /// Until it is due for refresh (zero when due).
    pub refresh_in: Duration,
}

#[derive(Debug, Default)]
struct Failures {
    // Consecutive failures; 0 after a success.
    streak: u32,
    // No fetch before this instant ([`TokenCache::serve`] only).
    retry_at: Option<Instant>,
    last: Option<Arc<ClientError>>,
    // Bumped on every failure: a caller that waited for the single flight learns whether the
    // fetch it waited for failed.
    generation: u64,
    by_kind: BTreeMap<&'static str, u64>,
}

/// Caches the token of one [`TokenRequest`].
#[derive(Debug)]
pub struct TokenCache {
    client: Arc<TokenClient>,
    request: TokenRequest,
    options: CacheOptions,
    current: RwLock<Option<Cached>>,
    // Held by the one caller that is fetching; the others wait on it and then find the new token.
    // An Arc so that a background refresh ([`TokenCache::serve`]) can own the guard.
    refresh: Arc<tokio::sync::Mutex<()>>,
    failures: Mutex<Failures>,
    fetches: AtomicU64,
}

impl TokenCache {
    /// A cache for `request` with default settings.
    pub fn new(client: impl Into<Arc<TokenClient>>, request: TokenRequest) -> Self {
        Self::with_options(client, request, CacheOptions::default())
    }

    /// A cache with explicit settings.
    pub fn with_options(
        client: impl Into<Arc<TokenClient>>,
        request: TokenRequest,
        options: CacheOptions,
    ) -> Self {
        TokenCache {
            client: client.into(),
            request,
            options,
            current: RwLock::new(None),
            refresh: Arc::new(tokio::sync::Mutex::new(())),
            failures: Mutex::new(Failures::default()),
            fetches: AtomicU64::new(0),
        }
    }

    /// The client.
    pub fn client(&self) -> &Arc<TokenClient> {
        &self.client
    }

    /// A valid token: the cached one, or a new one when it is missing or about to expire.
    pub async fn token(&self) -> Result<Arc<TokenResponse>, ClientError> {
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let _guard = self.refresh.lock().await;
        // Another caller may have refreshed while this one waited.
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        // On error nothing is stored: the next call tries again.
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let response = match self.client.request(&self.request).await {
            Ok(r) => Arc::new(r),
            Err(e) => {
                self.failures()
                    .by_kind
                    .entry(e.kind())
                    .and_modify(|n| *n += 1)
                    .or_insert(1);
                return Err(e);
            }
        };
        self.store_response(response.clone());
        Ok(response)
    }

    /// A valid token for a long-running server: see the module documentation. Never waits
    /// while a valid token is cached; a due refresh is started in the background (on the
    /// current tokio runtime). Errors are shared by every caller that waited for the same
    /// request, hence the `Arc`.
    pub async fn serve(self: &Arc<Self>) -> Result<Served, Arc<ClientError>> {
        let now = Instant::now();
        if let Some((token, refresh_at, expires_at)) = self.snapshot() {
            if now < refresh_at {
                return Ok(Served {
                    token,
                    source: Source::Cached,
                });
            }
            if now < expires_at {
                let may_retry = self.failures().retry_at.is_none_or(|t| now >= t);
                if may_retry && let Ok(guard) = self.refresh.clone().try_lock_owned() {
                    let me = self.clone();
                    tokio::spawn(async move {
                        // Checked again under the lock: a refresh may just have finished.
                        if me.snapshot().is_some_and(|(_, r, _)| Instant::now() < r) {
                            return;
                        }
                        // A failure is counted and backed off inside; callers keep
                        // getting the valid token.
                        let _ = me.fetch_shared().await;
                        drop(guard);
                    });
                }
                return Ok(Served {
                    token,
                    source: Source::CachedRefreshDue,
                });
            }
        }
        // No valid token: everyone waits for one request.
        let generation = self.failures().generation;
        let _guard = self.refresh.lock().await;
        if let Some((token, _, expires_at)) = self.snapshot()
            && Instant::now() < expires_at
        {
            return Ok(Served {
                token,
                source: Source::Cached,
            });
        }
        {
            let f = self.failures();
            let backing_off = f.retry_at.is_some_and(|t| Instant::now() < t);
            if (f.generation != generation || backing_off)
                && let Some(e) = &f.last
            {
                return Err(e.clone());
            }
        }
        let token = self.fetch_shared().await?;
        Ok(Served {
            token,
            source: Source::Fetched,
        })
    }

    /// The cached token's timing, `None` when no token is cached.
    pub fn validity(&self) -> Option<Validity> {
        let now = Instant::now();
        self.snapshot().map(|(_, refresh_at, expires_at)| Validity {
            expires_in: expires_at.saturating_duration_since(now),
            refresh_in: refresh_at.saturating_duration_since(now),
        })
    }

    /// Takes over `previous`'s cached token when it is still valid (its refresh and expiry times
    /// included), for a cache that replaces another for the same client and request — the
    /// agent's reload, a key rotation. The caller vouches that the token is good for this
    /// cache's request: same server, client_id, scope and resources. Returns whether a token
    /// was taken over.
    pub fn take_over(&self, previous: &TokenCache) -> bool {
        let taken = {
            let g = previous.current.read().unwrap_or_else(|p| p.into_inner());
            g.as_ref()
                .filter(|c| Instant::now() < c.expires_at)
                .map(|c| Cached {
                    token: c.token.clone(),
                    refresh_at: c.refresh_at,
                    expires_at: c.expires_at,
                })
        };
        let some = taken.is_some();
        if some {
            self.store(taken);
        }
        some
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            fetches: self.fetches.load(Ordering::Relaxed),
            fetch_errors: self.failures().by_kind.clone(),
        }
    }

    // One request; the caller holds `refresh`.
    async fn fetch_shared(&self) -> Result<Arc<TokenResponse>, Arc<ClientError>> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.client.request(&self.request).await {
            Ok(r) => {
                let r = Arc::new(r);
                self.store_response(r.clone());
                let mut f = self.failures();
                f.streak = 0;
                f.retry_at = None;
                f.last = None;
                Ok(r)
            }
            Err(e) => {
                let e = Arc::new(e);
                let mut f = self.failures();
                f.streak = f.streak.saturating_add(1);
                let doubling = 2u32.saturating_pow(f.streak - 1);
                let wait = self
                    .options
                    .backoff_min
                    .saturating_mul(doubling)
                    .min(self.options.backoff_max);
                f.retry_at = Instant::now().checked_add(wait);
                f.last = Some(e.clone());
                f.generation = f.generation.wrapping_add(1);
                *f.by_kind.entry(e.kind()).or_insert(0) += 1;
                Err(e)
            }
        }
    }

    fn store_response(&self, response: Arc<TokenResponse>) {
        let (refresh_at, expires_at) = self.refresh_at(&response);
        self.store(Some(Cached {
            token: response,
            refresh_at,
            expires_at,
        }));
    }

    fn snapshot(&self) -> Option<(Arc<TokenResponse>, Instant, Instant)> {
        let g = self.current.read().unwrap_or_else(|p| p.into_inner());
        g.as_ref()
            .map(|c| (c.token.clone(), c.refresh_at, c.expires_at))
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        // Poisoned only by a panic while counting; the counters stay usable.
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the cached token (for example after a resource server answered 401).
    pub fn invalidate(&self) {
        self.store(None);
    }

    // (refresh at, expires at)
    fn refresh_at(&self, r: &TokenResponse) -> (Instant, Instant) {
        match r.expires_in {
            Some(secs) => {
                // A server may send any number: a token is never trusted for more than a year.
                let life = Duration::from_secs(secs.min(MAX_TOKEN_LIFETIME_SECS));
                let mut after = match self.options.refresh_fraction {
                    Some(f) => life.mul_f64(f.clamp(0.01, 1.0)),
                    None => life - self.options.margin.min(life / 2),
                };
                let jitter = self.options.jitter.clamp(0.0, 0.5);
                if jitter > 0.0 {
                    after = after.saturating_sub(life.mul_f64(jitter * random_unit()));
                }
                (r.received_at + after, r.received_at + life)
            }
            None => {
                let at = r.received_at + self.options.lifetime_without_expiry;
                (at, at)
            }
        }
    }

    fn fresh(&self) -> Option<Arc<TokenResponse>> {
        // `token()` keeps its documented behaviour: a token due for refresh is not served.
        // A poisoned lock only means a panic elsewhere while holding it; the Option inside is
        // always whole, so keep using it.
        let g = self.current.read().unwrap_or_else(|p| p.into_inner());
        g.as_ref()
            .filter(|c| Instant::now() < c.refresh_at)
            .map(|c| c.token.clone())
    }

    fn store(&self, v: Option<Cached>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = v;
    }
}

/// A uniform number in [0, 1) for jitter (no need for a cryptographic quality here, but the
/// OS source is already a dependency; without it, no jitter rather than a panic).
fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.0;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}
