//! A `tower` layer that protects `axum` routes with RFC 9068 access tokens (feature `axum`).
//!
//! Requests without a valid `Authorization: Bearer <token>` get `401` with an RFC 6750 §3
//! `WWW-Authenticate: Bearer error="invalid_token", error_description="…"` header; a valid token
//! lacking a required scope gets `403` with `error="insufficient_scope"`. Accepted requests
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
            let Some(token) = bearer_token(&req) else {
                return Ok(challenge(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "missing Authorization: Bearer access token",
                ));
            };
            let required: Vec<&str> = scopes.iter().map(String::as_str).collect();
            match validator.validate_with_scopes(&token, &required).await {
                Ok(claims) => {
                    req.extensions_mut().insert(claims);
                    inner.call(req).await
                }
                Err(r @ Rejection::InsufficientScope { .. }) => Ok(challenge(
                    StatusCode::FORBIDDEN,
                    "insufficient_scope",
                    &r.to_string(),
                )),
                Err(r) => Ok(challenge(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    &r.to_string(),
                )),
            }
        })
    }
}

fn bearer_token(req: &Request<Body>) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// RFC 6750 §3 challenge. The description is reduced to visible ASCII without quotes or
/// backslashes, as the header grammar requires.
fn challenge(status: StatusCode, error: &str, description: &str) -> Response<Body> {
    let desc: String = description
        .chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect();
    let www = format!("Bearer error=\"{error}\", error_description=\"{desc}\"");
    let body = serde_json::json!({ "error": error, "error_description": description }).to_string();
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
