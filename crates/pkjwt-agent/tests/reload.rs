//! Reload, rotation, assertions for callers, profile selection, status and discovery retry,
//! against oidc-provider (the shared harness) with file keys whose public keys a pkjwt-jwks
//! `jwks_uri` on 127.0.0.1 publishes. Assertions handed to callers are checked by sending them
//! to oidc-provider's token endpoint ourselves (curl, the assertion on stdin).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pkjwt::{Algorithm, Jwk, KeyUri, OpenOptions};
use pkjwt_agent::client::{self, AgentClientError};
use pkjwt_agent::{Agent, AgentConfig, AgentError};
use pkjwt_conformance::oidc_provider::{OidcProvider, client_metadata};
use pkjwt_jwks::{JwksService, RotationState, RotationTiming, ServeOptions};
use serde_json::{Value, json};

const SCOPE: &str = "accounts:read";
const API: &str = "https://api.example.com";
const OTHER: &str = "https://other.example.com";
const T: Duration = Duration::from_secs(20);

struct Keys {
    dir: PathBuf,
    /// (key URI, published JWK with its kid)
    keys: Vec<(String, Jwk)>,
    jwks_uri: String,
    _server: tokio::task::JoinHandle<()>,
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    // Short: a Unix socket path is limited to 108 bytes.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let d = std::env::temp_dir().join(format!("pr-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `n` ES256 file keys, all published at one jwks_uri (a client may sign with any of them).
async fn keys(tag: &str, n: usize) -> Keys {
    let dir = temp_dir(tag);
    let mut keys = Vec::new();
    for i in 0..n {
        let uri = format!("file:{}", dir.join(format!("k{i}.pem")).display());
        let signer = pkjwt::generate(
            &KeyUri::parse(&uri).unwrap(),
            Algorithm::ES256,
            &OpenOptions::default(),
        )
        .await
        .unwrap();
        keys.push((uri, Jwk::for_signing(signer.public_key(), Algorithm::ES256)));
    }
    let svc = JwksService::new(
        keys.iter().map(|(_, j)| j.clone()).collect(),
        None,
        ServeOptions::default(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, svc.router()).await.unwrap();
    });
    Keys {
        dir,
        keys,
        jwks_uri: format!("http://{addr}/jwks"),
        _server: server,
    }
}

/// oidc-provider with `clients` (each using `jwks_uri`), both resources, on `port` (0 = any).
fn provider(clients: &[&str], jwks_uri: &str, port: u16) -> Option<OidcProvider> {
    let clients: Vec<Value> = clients
        .iter()
        .map(|c| client_metadata(c, jwks_uri, "ES256", SCOPE))
        .collect();
    OidcProvider::start(&json!({
        "clients": clients,
        "resources": { API: { "scope": SCOPE }, OTHER: { "scope": SCOPE } },
        "accessTokenTTL": 300,
        "port": port,
    }))
}

fn kid(jwk: &Jwk) -> String {
    serde_json::to_value(jwk).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Successful grants for `client`, once the server's log shows at least `at_least` of them
/// (its log lines arrive after the answer) or 5 s have passed.
fn grants_settled(op: &OidcProvider, client: &str, at_least: usize) -> usize {
    let count = |ev: &[Value]| {
        ev.iter()
            .filter(|e| e["event"] == "grant.success" && e["client_id"] == client)
            .count()
    };
    count(&op.events_when(|ev| count(ev) >= at_least))
}

/// Grants for `client` once `at_least` are logged, and a moment more so that a surplus shows.
fn grants(op: &OidcProvider, client: &str) -> usize {
    let n = grants_settled(op, client, 1);
    std::thread::sleep(Duration::from_millis(200));
    n.max(grants_settled(op, client, 0))
}

fn profile(name: &str, key_line: &str, issuer: &str, client: &str, resource: &str) -> String {
    format!(
        "[profile.{name}]\n{key_line}\nissuer = {issuer:?}\nclient_id = {client:?}\n\
         scope = {SCOPE:?}\nresources = [{resource:?}]\n"
    )
}

fn agent_table(socket: &Path, extra: &str) -> String {
    format!(
        "[agent]\nsocket = {:?}\n{extra}\n",
        socket.display().to_string()
    )
}

/// The JWT's protected header.
fn jwt_header(jwt: &str) -> Value {
    let b64 = jwt.split('.').next().unwrap();
    serde_json::from_slice(&pkjwt::b64::decode("header", b64).unwrap()).unwrap()
}

/// Sends `assertion` as client authentication to the token endpoint, as a caller of
/// `POST /assertion` would; the HTTP status oidc-provider answers.
fn use_assertion(op: &OidcProvider, client: &str, assertion: &str) -> u16 {
    let body = format!(
        "grant_type=client_credentials&client_id={client}&scope={}&resource={}\
         &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
         &client_assertion={assertion}",
        client::percent_encode(SCOPE),
        client::percent_encode(API),
    );
    let mut child = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-binary",
            "@-",
        ])
        .arg(op.token_endpoint())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().parse().unwrap()
}

