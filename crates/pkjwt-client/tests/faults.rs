//! The token client against a local fake authorization server that misbehaves on purpose:
//! down, slow, 500 then 200, 429 with `Retry-After`, malformed JSON, no `access_token`, a clock
//! two minutes ahead; plus the JWT-bearer grant and the cache under failures. Each case must end
//! in a token or a clear error — no panic, no hang (every test has an outer time limit).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pkjwt_client::{
    CacheOptions, ClientConfig, ClientError, HttpOptions, RetryPolicy, Source, TokenCache,
    TokenClient, TokenRequest,
};
use pkjwt_core::{Algorithm, Signer};
use serde_json::{Value, json};

/// What the fake token endpoint does for one request.
#[derive(Clone)]
enum Reply {
    Ok {
        expires_in: u64,
    },
    Status(u16, &'static str, Option<&'static str>),
    Body(&'static str),
    Sleep(Duration),
    /// A token after a delay (a slow but successful refresh).
    SlowOk {
        delay: Duration,
        expires_in: u64,
    },
}

#[derive(Default)]
struct Fake {
    script: Mutex<VecDeque<Reply>>,
    /// Every form received.
    seen: Mutex<Vec<Vec<(String, String)>>>,
    issuer: Mutex<String>,
    /// Seconds the fake server's clock is ahead; assertions whose iat is further off than
    /// 30 s are refused, as a strict server would.
    clock_ahead: Mutex<i64>,
    /// Seconds added to the `Date` header only (a forged or wrong `Date`, no iat check).
    date_ahead: Mutex<i64>,
    counter: Mutex<u64>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let p = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .unwrap(),
    )
    .unwrap()
}

async fn metadata(State(f): State<Arc<Fake>>) -> axum::Json<Value> {
    let iss = f.issuer.lock().unwrap().clone();
    axum::Json(json!({
        "issuer": iss,
        "token_endpoint": format!("{iss}/token"),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        "grant_types_supported": ["client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer"],
    }))
}

async fn token(State(f): State<Arc<Fake>>, Form(form): Form<Vec<(String, String)>>) -> Response {
    f.seen.lock().unwrap().push(form.clone());
    let ahead = *f.clock_ahead.lock().unwrap();
    let mut headers = HeaderMap::new();
    let date_ahead = *f.date_ahead.lock().unwrap();
    let server_now = SystemTime::now() + Duration::from_secs((ahead + date_ahead).max(0) as u64);
    headers.insert(
        "date",
        HeaderValue::from_str(&httpdate::fmt_http_date(server_now)).unwrap(),
    );
    if ahead != 0 {
        let a = form
            .iter()
            .find(|(k, _)| k == "client_assertion")
            .unwrap()
            .1
            .clone();
        let iat = claims(&a)["iat"].as_i64().unwrap();
        if (iat - (now() + ahead)).abs() > 30 {
            return (
                StatusCode::UNAUTHORIZED,
                headers,
                r#"{"error":"invalid_client","error_description":"iat too far from now"}"#,
            )
                .into_response();
        }
    }
    let reply = f
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Reply::Ok { expires_in: 300 });
    let reply = match reply {
        Reply::SlowOk { delay, expires_in } => {
            tokio::time::sleep(delay).await;
            Reply::Ok { expires_in }
        }
        other => other,
    };
    match reply {
        Reply::Ok { expires_in } => {
            let n = {
                let mut c = f.counter.lock().unwrap();
                *c += 1;
                *c
            };
            let body = json!({"access_token": format!("token-{n}"), "token_type": "Bearer", "expires_in": expires_in});
            (StatusCode::OK, headers, body.to_string()).into_response()
        }
        Reply::Status(code, body, retry_after) => {
            if let Some(r) = retry_after {
                headers.insert("retry-after", HeaderValue::from_static(r));
            }
            (StatusCode::from_u16(code).unwrap(), headers, body).into_response()
        }
        Reply::Body(b) => (StatusCode::OK, headers, b).into_response(),
        Reply::Sleep(d) => {
            tokio::time::sleep(d).await;
            (StatusCode::OK, headers, "{}").into_response()
        }
        Reply::SlowOk { .. } => unreachable!("turned into Ok above"),
    }
}

