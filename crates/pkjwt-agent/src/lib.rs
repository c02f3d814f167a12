//! `pkjwt agent`: one long-running process holds the keys (file, HSM or KMS) and the token
//! cache, and local processes in any language get access tokens from it over a Unix socket
//! (optionally also over HTTP on a loopback address) instead of each signing its own client
//! assertions. See docs/agent.md for the configuration, the API and the security model.
//!
//! - [`AgentConfig`]: the TOML configuration, checked at load.
//! - [`Agent::start`]: opens every profile's key, discovers its server (retrying in the
//!   background when it is down), binds the socket and serves `GET /token`, `POST /assertion`,
//!   `GET /status`, `GET /metrics` and `GET /healthz`.
//! - [`AgentHandle::reload`] (SIGHUP) and [`AgentHandle::watch`]: a new configuration, or a
//!   rotation state's next key, replaces only the profiles it changes; tokens still valid for
//!   the same client and request are kept.
//! - [`client`]: a small blocking client for the socket (`pkjwt token --agent`,
//!   `pkjwt agent status`).

pub mod client;
mod config;
mod metrics;
mod profile;
mod routes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime};

use axum::extract::connect_info::Connected;
use axum::middleware::from_fn_with_state;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{AgentConfig, AgentSettings, ConfigError, KeySource, ProfileConfig};
use metrics::AgentMetrics;
use profile::ProfileRt;

/// Why the agent could not start, or a reload was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A profile's key could not be opened.
    #[error("[profile.{profile}]: opening the key")]
    Key {
        /// The profile.
        profile: String,
        /// The backend's error.
        #[source]
        source: pkjwt::Error,
    },
    /// A profile's rotation state names no usable key.
    #[error("[profile.{profile}]: rotation_state: {reason}")]
    RotationState {
        /// The profile.
        profile: String,
        /// What was wrong.
        reason: String,
    },
    /// A profile's certificate could not be read or does not hold its key.
    #[error("[profile.{profile}]: certificate: {reason}")]
    Certificate {
        /// The profile.
        profile: String,
        /// What was wrong and what was expected.
        reason: String,
    },
    /// A profile's server could not be discovered or its settings do not work.
    #[error("[profile.{profile}]: authorization server {issuer}")]
    Server {
        /// The profile.
        profile: String,
        /// Its issuer.
        issuer: String,
        /// The client's error.
        #[source]
        source: Box<pkjwt_client::ClientError>,
    },
    /// The socket or the HTTP listener could not be set up.
    #[error("{what}: {reason}")]
    Listen {
        /// The path or address.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// A new configuration changes what only a restart can change.
    #[error("[agent]: {field} changed; restart the agent to apply it (nothing was reloaded)")]
    NeedsRestart {
        /// The field.
        field: &'static str,
    },
    /// The configuration file could not be loaded on reload.
    #[error("reloading the configuration (nothing was changed)")]
    Config(#[source] ConfigError),
}

type Profiles = BTreeMap<String, Arc<ProfileRt>>;

/// What the last reload did, for `/status` and the logs.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReloadReport {
    /// Unix time of the reload.
    pub at: u64,
    /// Whether it was applied.
    pub ok: bool,
    /// Why it was refused (an error chain without secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Profiles left untouched.
    pub kept: Vec<String>,
    /// Profiles rebuilt (changed settings or a new signing key).
    pub rebuilt: Vec<String>,
    /// Of the rebuilt, those whose valid token was carried over.
    pub tokens_kept: Vec<String>,
    /// New profiles.
    pub added: Vec<String>,
    /// Profiles no longer configured.
    pub removed: Vec<String>,
    /// Of the added and rebuilt, those whose server could not be discovered: they answer 503
    /// and retry in the background, as at start. Only a profile that was not serving can
    /// become pending; a serving one whose new server cannot be discovered refuses the reload.
    pub pending: Vec<String>,
}

pub(crate) struct Shared {
    profiles: RwLock<Arc<Profiles>>,
    pub(crate) metrics: AgentMetrics,
    allowed_uids: RwLock<Option<Vec<u32>>>,
    settings: Mutex<AgentSettings>,
    /// Serialises reloads (SIGHUP and the file watch may come together).
    reloading: tokio::sync::Mutex<()>,
    last_reload: Mutex<Option<ReloadReport>>,
    started: Instant,
}

