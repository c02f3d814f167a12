//! A protected API: `GET /balance` requires an RFC 9068 access token from the authorization
//! server at `PKJWT_ISSUER` with audience `PKJWT_AUDIENCE` and scope `accounts:read`.
//!
//! ```text
//! PKJWT_ISSUER=http://127.0.0.1:3000 PKJWT_AUDIENCE=https://api.example.com \
//!   cargo run -p pkjwt-examples --example protected_api -- 127.0.0.1:8081
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8081/balance
//! ```
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use pkjwt_verify::layer::AccessTokenLayer;
use pkjwt_verify::{AccessTokenClaims, AccessTokenPolicy, AccessTokenValidator, FetchPolicy};

async fn balance(claims: AccessTokenClaims) -> String {
    format!(
        "{{\"client_id\":{:?},\"balance\":\"42.00 EUR\"}}\n",
        claims.client_id
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("PKJWT_ISSUER").map_err(|_| "set PKJWT_ISSUER")?;
    let audience = std::env::var("PKJWT_AUDIENCE").map_err(|_| "set PKJWT_AUDIENCE")?;
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    let validator = AccessTokenValidator::discover(
        &issuer,
        &audience,
        AccessTokenPolicy::default(),
        FetchPolicy::default(),
    )
    .await?;
    let app = Router::new()
        .route("/balance", get(balance))
        .layer(AccessTokenLayer::new(Arc::new(validator)).require_scopes(["accounts:read"]));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("protected API on http://{listen}/balance (issuer {issuer})");
    axum::serve(listener, app).await?;
    Ok(())
}