async fn start(script: Vec<Reply>) -> Arc<Fake> {
    let fake = Arc::new(Fake::default());
    *fake.script.lock().unwrap() = script.into();
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(metadata))
        .route("/token", post(token))
        .with_state(fake.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    *fake.issuer.lock().unwrap() = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    fake
}

fn signer() -> Arc<dyn Signer> {
    let dir = std::env::temp_dir().join(format!(
        "pkjwt-client-faults-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pkjwt_core::KeyUri::File(uri) =
        pkjwt_core::KeyUri::parse(&format!("file:{}", dir.join("k.pem").display())).unwrap()
    else {
        unreachable!()
    };
    Arc::new(pkjwt_file::generate(&uri, Algorithm::ES256, &Default::default()).unwrap())
}

fn config(fake: &Fake) -> ClientConfig {
    let mut http = HttpOptions::default();
    http.timeout = Duration::from_millis(500);
    let mut retry = RetryPolicy::attempts(3);
    retry.base_delay = Duration::from_millis(20);
    retry.max_retry_after = Duration::from_secs(2);
    ClientConfig::new("c1", fake.issuer.lock().unwrap().clone())
        .http(http)
        .retry(retry)
}

async fn client(fake: &Fake) -> TokenClient {
    TokenClient::discover(signer(), config(fake)).await.unwrap()
}

fn jtis(fake: &Fake) -> Vec<String> {
    fake.seen
        .lock()
        .unwrap()
        .iter()
        .map(|f| {
            let a = &f.iter().find(|(k, _)| k == "client_assertion").unwrap().1;
            claims(a)["jti"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn cc() -> TokenRequest {
    TokenRequest::client_credentials().scope("s")
}

/// Runs `f` with an outer limit: a hang is a failure, not a stuck test run.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("the client hung")
}

#[tokio::test]
async fn server_down_is_a_network_error_after_bounded_retries() {
    // A port that was free a moment ago and is closed now.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let issuer = format!("http://127.0.0.1:{port}");
    let e = bounded(TokenClient::discover(
        signer(),
        ClientConfig::new("c1", &issuer),
    ))
    .await
    .unwrap_err();
    assert!(matches!(e, ClientError::Discovery { .. }), "{e}");
    assert!(e.to_string().contains("openid-configuration"), "{e}");
    assert!(e.to_string().contains("oauth-authorization-server"), "{e}");

    let meta = pkjwt_client::ServerMetadata::manual(&issuer, format!("{issuer}/token"));
    let mut cfg = ClientConfig::new("c1", &issuer);
    cfg.retry.base_delay = Duration::from_millis(10);
    let client = TokenClient::with_metadata(signer(), cfg, meta).unwrap();
    let t = Instant::now();
    let e = bounded(client.request(&cc())).await.unwrap_err();
    let ClientError::RetriesExhausted { attempts, last } = &e else {
        panic!("{e}")
    };
    assert_eq!(*attempts, 3);
    assert!(matches!(**last, ClientError::Network { .. }), "{last}");
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn slow_server_times_out() {
    let fake = start(vec![Reply::Sleep(Duration::from_secs(30)); 3]).await;
    let mut cfg = config(&fake);
    cfg.retry.max_attempts = 2;
    let client = TokenClient::discover(signer(), cfg).await.unwrap();
    let t = Instant::now();
    let e = bounded(client.request(&cc())).await.unwrap_err();
    let ClientError::RetriesExhausted { attempts: 2, last } = &e else {
        panic!("{e}")
    };
    assert!(matches!(**last, ClientError::Timeout { .. }), "{last}");
    assert!(e.to_string().contains("gave up after 2 attempts"));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[tokio::test]
async fn error_500_then_200_succeeds_with_a_new_assertion() {
    let fake = start(vec![Reply::Status(500, "oops", None)]).await;
    let c = client(&fake).await;
    let t = bounded(c.request(&cc())).await.unwrap();
    assert_eq!(t.access_token.secret(), "token-1");
    let j = jtis(&fake);
    assert_eq!(j.len(), 2);
    assert_ne!(j[0], j[1], "a retry must mint a new jti");
}

#[tokio::test]
async fn too_many_requests_honours_retry_after() {
    let fake = start(vec![Reply::Status(
        429,
        r#"{"error":"slow_down"}"#,
        Some("1"),
    )])
    .await;
    let c = client(&fake).await;
    let t = Instant::now();
    bounded(c.request(&cc())).await.unwrap();
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(c.requests_sent(), 2);

    // A Retry-After beyond what the client waits: an error naming it, at once.
    let fake = start(vec![Reply::Status(429, "{}", Some("3600"))]).await;
    let c = client(&fake).await;
    let t = Instant::now();
    let e = bounded(c.request(&cc())).await.unwrap_err().to_string();
    assert!(e.contains("retry after 3600s"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn client_errors_are_not_retried_and_keep_rfc6749_fields() {
    let fake = start(vec![Reply::Status(
        400,
        r#"{"error":"invalid_scope","error_description":"no such scope","error_uri":"https://as/doc"}"#,
        None,
    )])
    .await;
    let c = client(&fake).await;
    let e = bounded(c.request(&cc())).await.unwrap_err();
    let o = e.oauth().unwrap();
    assert_eq!(
        (o.status, o.error.as_str(), o.error_description.as_deref()),
        (400, "invalid_scope", Some("no such scope"))
    );
    assert_eq!(c.requests_sent(), 1);
}

#[tokio::test]
async fn malformed_json_and_missing_access_token_are_clear_errors() {
    let fake = start(vec![
        Reply::Body(r#"{"access_token": "abc"#),
        Reply::Body(r#"{"token_type":"Bearer","expires_in":60}"#),
    ])
    .await;
    let c = client(&fake).await;
    let e = bounded(c.request(&cc())).await.unwrap_err().to_string();
    assert!(e.contains("do not parse") && e.contains("HTTP 200"), "{e}");
    assert!(!e.contains("abc"), "the body may hold a token: {e}");
    let e = bounded(c.request(&cc())).await.unwrap_err().to_string();
    assert!(
        e.contains("no access_token") && e.contains("token_type, expires_in"),
        "{e}"
    );
    assert_eq!(c.requests_sent(), 2, "not retried");
}

#[tokio::test]
async fn server_clock_ahead_is_learned_from_date_and_the_request_succeeds() {
    let fake = start(vec![]).await;
    // Within the 60 s forward cap (MAX_FORWARD_SKEW_SECS), beyond the fake's 30 s tolerance.
    *fake.clock_ahead.lock().unwrap() = 45;
    let c = client(&fake).await;
    let t = bounded(c.request(&cc())).await.unwrap();
    assert_eq!(t.access_token.secret(), "token-1");
    assert!((c.clock_offset() - 45).abs() <= 2, "{}", c.clock_offset());
    // First attempt refused (clock off), second with the corrected clock accepted.
    assert_eq!(c.requests_sent(), 2);
}

#[tokio::test]
async fn jwt_bearer_grant_sends_the_user_assertion_and_authenticates_the_client() {
    let fake = start(vec![]).await;
    let c = client(&fake).await;
    bounded(c.request(&TokenRequest::jwt_bearer("alice").scope("s")))
        .await
        .unwrap();
    let form = fake.seen.lock().unwrap()[0].clone();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(
        get("grant_type").as_deref(),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    let grant = claims(&get("assertion").unwrap());
    assert_eq!(
        (grant["sub"].as_str(), grant["iss"].as_str()),
        (Some("alice"), Some("c1"))
    );
    let auth = claims(&get("client_assertion").unwrap());
    assert_eq!(auth["sub"], "c1");
    assert_ne!(grant["jti"], auth["jti"]);
}

#[tokio::test]
async fn cache_single_flight_expiry_and_no_poisoning() {
    let fake = start(vec![
        // The first refresh fails (three 503s exhaust the retries)…
        Reply::Status(503, "down", None),
        Reply::Status(503, "down", None),
        Reply::Status(503, "down", None),
        // …the next one succeeds, with a 2-second token.
        Reply::Ok { expires_in: 2 },
    ])
    .await;
    let cache = Arc::new(TokenCache::new(client(&fake).await, cc()));
    assert!(bounded(cache.token()).await.is_err());
    // Not poisoned: the next call fetches.
    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let c = cache.clone();
            tokio::spawn(async move { c.token().await.map(|t| t.access_token.secret().to_owned()) })
        })
        .collect();
    for h in calls {
        assert_eq!(bounded(h).await.unwrap().unwrap(), "token-1");
    }
    assert_eq!(
        cache.client().requests_sent(),
        4,
        "3 failed + exactly one for 1,000 callers"
    );
    // Refresh at half the lifetime (1 s): exactly one more request.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let c = cache.clone();
            tokio::spawn(async move { c.token().await.map(|t| t.access_token.secret().to_owned()) })
        })
        .collect();
    for h in calls {
        assert_eq!(bounded(h).await.unwrap().unwrap(), "token-2");
    }
    assert_eq!(cache.client().requests_sent(), 5);
}

/// `TokenCache::serve` (the agent's path): while a valid token exists no caller waits for a
/// refresh, even a slow one; a failed refresh leaves the valid token served, is counted by kind,
/// and is not retried before its back-off ends; one request at a time throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_never_waits_while_a_valid_token_exists_and_backs_off() {
    let fake = start(vec![
        Reply::Ok { expires_in: 4 },
        Reply::SlowOk {
            delay: Duration::from_millis(400),
            expires_in: 4,
        },
        Reply::Status(503, "down", None),
        Reply::Status(503, "down", None),
        Reply::Status(503, "down", None),
    ])
    .await;
    let mut o = CacheOptions::default();
    o.refresh_fraction = Some(0.25);
    o.jitter = 0.0;
    o.backoff_min = Duration::from_secs(10);
    let cache = Arc::new(TokenCache::with_options(client(&fake).await, cc(), o));
    let first = bounded(cache.serve()).await.unwrap();
    assert_eq!(first.source, Source::Fetched);
    assert_eq!(first.token.access_token.secret(), "token-1");

    let burst = |n: usize| {
        let cache = cache.clone();
        async move {
            let calls: Vec<_> = (0..n)
                .map(|_| {
                    let c = cache.clone();
                    tokio::spawn(async move { c.serve().await })
                })
                .collect();
            let mut out = Vec::new();
            for h in calls {
                let s = bounded(h).await.unwrap().unwrap();
                out.push((s.token.access_token.secret().to_owned(), s.source));
            }
            out
        }
    };
    // Past the refresh point (1 s of 4): the 400 ms refresh runs in the background.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    let r = burst(50).await;
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "callers waited {:?} for a refresh while a valid token existed",
        started.elapsed()
    );
    assert!(
        r.iter()
            .all(|(t, s)| t == "token-1" && *s == Source::CachedRefreshDue)
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = burst(10).await;
    assert!(
        r.iter()
            .all(|(t, s)| t == "token-2" && *s == Source::Cached),
        "{r:?}"
    );
    assert_eq!(
        cache.client().requests_sent(),
        2,
        "one refresh for 50 callers"
    );

    // token-2's refresh fails (three 503s): token-2 is still served, the failure counted.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = burst(20).await;
    assert!(r.iter().all(|(t, _)| t == "token-2"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cache.client().requests_sent(), 5);
    let stats = cache.stats();
    assert_eq!(stats.fetches, 3);
    assert_eq!(stats.fetch_errors.values().sum::<u64>(), 1, "{stats:?}");
    // Within the 10 s back-off: still token-2, and no further request.
    let r = burst(20).await;
    assert!(
        r.iter()
            .all(|(t, s)| t == "token-2" && *s == Source::CachedRefreshDue)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        cache.client().requests_sent(),
        5,
        "no request during the back-off"
    );
}

/// A plain OAuth 2.0 server (RFC 8414) without OpenID Connect discovery, whose issuer has a
/// path: `/.well-known/openid-configuration` answers 404, the metadata is at
/// `/.well-known/oauth-authorization-server/tenant-a` — discovery finds it and a token follows.
#[tokio::test]
async fn discovery_falls_back_to_rfc8414_metadata() {
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route(
            "/.well-known/oauth-authorization-server/tenant-a",
            get(metadata),
        )
        .route("/tenant-a/token", post(token))
        .with_state(fake.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/tenant-a", l.local_addr().unwrap());
    *fake.issuer.lock().unwrap() = issuer.clone();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    let c = bounded(TokenClient::discover(signer(), config(&fake)))
        .await
        .unwrap();
    assert_eq!(c.metadata().issuer, issuer);
    assert_eq!(c.metadata().token_endpoint, format!("{issuer}/token"));
    let t = bounded(c.request(&TokenRequest::client_credentials()))
        .await
        .unwrap();
    assert_eq!(t.access_token.secret(), "token-1");
    // The client assertion's audience is the issuer (with its path), as discovered.
    let form = fake.seen.lock().unwrap()[0].clone();
    let a = &form
        .iter()
        .find(|(k, _)| k == "client_assertion")
        .unwrap()
        .1;
    assert_eq!(claims(a)["aud"], issuer.as_str());
}

/// Certificate thumbprints in the assertion header: a profile that requires the SHA-1 `x5t`
/// (or `x5t#S256`) is refused before any request without it, and sends exactly the values
/// configured.
#[tokio::test]
async fn certificate_thumbprint_headers_follow_the_profile() {
    let fake = start(vec![]).await;
    let mut profile = pkjwt_client::Profile::named("entra").unwrap();
    profile.require_x5t_sha1 = true;
    let s256 = "rJ8QO0bS1OjFgLAvxVYr9FLHpVm3O7tAjypjfzKZfXw";
    let sha1 = "kGA6MYkF3qDJu6bIxvqspF9pzbM";
    // x5t#S256 alone is not enough for this profile.
    let mut c = config(&fake).profile(profile.clone());
    c.x5t_s256 = Some(s256.into());
    let e = bounded(TokenClient::discover(signer(), c))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("SHA-1 certificate thumbprint (x5t)"),
        "{e}"
    );
    assert!(fake.seen.lock().unwrap().is_empty(), "nothing was sent");
    // Both given: both sent, beside typ JWT and the token-endpoint audience of entra.
    let mut c = config(&fake).profile(profile);
    c.x5t_s256 = Some(s256.into());
    c.x5t = Some(sha1.into());
    let client = bounded(TokenClient::discover(signer(), c)).await.unwrap();
    bounded(client.request(&TokenRequest::client_credentials()))
        .await
        .unwrap();
    let form = fake.seen.lock().unwrap()[0].clone();
    let a = &form
        .iter()
        .find(|(k, _)| k == "client_assertion")
        .unwrap()
        .1;
    use base64::Engine;
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(a.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["x5t#S256"], s256);
    assert_eq!(header["x5t"], sha1);
    assert_eq!(header["typ"], "JWT");
    let iss = fake.issuer.lock().unwrap().clone();
    assert_eq!(claims(a)["aud"], format!("{iss}/token"));
}

const THIRTY_DAYS: i64 = 30 * 24 * 3600;

/// `iat` of the client assertion in the `n`th request the fake received.
fn iat(fake: &Fake, n: usize) -> i64 {
    let form = fake.seen.lock().unwrap()[n].clone();
    let a = &form
        .iter()
        .find(|(k, _)| k == "client_assertion")
        .unwrap()
        .1;
    claims(a)["iat"].as_i64().unwrap()
}

/// A 503 (a proxy, or an impostor) with `Date` 30 days ahead must not make the retry carry a
/// pre-dated assertion, valid 30 days later at the real server.
#[tokio::test]
async fn skew_from_a_503_with_date_30_days_ahead_is_not_learned() {
    let fake = start(vec![Reply::Status(503, "down", None)]).await;
    *fake.date_ahead.lock().unwrap() = THIRTY_DAYS;
    let c = client(&fake).await;
    bounded(c.request(&cc())).await.unwrap();
    assert_eq!(c.requests_sent(), 2);
    assert_eq!(c.clock_offset(), 0);
    assert!(
        (iat(&fake, 1) - now()).abs() <= 5,
        "{}",
        iat(&fake, 1) - now()
    );
}

/// Even a 200 token response cannot move the clock beyond the cap.
#[tokio::test]
async fn skew_beyond_the_cap_is_ignored_even_from_a_200() {
    let fake = start(vec![]).await;
    *fake.date_ahead.lock().unwrap() = THIRTY_DAYS;
    let c = client(&fake).await;
    bounded(c.request(&cc())).await.unwrap();
    assert_eq!(c.clock_offset(), 0);
    bounded(c.request(&cc())).await.unwrap();
    assert!(
        (iat(&fake, 1) - now()).abs() <= 5,
        "{}",
        iat(&fake, 1) - now()
    );
    // Backward beyond the general cap too.
    let fake = start(vec![]).await;
    let c = TokenClient::discover(signer(), config(&fake).max_skew_secs(10))
        .await
        .unwrap();
    *fake.date_ahead.lock().unwrap() = 40;
    bounded(c.request(&cc())).await.unwrap();
    assert_eq!(c.clock_offset(), 0, "40 s is beyond a 10 s cap");
}

/// A 200 token response with `Date` 40 s ahead (within the 60 s forward cap, above the
/// threshold) is learned, and the next assertion uses the server's time.
#[tokio::test]
async fn skew_within_the_caps_from_a_200_is_learned() {
    let fake = start(vec![]).await;
    *fake.date_ahead.lock().unwrap() = 40;
    let mut cfg = config(&fake);
    cfg.skew_threshold_secs = Some(5);
    let c = TokenClient::discover(signer(), cfg).await.unwrap();
    bounded(c.request(&cc())).await.unwrap();
    assert!((c.clock_offset() - 40).abs() <= 2, "{}", c.clock_offset());
    bounded(c.request(&cc())).await.unwrap();
    assert!(
        (iat(&fake, 1) - (now() + 40)).abs() <= 5,
        "{}",
        iat(&fake, 1) - now()
    );
}

/// A 503 with `Date` 40 s ahead proves nothing about the issuer's clock: not learned.
#[tokio::test]
async fn skew_within_the_caps_from_a_503_is_not_learned() {
    let fake = start(vec![Reply::Status(503, "down", None)]).await;
    *fake.date_ahead.lock().unwrap() = 40;
    let c = client(&fake).await;
    bounded(c.request(&cc())).await.unwrap();
    assert_eq!(c.requests_sent(), 2);
    assert!(
        (iat(&fake, 1) - now()).abs() <= 5,
        "{}",
        iat(&fake, 1) - now()
    );
    // The 200 that followed is from the issuer and carried the same Date: learned from it.
    assert!((c.clock_offset() - 40).abs() <= 2, "{}", c.clock_offset());
}
