//! `pkjwt agent`: one long-running process holds the keys (file, HSM or KMS) and the token
//! cache, and local processes in any language get access tokens from it over a Unix socket
//! (optionally also over HTTP on a loopback address) instead of each signing its own client
//! assertions. See docs/agent.md for the configuration, the API and the security model.
//!
//! - [`AgentConfig`]: the TOML configuration, checked at load.
//! - [`Agent::start`]: opens every profile's key, discovers its server, binds the socket and
//!   serves `GET /token?profile=NAME`, `GET /metrics` and `GET /healthz`.
//! - [`client`]: a small blocking client for the socket (`pkjwt token --agent`).

pub mod client;
mod config;
mod metrics;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pkjwt_client::{
    CacheOptions, ClientConfig, Profile, Source, TokenCache, TokenClient, TokenRequest,
};
use serde_json::json;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{AgentConfig, AgentSettings, ConfigError, ProfileConfig};
use metrics::{AgentMetrics, ProfileMetrics, ProfileView, TimedSigner};

/// Why the agent could not start.
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
}

struct ProfileState {
    cache: Arc<TokenCache>,
    metrics: Arc<ProfileMetrics>,
}

struct Shared {
    profiles: BTreeMap<String, ProfileState>,
    metrics: AgentMetrics,
    allowed_uids: Option<Vec<u32>>,
}

/// The agent (see the crate documentation).
#[derive(Debug)]
pub struct Agent;

/// A running agent: stop it with [`AgentHandle::shutdown`].
#[derive(Debug)]
pub struct AgentHandle {
    socket: PathBuf,
    http: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
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
struct Peer(Option<u32>);

impl Connected<axum::serve::IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, UnixListener>) -> Self {
        Peer(stream.io().peer_cred().ok().map(|c| c.uid()))
    }
}

impl Agent {
    /// Opens every profile's key, discovers its authorization server, binds the socket (and
    /// the HTTP listener) and starts serving on the current tokio runtime.
    pub async fn start(config: AgentConfig) -> Result<AgentHandle, AgentError> {
        let a = &config.agent;
        let mut profiles = BTreeMap::new();
        for (name, p) in &config.profiles {
            profiles.insert(name.clone(), open_profile(name, p, a).await?);
        }
        let shared = Arc::new(Shared {
            profiles,
            metrics: AgentMetrics::default(),
            allowed_uids: a.allowed_uids.clone(),
        });
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();

        let unix = bind_socket(a)?;
        let app = routes(shared.clone()).layer(from_fn_with_state(shared.clone(), check_peer));
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
            let app = routes(shared.clone());
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
            profiles = shared.profiles.len(),
            http = ?http,
            "pkjwt agent listening"
        );
        Ok(AgentHandle {
            socket: a.socket.clone(),
            http,
            stop,
            tasks,
        })
    }
}

async fn open_profile(
    name: &str,
    p: &ProfileConfig,
    a: &AgentSettings,
) -> Result<ProfileState, AgentError> {
    let mut open = pkjwt::OpenOptions::default().alg(p.alg);
    open.file = open
        .file
        .allow_insecure_permissions(p.allow_insecure_key_permissions);
    let inner = pkjwt::open(&p.key, &open)
        .await
        .map_err(|source| AgentError::Key {
            profile: name.to_owned(),
            source,
        })?;
    let metrics = Arc::new(ProfileMetrics::default());
    let signer = Arc::new(TimedSigner {
        inner,
        metrics: metrics.clone(),
    });
    let server_err = |source| AgentError::Server {
        profile: name.to_owned(),
        issuer: p.issuer.clone(),
        source: Box::new(source),
    };
    let profile = Profile::named(&p.server_profile).map_err(server_err)?;
    let cc = ClientConfig::new(&p.client_id, &p.issuer).profile(profile);
    let client = TokenClient::discover(signer, cc)
        .await
        .map_err(server_err)?;
    let mut req = TokenRequest::client_credentials();
    if let Some(s) = &p.scope {
        req = req.scope(s);
    }
    for r in &p.resources {
        req = req.resource(r);
    }
    let mut o = CacheOptions::default();
    o.refresh_fraction = Some(a.refresh_fraction);
    o.jitter = a.jitter;
    Ok(ProfileState {
        cache: Arc::new(TokenCache::with_options(client, req, o)),
        metrics,
    })
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

fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/token", get(token))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(shared)
}

fn error(status: StatusCode, code: &str, description: String) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({ "error": code, "error_description": description })),
    )
        .into_response()
}

async fn check_peer(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(allowed) = &shared.allowed_uids {
        let ok = peer.0.is_some_and(|uid| allowed.contains(&uid));
        if !ok {
            shared.metrics.refused_peer.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(uid = ?peer.0, "caller refused: user id not in allowed_uids");
            let who = peer
                .0
                .map_or_else(|| "unknown".to_owned(), |u| u.to_string());
            return error(
                StatusCode::FORBIDDEN,
                "access_denied",
                format!("user id {who} is not in the agent's allowed_uids"),
            );
        }
    }
    next.run(req).await
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    profile: Option<String>,
}

async fn token(State(shared): State<Arc<Shared>>, Query(q): Query<TokenQuery>) -> Response {
    let Some(name) = q.profile else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing ?profile=NAME".into(),
        );
    };
    let Some(p) = shared.profiles.get(&name) else {
        shared
            .metrics
            .unknown_profile
            .fetch_add(1, Ordering::Relaxed);
        let known: Vec<&str> = shared.profiles.keys().map(String::as_str).collect();
        return error(
            StatusCode::NOT_FOUND,
            "unknown_profile",
            format!(
                "no profile {:?}; configured: {}",
                pkjwt::escape_controls(&name),
                known.join(", ")
            ),
        );
    };
    match p.cache.serve().await {
        Ok(served) => {
            let m = &p.metrics;
            m.served.fetch_add(1, Ordering::Relaxed);
            match served.source {
                Source::Cached => {
                    m.hits.fetch_add(1, Ordering::Relaxed);
                }
                Source::CachedRefreshDue => {
                    m.hits.fetch_add(1, Ordering::Relaxed);
                    m.hits_refresh_due.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            let t = &served.token;
            let mut body = json!({
                "access_token": t.access_token.secret(),
                "token_type": t.token_type,
            });
            if let Some(at) = t.expires_at() {
                body["expires_in"] = json!(at.saturating_duration_since(Instant::now()).as_secs());
            }
            if let Some(s) = &t.scope {
                body["scope"] = json!(s);
            }
            (
                StatusCode::OK,
                [(header::CACHE_CONTROL, "no-store")],
                axum::Json(body),
            )
                .into_response()
        }
        Err(e) => {
            p.metrics.unavailable.fetch_add(1, Ordering::Relaxed);
            // ClientError's text never holds a token, an assertion or a key (pkjwt-client's
            // rule), and server text in it is escaped.
            let chain = pkjwt::display_chain(&*e);
            tracing::warn!(profile = %name, kind = e.kind(), error = %chain, "no valid token");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "token_unavailable",
                format!("profile {name}: no valid token: {chain}"),
            )
        }
    }
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> Response {
    let views: Vec<ProfileView<'_>> = shared
        .profiles
        .iter()
        .map(|(name, p)| ProfileView {
            name,
            metrics: &p.metrics,
            cache: p.cache.stats(),
        })
        .collect();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(&shared.metrics, &views),
    )
        .into_response()
}
