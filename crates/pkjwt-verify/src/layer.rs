//! A `tower` layer that protects `axum` routes with RFC 9068 access tokens (feature `axum`).
//!
//! Requests without a token get `401` with a bare `WWW-Authenticate: Bearer` (RFC 6750 §3.1); a
//! malformed `Authorization` header gets `400` `invalid_request`; a refused token gets `401` with
//! `Bearer error="invalid_token"` and a fixed, generic `error_description` ("the access token is
//! expired" or "… is invalid"); a valid token lacking a required scope gets `403`
//! `insufficient_scope`; a key set or replay store that cannot be reached gets `503` without a
//! challenge. Responses never carry the rejection's detail (known kids, expected audience, JWKS
//! URL, transport errors, token values); the [`Rejection`] is put in the response's extensions
//! for the application to log. Accepted requests
//! carry the [`AccessTokenClaims`] in their extensions, which handlers take as an extractor.
//!
//! ```no_run
//! # async fn demo(validator: std::sync::Arc<pkjwt_verify::AccessTokenValidator>) {
//! use axum::{Router, routing::get};
//! use pkjwt_verify::{AccessTokenClaims, layer::AccessTokenLayer};
//!
//! async fn balance(claims: AccessTokenClaims) -> String {
//!     format!("hello {}", claims.client_id)
//! }
//! let app: Router = Router::new()
//!     .route("/balance", get(balance))
//!     .layer(AccessTokenLayer::new(validator).require_scopes(["accounts:read"]));
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::{HeaderValue, Request, Response, StatusCode, header, request::Parts};
use tower::{Layer, Service};

use crate::{AccessTokenClaims, AccessTokenValidator, Rejection};

/// Protects the wrapped routes; see the module documentation.
#[derive(Clone, Debug)]
pub struct AccessTokenLayer {
    validator: Arc<AccessTokenValidator>,
    scopes: Arc<[String]>,
}

impl AccessTokenLayer {
    /// A layer validating with `validator`.
    pub fn new(validator: Arc<AccessTokenValidator>) -> Self {
        AccessTokenLayer {
            validator,
            scopes: Arc::from(Vec::new()),
        }
    }

    /// Also requires these scopes on every request through this layer.
    pub fn require_scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }
}

impl<S> Layer<S> for AccessTokenLayer {
    type Service = AccessTokenService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessTokenService {
            inner,
            validator: self.validator.clone(),
            scopes: self.scopes.clone(),
        }
    }
}

/// The service [`AccessTokenLayer`] wraps around routes.
#[derive(Clone, Debug)]
pub struct AccessTokenService<S> {
    inner: S,
    validator: Arc<AccessTokenValidator>,
    scopes: Arc<[String]>,
}

impl<S> Service<Request<Body>> for AccessTokenService<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // The clone that was polled ready is the one that must be called (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let validator = self.validator.clone();
        let scopes = self.scopes.clone();
        Box::pin(async move {
            let token = match bearer_token(&req) {
                Credentials::Missing => return Ok(missing_token()),
                Credentials::Malformed => {
                    return Ok(challenge(
                        StatusCode::BAD_REQUEST,
                        Some(("invalid_request", "the Authorization header is malformed")),
                    ));
                }
                Credentials::Token(t) => t,
            };
            let required: Vec<&str> = scopes.iter().map(String::as_str).collect();
            match validator.validate_with_scopes(&token, &required).await {
                Ok(claims) => {
                    req.extensions_mut().insert(claims);
                    inner.call(req).await
                }
                Err(r) => Ok(refusal(r)),
            }
        })
    }
}

/// What the `Authorization` header holds.
enum Credentials {
    /// No header, or another scheme (RFC 6750 §3.1: no error code).
    Missing,
    /// A `Bearer` header that is not `Bearer <token>`, or several headers.
    Malformed,
    Token(String),
}

fn bearer_token(req: &Request<Body>) -> Credentials {
    let mut all = req.headers().get_all(header::AUTHORIZATION).iter();
    let Some(v) = all.next() else {
        return Credentials::Missing;
    };
    if all.next().is_some() {
        return Credentials::Malformed;
    }
    let Ok(v) = v.to_str() else {
        return Credentials::Malformed;
    };
    let (scheme, token) = v.split_once(' ').unwrap_or((v, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Credentials::Missing;
    }
    let token = token.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Credentials::Malformed;
    }
    Credentials::Token(token.to_string())
}

fn missing_token() -> Response<Body> {
    challenge(StatusCode::UNAUTHORIZED, None)
}

/// The response to a refused token. Only a fixed description per class of failure goes out
/// (never the rejection text: it names known kids, expected audiences, JWKS URLs, transport
/// errors and values taken from the token). The full [`Rejection`] rides along in the
/// response's extensions, for the application's logging middleware.
fn refusal(r: Rejection) -> Response<Body> {
    // The caller gets a fixed description; the detail goes to the log (escaped: it quotes the
    // token's own header and claims) and to the response's extensions.
    tracing::warn!(
        kind = r.kind(),
        rejection = %pkjwt_core::escape_controls(&r.to_string()),
        "access token refused"
    );
    let mut resp = match &r {
        Rejection::InsufficientScope { .. } => challenge(
            StatusCode::FORBIDDEN,
            Some((
                "insufficient_scope",
                "the access token lacks a required scope",
            )),
        ),
        // Server-side failures: not the caller's fault, no challenge to answer.
        Rejection::KeySetUnavailable { .. } | Rejection::ReplayStoreUnavailable { .. } => {
            plain(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        }
        Rejection::InvalidPolicy { .. } => plain(StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
        Rejection::Expired { .. } => challenge(
            StatusCode::UNAUTHORIZED,
            Some(("invalid_token", "the access token is expired")),
        ),
        _ => challenge(
            StatusCode::UNAUTHORIZED,
            Some(("invalid_token", "the access token is invalid")),
        ),
    };
    resp.extensions_mut().insert(r);
    resp
}

/// A JSON error body without a challenge (5xx).
fn plain(status: StatusCode, error: &'static str) -> Response<Body> {
    let body = serde_json::json!({ "error": error }).to_string();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// RFC 6750 §3 challenge. `error` and its description are fixed strings of this module (visible
/// ASCII, no quotes or backslashes, as the header grammar requires); `None` is the bare
/// `Bearer` challenge of a request without credentials.
fn challenge(status: StatusCode, error: Option<(&'static str, &'static str)>) -> Response<Body> {
    let (www, body) = match error {
        Some((error, description)) => (
            format!("Bearer error=\"{error}\", error_description=\"{description}\""),
            serde_json::json!({ "error": error, "error_description": description }).to_string(),
        ),
        None => (
            "Bearer".to_owned(),
            serde_json::json!({ "error": "unauthorized" }).to_string(),
        ),
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&www) {
        headers.insert(header::WWW_AUTHENTICATE, v);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

impl<S: Send + Sync> FromRequestParts<S> for AccessTokenClaims {
    type Rejection = (StatusCode, &'static str);

    /// The claims [`AccessTokenLayer`] stored; a route outside the layer gets a 500, since that
    /// is a server misconfiguration, not a client error.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<AccessTokenClaims>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "route is not behind AccessTokenLayer",
        ))
    }
}
