//! One configured client at run time: its opened key (timed for metrics), its certificate
//! thumbprints, and its token cache once the server's metadata is known.
//!
//! A profile whose key opens but whose authorization server cannot be discovered at start is
//! *pending*: callers get a 503 naming the discovery error while a background task retries with
//! back-off (1 s doubling to 60 s), so an AS that is down when the agent starts does not stop
//! the agent, and the profile serves as soon as the server answers.

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use pkjwt::Signer;
use pkjwt_client::{
    CacheOptions, ClientConfig, ClientError, Profile, ServerMetadata, TokenCache, TokenClient,
    TokenRequest,
};

use crate::AgentError;
use crate::config::{AgentSettings, ProfileConfig};
use crate::metrics::{ProfileMetrics, TimedSigner};

/// The first and the longest wait between discovery attempts of a pending profile.
const DISCOVERY_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));

pub(crate) enum Slot {
    Ready(Arc<TokenCache>),
    /// Discovery failed; the text is the client's error chain (no secrets by its rule).
    Pending {
        error: String,
        since: Instant,
    },
}

pub(crate) struct ProfileRt {
    pub(crate) name: String,
    pub(crate) config: ProfileConfig,
    /// The key URI that signs (resolved from a rotation state); never shown (a pkcs11 URI may
    /// carry a pin-value).
    pub(crate) key_uri: String,
    /// The key's RFC 7638 thumbprint, shown in the status.
    pub(crate) kid: String,
    pub(crate) metrics: Arc<ProfileMetrics>,
    signer: Arc<dyn Signer>,
    x5t_s256: Option<String>,
    x5t: Option<String>,
    cache_options: CacheOptions,
    slot: RwLock<Slot>,
}

impl ProfileRt {
    /// Opens the key (and reads the certificate) of `config`; no network. `metrics` carries a
    /// profile's counters over a reload.
    pub(crate) async fn open(
        name: &str,
        config: &ProfileConfig,
        key_uri: String,
        settings: &AgentSettings,
        metrics: Option<Arc<ProfileMetrics>>,
    ) -> Result<ProfileRt, AgentError> {
        let key_err = |source| AgentError::Key {
            profile: name.to_owned(),
            source,
        };
        let mut open = pkjwt::OpenOptions::default().alg(config.alg);
        open.file = open
            .file
            .allow_insecure_permissions(config.allow_insecure_key_permissions);
        let inner = pkjwt::open(&key_uri, &open).await.map_err(key_err)?;
        let profile = Profile::named(&config.server_profile).map_err(|e| AgentError::Server {
            profile: name.to_owned(),
            issuer: config.issuer.clone(),
            source: Box::new(e),
        })?;
        let cert_err = |reason: String| AgentError::Certificate {
            profile: name.to_owned(),
            reason,
        };
        let wanted =
            config.certificate.is_some() || profile.require_x5t_s256 || profile.require_x5t_sha1;
        let leaf = if wanted {
            pkjwt_x509::key_chain(config.certificate.as_deref(), inner.as_ref())
                .map_err(|e| match e {
                    pkjwt_x509::X509Error::NoStoredMatch { .. } => {
                        cert_err(format!("{e} (certificate = \"/path/cert.pem\")"))
                    }
                    e => cert_err(e.to_string()),
                })?
                .and_then(|chain| chain.into_iter().next())
        } else {
            None
        };
        if leaf.is_none() && (profile.require_x5t_s256 || profile.require_x5t_sha1) {
            return Err(cert_err(format!(
                "server profile {} puts the key's certificate thumbprint in every assertion, and \
                 none was found; set certificate = \"/path/cert.pem\" or keep the certificate \
                 with the key (a PKCS#12 keystore, a PKCS#11 certificate object)",
                profile.name
            )));
        }
        let x5t_s256 = leaf.as_deref().map(pkjwt_x509::x5t_s256);
        let x5t = leaf
            .as_deref()
            .filter(|_| profile.require_x5t_sha1)
            .map(pkjwt_x509::x5t_sha1);
        let kid = pkjwt::jwk::thumbprint(inner.public_key());
        let metrics = metrics.unwrap_or_default();
        let signer: Arc<dyn Signer> = Arc::new(TimedSigner {
            inner,
            metrics: metrics.clone(),
        });
        let mut cache_options = CacheOptions::default();
        cache_options.refresh_fraction = Some(settings.refresh_fraction);
        cache_options.jitter = settings.jitter;
        Ok(ProfileRt {
            name: name.to_owned(),
            config: config.clone(),
            key_uri,
            kid,
            metrics,
            signer,
            x5t_s256,
            x5t,
            cache_options,
            slot: RwLock::new(Slot::Pending {
                error: "not discovered yet".into(),
                since: Instant::now(),
            }),
        })
    }

