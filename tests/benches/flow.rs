//! Benchmark of the token flow against oidc-provider, all in one run so the ratios compare
//! (performance-baselines.md: only same-run ratios mean anything on these shared machines):
//!
//! - cached `TokenCache::token()` calls per second (one task, and two concurrent tasks);
//! - token requests per second made by `TokenClient::request` (a fresh ES256 assertion signed
//!   for every request, form building, response parsing);
//! - the same requests made by a bare `reqwest` POST with assertions signed beforehand, outside
//!   the timing — the difference is pkjwt's client overhead including signing.
//!
//! Rounds alternate between the two request paths; medians are printed.
//! Run: `cargo bench -p pkjwt-tests --bench flow` (needs `npm ci` in infra/oidc-provider).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use pkjwt::{Algorithm, Jwk, KeyUri, OpenOptions};
use pkjwt_client::{CLIENT_ASSERTION_TYPE, ClientConfig, TokenCache, TokenClient, TokenRequest};
use pkjwt_conformance::oidc_provider::{OidcProvider, client_metadata};
use pkjwt_jwks::{JwksService, ServeOptions};
use serde_json::json;

// Even, so each path goes first equally often (oidc-provider slows slightly as its in-memory
// store grows, which would favour whichever path always ran first).
const ROUNDS: usize = 4;
const PER_ROUND: usize = 300;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n.is_multiple_of(2) {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    } else {
        v[n / 2]
    }
}

fn pct(lat: &mut [Duration], p: f64) -> Duration {
    lat.sort();
    lat[((lat.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let dir = std::env::temp_dir().join(format!("pkjwt-bench-flow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let uri = format!("file:{}", dir.join("k.pem").display());
    let signer = pkjwt::generate(
        &KeyUri::parse(&uri).unwrap(),
        Algorithm::ES256,
        &OpenOptions::default(),
    )
    .await
    .unwrap();
    let svc = JwksService::new(
        vec![Jwk::for_signing(signer.public_key(), Algorithm::ES256)],
        None,
        ServeOptions::default(),
    )
    .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_uri = format!("http://{}/jwks", l.local_addr().unwrap());
    let router: Router = svc.router();
    tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
    let Some(op) = OidcProvider::start(&json!({
        "clients": [client_metadata("bench", &jwks_uri, "ES256", "accounts:read")],
        "resources": { "https://api.example.com": { "scope": "accounts:read" } },
    })) else {
        return;
    };

    let client = Arc::new(
        TokenClient::discover(signer.clone(), ClientConfig::new("bench", &op.issuer))
            .await
            .unwrap(),
    );
    let req = TokenRequest::client_credentials().scope("accounts:read");
    let http = reqwest::Client::new();
    let token_endpoint = client.metadata().token_endpoint.clone();
    for _ in 0..50 {
        client.request(&req).await.unwrap();
    }

    let (mut pk_rates, mut bare_rates) = (Vec::new(), Vec::new());
    let (mut pk_lat, mut bare_lat) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for path in if round.is_multiple_of(2) {
            [0, 1]
        } else {
            [1, 0]
        } {
            if path == 0 {
                let t = Instant::now();
                for _ in 0..PER_ROUND {
                    let s = Instant::now();
                    client.request(&req).await.unwrap();
                    pk_lat.push(s.elapsed());
                }
                pk_rates.push(PER_ROUND as f64 / t.elapsed().as_secs_f64());
            } else {
                // Assertions signed before the clock starts: the bare path only sends.
                let mut pre = Vec::with_capacity(PER_ROUND);
                for _ in 0..PER_ROUND {
                    pre.push(client.assertion().sign().await.unwrap());
                }
                let t = Instant::now();
                for a in pre {
                    let s = Instant::now();
                    let body = format!(
                        "grant_type=client_credentials&scope=accounts%3Aread&client_id=bench&\
                         client_assertion_type={}&client_assertion={a}",
                        CLIENT_ASSERTION_TYPE.replace(':', "%3A")
                    );
                    let r = http
                        .post(&token_endpoint)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 200);
                    let _ = r.bytes().await.unwrap();
                    bare_lat.push(s.elapsed());
                }
                bare_rates.push(PER_ROUND as f64 / t.elapsed().as_secs_f64());
            }
        }
    }

    // Cached token(): one task, then two concurrent tasks, 1 s each.
    let cache = Arc::new(TokenCache::new(client.clone(), req.clone()));
    cache.token().await.unwrap();
    let mut cached_1 = Vec::new();
    let mut cached_2 = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed() < Duration::from_millis(500) {
            for _ in 0..1000 {
                std::hint::black_box(cache.token().await.unwrap());
            }
            n += 1000;
        }
        cached_1.push(n as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let c = cache.clone();
                tokio::spawn(async move {
                    let t = Instant::now();
                    let mut n = 0u64;
                    while t.elapsed() < Duration::from_millis(500) {
                        for _ in 0..1000 {
                            std::hint::black_box(c.token().await.unwrap());
                        }
                        n += 1000;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for h in hs {
            total += h.await.unwrap();
        }
        cached_2.push(total as f64 / t.elapsed().as_secs_f64());
    }
    assert_eq!(
        client.requests_sent() as usize,
        50 + ROUNDS * PER_ROUND + 1,
        "the cache sent one request (its first token); the cached calls none"
    );

    let pk = median(pk_rates);
    let bare = median(bare_rates);
    println!(
        "## token flow benchmark ({ROUNDS} rounds x {PER_ROUND} sequential requests, medians)"
    );
    println!("| what | per second | mean | p50 | p99 |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, rate, lat) in [
        (
            "pkjwt TokenClient::request (fresh ES256 assertion each)",
            pk,
            &mut pk_lat,
        ),
        (
            "bare reqwest POST, assertion pre-signed",
            bare,
            &mut bare_lat,
        ),
    ] {
        let mean = lat.iter().sum::<Duration>() / lat.len() as u32;
        println!(
            "| {name} | {rate:.0} | {:.2} ms | {:.2} ms | {:.2} ms |",
            mean.as_secs_f64() * 1e3,
            pct(lat, 0.5).as_secs_f64() * 1e3,
            pct(lat, 0.99).as_secs_f64() * 1e3
        );
    }
    println!("| ratio pkjwt / bare | {:.2}x | | | |", pk / bare);
    println!(
        "| cached TokenCache::token(), 1 task | {:.0} | | | |",
        median(cached_1)
    );
    println!(
        "| cached TokenCache::token(), 2 tasks | {:.0} | | | |",
        median(cached_2)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
