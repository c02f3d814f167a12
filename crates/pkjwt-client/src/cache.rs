//! A token cache: one token reused until shortly before it expires; concurrent callers that
//! need a new one share a single request (single flight); a failed refresh leaves the cache as
//! it was, so the next caller simply tries again.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Longest `expires_in` the cache honours (one year); larger values (up to `u64::MAX`, which a
/// broken or hostile server may send) would overflow `Instant` arithmetic.
const MAX_TOKEN_LIFETIME_SECS: u64 = 365 * 24 * 3600;

use crate::{ClientError, TokenClient, TokenRequest, TokenResponse};

/// Cache settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheOptions {
    /// Refresh this long before `expires_in` runs out (at most half the token's lifetime, so a
    /// short-lived token is still reused). Default 30 s.
    pub margin: Duration,
    /// How long to reuse a token whose response has no `expires_in`. Default 60 s.
    pub lifetime_without_expiry: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            margin: Duration::from_secs(30),
            lifetime_without_expiry: Duration::from_secs(60),
        }
    }
}

#[derive(Debug)]
struct Cached {
    token: Arc<TokenResponse>,
    refresh_at: Instant,
}

/// Caches the token of one [`TokenRequest`].
#[derive(Debug)]
pub struct TokenCache {
    client: Arc<TokenClient>,
    request: TokenRequest,
    options: CacheOptions,
    current: RwLock<Option<Cached>>,
    // Held by the one caller that is fetching; the others wait on it and then find the new token.
    refresh: tokio::sync::Mutex<()>,
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
            refresh: tokio::sync::Mutex::new(()),
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
        let response = Arc::new(self.client.request(&self.request).await?);
        let refresh_at = self.refresh_at(&response);
        self.store(Some(Cached {
            token: response.clone(),
            refresh_at,
        }));
        Ok(response)
    }

    /// Drops the cached token (for example after a resource server answered 401).
    pub fn invalidate(&self) {
        self.store(None);
    }

    fn refresh_at(&self, r: &TokenResponse) -> Instant {
        match r.expires_in {
            Some(secs) => {
                // A server may send any number: a token is never trusted for more than a year.
                let life = Duration::from_secs(secs.min(MAX_TOKEN_LIFETIME_SECS));
                r.received_at + life - self.options.margin.min(life / 2)
            }
            None => r.received_at + self.options.lifetime_without_expiry,
        }
    }

    fn fresh(&self) -> Option<Arc<TokenResponse>> {
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
