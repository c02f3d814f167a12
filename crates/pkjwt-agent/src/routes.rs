//! The agent's HTTP API (the same on the Unix socket and the loopback listener): `GET /token`,
//! `POST /assertion`, `GET /status`, `GET /metrics`, `GET /healthz`. Every answer carries
//! `Cache-Control: no-store`; errors are `{"error", "error_description"}`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pkjwt_client::Source;
use serde_json::json;

use crate::profile::ProfileRt;
use crate::{Peer, Shared, metrics};

pub(crate) fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/token", get(token))
        .route("/assertion", post(assertion))
        .route("/status", get(status))
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

fn ok(body: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

pub(crate) async fn check_peer(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(allowed) = shared.allowed_uids() {
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

/// How a caller names the profile: by name, or by what the token is for.
#[derive(serde::Deserialize)]
struct Select {
    profile: Option<String>,
    /// A resource indicator the profile asks for (RFC 8707), the token's audience.
    #[serde(alias = "resource")]
    audience: Option<String>,
    /// The profile's scope, exactly as configured.
    scope: Option<String>,
}

/// The one profile that `q` selects, or the error answer (returned straight to the caller, on
/// a path that is not hot: no need to box it).
#[allow(clippy::result_large_err)]
fn select(shared: &Shared, q: &Select) -> Result<Arc<ProfileRt>, Response> {
    let profiles = shared.profiles();
    let unknown = |what: String| {
        shared
            .metrics
            .unknown_profile
            .fetch_add(1, Ordering::Relaxed);
        let known: Vec<&str> = profiles.keys().map(String::as_str).collect();
        error(
            StatusCode::NOT_FOUND,
            "unknown_profile",
            format!("{what}; configured: {}", known.join(", ")),
        )
    };
    if q.profile.is_none() && q.audience.is_none() && q.scope.is_none() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "name the profile: ?profile=NAME, or ?audience=URI and/or ?scope=SCOPE".into(),
        ));
    }
    // The common case, by name alone: one map lookup on the cached-token path.
    if let (Some(name), None, None) = (&q.profile, &q.audience, &q.scope) {
        return profiles
            .get(name)
            .cloned()
            .ok_or_else(|| unknown(format!("no profile {:?}", pkjwt::escape_controls(name))));
    }
    let matching: Vec<&Arc<ProfileRt>> = profiles
        .values()
        .filter(|p| q.profile.as_ref().is_none_or(|n| *n == p.name))
        .filter(|p| {
            q.audience
                .as_ref()
                .is_none_or(|a| p.config.resources.iter().any(|r| r == a))
        })
        .filter(|p| {
            q.scope
                .as_ref()
                .is_none_or(|s| p.config.scope.as_deref() == Some(s.as_str()))
        })
        .collect();
    let asked = || {
        let mut parts = Vec::new();
        if let Some(n) = &q.profile {
            parts.push(format!("profile {:?}", pkjwt::escape_controls(n)));
        }
        if let Some(a) = &q.audience {
            parts.push(format!("audience {:?}", pkjwt::escape_controls(a)));
        }
        if let Some(s) = &q.scope {
            parts.push(format!("scope {:?}", pkjwt::escape_controls(s)));
        }
        parts.join(" and ")
    };
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(unknown(format!("no profile with {}", asked()))),
        many => {
            let names: Vec<&str> = many.iter().map(|p| p.name.as_str()).collect();
            Err(error(
                StatusCode::CONFLICT,
                "ambiguous_profile",
                format!(
                    "{} matches several profiles ({}); add ?profile=NAME",
                    asked(),
                    names.join(", ")
                ),
            ))
        }
    }
}