impl Shared {
    pub(crate) fn profiles(&self) -> Arc<Profiles> {
        // Poisoned only by a panic while swapping the Arc, which leaves a whole value.
        self.profiles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn allowed_uids(&self) -> Option<Vec<u32>> {
        self.allowed_uids
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn last_reload(&self) -> Option<ReloadReport> {
        self.last_reload
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    fn settings(&self) -> AgentSettings {
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies `config`: see [`AgentHandle::reload`].
    async fn reload(&self, config: AgentConfig) -> Result<ReloadReport, AgentError> {
        let _one = self.reloading.lock().await;
        let result = self.apply(config).await;
        let report = match &result {
            Ok(r) => r.clone(),
            Err(e) => ReloadReport {
                at: unix_now(),
                ok: false,
                error: Some(pkjwt::display_chain(e)),
                ..ReloadReport::default()
            },
        };
        let counter = if report.ok {
            &self.metrics.reloads_ok
        } else {
            &self.metrics.reloads_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        match &result {
            Ok(r) => tracing::info!(
                kept = ?r.kept,
                rebuilt = ?r.rebuilt,
                tokens_kept = ?r.tokens_kept,
                added = ?r.added,
                removed = ?r.removed,
                pending = ?r.pending,
                "configuration reloaded"
            ),
            Err(e) => tracing::warn!(
                error = %pkjwt::display_chain(e),
                "reload refused; the previous configuration keeps serving"
            ),
        }
        if !report.ok {
            // A successful one was recorded by `apply`, together with the swap.
            *self.last_reload.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
        }
        result
    }

    async fn apply(&self, config: AgentConfig) -> Result<ReloadReport, AgentError> {
        let old_settings = self.settings();
        let new = &config.agent;
        // What is bound at start cannot change under running callers.
        let fixed: [(&'static str, bool); 5] = [
            ("socket", old_settings.socket != new.socket),
            ("socket_mode", old_settings.socket_mode != new.socket_mode),
            (
                "socket_group",
                old_settings.socket_group != new.socket_group,
            ),
            ("http_listen", old_settings.http_listen != new.http_listen),
            (
                "watch_interval",
                old_settings.watch_interval != new.watch_interval,
            ),
        ];
        if let Some((field, _)) = fixed.iter().find(|(_, changed)| *changed) {
            return Err(AgentError::NeedsRestart { field });
        }
        let cache_settings_changed = old_settings.refresh_fraction != new.refresh_fraction
            || old_settings.jitter != new.jitter;
        let old = self.profiles();
        let now = unix_now_i64();
        let mut next = Profiles::new();
        let mut pending = Vec::new();
        let mut report = ReloadReport {
            at: unix_now(),
            ok: true,
            ..ReloadReport::default()
        };
        // Everything is opened before anything is swapped: a reload that fails anywhere
        // changes nothing.
        for (name, pc) in &config.profiles {
            let key_uri = resolve_key(name, pc, now)?;
            let previous = old.get(name);
            if let Some(p) = previous
                && !cache_settings_changed
                && p.config == *pc
                && p.key_uri == key_uri
            {
                next.insert(name.clone(), p.clone());
                report.kept.push(name.clone());
                continue;
            }
            let rt = Arc::new(
                ProfileRt::open(name, pc, key_uri, new, previous.map(|p| p.metrics.clone()))
                    .await?,
            );
            // The same server: its metadata is reused (a rotated key needs no new discovery,
            // and a server that is down does not block the rotation).
            let same = previous.filter(|p| p.config.same_token_as(pc));
            let old_cache = same.and_then(|p| p.cache().ok());
            let metadata = old_cache.as_ref().map(|c| c.client().metadata().clone());
            // A profile that serves now is not replaced by one that cannot: the reload is
            // refused and the running one keeps its token. One that does not serve (new, or
            // pending since start) becomes pending, as at start, so a server that is down
            // does not block the rest of the reload (another profile's rotation, say).
            let serving = previous.is_some_and(|p| p.cache().is_ok());
            match rt.connect(metadata).await {
                Ok(cache) => {
                    if let Some(old_cache) = old_cache
                        && cache.take_over(&old_cache)
                    {
                        report.tokens_kept.push(name.clone());
                    }
                }
                Err(e) if !serving => {
                    report.pending.push(name.clone());
                    pending.push((rt.clone(), e));
                }
                Err(e) => {
                    return Err(AgentError::Server {
                        profile: name.clone(),
                        issuer: pc.issuer.clone(),
                        source: Box::new(e),
                    });
                }
            }
            if previous.is_some() {
                report.rebuilt.push(name.clone());
            } else {
                report.added.push(name.clone());
            }
            next.insert(name.clone(), rt);
        }
        report.removed = old
            .keys()
            .filter(|k| !next.contains_key(*k))
            .cloned()
            .collect();
        // Counters of the caches being replaced carry over into the profile's totals.
        for name in report.rebuilt.iter() {
            if let (Some(p), Some(n)) = (old.get(name), next.get(name))
                && let Ok(c) = p.cache()
            {
                n.metrics.retire(c.stats());
            }
        }
        // The report first: whoever sees the new profiles also sees the reload that made them.
        *self.last_reload.lock().unwrap_or_else(|p| p.into_inner()) = Some(report.clone());
        *self.profiles.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        *self.allowed_uids.write().unwrap_or_else(|p| p.into_inner()) = new.allowed_uids.clone();
        *self.settings.lock().unwrap_or_else(|p| p.into_inner()) = new.clone();
        // Retries start only once the reload is applied: a refused one leaves no task behind.
        for (rt, e) in &pending {
            profile::retry_in_background(rt, e);
        }
        Ok(report)
    }

    /// True when the signing key of a rotation-state profile is no longer the one in use.
    fn rotation_due(&self) -> bool {
        let now = unix_now_i64();
        self.profiles().iter().any(|(_, p)| {
            matches!(p.config.key, KeySource::RotationState(_))
                && p.config.key.resolve(now).is_ok_and(|uri| uri != p.key_uri)
        })
    }
}

fn resolve_key(name: &str, pc: &ProfileConfig, now: i64) -> Result<String, AgentError> {
    pc.key
        .resolve(now)
        .map_err(|reason| AgentError::RotationState {
            profile: name.to_owned(),
            reason,
        })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unix_now_i64() -> i64 {
    i64::try_from(unix_now()).unwrap_or(i64::MAX)
}

/// The agent (see the crate documentation).
#[derive(Debug)]
pub struct Agent;

/// A running agent: reload it with [`AgentHandle::reload`], stop it with
/// [`AgentHandle::shutdown`].
pub struct AgentHandle {
    socket: PathBuf,
    http: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHandle")
            .field("socket", &self.socket)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl AgentHandle {
    /// The Unix socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The HTTP address, when `http_listen` is configured (the real port when it was 0).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }

    /// Applies a new configuration without dropping callers or valid tokens. A profile whose
    /// table and signing key are unchanged is kept as it is (its token cache included); a
    /// changed one is opened and connected anew, and when it is still the same client asking
    /// for the same token (issuer, client_id, scope, resources, server profile) its valid token
    /// is carried over. Everything is opened before anything is swapped: on any error nothing
    /// changes and the previous configuration keeps serving. `[agent]` fields bound at start
    /// (socket, its mode and group, http_listen, watch_interval) cannot change: such a
    /// configuration is refused ([`AgentError::NeedsRestart`]); allowed_uids applies at once.
    pub async fn reload(&self, config: AgentConfig) -> Result<ReloadReport, AgentError> {
        self.shared.reload(config).await
    }

    /// Reads `path` and [reloads](Self::reload) it (SIGHUP).
    pub async fn reload_from(&self, path: &Path) -> Result<ReloadReport, AgentError> {
        match AgentConfig::load(path) {
            Ok(c) => self.reload(c).await,
            Err(e) => {
                // Recorded like any refused reload.
                let e = AgentError::Config(e);
                self.shared
                    .metrics
                    .reloads_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %pkjwt::display_chain(&e), "reload refused");
                *self
                    .shared
                    .last_reload
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(ReloadReport {
                    at: unix_now(),
                    ok: false,
                    error: Some(pkjwt::display_chain(&e)),
                    ..ReloadReport::default()
                });
                Err(e)
            }
        }
    }

    /// Every `watch_interval`, reloads when `path`'s contents changed or a profile's rotation
    /// state now names another signing key (a `pkjwt rotate` step, or the time at which the
    /// next key becomes active). A file that fails to load is reported once per change of its
    /// contents, not on every check. Does nothing when `watch_interval` is zero.
    pub fn watch(&mut self, path: PathBuf) {
        let interval = self.shared.settings().watch_interval;
        if interval.is_zero() {
            return;
        }
        let shared = self.shared.clone();
        let mut stopped = self.stop.subscribe();
        self.tasks.push(tokio::spawn(async move {
            let mut seen = std::fs::read(&path).ok();
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.wait_for(|s| *s) => return Ok(()),
                }
                let now = std::fs::read(&path).ok();
                let file_changed = now != seen;
                if !file_changed && !shared.rotation_due() {
                    continue;
                }
                seen = now;
                match AgentConfig::load(&path) {
                    Ok(c) => {
                        let _ = shared.reload(c).await;
                    }
                    Err(e) => {
                        shared
                            .metrics
                            .reloads_failed
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            error = %pkjwt::display_chain(&e),
                            "the configuration file changed but does not load; the previous \
                             configuration keeps serving"
                        );
                    }
                }
            }
        }));
    }

    /// Stops accepting, lets the answers in progress finish, and removes the socket file.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        let mut result = Ok(());
        for t in self.tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(e) => result = Err(std::io::Error::other(e)),
            }
        }
        match std::fs::remove_file(&self.socket) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => result = result.and(Err(e)),
        }
        result
    }
}

