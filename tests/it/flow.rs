//! The whole flow against a real authorization server (oidc-provider, started by the harness in
//! `pkjwt_conformance::oidc_provider`): key in a backend → public key served by `pkjwt-jwks` at
//! the client's `jwks_uri` → client assertion → access token (RFC 9068 JWT) → protected API
//! (pkjwt-verify's axum layer).
//!
//! Keys are parameterized: [`key_cases`] makes file keys for every algorithm; other backends join
//! by adding cases there, or at run time with `PKJWT_E2E_KEYS="ALG=URI ALG=URI…"` (for example
//! `ES256=pkcs11:token=t;object=k?module-path=…&pin-source=env:PIN`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use pkjwt::{Algorithm, Jwk, KeyId, KeyUri, OpenOptions, Signer};
use pkjwt_client::{
    ClientConfig, ClientError, RetryPolicy, ServerMetadata, TokenCache, TokenClient, TokenRequest,
};
use pkjwt_conformance::oidc_provider::{OidcProvider, client_metadata};
use pkjwt_jwks::{JwksService, RotationState, RotationTiming, ServeOptions};
use pkjwt_verify::layer::AccessTokenLayer;
use pkjwt_verify::{AccessTokenClaims, AccessTokenPolicy, AccessTokenValidator, FetchPolicy};
use serde_json::{Value, json};

const API: &str = "https://api.example.com";
const OTHER_API: &str = "https://other-api.example.com";
const SCOPE: &str = "accounts:read";

/// One key to run the flow with.
struct KeyCase {
    name: String,
    uri: String,
    alg: Algorithm,
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "pkjwt-flow-{tag}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn file_key(dir: &Path, name: &str, alg: Algorithm) -> (String, Arc<dyn Signer>) {
    let uri = format!("file:{}", dir.join(format!("{name}.pem")).display());
    let signer = pkjwt::generate(&KeyUri::parse(&uri).unwrap(), alg, &OpenOptions::default())
        .await
        .unwrap();
    (uri, signer)
}

/// File keys for the six algorithms, plus any `PKJWT_E2E_KEYS` (PKCS#11, KMS, … as they land).
async fn key_cases(dir: &Path) -> Vec<KeyCase> {
    let mut cases = Vec::new();
    for alg in [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::PS256,
        Algorithm::RS256,
        Algorithm::EdDSA,
    ] {
        let (uri, _) = file_key(dir, &format!("file-{alg}"), alg).await;
        cases.push(KeyCase {
            name: format!("file-{alg}"),
            uri,
            alg,
        });
    }
    if let Ok(extra) = std::env::var("PKJWT_E2E_KEYS") {
        for (i, item) in extra.split_whitespace().enumerate() {
            let (alg, uri) = item
                .split_once('=')
                .expect("PKJWT_E2E_KEYS items are ALG=URI");
            cases.push(KeyCase {
                name: format!("extra-{i}-{alg}"),
                uri: uri.into(),
                alg: alg.parse().unwrap(),
            });
        }
    }
    cases
}

async fn open(uri: &str, alg: Algorithm) -> Arc<dyn Signer> {
    pkjwt::open(uri, &OpenOptions::default().alg(Some(alg)))
        .await
        .unwrap_or_else(|e| panic!("open {uri}: {e}"))
}

/// Serves `service` on 127.0.0.1 (a free port, or `port`); returns the address and a handle to
/// stop it.
async fn serve(router: Router, port: u16) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let h = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (addr, h)
}

async fn serve_jwks(
    keys: Vec<Jwk>,
    state: Option<PathBuf>,
    port: u16,
) -> (String, tokio::task::JoinHandle<()>) {
    let mut o = ServeOptions::default();
    o.max_age_secs = 30;
    let svc = JwksService::new(keys, state, o).unwrap();
    let (addr, h) = serve(svc.router(), port).await;
    (format!("http://{addr}/jwks"), h)
}

fn resources() -> Value {
    json!({ API: { "scope": SCOPE }, OTHER_API: { "scope": SCOPE } })
}

