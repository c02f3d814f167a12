//! `pkjwt serve`: hosts the JWKS of the given keys, and of a rotation state file, on
//! `/jwks` and `/.well-known/jwks.json` (with `Cache-Control`) plus `/healthz`; optionally an
//! admin listener (status, reload) that may only bind a loopback address.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use pkjwt::{Algorithm, Jwk};
use pkjwt_jwks::{JwksService, ServeOptions, admin_router, check_admin_addr};

use crate::args::{CmdResult, KeysArgs};
use crate::output::unpinned_note;

#[derive(Args)]
#[command(mut_arg("key", |a| a
    .help("A key to publish (its public part); repeat for several. Key reference: file:PATH or a \
           backend's key URI (`pkjwt --help` lists the forms)")
    .required_unless_present("state")))]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    keys: KeysArgs,
    /// Also publish the keys of this rotation state file (`pkjwt rotate`), as its timestamps
    /// say; re-read whenever it changes.
    #[arg(long, env = "PKJWT_STATE", value_name = "FILE")]
    state: Option<PathBuf>,
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, env = "PKJWT_LISTEN", default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Admin listener (GET /status, POST /reload); loopback addresses only.
    #[arg(long, env = "PKJWT_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// Cache-Control max-age of the key set, in seconds. Rotations must pre-publish longer.
    #[arg(long, default_value_t = pkjwt_jwks::MIN_SERVER_JWKS_CACHE_SECS)]
    max_age: u64,
    /// Algorithm to pin in the --key keys' JWKs. Default: an EC or Ed25519 key's (the curve
    /// fixes it); none for an RSA key, whose JWK then verifies RS256 and PS256 alike.
    #[arg(long)]
    alg: Option<Algorithm>,
}

pub(crate) async fn run(a: ServeArgs) -> CmdResult {
    let mut keys = Vec::new();
    let mut notes = Vec::new();
    for s in a.keys.open_all(a.alg).await? {
        let jwk = Jwk::for_publication(s.public_key(), a.alg)?;
        // Not the URI: it may carry a pin-value. The kid names the key.
        notes.extend(unpinned_note(&jwk));
        keys.push(jwk);
    }
    // Before the "serving" line, which callers wait for: nothing is printed after it at
    // startup, so a caller may stop reading stderr there.
    for note in notes {
        eprintln!("pkjwt: {note}");
    }
    let mut opts = ServeOptions::default();
    opts.max_age_secs = a.max_age;
    let service = JwksService::new(keys, a.state.clone(), opts)?;

    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", a.listen))?;
    let addr = listener.local_addr()?;
    let admin = match a.admin_listen {
        Some(admin_addr) => {
            check_admin_addr(admin_addr)?;
            let l = tokio::net::TcpListener::bind(admin_addr)
                .await
                .map_err(|e| format!("cannot listen on {admin_addr}: {e}"))?;
            eprintln!("pkjwt: admin listener on http://{}/status", l.local_addr()?);
            let router = admin_router(service.clone());
            Some(tokio::spawn(async move {
                axum::serve(l, router)
                    .with_graceful_shutdown(shutdown())
                    .await
            }))
        }
        None => None,
    };
    let n = service.jwks().map(|s| s.keys().len()).unwrap_or(0);
    // One line scripts can wait for and parse.
    eprintln!("pkjwt: serving JWKS ({n} keys now) at http://{addr}/jwks");
    axum::serve(listener, service.router())
        .with_graceful_shutdown(shutdown())
        .await?;
    if let Some(h) = admin {
        h.abort();
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM (also used by `pkjwt agent`).
pub(crate) async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