/// The caller's user id on the Unix socket (SO_PEERCRED), `None` when the kernel did not say.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub(crate) Option<u32>);

impl Connected<axum::serve::IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, UnixListener>) -> Self {
        Peer(stream.io().peer_cred().ok().map(|c| c.uid()))
    }
}

impl Agent {
    /// Opens every profile's key, discovers its authorization server (a server that does not
    /// answer leaves its profile pending, retried in the background), binds the socket (and
    /// the HTTP listener) and starts serving on the current tokio runtime.
    pub async fn start(config: AgentConfig) -> Result<AgentHandle, AgentError> {
        let a = &config.agent;
        let now = unix_now_i64();
        let mut profiles = Profiles::new();
        for (name, p) in &config.profiles {
            let key_uri = resolve_key(name, p, now)?;
            let rt = Arc::new(ProfileRt::open(name, p, key_uri, a, None).await?);
            profile::connect_or_retry(&rt).await;
            profiles.insert(name.clone(), rt);
        }
        let shared = Arc::new(Shared {
            profiles: RwLock::new(Arc::new(profiles)),
            metrics: AgentMetrics::default(),
            allowed_uids: RwLock::new(a.allowed_uids.clone()),
            settings: Mutex::new(a.clone()),
            reloading: tokio::sync::Mutex::new(()),
            last_reload: Mutex::new(None),
            started: Instant::now(),
        });
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();

        let unix = bind_socket(a)?;
        let app = routes::routes(shared.clone())
            .layer(from_fn_with_state(shared.clone(), routes::check_peer));
        let mut rx = stopped.clone();
        tasks.push(tokio::spawn(async move {
            axum::serve(unix, app.into_make_service_with_connect_info::<Peer>())
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await
        }));

        let mut http = None;
        if let Some(addr) = a.http_listen {
            // Checked at load; checked again here because this is where traffic is accepted.
            if !addr.ip().is_loopback() {
                return Err(AgentError::Listen {
                    what: addr.to_string(),
                    reason: "not a loopback address".into(),
                });
            }
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| AgentError::Listen {
                    what: addr.to_string(),
                    reason: e.to_string(),
                })?;
            http = Some(l.local_addr().map_err(|e| AgentError::Listen {
                what: addr.to_string(),
                reason: e.to_string(),
            })?);
            let app = routes::routes(shared.clone());
            let mut rx = stopped.clone();
            tasks.push(tokio::spawn(async move {
                axum::serve(l, app)
                    .with_graceful_shutdown(async move {
                        let _ = rx.wait_for(|s| *s).await;
                    })
                    .await
            }));
        }
        tracing::info!(
            socket = %a.socket.display(),
            mode = format!("{:o}", a.socket_mode),
            profiles = shared.profiles().len(),
            http = ?http,
            "pkjwt agent listening"
        );
        Ok(AgentHandle {
            socket: a.socket.clone(),
            http,
            stop,
            tasks,
            shared,
        })
    }
}