async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Reload: an unchanged profile is kept, a new key for the same client keeps the valid token
/// (no new token request), a new profile is added and a dropped one removed; `[agent]` fields
/// bound at start are refused and leave everything serving; a config that does not load
/// changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_tokens_and_refuses_what_needs_a_restart() {
    let k = keys("reload", 2).await;
    let Some(op) = provider(&["c-one", "c-two"], &k.jwks_uri, 0) else {
        return;
    };
    let socket = k.dir.join("a.sock");
    let one = |key: &str| profile("one", &format!("key = {key:?}"), &op.issuer, "c-one", API);
    let two = profile(
        "two",
        &format!("key = {:?}", k.keys[0].0),
        &op.issuer,
        "c-two",
        OTHER,
    );
    let text0 = format!("{}{}", agent_table(&socket, ""), one(&k.keys[0].0));
    let handle = Agent::start(AgentConfig::parse(&text0, "a.toml").unwrap())
        .await
        .unwrap();
    let s = socket.clone();
    let t1 = blocking(move || client::token(&s, "one", T).unwrap()).await;
    assert_eq!(grants(&op, "c-one"), 1);

    // The same text again: nothing rebuilt.
    let r = handle
        .reload(AgentConfig::parse(&text0, "a.toml").unwrap())
        .await
        .unwrap();
    assert_eq!(r.kept, ["one"]);
    assert!(r.rebuilt.is_empty() && r.added.is_empty() && r.removed.is_empty());

    // A new key for the same client, and a second profile.
    let text1 = format!("{}{}{two}", agent_table(&socket, ""), one(&k.keys[1].0));
    let r = handle
        .reload(AgentConfig::parse(&text1, "a.toml").unwrap())
        .await
        .unwrap();
    assert_eq!(
        (r.rebuilt.clone(), r.tokens_kept.clone()),
        (vec!["one".to_owned()], vec!["one".to_owned()])
    );
    assert_eq!(r.added, ["two"]);
    let s = socket.clone();
    let (t1_again, status) = blocking(move || {
        (
            client::token(&s, "one", T).unwrap(),
            client::status(&s, T).unwrap(),
        )
    })
    .await;
    assert_eq!(t1_again, t1, "the valid token was dropped by the reload");
    assert_eq!(grants(&op, "c-one"), 1, "the reload caused a token request");
    assert_eq!(status["profiles"]["one"]["key"]["kid"], kid(&k.keys[1].1));
    assert_eq!(status["last_reload"]["ok"], true);
    assert_eq!(
        status["profiles"]["one"]["token_fetches"], 1,
        "counters carry over"
    );

    // Bound at start: refused, and the running configuration keeps serving.
    let moved = format!(
        "{}{}",
        agent_table(&k.dir.join("b.sock"), ""),
        one(&k.keys[1].0)
    );
    let e = handle
        .reload(AgentConfig::parse(&moved, "a.toml").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(e, AgentError::NeedsRestart { field: "socket" }),
        "{e}"
    );
    assert!(e.to_string().contains("restart the agent"), "{e}");
    let bad = k.dir.join("bad.toml");
    std::fs::write(&bad, "[agent]\nsocket = 1\n").unwrap();
    let e = handle.reload_from(&bad).await.unwrap_err();
    assert!(matches!(e, AgentError::Config(_)), "{e}");
    let s = socket.clone();
    let (t_two, status) = blocking(move || {
        (
            client::token(&s, "two", T).unwrap(),
            client::status(&s, T).unwrap(),
        )
    })
    .await;
    assert!(!t_two.is_empty());
    assert_eq!(status["last_reload"]["ok"], false);

    // Dropping a profile.
    let r = handle
        .reload(
            AgentConfig::parse(&format!("{}{two}", agent_table(&socket, "")), "a.toml").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.removed.clone(), r.kept.clone()),
        (vec!["one".to_owned()], vec!["two".to_owned()])
    );
    let s = socket.clone();
    let e = blocking(move || client::token(&s, "one", T).unwrap_err()).await;
    assert!(
        matches!(&e, AgentClientError::Refused { status: 404, .. }),
        "{e}"
    );
    let m = String::from_utf8(client::get(&socket, "/metrics", T).unwrap().body).unwrap();
    assert!(
        m.contains("pkjwt_agent_reloads_total{result=\"ok\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("pkjwt_agent_reloads_total{result=\"error\"} 2"),
        "{m}"
    );
    handle.shutdown().await.unwrap();
}