/// The protected API: `GET /balance` needs an access token for `audience` with scope SCOPE.
async fn protected_api(issuer: &str, audience: &str) -> (String, tokio::task::JoinHandle<()>) {
    let validator = AccessTokenValidator::discover(
        issuer,
        audience,
        AccessTokenPolicy::default(),
        FetchPolicy::default(),
    )
    .await
    .unwrap();
    async fn balance(c: AccessTokenClaims) -> String {
        format!("balance for {}", c.client_id)
    }
    let app = Router::new()
        .route("/balance", get(balance))
        .layer(AccessTokenLayer::new(Arc::new(validator)).require_scopes([SCOPE]));
    let (addr, h) = serve(app, 0).await;
    (format!("http://{addr}/balance"), h)
}

async fn call_api(url: &str, token: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let www = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = r.text().await.unwrap();
    (status, if status == 200 { body } else { www })
}

fn tamper(jwt: &str) -> String {
    let (head, sig) = jwt.rsplit_once('.').unwrap();
    let mut s: Vec<u8> = sig.bytes().collect();
    // Change one character in the middle of the signature (not the last: its low bits may be
    // padding).
    let i = s.len() / 2;
    s[i] = if s[i] == b'A' { b'B' } else { b'A' };
    format!("{head}.{}", String::from_utf8(s).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_for_every_algorithm_and_the_api_refuses_what_it_must() {
    let dir = temp_dir("full");
    let cases = key_cases(&dir).await;
    let mut jwks = Vec::new();
    for c in &cases {
        let s = open(&c.uri, c.alg).await;
        jwks.push(Jwk::for_signing(s.public_key(), c.alg));
    }
    let (jwks_uri, _jwks_server) = serve_jwks(jwks, None, 0).await;
    let clients: Vec<Value> = cases
        .iter()
        .map(|c| client_metadata(&c.name, &jwks_uri, c.alg.name(), SCOPE))
        .collect();
    let Some(op) = OidcProvider::start(&json!({ "clients": clients, "resources": resources() }))
    else {
        return;
    };
    let (api, _api_server) = protected_api(&op.issuer, API).await;

    for c in &cases {
        let signer = open(&c.uri, c.alg).await;
        let client = TokenClient::discover(signer, ClientConfig::new(&c.name, &op.issuer))
            .await
            .unwrap_or_else(|e| panic!("{}: discovery: {e}", c.name));
        let token = client
            .request(
                &TokenRequest::client_credentials()
                    .scope(SCOPE)
                    .resource(API),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: token: {e}; server: {:?}", c.name, op.grant_errors()));
        let at = token.access_token.secret();
        assert_eq!(token.token_type, "Bearer");
        // A JWT access token (RFC 9068), accepted by the API.
        let (status, body) = call_api(&api, at).await;
        assert_eq!(status, 200, "{}: {body}", c.name);
        assert_eq!(body, format!("balance for {}", c.name));
        // Bad signature: refused.
        let (status, www) = call_api(&api, &tamper(at)).await;
        assert_eq!(status, 401, "{}: tampered token accepted", c.name);
        assert!(www.contains("invalid_token"), "{www}");
        // A token for another audience: refused.
        let other = client
            .request(
                &TokenRequest::client_credentials()
                    .scope(SCOPE)
                    .resource(OTHER_API),
            )
            .await
            .unwrap();
        let (status, www) = call_api(&api, other.access_token.secret()).await;
        assert_eq!(status, 401, "{}: token for {OTHER_API} accepted", c.name);
        // RFC 6750 answer without internals: the expected audience is never disclosed.
        assert!(www.contains("invalid_token"), "{www}");
        assert!(!www.contains(OTHER_API), "{www}");
        // No token at all.
        let r = reqwest::get(&api).await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
        assert_eq!(client.requests_sent(), 2);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            op.grants(&c.name),
            2,
            "the server issued two tokens to {}",
            c.name
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The last grant error's internal reason, after the request that caused it.
async fn last_reason(op: &OidcProvider) -> String {
    tokio::time::sleep(Duration::from_millis(100)).await;
    op.grant_errors().last().cloned().unwrap_or_default()
}

fn expect_invalid_client(r: Result<pkjwt_client::TokenResponse, ClientError>) -> ClientError {
    let e = r.expect_err("the server must refuse this assertion");
    let o = e
        .oauth()
        .unwrap_or_else(|| panic!("not an OAuth error: {e}"));
    assert_eq!((o.status, o.error.as_str()), (401, "invalid_client"), "{e}");
    // The message names what to check.
    let text = e.to_string();
    assert!(text.contains("kid") && text.contains("aud"), "{text}");
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_rejections_arrive_as_clear_errors() {
    let dir = temp_dir("reject");
    let (uri, signer) = file_key(&dir, "es256", Algorithm::ES256).await;
    let (_, signer384) = file_key(&dir, "es384", Algorithm::ES384).await;
    let _ = uri;
    let (jwks_uri, _j) = serve_jwks(
        vec![
            Jwk::for_signing(signer.public_key(), Algorithm::ES256),
            Jwk::for_signing(signer384.public_key(), Algorithm::ES384),
        ],
        None,
        0,
    )
    .await;
    let Some(op) = OidcProvider::start(&json!({
        "clients": [client_metadata("c1", &jwks_uri, "ES256", SCOPE)],
        "resources": resources(),
    })) else {
        return;
    };
    let req = TokenRequest::client_credentials().scope(SCOPE);
    let no_retry = RetryPolicy::attempts(1);
    let cfg = || ClientConfig::new("c1", &op.issuer).retry(no_retry.clone());

    // Wrong aud: a client that believes in another issuer.
    let mut meta = ServerMetadata::manual("http://127.0.0.1:1/wrong", op.token_endpoint());
    meta.issuer = "http://127.0.0.1:1/wrong".into();
    let mut c = cfg();
    c.issuer = meta.issuer.clone();
    let client = TokenClient::with_metadata(signer.clone(), c, meta).unwrap();
    expect_invalid_client(client.request(&req).await);
    let why = last_reason(&op).await;
    assert!(why.contains("audience"), "{why}");

    // Expired: a clock an hour behind, skew correction off.
    let mut c = cfg();
    c.clock = Arc::new(pkjwt::FixedClock::new(now() - 3600));
    c.skew_threshold_secs = None;
    let client = TokenClient::discover(signer.clone(), c).await.unwrap();
    expect_invalid_client(client.request(&req).await);
    let why = last_reason(&op).await;
    assert!(why.contains("expired"), "{why}");

    // The same clock with skew correction on: an hour is beyond the caps (issue 12, item 1), so
    // the server's Date is not followed and the request is still refused.
    let mut c = cfg();
    c.clock = Arc::new(pkjwt::FixedClock::new(now() - 3600));
    let client = TokenClient::discover(signer.clone(), c).await.unwrap();
    expect_invalid_client(client.request(&req).await);
    assert_eq!(client.clock_offset(), 0);

    // 50 s behind with a 30 s lifetime: expired at the server (15 s tolerance) until the Date
    // of its invalid_client answer corrects the clock (within the 60 s forward cap).
    let mut c = cfg();
    c.clock = Arc::new(pkjwt::FixedClock::new(now() - 50));
    c.profile.lifetime_secs = 30;
    let client = TokenClient::discover(signer.clone(), c).await.unwrap();
    client.request(&req).await.unwrap();
    assert!(
        (client.clock_offset() - 50).abs() <= 2,
        "{}",
        client.clock_offset()
    );

    // Unknown kid.
    let mut c = cfg();
    c.kid = KeyId::Given("no-such-kid".into());
    let client = TokenClient::discover(signer.clone(), c).await.unwrap();
    expect_invalid_client(client.request(&req).await);
    let why = last_reason(&op).await;
    assert!(why.contains("no applicable key"), "{why}");

    // Algorithm mismatch: the client is registered for ES256, the assertion is ES384.
    let client = TokenClient::discover(signer384.clone(), cfg())
        .await
        .unwrap();
    expect_invalid_client(client.request(&req).await);
    let why = last_reason(&op).await;
    assert!(why.contains("alg"), "{why}");

    // Replay: one assertion sent twice is refused the second time; the client's next request
    // mints a new jti and succeeds.
    let client = TokenClient::discover(signer.clone(), cfg()).await.unwrap();
    let assertion = client.assertion().sign().await.unwrap();
    let post = |a: String| {
        let url = op.token_endpoint();
        async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "grant_type=client_credentials&scope=accounts%3Aread&client_id=c1&\
                     client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&\
                     client_assertion={a}"
                ))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(post(assertion.clone()).await, 200);
    assert_eq!(post(assertion).await, 401);
    let why = last_reason(&op).await;
    assert!(why.contains("only be used once"), "{why}");
    client.request(&req).await.unwrap();

    // Every profile the server can satisfy works: legacy/okta send aud = token endpoint and
    // typ JWT, keycloak aud = issuer and typ JWT (oidc-provider accepts both audiences).
    for name in ["standard", "fapi2", "keycloak", "okta", "legacy"] {
        let mut c = cfg();
        c.profile = pkjwt_client::Profile::named(name).unwrap();
        let client = TokenClient::discover(signer.clone(), c).await.unwrap();
        let signed = client.assertion().sign_detailed().await.unwrap();
        let want_aud = if matches!(name, "okta" | "legacy") {
            op.token_endpoint()
        } else {
            op.issuer.clone()
        };
        assert_eq!(signed.claims["aud"], want_aud.as_str(), "{name}");
        client
            .request(&req)
            .await
            .unwrap_or_else(|e| panic!("profile {name}: {e}; {:?}", op.grant_errors()));
    }
    // entra needs the certificate thumbprint; refused before any request without it.
    let mut c = cfg();
    c.profile = pkjwt_client::Profile::named("entra").unwrap();
    let e = TokenClient::discover(signer.clone(), c)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("x5t#S256"), "{e}");

    // The metadata check names what the server supports, before any token request.
    let mut c = cfg();
    c.profile = pkjwt_client::Profile::named("fapi2").unwrap();
    let e = TokenClient::discover(signer384.clone(), c)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("does not allow ES384") && e.contains("PS256, ES256, EdDSA"),
        "{e}"
    );
    // Exact issuer check: a trailing slash is another issuer.
    let e = TokenClient::discover(
        signer.clone(),
        ClientConfig::new("c1", format!("{}/", op.issuer)),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("must match exactly"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The RFC 7523 §2.1 JWT-bearer grant against oidc-provider (the harness registers the grant
/// type there: `infra/oidc-provider/server.mjs`): the client authenticates with
/// `private_key_jwt` and sends a second JWT with `sub` = the user; the access token is issued to
/// that user, the protected API accepts it, and a client not registered for the grant is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_bearer_grant_issues_a_token_for_the_subject() {
    let dir = temp_dir("jwt-bearer");
    let (_, signer) = file_key(&dir, "es256", Algorithm::ES256).await;
    let (jwks_uri, _j) = serve_jwks(
        vec![Jwk::for_signing(signer.public_key(), Algorithm::ES256)],
        None,
        0,
    )
    .await;
    let mut with_grant = client_metadata("c-user", &jwks_uri, "ES256", SCOPE);
    with_grant["grant_types"] = json!([
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    ]);
    let Some(op) = OidcProvider::start(&json!({
        "clients": [with_grant, client_metadata("c-cc", &jwks_uri, "ES256", SCOPE)],
        "resources": resources(),
        "defaultResource": API,
    })) else {
        return;
    };
    let cfg = |id: &str| ClientConfig::new(id, &op.issuer).retry(RetryPolicy::attempts(1));
    let client = TokenClient::discover(signer.clone(), cfg("c-user"))
        .await
        .unwrap();
    let t = client
        .request(&TokenRequest::jwt_bearer("alice").scope(SCOPE))
        .await
        .unwrap();
    let payload = t
        .access_token
        .secret()
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    let claims: Value =
        serde_json::from_slice(&pkjwt::b64::decode("payload", &payload).unwrap()).unwrap();
    assert_eq!(claims["sub"], "alice", "{claims}");
    assert_eq!(claims["client_id"], "c-user");
    assert_eq!(claims["aud"], API);
    assert_eq!(claims["scope"], SCOPE);
    let (api, _a) = protected_api(&op.issuer, API).await;
    assert_eq!(
        call_api(&api, t.access_token.secret()).await,
        (200, "balance for c-user".to_owned())
    );
    // A second request signs a second grant assertion (fresh jti): the server's single-use
    // check lets it through.
    client
        .request(&TokenRequest::jwt_bearer("bob").scope(SCOPE))
        .await
        .unwrap();
    let user_grants = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["event"] == "grant.success" && e["client_id"] == "c-user")
            .filter_map(|e| e["sub"].as_str().map(str::to_owned))
            .collect()
    };
    let events = op.events_when(|ev| user_grants(ev).len() >= 2);
    assert_eq!(user_grants(&events), ["alice", "bob"]);

    // A client whose registration does not include the grant is refused by the server.
    let cc = TokenClient::discover(signer.clone(), cfg("c-cc"))
        .await
        .unwrap();
    let e = cc
        .request(&TokenRequest::jwt_bearer("alice").scope(SCOPE))
        .await
        .expect_err("c-cc is not registered for the JWT-bearer grant");
    let o = e
        .oauth()
        .unwrap_or_else(|| panic!("not an OAuth error: {e}"));
    assert_eq!(o.status, 400, "{e}");
    assert!(e.to_string().contains("grant type is not allowed"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_sends_one_request_for_many_callers_and_refreshes_once_after_expiry() {
    let dir = temp_dir("cache");
    let (_, signer) = file_key(&dir, "k", Algorithm::ES256).await;
    let (jwks_uri, _j) = serve_jwks(
        vec![Jwk::for_signing(signer.public_key(), Algorithm::ES256)],
        None,
        0,
    )
    .await;
    let Some(op) = OidcProvider::start(&json!({
        "clients": [client_metadata("cached", &jwks_uri, "ES256", SCOPE)],
        "resources": resources(),
        "accessTokenTTL": 4,
    })) else {
        return;
    };
    let client = TokenClient::discover(signer, ClientConfig::new("cached", &op.issuer))
        .await
        .unwrap();
    let cache = Arc::new(TokenCache::new(
        client,
        TokenRequest::client_credentials().scope(SCOPE),
    ));
    let calls = (0..1000).map(|_| {
        let c = cache.clone();
        tokio::spawn(async move { c.token().await.map(|t| t.access_token.secret().to_owned()) })
    });
    let mut tokens = std::collections::HashSet::new();
    for h in calls {
        tokens.insert(h.await.unwrap().unwrap());
    }
    assert_eq!(tokens.len(), 1, "1,000 callers must share one token");
    assert_eq!(cache.client().requests_sent(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(op.grants("cached"), 1, "the server saw one token request");

    // expires_in 4 s → refresh at 2 s (margin capped at half the lifetime).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let calls = (0..100).map(|_| {
        let c = cache.clone();
        tokio::spawn(async move { c.token().await.map(|t| t.access_token.secret().to_owned()) })
    });
    let mut after = std::collections::HashSet::new();
    for h in calls {
        after.insert(h.await.unwrap().unwrap());
    }
    assert_eq!(after.len(), 1);
    assert!(after.is_disjoint(&tokens), "a new token after expiry");
    assert_eq!(cache.client().requests_sent(), 2, "exactly one refresh");
    std::fs::remove_dir_all(&dir).ok();
}

/// Rotation end to end, in real time: oidc-provider keeps a client's JWKS for at least 60 s and
/// cannot be told otherwise, so the pre-publication time here is 62 s and the test runs about
/// 75 s. Requests go out every 500 ms throughout, each signed with the key the state file says
/// signs at that moment; none may fail. The JWKS server is restarted mid-rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_end_to_end_without_a_failed_request() {
    let dir = temp_dir("rotate");
    let state_path = dir.join("rotation.json");
    let (uri_a, a) = file_key(&dir, "a", Algorithm::ES256).await;
    let (uri_b, b) = file_key(&dir, "b", Algorithm::ES256).await;
    let jwk_a = Jwk::for_signing(a.public_key(), Algorithm::ES256);
    let jwk_b = Jwk::for_signing(b.public_key(), Algorithm::ES256);
    let (kid_a, kid_b) = (jwk_a.kid.clone().unwrap(), jwk_b.kid.clone().unwrap());
    let mut st = RotationState::new();
    st.init(&uri_a, jwk_a, now()).unwrap();
    st.save(&state_path).unwrap();

    let (jwks_uri, server) = serve_jwks(vec![], Some(state_path.clone()), 0).await;
    let port: u16 = jwks_uri
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/jwks")
        .parse()
        .unwrap();
    let Some(op) = OidcProvider::start(&json!({
        "clients": [client_metadata("rot", &jwks_uri, "ES256", SCOPE)],
        "resources": resources(),
    })) else {
        return;
    };
    let mut clients: std::collections::HashMap<String, TokenClient> = Default::default();
    let req = TokenRequest::client_credentials().scope(SCOPE);
    let start = Instant::now();
    let (mut rotated, mut restarted) = (false, false);
    let mut server = Some(server);
    let mut used = Vec::new();
    let mut ok = 0;
    while start.elapsed() < Duration::from_secs(75) {
        let t = start.elapsed().as_secs();
        if !rotated && t >= 2 {
            let mut st = RotationState::load(&state_path).unwrap();
            st.begin(&uri_b, jwk_b.clone(), now(), RotationTiming::new(62, 6))
                .unwrap();
            st.save(&state_path).unwrap();
            rotated = true;
        }
        if !restarted && t >= 30 {
            // Restart the JWKS server on the same port, mid-rotation.
            server.take().unwrap().abort();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (_, s) = serve_jwks(vec![], Some(state_path.clone()), port).await;
            server = Some(s);
            restarted = true;
        }
        let st = RotationState::load(&state_path).unwrap();
        let entry = st.signing(now()).expect("a signing key").clone();
        if !clients.contains_key(entry.kid()) {
            let signer = open(&entry.uri, Algorithm::ES256).await;
            let c = TokenClient::discover(signer, ClientConfig::new("rot", &op.issuer))
                .await
                .unwrap();
            clients.insert(entry.kid().to_owned(), c);
        }
        clients[entry.kid()]
            .request(&req)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "request at {t}s with kid {} failed: {e}; server: {:?}",
                    entry.kid(),
                    op.grant_errors()
                )
            });
        ok += 1;
        if used.last() != Some(&entry.kid().to_owned()) {
            used.push(entry.kid().to_owned());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        used,
        [kid_a.clone(), kid_b.clone()],
        "signing switched from a to b once"
    );
    assert!(op.grant_errors().is_empty(), "{:?}", op.grant_errors());
    // After the overlap the old key is retired: the JWKS holds only b.
    let body = reqwest::get(&jwks_uri).await.unwrap().text().await.unwrap();
    let set = pkjwt::JwkSet::from_json(&body).unwrap();
    let kids: Vec<_> = set.keys().iter().map(|k| k.kid.clone().unwrap()).collect();
    assert_eq!(kids, [kid_b]);
    assert!(ok > 100, "{ok} requests");
    std::fs::remove_dir_all(&dir).ok();
}

/// The harness tells a provider that died at start apart from a slow one, with its stderr: a CI
/// failure then names node's own error instead of a bare timeout.
#[test]
fn a_provider_that_dies_at_start_is_reported_with_its_stderr() {
    if !pkjwt_conformance::oidc_provider::provider_dir()
        .join("node_modules/oidc-provider")
        .is_dir()
    {
        // Same rule as every provider test: skip, or fail under PKJWT_REQUIRE_PEERS=1.
        if pkjwt_conformance::oidc_provider::missing_peer("oidc-provider is not installed")
            .is_none()
        {
            return;
        }
    }
    // An out-of-range port makes node's listen() throw before the ready line.
    let panic = std::panic::catch_unwind(|| OidcProvider::start(&json!({ "port": 70000 })))
        .err()
        .expect("the harness must fail when the provider exits");
    let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("exited before it was ready"), "{text}");
    assert!(
        text.contains("ERR_SOCKET_BAD_PORT"),
        "node's error is missing: {text}"
    );
}

/// A start that stalls (node alive, no ready line) is killed and tried again, and the stall is
/// reported with the server's stderr; the provider from the second start serves discovery.
#[tokio::test]
async fn a_stalled_provider_start_is_retried() {
    if !pkjwt_conformance::oidc_provider::provider_dir()
        .join("node_modules/oidc-provider")
        .is_dir()
        && pkjwt_conformance::oidc_provider::missing_peer("oidc-provider is not installed")
            .is_none()
    {
        return;
    }
    let dir = std::env::temp_dir().join(format!("pkjwt-stall-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("stalled-once");
    let op = OidcProvider::start_within(
        &json!({ "stallOnceMarker": marker }),
        std::time::Duration::from_secs(5),
    )
    .expect("provider");
    assert!(marker.exists(), "the first start did not stall");
    let body = reqwest::get(format!("{}/.well-known/openid-configuration", op.issuer))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains(&op.issuer), "{body}");
    std::fs::remove_dir_all(&dir).ok();
}
