//! The HTTP side: the public router (`/jwks`, `/.well-known/jwks.json`, `/healthz`) and the
//! admin router (`/status`, `/reload`) that belongs on a separate loopback listener.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pkjwt_core::{Clock, Jwk, JwkSet, SystemClock};
use serde_json::{Value, json};

use crate::JwksError;
use crate::rotation::{MIN_SERVER_JWKS_CACHE_SECS, RotationState};

/// Settings of the JWKS service.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServeOptions {
    /// `Cache-Control: max-age` of the key set, in seconds. Default 60 (oidc-provider's floor).
    /// A rotation's pre-publication time must exceed it.
    pub max_age_secs: u64,
    /// Time source (tests).
    pub clock: Arc<dyn Clock>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_age_secs: MIN_SERVER_JWKS_CACHE_SECS,
            clock: Arc::new(SystemClock),
        }
    }
}

#[derive(Default)]
struct Loaded {
    stamp: Option<(SystemTime, u64)>,
    state: RotationState,
    error: Option<String>,
}

struct Inner {
    static_keys: Vec<Jwk>,
    state_path: Option<PathBuf>,
    loaded: Mutex<Loaded>,
    options: ServeOptions,
}

/// Serves a JWKS made of fixed keys plus the keys a rotation state file publishes at the time
/// of each request. Cheap to clone.
#[derive(Clone)]
pub struct JwksService {
    inner: Arc<Inner>,
}

impl fmt::Debug for JwksService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksService")
            .field("static_keys", &self.inner.static_keys.len())
            .field("state_path", &self.inner.state_path)
            .finish_non_exhaustive()
    }
}

impl JwksService {
    /// A service for `static_keys` (always published) and, optionally, the keys of the
    /// rotation state at `state_path` (re-read whenever the file changes; a missing file is an
    /// empty state). Fails when the keys or the state cannot make a valid JWKS.
    pub fn new(
        static_keys: Vec<Jwk>,
        state_path: Option<PathBuf>,
        options: ServeOptions,
    ) -> Result<Self, JwksError> {
        for k in &static_keys {
            let Some(kid) = k.kid.as_deref().filter(|s| !s.is_empty()) else {
                return Err(JwksError::Rotation(
                    "every published key needs a kid".into(),
                ));
            };
            // The keys are served as they are: the same check a rotation state file's keys get
            // (no private or symmetric member, key material a verifier can use).
            k.check_public().map_err(|e| JwksError::NotPublic {
                kid: kid.to_owned(),
                reason: e.to_string(),
            })?;
        }
        let s = JwksService {
            inner: Arc::new(Inner {
                static_keys,
                state_path,
                loaded: Mutex::new(Loaded::default()),
                options,
            }),
        };
        s.refresh();
        if let Some(e) = s.lock().error.clone() {
            return Err(JwksError::Rotation(e));
        }
        s.jwks()?;
        Ok(s)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        // The data stays consistent even if a holder panicked: each update is one assignment.
        self.inner.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-reads the state file if it changed. A file that cannot be read keeps the last good
    /// state in service and is reported by `/healthz`.
    pub fn refresh(&self) {
        let Some(path) = &self.inner.state_path else {
            return;
        };
        let stamp = match std::fs::metadata(path) {
            Ok(m) => Some((m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                self.lock().error = Some(format!("cannot read {}: {e}", path.display()));
                return;
            }
        };
        let mut g = self.lock();
        if g.stamp == stamp && g.error.is_none() && stamp.is_some() {
            return;
        }
        match stamp {
            None => {
                *g = Loaded::default();
            }
            Some(_) => match RotationState::load(path) {
                Ok(state) => {
                    *g = Loaded {
                        stamp,
                        state,
                        error: None,
                    }
                }
                Err(e) => g.error = Some(e.to_string()),
            },
        }
    }

    /// The rotation state as last read.
    pub fn state(&self) -> RotationState {
        self.lock().state.clone()
    }

    /// The key set published now.
    pub fn jwks(&self) -> Result<JwkSet, JwksError> {
        let now = self.inner.options.clock.now();
        let g = self.lock();
        let mut keys = self.inner.static_keys.clone();
        keys.extend(g.state.published(now).map(|k| k.jwk.clone()));
        JwkSet::new(keys).map_err(|e| JwksError::Rotation(e.to_string()))
    }

    /// Status for operators: every key with its phase.
    pub fn status(&self) -> Value {
        let now = self.inner.options.clock.now();
        let g = self.lock();
        let signing = g.state.signing(now).map(|k| k.kid().to_owned());
        json!({
            "now": now,
            "static_keys": self.inner.static_keys.iter().map(|k| k.kid.clone()).collect::<Vec<_>>(),
            "signing_kid": signing,
            "state_error": g.error,
            "keys": g.state.keys.iter().map(|k| json!({
                "kid": k.kid(),
                "uri": k.uri,
                "phase": k.phase(now, signing.as_deref()),
                "published_at": k.published_at,
                "active_from": k.active_from,
                "retire_at": k.retire_at,
            })).collect::<Vec<_>>(),
        })
    }

    /// The public router: `GET /jwks`, `GET /.well-known/jwks.json`, `GET /healthz`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/jwks", get(jwks))
            .route("/.well-known/jwks.json", get(jwks))
            .route("/healthz", get(healthz))
            .with_state(self.clone())
    }
}

async fn jwks(State(s): State<JwksService>) -> Response {
    s.refresh();
    match s.jwks() {
        Ok(set) => {
            let cc = format!("public, max-age={}", s.inner.options.max_age_secs);
            let mut r = (StatusCode::OK, set.to_json()).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Ok(v) = HeaderValue::from_str(&cc) {
                h.insert(header::CACHE_CONTROL, v);
            }
            r
        }
        Err(e) => {
            // The detail (kids, file paths) is for operators, not for whoever asks.
            tracing::error!(error = %e, "cannot serve the JWKS");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

async fn healthz(State(s): State<JwksService>) -> Response {
    s.refresh();
    let error = s.lock().error.clone();
    let n = s.jwks().map(|j| j.keys().len());
    match (error, n) {
        (None, Ok(n)) if n > 0 => {
            (StatusCode::OK, format!("ok: {n} keys published\n")).into_response()
        }
        (None, Ok(_)) => (StatusCode::SERVICE_UNAVAILABLE, "no key published\n").into_response(),
        // The state error names file paths and key URIs: log it, answer generically (the
        // public listener is unauthenticated; operators have the admin `/status`).
        (Some(e), _) => {
            tracing::error!(error = %e, "healthz: rotation state cannot be read");
            (StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n").into_response()
        }
        (None, Err(e)) => {
            tracing::error!(error = %e, "healthz: the key set cannot be served");
            (StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n").into_response()
        }
    }
}

/// The admin router: `GET /status` (keys and phases as JSON), `POST /reload` (re-read the
/// state file now). Serve it on its own listener bound to a loopback address
/// ([`check_admin_addr`]); it must never be merged into the public router.
pub fn admin_router(service: JwksService) -> Router {
    Router::new()
        .route(
            "/status",
            get(|State(s): State<JwksService>| async move {
                s.refresh();
                axum::Json(s.status())
            }),
        )
        .route(
            "/reload",
            post(|State(s): State<JwksService>| async move {
                s.refresh();
                axum::Json(s.status())
            }),
        )
        .with_state(service)
}

/// Refuses an admin listen address that is not loopback.
pub fn check_admin_addr(addr: SocketAddr) -> Result<(), JwksError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(JwksError::Rotation(format!(
            "the admin listener must bind a loopback address (127.0.0.1 or ::1), not {addr}"
        )))
    }
}