/// A profile on a `pkjwt rotate` state follows it: when the next key becomes active, the
/// watch swaps the signer without a new token request, and assertions carry the new kid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_state_is_followed_and_the_token_kept() {
    let k = keys("rotate", 2).await;
    let Some(op) = provider(&["c-rot"], &k.jwks_uri, 0) else {
        return;
    };
    let state_path = k.dir.join("rotation.json");
    let now = || {
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap()
    };
    let mut st = RotationState::new();
    st.init(&k.keys[0].0, k.keys[0].1.clone(), now()).unwrap();
    st.save(&state_path).unwrap();
    let socket = k.dir.join("a.sock");
    let text = format!(
        "{}{}assertions = true\n",
        agent_table(&socket, "watch_interval_secs = 1"),
        profile(
            "rot",
            &format!("rotation_state = {:?}", state_path.display().to_string()),
            &op.issuer,
            "c-rot",
            API
        )
    );
    let config_path = k.dir.join("agent.toml");
    std::fs::write(&config_path, &text).unwrap();
    let mut handle = Agent::start(AgentConfig::load(&config_path).unwrap())
        .await
        .unwrap();
    handle.watch(config_path.clone());
    let s = socket.clone();
    let t1 = blocking(move || client::token(&s, "rot", T).unwrap()).await;
    let endpoint = op.token_endpoint();
    let (s, e) = (socket.clone(), endpoint.clone());
    let a1 = blocking(move || client::assertion(&s, "rot", &e, T).unwrap()).await;
    assert_eq!(jwt_header(&a1)["kid"], kid(&k.keys[0].1));

    // The next key, active 2 s from now.
    st.begin(
        &k.keys[1].0,
        k.keys[1].1.clone(),
        now(),
        RotationTiming::new(2, 3600),
    )
    .unwrap();
    st.save(&state_path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s = socket.clone();
        let status = blocking(move || client::status(&s, T).unwrap()).await;
        if status["profiles"]["rot"]["key"]["kid"] == kid(&k.keys[1].1) {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the rotation was not followed: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        status["last_reload"]["tokens_kept"],
        json!(["rot"]),
        "{status}"
    );
    let (s, e) = (socket.clone(), endpoint.clone());
    let (t2, a2) = blocking(move || {
        (
            client::token(&s, "rot", T).unwrap(),
            client::assertion(&s, "rot", &e, T).unwrap(),
        )
    })
    .await;
    assert_eq!(t2, t1, "the rotation dropped the valid token");
    assert_eq!(grants(&op, "c-rot"), 1);
    assert_eq!(jwt_header(&a2)["kid"], kid(&k.keys[1].1));
    let a2c = a2.clone();
    let op_status = blocking(move || {
        let s = use_assertion(&op, "c-rot", &a2c);
        (s, op)
    })
    .await;
    assert_eq!(
        op_status.0, 200,
        "oidc-provider refused the new key's assertion"
    );
    handle.shutdown().await.unwrap();
}