/// Binds the socket in a fresh directory only the agent's user can enter, sets its mode (and
/// group), then renames it into place: no moment exists where the socket is reachable with
/// looser permissions than configured. A stale socket at the path is removed; anything else
/// there (or a socket another process still answers on) is refused.
fn bind_socket(a: &AgentSettings) -> Result<UnixListener, AgentError> {
    let path = &a.socket;
    let fail = |reason: String| AgentError::Listen {
        what: path.display().to_string(),
        reason,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(fail(
                    "another process is listening on this socket; stop it or choose another path"
                        .into(),
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| fail(format!("removing the stale socket: {e}")))?;
        }
        Ok(_) => {
            return Err(fail(
                "exists and is not a socket; refusing to replace it".into(),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    let parent = path
        .parent()
        .ok_or_else(|| fail("has no parent directory".into()))?;
    // Unique per process and call: two agents in one process (tests) may start together.
    static STAGING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let private = parent.join(format!(
        ".pkjwt-agent.{}.{}.tmp",
        std::process::id(),
        STAGING.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(|e| fail(format!("creating {}: {e}", private.display())))?;
    let staged = private.join("agent.sock");
    let result = (|| {
        let l =
            std::os::unix::net::UnixListener::bind(&staged).map_err(|e| format!("binding: {e}"))?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(a.socket_mode))
            .map_err(|e| format!("setting mode {:o}: {e}", a.socket_mode))?;
        if let Some(g) = a.socket_group {
            rustix::fs::chown(&staged, None, Some(rustix::fs::Gid::from_raw(g)))
                .map_err(|e| format!("setting group {g}: {e}"))?;
        }
        std::fs::rename(&staged, path).map_err(|e| format!("moving into place: {e}"))?;
        l.set_nonblocking(true)
            .map_err(|e| format!("non-blocking mode: {e}"))?;
        UnixListener::from_std(l).map_err(|e| format!("registering with tokio: {e}"))
    })();
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    result.map_err(fail)
}
