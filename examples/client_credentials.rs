//! A service that calls an API with access tokens from an authorization server, authenticating
//! with `private_key_jwt`: discovery, a `client_credentials` token per request of the cache,
//! reused until shortly before it expires, one request for any number of concurrent callers.
//!
//! ```text
//! PKJWT_KEY='pkcs11:token=t;object=client?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=env:PIN' \
//! PKJWT_CLIENT_ID=my-client PKJWT_ISSUER=https://as.example.com PKJWT_SCOPE=accounts:read \
//!   cargo run -p pkjwt-examples --example client_credentials
//! ```
//!
//! The quick start (`infra/quickstart.sh`) makes such a key, client and server on 127.0.0.1.

use std::sync::Arc;

use pkjwt::OpenOptions;
use pkjwt_client::{ClientConfig, TokenCache, TokenClient, TokenRequest};

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let signer = pkjwt::open(&var("PKJWT_KEY")?, &OpenOptions::default()).await?;
    let config = ClientConfig::new(var("PKJWT_CLIENT_ID")?, var("PKJWT_ISSUER")?);
    // Discovery checks the issuer exactly, and that the server accepts private_key_jwt with
    // this key's algorithm, before anything is signed.
    let client = TokenClient::discover(signer, config).await?;
    let mut request = TokenRequest::client_credentials();
    if let Ok(scope) = std::env::var("PKJWT_SCOPE") {
        request = request.scope(scope);
    }
    let cache = Arc::new(TokenCache::new(client, request));

    // Ten callers at once: one token request; the others wait for its answer.
    let mut callers = Vec::new();
    for _ in 0..10 {
        let cache = cache.clone();
        callers.push(tokio::spawn(async move { cache.token().await }));
    }
    let mut tokens = Vec::new();
    for c in callers {
        tokens.push(c.await??);
    }
    let first = &tokens[0];
    if !tokens.iter().all(|t| Arc::ptr_eq(t, first)) {
        return Err("the callers did not share one token".into());
    }
    // The token itself stays out of output: Secret's Debug and Display hide it.
    println!(
        "{} callers, one shared token: {:?}, type {}, expires in {} s",
        tokens.len(),
        first.access_token,
        first.token_type,
        first.expires_in.map_or("?".into(), |s| s.to_string())
    );
    Ok(())
}