/// `POST /assertion`: off unless enabled; only the allowed audiences; the assertion is one
/// oidc-provider accepts as client authentication, and only once (its jti).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertions_for_callers_are_gated_and_accepted_by_the_server() {
    let k = keys("assert", 1).await;
    let Some(op) = provider(&["c-a", "c-b"], &k.jwks_uri, 0) else {
        return;
    };
    let socket = k.dir.join("a.sock");
    let key = format!("key = {:?}", k.keys[0].0);
    let text = format!(
        "{}{}assertions = true\n{}",
        agent_table(&socket, ""),
        profile("on", &key, &op.issuer, "c-a", API),
        profile("off", &key, &op.issuer, "c-b", OTHER),
    );
    let handle = Agent::start(AgentConfig::parse(&text, "a.toml").unwrap())
        .await
        .unwrap();
    let endpoint = op.token_endpoint();
    let (s, e) = (socket.clone(), endpoint.clone());
    let (ok, off, elsewhere) = blocking(move || {
        (
            client::assertion(&s, "on", &e, T).unwrap(),
            client::assertion(&s, "off", &e, T).unwrap_err(),
            client::assertion(&s, "on", "https://evil.example/token", T).unwrap_err(),
        )
    })
    .await;
    assert!(
        matches!(&off, AgentClientError::Refused { status: 403, error, .. } if error == "assertions_disabled"),
        "{off}"
    );
    assert!(
        matches!(&elsewhere, AgentClientError::Refused { status: 403, error, description } if error == "audience_not_allowed" && description.contains(&endpoint)),
        "{elsewhere}"
    );
    let claims: Value = serde_json::from_slice(
        &pkjwt::b64::decode("claims", ok.split('.').nth(1).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (claims["iss"].clone(), claims["sub"].clone()),
        (json!("c-a"), json!("c-a"))
    );
    assert_eq!(claims["aud"], json!(endpoint));
    let (first, again, op) = blocking(move || {
        let first = use_assertion(&op, "c-a", &ok);
        let again = use_assertion(&op, "c-a", &ok);
        (first, again, op)
    })
    .await;
    assert_eq!(first, 200, "{:?}", op.grant_errors());
    assert_ne!(again, 200, "a replayed assertion was accepted");
    let m = String::from_utf8(client::get(&socket, "/metrics", T).unwrap().body).unwrap();
    assert!(
        m.contains("pkjwt_agent_assertions_total{profile=\"on\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("pkjwt_agent_assertions_refused_total{profile=\"on\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("pkjwt_agent_assertions_refused_total{profile=\"off\"} 1"),
        "{m}"
    );
    handle.shutdown().await.unwrap();
}

/// `GET /token` by audience or scope instead of a profile name: one match serves, none is
/// 404, several are 409 naming them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_by_audience_and_scope() {
    let k = keys("select", 1).await;
    let Some(op) = provider(&["c-api", "c-other"], &k.jwks_uri, 0) else {
        return;
    };
    let socket = k.dir.join("a.sock");
    let key = format!("key = {:?}", k.keys[0].0);
    let text = format!(
        "{}{}{}",
        agent_table(&socket, ""),
        profile("api", &key, &op.issuer, "c-api", API),
        profile("other", &key, &op.issuer, "c-other", OTHER),
    );
    let handle = Agent::start(AgentConfig::parse(&text, "a.toml").unwrap())
        .await
        .unwrap();
    let s = socket.clone();
    let (by_aud, by_scope, none) = blocking(move || {
        let get = |q: &str| client::json(&s, "GET", &format!("/token?{q}"), T);
        (
            get(&format!("audience={}", client::percent_encode(OTHER))),
            get(&format!("scope={}", client::percent_encode(SCOPE))),
            get("audience=https%3A%2F%2Fnowhere.example"),
        )
    })
    .await;
    assert!(by_aud.unwrap()["access_token"].is_string());
    assert_eq!(grants(&op, "c-other"), 1);
    assert_eq!(grants_settled(&op, "c-api", 0), 0);
    let e = by_scope.unwrap_err();
    assert!(
        matches!(&e, AgentClientError::Refused { status: 409, description, .. } if description.contains("api, other")),
        "{e}"
    );
    let e = none.unwrap_err();
    assert!(
        matches!(&e, AgentClientError::Refused { status: 404, .. }),
        "{e}"
    );
    handle.shutdown().await.unwrap();
}

/// A port nothing listens on yet (bound and released; a server takes it later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the pending `profile` serves a token (its server came up), at most 30 s.
async fn served_within_30s(socket: &Path, profile: &'static str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = socket.to_owned();
        match blocking(move || client::token(&s, profile, T)).await {
            Ok(t) => {
                assert!(!t.is_empty());
                return;
            }
            Err(e) => assert!(Instant::now() < deadline, "never served: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// An authorization server that is down when the agent starts leaves the profile pending (503
/// naming discovery, status "pending") instead of stopping the agent; once the server is up the
/// profile serves without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_at_start_is_retried_in_the_background() {
    if !pkjwt_conformance::oidc_provider::provider_dir()
        .join("node_modules/oidc-provider")
        .is_dir()
        && pkjwt_conformance::oidc_provider::missing_peer("oidc-provider is not installed")
            .is_none()
    {
        return;
    }
    let k = keys("retry", 1).await;
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let socket = k.dir.join("a.sock");
    let text = format!(
        "{}{}",
        agent_table(&socket, ""),
        profile(
            "late",
            &format!("key = {:?}", k.keys[0].0),
            &issuer,
            "c-late",
            API
        )
    );
    let handle = Agent::start(AgentConfig::parse(&text, "a.toml").unwrap())
        .await
        .expect("the agent starts although its server is down");
    let s = socket.clone();
    let (e, status) = blocking(move || {
        (
            client::token(&s, "late", T).unwrap_err(),
            client::status(&s, T).unwrap(),
        )
    })
    .await;
    assert!(
        matches!(&e, AgentClientError::Refused { status: 503, description, .. } if description.contains("not discovered yet")),
        "{e}"
    );
    assert_eq!(status["profiles"]["late"]["state"], "pending");
    let Some(op) = provider(&["c-late"], &k.jwks_uri, port) else {
        return;
    };
    assert_eq!(op.issuer, issuer);
    served_within_30s(&socket, "late").await;
    let m = String::from_utf8(client::get(&socket, "/metrics", T).unwrap().body).unwrap();
    assert!(
        m.contains("pkjwt_agent_profile_ready{profile=\"late\"} 1"),
        "{m}"
    );
    handle.shutdown().await.unwrap();
}

/// A profile for a server that wants certificate thumbprints (entra): `certificate` puts the
/// chain's `x5t#S256` into every assertion; without a certificate the agent refuses to start,
/// naming the profile and the field; a certificate of another key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_profile_puts_its_thumbprint_in_assertions() {
    let k = keys("cert", 2).await;
    let Some(op) = provider(&["c-cert"], &k.jwks_uri, 0) else {
        return;
    };
    let mut pems = Vec::new();
    for (i, (uri, _)) in k.keys.iter().enumerate() {
        let signer = pkjwt::open(uri, &OpenOptions::default()).await.unwrap();
        let der = pkjwt_x509::self_signed(
            signer.as_ref(),
            &pkjwt_x509::CertOptions::new("CN=c-cert").unwrap(),
        )
        .await
        .unwrap();
        let path = k.dir.join(format!("cert{i}.pem"));
        std::fs::write(&path, pkjwt_x509::pem("CERTIFICATE", &der)).unwrap();
        pems.push((path, der));
    }
    let socket = k.dir.join("a.sock");
    let with = |cert: Option<&Path>| {
        let mut t = format!(
            "{}{}server_profile = \"entra\"\nassertions = true\n",
            agent_table(&socket, ""),
            profile(
                "e",
                &format!("key = {:?}", k.keys[0].0),
                &op.issuer,
                "c-cert",
                API
            )
        );
        if let Some(c) = cert {
            t.push_str(&format!("certificate = {:?}\n", c.display().to_string()));
        }
        AgentConfig::parse(&t, "a.toml").unwrap()
    };
    let e = Agent::start(with(None)).await.unwrap_err();
    assert!(
        matches!(&e, AgentError::Certificate { profile, .. } if profile == "e"),
        "{e}"
    );
    assert!(e.to_string().contains("certificate = "), "{e}");
    let e = Agent::start(with(Some(&pems[1].0))).await.unwrap_err();
    assert!(matches!(&e, AgentError::Certificate { .. }), "{e}");

    let handle = Agent::start(with(Some(&pems[0].0))).await.unwrap();
    let (s, e) = (socket.clone(), op.token_endpoint());
    let jwt = blocking(move || client::assertion(&s, "e", &e, T).unwrap()).await;
    assert_eq!(
        jwt_header(&jwt)["x5t#S256"],
        json!(pkjwt_x509::x5t_s256(&pems[0].1))
    );
    let s = socket.clone();
    let token = blocking(move || client::token(&s, "e", T)).await;
    assert!(token.is_ok(), "{token:?}; {:?}", op.grant_errors());
    handle.shutdown().await.unwrap();
}

/// A reload that adds a profile whose server is down applies, with that profile pending and
/// retried in the background (as at start), so a server that is down blocks nothing else; a
/// serving profile is never replaced by one whose server cannot be discovered: that reload is
/// refused and the profile keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_a_profile_whose_server_is_down_as_pending() {
    let k = keys("pend", 2).await;
    let Some(op) = provider(&["c-one"], &k.jwks_uri, 0) else {
        return;
    };
    let port = free_port();
    let down = format!("http://127.0.0.1:{port}");
    let socket = k.dir.join("a.sock");
    let one =
        |key: &str, issuer: &str| profile("one", &format!("key = {key:?}"), issuer, "c-one", API);
    let late = profile(
        "late",
        &format!("key = {:?}", k.keys[0].0),
        &down,
        "c-late",
        API,
    );
    let text0 = format!(
        "{}{}",
        agent_table(&socket, ""),
        one(&k.keys[0].0, &op.issuer)
    );
    let handle = Agent::start(AgentConfig::parse(&text0, "a.toml").unwrap())
        .await
        .unwrap();
    let s = socket.clone();
    let t1 = blocking(move || client::token(&s, "one", T).unwrap()).await;

    // Added with its server down, together with a new key for "one": both applied.
    let text1 = format!(
        "{}{}{late}",
        agent_table(&socket, ""),
        one(&k.keys[1].0, &op.issuer)
    );
    let r = handle
        .reload(AgentConfig::parse(&text1, "a.toml").unwrap())
        .await
        .expect("a new profile whose server is down does not refuse the reload");
    assert_eq!(r.added, ["late"]);
    assert_eq!(r.pending, ["late"]);
    assert_eq!(r.rebuilt, ["one"]);
    let s = socket.clone();
    let (late_err, t1_again, status) = blocking(move || {
        (
            client::token(&s, "late", T).unwrap_err(),
            client::token(&s, "one", T).unwrap(),
            client::status(&s, T).unwrap(),
        )
    })
    .await;
    assert!(
        matches!(&late_err, AgentClientError::Refused { status: 503, description, .. } if description.contains("not discovered yet")),
        "{late_err}"
    );
    assert_eq!(t1_again, t1);
    assert_eq!(status["profiles"]["late"]["state"], "pending");
    assert_eq!(status["profiles"]["one"]["key"]["kid"], kid(&k.keys[1].1));
    assert_eq!(status["last_reload"]["pending"], json!(["late"]));

    // "one" moved to the server that is down: refused, and "one" keeps serving its token.
    let text2 = format!(
        "{}{}{late}",
        agent_table(&socket, ""),
        one(&k.keys[1].0, &down)
    );
    let e = handle
        .reload(AgentConfig::parse(&text2, "a.toml").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, AgentError::Server { profile, .. } if profile == "one"),
        "{e}"
    );
    let s = socket.clone();
    assert_eq!(
        blocking(move || client::token(&s, "one", T).unwrap()).await,
        t1
    );

    // The server comes up: the pending profile serves without another reload.
    let Some(op2) = provider(&["c-late"], &k.jwks_uri, port) else {
        return;
    };
    assert_eq!(op2.issuer, down);
    served_within_30s(&socket, "late").await;
    handle.shutdown().await.unwrap();
}