    fn client_config(&self) -> Result<ClientConfig, ClientError> {
        let profile = Profile::named(&self.config.server_profile)?;
        let mut cc =
            ClientConfig::new(&self.config.client_id, &self.config.issuer).profile(profile);
        cc.x5t_s256 = self.x5t_s256.clone();
        cc.x5t = self.x5t.clone();
        Ok(cc)
    }

    fn request(&self) -> TokenRequest {
        let mut req = TokenRequest::client_credentials();
        if let Some(s) = &self.config.scope {
            req = req.scope(s);
        }
        for r in &self.config.resources {
            req = req.resource(r);
        }
        req
    }

    /// Discovers the server (or takes `metadata` already known for it) and makes the profile
    /// ready.
    pub(crate) async fn connect(
        &self,
        metadata: Option<ServerMetadata>,
    ) -> Result<Arc<TokenCache>, ClientError> {
        let cc = self.client_config()?;
        let client = match metadata {
            Some(m) => TokenClient::with_metadata(self.signer.clone(), cc, m)?,
            None => TokenClient::discover(self.signer.clone(), cc).await?,
        };
        let cache = Arc::new(TokenCache::with_options(
            client,
            self.request(),
            self.cache_options.clone(),
        ));
        *self.slot_mut() = Slot::Ready(cache.clone());
        Ok(cache)
    }

    /// The token cache, or why there is none yet.
    pub(crate) fn cache(&self) -> Result<Arc<TokenCache>, String> {
        match &*self.slot() {
            Slot::Ready(c) => Ok(c.clone()),
            Slot::Pending { error, .. } => Err(error.clone()),
        }
    }

    /// `Some(seconds pending)` while the server has not been discovered.
    pub(crate) fn pending_for(&self) -> Option<Duration> {
        match &*self.slot() {
            Slot::Ready(_) => None,
            Slot::Pending { since, .. } => Some(since.elapsed()),
        }
    }

    fn set_pending(&self, error: String) {
        let mut g = self.slot_mut();
        let since = match &*g {
            Slot::Pending { since, .. } => *since,
            Slot::Ready(_) => Instant::now(),
        };
        *g = Slot::Pending { error, since };
    }

    fn slot(&self) -> std::sync::RwLockReadGuard<'_, Slot> {
        // Poisoned only by a panic while swapping the slot, which leaves a whole value.
        self.slot.read().unwrap_or_else(|p| p.into_inner())
    }

    fn slot_mut(&self) -> std::sync::RwLockWriteGuard<'_, Slot> {
        self.slot.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Discovery at start: ready at once when the server answers; otherwise pending (see
/// [`retry_in_background`]).
pub(crate) async fn connect_or_retry(p: &Arc<ProfileRt>) {
    if let Err(e) = p.connect(None).await {
        retry_in_background(p, &e);
    }
}

/// Marks `p` pending with the discovery error `e` and starts a task that retries until the
/// server answers, the profile is replaced (reload) or the agent stops (the task holds only a
/// weak reference).
pub(crate) fn retry_in_background(p: &Arc<ProfileRt>, e: &ClientError) {
    let text = pkjwt::display_chain(e);
    tracing::warn!(
        profile = %p.name,
        kind = e.kind(),
        error = %text,
        "authorization server not reachable; the profile answers 503 until discovery succeeds"
    );
    p.set_pending(format!("authorization server not discovered yet: {text}"));
    let weak: Weak<ProfileRt> = Arc::downgrade(p);
    tokio::spawn(async move {
        let mut wait = DISCOVERY_BACKOFF.0;
        loop {
            tokio::time::sleep(wait).await;
            let Some(p) = weak.upgrade() else { return };
            match p.connect(None).await {
                Ok(_) => {
                    tracing::info!(profile = %p.name, "authorization server discovered");
                    return;
                }
                Err(e) => {
                    let text = pkjwt::display_chain(&e);
                    tracing::debug!(profile = %p.name, error = %text, "discovery failed again");
                    p.set_pending(format!("authorization server not discovered yet: {text}"));
                }
            }
            wait = (wait * 2).min(DISCOVERY_BACKOFF.1);
        }
    });
}