async fn token(State(shared): State<Arc<Shared>>, Query(q): Query<Select>) -> Response {
    let p = match select(&shared, &q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let name = &p.name;
    let cache = match p.cache() {
        Ok(c) => c,
        Err(why) => {
            p.metrics.unavailable.fetch_add(1, Ordering::Relaxed);
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "token_unavailable",
                format!("profile {name}: {why}"),
            );
        }
    };
    match cache.serve().await {
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
            ok(body)
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

#[derive(serde::Deserialize)]
struct AssertionQuery {
    profile: Option<String>,
    audience: Option<String>,
}

/// `POST /assertion?profile=NAME&audience=URL`: a client assertion of the profile's client for
/// one of the audiences it allows, for callers that send their own token request.
async fn assertion(State(shared): State<Arc<Shared>>, Query(q): Query<AssertionQuery>) -> Response {
    let Some(name) = q.profile else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing ?profile=NAME".into(),
        );
    };
    let p = match select(
        &shared,
        &Select {
            profile: Some(name),
            audience: None,
            scope: None,
        },
    ) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let refuse = |status, code: &str, why: String| {
        p.metrics.assertions_refused.fetch_add(1, Ordering::Relaxed);
        error(status, code, format!("profile {}: {why}", p.name))
    };
    if !p.config.assertions {
        return refuse(
            StatusCode::FORBIDDEN,
            "assertions_disabled",
            "POST /assertion is off for this profile (assertions = true enables it)".into(),
        );
    }
    let Some(audience) = q.audience else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing ?audience=URL (the token endpoint or issuer the assertion is for)".into(),
        );
    };
    let cache = match p.cache() {
        Ok(c) => c,
        Err(why) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "assertion_unavailable",
                why,
            );
        }
    };
    let client = cache.client();
    let allowed: Vec<String> = if p.config.assertion_audiences.is_empty() {
        let m = client.metadata();
        vec![m.issuer.clone(), m.token_endpoint.clone()]
    } else {
        p.config.assertion_audiences.clone()
    };
    if !allowed.contains(&audience) {
        return refuse(
            StatusCode::FORBIDDEN,
            "audience_not_allowed",
            format!(
                "audience {:?} is not allowed; allowed: {}",
                pkjwt::escape_controls(&audience),
                allowed.join(", ")
            ),
        );
    }
    let signed = match client.assertion_for(&audience) {
        Ok(a) => a.sign().await.map_err(pkjwt_client::ClientError::from),
        Err(e) => Err(e),
    };
    match signed {
        Ok(jwt) => {
            p.metrics.assertions.fetch_add(1, Ordering::Relaxed);
            ok(json!({
                "assertion": jwt,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_id": p.config.client_id,
                "expires_in": client.config().profile.lifetime_secs,
            }))
        }
        Err(e) => {
            let chain = pkjwt::display_chain(&e);
            tracing::warn!(profile = %p.name, error = %chain, "assertion failed");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "assertion_unavailable",
                format!("signing failed: {chain}"),
            )
        }
    }
}

/// `GET /status`: what each profile is doing, without secrets (`pkjwt agent status`).
async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let mut profiles = serde_json::Map::new();
    for (name, p) in shared.profiles().iter() {
        let mut v = json!({
            "client_id": p.config.client_id,
            "issuer": p.config.issuer,
            "server_profile": p.config.server_profile,
            "key": {
                "backend": pkjwt::KeyUri::parse(&p.key_uri)
                    .map(|u| u.backend_name())
                    .unwrap_or("unknown"),
                "kid": p.kid,
                "from_rotation_state": matches!(p.config.key, crate::KeySource::RotationState(_)),
            },
        });
        if let Some(s) = &p.config.scope {
            v["scope"] = json!(s);
        }
        if !p.config.resources.is_empty() {
            v["resources"] = json!(p.config.resources);
        }
        match p.cache() {
            Ok(cache) => {
                v["state"] = json!("ready");
                let stats = p.metrics.totals(cache.stats());
                v["token_fetches"] = json!(stats.fetches);
                v["token_fetch_errors"] = json!(stats.fetch_errors);
                v["token"] = match cache.validity() {
                    Some(t) => json!({
                        "expires_in": t.expires_in.as_secs(),
                        "refresh_in": t.refresh_in.as_secs(),
                    }),
                    None => serde_json::Value::Null,
                };
            }
            Err(why) => {
                v["state"] = json!("pending");
                v["pending_secs"] = json!(p.pending_for().map_or(0, |d| d.as_secs()));
                v["error"] = json!(why);
            }
        }
        v["assertions"] = json!(p.config.assertions);
        profiles.insert(name.clone(), v);
    }
    ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": shared.uptime().as_secs(),
        "last_reload": shared.last_reload(),
        "profiles": profiles,
    }))
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> Response {
    let profiles = shared.profiles();
    let views: Vec<metrics::ProfileView<'_>> = profiles
        .iter()
        .map(|(name, p)| metrics::ProfileView {
            name,
            metrics: &p.metrics,
            cache: p
                .metrics
                .totals(p.cache().map(|c| c.stats()).unwrap_or_default()),
            ready: p.cache().is_ok(),
        })
        .collect();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(&shared.metrics, &views),
    )
        .into_response()
}
