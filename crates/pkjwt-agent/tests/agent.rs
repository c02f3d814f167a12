//! The agent against real components: oidc-provider (started by the shared harness, with the
//! client's public key served from a `jwks_uri` by pkjwt-jwks), a file key, callers over the
//! Unix socket from tasks and from separate processes (the Python stdlib example and curl).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pkjwt::{Algorithm, Jwk, KeyUri, OpenOptions};
use pkjwt_agent::client::{self, AgentClientError};
use pkjwt_agent::{Agent, AgentConfig, AgentError};
use pkjwt_conformance::oidc_provider::{OidcProvider, client_metadata};
use pkjwt_jwks::{JwksService, ServeOptions};
use serde_json::{Value, json};

const CLIENT: &str = "agent-client";
const SCOPE: &str = "accounts:read";
const API: &str = "https://api.example.com";
const T: Duration = Duration::from_secs(20);

struct Peers {
    // An Option so that a test can stop the server (take and drop it).
    op: Option<OidcProvider>,
    dir: PathBuf,
    key: String,
    _jwks: tokio::task::JoinHandle<()>,
}

impl Peers {
    fn op(&self) -> &OidcProvider {
        self.op.as_ref().expect("the server is running")
    }
}

impl Drop for Peers {
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
    let d = std::env::temp_dir().join(format!("pa-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A file key, its JWKS served on 127.0.0.1, and oidc-provider with the client registered.
async fn peers(tag: &str, ttl: u64) -> Option<Peers> {
    let dir = temp_dir(tag);
    let key = format!("file:{}", dir.join("client.pem").display());
    let signer = pkjwt::generate(
        &KeyUri::parse(&key).unwrap(),
        Algorithm::ES256,
        &OpenOptions::default(),
    )
    .await
    .unwrap();
    let jwk = Jwk::for_signing(signer.public_key(), Algorithm::ES256);
    let svc = JwksService::new(vec![jwk], None, ServeOptions::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let jwks = tokio::spawn(async move {
        axum::serve(listener, svc.router()).await.unwrap();
    });
    let op = OidcProvider::start(&json!({
        "clients": [client_metadata(CLIENT, &format!("http://{addr}/jwks"), "ES256", SCOPE)],
        "resources": { API: { "scope": SCOPE } },
        "accessTokenTTL": ttl,
    }))?;
    Some(Peers {
        op: Some(op),
        dir,
        key,
        _jwks: jwks,
    })
}

fn config(p: &Peers, socket: &Path, agent_extra: &str) -> AgentConfig {
    let text = format!(
        "[agent]\nsocket = {socket:?}\n{agent_extra}\n\n[profile.api]\nkey = {key:?}\n\
         issuer = {issuer:?}\nclient_id = {CLIENT:?}\nscope = {SCOPE:?}\nresources = [{API:?}]\n",
        socket = socket.display().to_string(),
        key = p.key,
        issuer = p.op().issuer,
    );
    AgentConfig::parse(&text, "test.toml").unwrap()
}

fn grants(op: &OidcProvider) -> usize {
    op.events()
        .iter()
        .filter(|e| e["event"] == "grant.success" && e["client_id"] == CLIENT)
        .count()
}

/// Waits for at least `n` grant lines, then a little longer so that a surplus one shows.
fn settled_grants(op: &OidcProvider, n: usize) -> usize {
    op.events_when(|ev| {
        ev.iter()
            .filter(|e| e["event"] == "grant.success" && e["client_id"] == CLIENT)
            .count()
            >= n
    });
    std::thread::sleep(Duration::from_millis(300));
    grants(op)
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {line_start} in\n{text}"))
}

fn metrics(socket: &Path) -> String {
    let a = client::get(socket, "/metrics", T).unwrap();
    assert_eq!(a.status, 200);
    String::from_utf8(a.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_in_tasks_and_processes_share_one_token_request() {
    let Some(p) = peers("conc", 300).await else {
        return;
    };
    let socket = p.dir.join("agent.sock");
    let uid = rustix::process::getuid().as_raw();
    let agent = Agent::start(config(&p, &socket, &format!("allowed_uids = [{uid}]")))
        .await
        .unwrap();
    assert_eq!(
        grants(p.op()),
        0,
        "no token is fetched before a caller asks"
    );
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "default socket mode: {mode:o}");

    // Separate processes (4 Python, 2 curl), started first and not waited for, so that they
    // race the tasks for the first fetch.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/agent_client.py");
    let mut children = Vec::new();
    for i in 0..6 {
        let mut c = if i < 4 {
            let mut c = Command::new("python3");
            c.arg(&example)
                .args(["--socket", socket.to_str().unwrap(), "--profile", "api"]);
            c
        } else {
            let mut c = Command::new("curl");
            c.args(["-sS", "--fail-with-body", "--unix-socket"])
                .arg(&socket)
                .arg("http://localhost/token?profile=api");
            c
        };
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        children.push((i < 4, c.spawn().unwrap()));
    }
    let barrier = Arc::new(std::sync::Barrier::new(60));
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let (s, b) = (socket.clone(), barrier.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            b.wait();
            client::token(&s, "api", T)
        }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap().unwrap());
    }
    for (python, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            if python { "python" } else { "curl" },
            String::from_utf8_lossy(&out.stderr)
        );
        if python {
            tokens.push(String::from_utf8(out.stdout).unwrap().trim_end().to_owned());
        } else {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["token_type"], "Bearer");
            let expires_in = v["expires_in"].as_u64().unwrap();
            assert!((290..=300).contains(&expires_in), "{v}");
            tokens.push(v["access_token"].as_str().unwrap().to_owned());
        }
    }

    assert_eq!(tokens.len(), 66);
    assert_eq!(tokens[0].split('.').count(), 3, "a JWT access token");
    assert!(tokens.iter().all(|t| *t == tokens[0]), "one token for all");
    assert_eq!(
        settled_grants(p.op(), 1),
        1,
        "66 callers, one token request; grant errors: {:?}",
        p.op().grant_errors()
    );
    let m = metrics(&socket);
    assert_eq!(
        metric(&m, "pkjwt_agent_token_fetches_total{profile=\"api\"}"),
        1
    );
    assert_eq!(
        metric(&m, "pkjwt_agent_tokens_served_total{profile=\"api\"}"),
        66
    );
    assert!(metric(&m, "pkjwt_agent_cache_hits_total{profile=\"api\"}") >= 1);
    // One token request signs one client assertion.
    assert_eq!(
        metric(&m, "pkjwt_agent_signer_seconds_count{profile=\"api\"}"),
        1
    );
    assert!(!m.contains(&tokens[0]), "no token in the metrics");

    let e = client::token(&socket, "nope", T).unwrap_err();
    assert!(
        matches!(&e, AgentClientError::Refused { status: 404, error, description }
            if error == "unknown_profile" && description.contains("configured: api")),
        "{e}"
    );
    assert_eq!(client::get(&socket, "/healthz", T).unwrap().status, 200);
    agent.shutdown().await.unwrap();
    assert!(!socket.exists(), "the socket is removed on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_valid_token_outlives_the_server_then_a_clear_error() {
    let Some(mut p) = peers("down", 4).await else {
        return;
    };
    let socket = p.dir.join("agent.sock");
    let agent = Agent::start(config(
        &p,
        &socket,
        "http_listen = \"127.0.0.1:0\"\nrefresh_fraction = 0.25\njitter = 0.0",
    ))
    .await
    .unwrap();
    let http = agent.http_addr().unwrap();
    assert!(http.ip().is_loopback());
    // The token arrived between these two instants: its refresh point (1 s) and its expiry
    // (4 s) are relative to its arrival, so the waits below use the bound that is safe on a
    // loaded machine.
    let fetched = Instant::now();
    let t1 = client::token(&socket, "api", T).unwrap();
    let got = Instant::now();
    assert_eq!(settled_grants(p.op(), 1), 1);

    // The same answer on the loopback HTTP listener.
    let body = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(http).unwrap();
        s.write_all(b"GET /token?profile=api HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut b = String::new();
        s.read_to_string(&mut b).unwrap();
        b
    })
    .await
    .unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains(&t1));

    // The authorization server goes away.
    let issuer = p.op().issuer.clone();
    drop(p.op.take());

    // Past the refresh point (1 s of 4): the refresh fails in the background and the valid
    // token is still served, without an error to the caller.
    tokio::time::sleep(
        (got + Duration::from_millis(1500)).saturating_duration_since(Instant::now()),
    )
    .await;
    for _ in 0..5 {
        assert_eq!(client::token(&socket, "api", T).unwrap(), t1);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let m = loop {
        let m = metrics(&socket);
        if m.contains("pkjwt_agent_token_fetch_errors_total{profile=\"api\",kind=\"network\"}")
            || Instant::now() > deadline
        {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        metric(
            &m,
            "pkjwt_agent_token_fetch_errors_total{profile=\"api\",kind=\"network\"}"
        ) >= 1,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "pkjwt_agent_cache_hits_refresh_due_total{profile=\"api\"}"
        ) >= 5
    );

    // After the token's lifetime: a clear error, and no token in it.
    // Until then the valid token is served; the error comes no earlier than the lifetime.
    let deadline = got + Duration::from_secs(10);
    let e = loop {
        match client::token(&socket, "api", T) {
            Ok(t) => assert_eq!(t, t1),
            Err(e) => break e,
        }
        assert!(
            Instant::now() < deadline,
            "still served 10 s after a 4 s token"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        fetched.elapsed() >= Duration::from_secs(4),
        "an error {:?} after the fetch, before the token's 4 s lifetime",
        fetched.elapsed()
    );
    let text = e.to_string();
    assert!(
        matches!(&e, AgentClientError::Refused { status: 503, error, .. } if error == "token_unavailable"),
        "{text}"
    );
    assert!(
        text.contains("profile api: no valid token") && text.contains("cannot reach"),
        "{text}"
    );
    assert!(text.contains(&issuer[7..]), "names the server: {text}");
    assert!(!text.contains(&t1));
    // A second caller right after gets the same failure from the back-off, at once.
    let started = Instant::now();
    let e2 = client::token(&socket, "api", T).unwrap_err();
    assert!(matches!(e2, AgentClientError::Refused { status: 503, .. }));
    assert!(started.elapsed() < Duration::from_secs(1));
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_uid_allow_list_socket_mode_group_and_stale_sockets() {
    let Some(p) = peers("perm", 300).await else {
        return;
    };
    let socket = p.dir.join("agent.sock");
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();

    // A stale socket (nobody listening) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let extra = format!(
        "allowed_uids = [{}]\nsocket_mode = \"0640\"\nsocket_group = {gid}",
        uid.wrapping_add(1)
    );
    let agent = Agent::start(config(&p, &socket, &extra)).await.unwrap();
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert_eq!(meta.gid(), gid);
    let leftovers: Vec<_> = std::fs::read_dir(&p.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".pkjwt-agent"))
        .collect();
    assert!(leftovers.is_empty(), "staging dir removed: {leftovers:?}");

    // This process's uid is not on the list: refused, and no token was fetched for it.
    let s = socket.clone();
    let e = tokio::task::spawn_blocking(move || client::token(&s, "api", T))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&e, AgentClientError::Refused { status: 403, error, description }
            if error == "access_denied" && description.contains(&uid.to_string())),
        "{e}"
    );
    let curl = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--unix-socket",
        ])
        .arg(&socket)
        .arg("http://localhost/metrics")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "403", "metrics too");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(grants(p.op()), 0);

    // A second agent on a socket that is in use is refused; so is a path that is not a socket.
    let e = Agent::start(config(&p, &socket, "")).await.unwrap_err();
    assert!(
        matches!(&e, AgentError::Listen { reason, .. } if reason.contains("another process is listening")),
        "{e}"
    );
    let file = p.dir.join("not-a-socket");
    std::fs::write(&file, "keep me").unwrap();
    let e = Agent::start(config(&p, &file, "")).await.unwrap_err();
    assert!(e.to_string().contains("is not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    agent.shutdown().await.unwrap();
}

#[test]
fn http_listen_must_be_loopback() {
    let text = "[agent]\nsocket = \"/run/a.sock\"\nhttp_listen = \"0.0.0.0:8790\"\n\
                [profile.api]\nkey = \"file:/k.pem\"\nissuer = \"https://as.example\"\nclient_id = \"c\"\n";
    let e = AgentConfig::parse(text, "agent.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "agent.toml: [agent]: http_listen: 0.0.0.0:8790 is not a loopback address; the agent \
         answers only on 127.0.0.0/8 or ::1 (tokens must not leave the host)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_due_refresh_under_load_is_one_background_request() {
    let Some(p) = peers("refresh", 6).await else {
        return;
    };
    let socket = p.dir.join("agent.sock");
    let agent = Agent::start(config(&p, &socket, "refresh_fraction = 0.25\njitter = 0.0"))
        .await
        .unwrap();
    let t1 = client::token(&socket, "api", T).unwrap();
    let got = Instant::now();
    // Past the refresh point (1.5 s of 6): 40 concurrent callers.
    tokio::time::sleep(
        (got + Duration::from_millis(1700)).saturating_duration_since(Instant::now()),
    )
    .await;
    let barrier = Arc::new(std::sync::Barrier::new(40));
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (s, b) = (socket.clone(), barrier.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            b.wait();
            client::token(&s, "api", T)
        }));
    }
    let mut second = Vec::new();
    for t in tasks {
        second.push(t.await.unwrap().unwrap());
    }
    // Each got the old token (served while the refresh ran) or the new one; never an error.
    let t2 = loop {
        let t = client::token(&socket, "api", T).unwrap();
        if t != t1 {
            break t;
        }
        assert!(
            got.elapsed() < Duration::from_secs(5),
            "no refresh before expiry"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(second.iter().all(|t| *t == t1 || *t == t2));
    assert!(
        second.contains(&t1),
        "the valid token was served while refreshing"
    );
    assert_eq!(
        settled_grants(p.op(), 2),
        2,
        "41 callers after the refresh point, one refresh; grant errors: {:?}",
        p.op().grant_errors()
    );
    let m = metrics(&socket);
    assert_eq!(
        metric(&m, "pkjwt_agent_token_fetches_total{profile=\"api\"}"),
        2
    );
    assert!(
        metric(
            &m,
            "pkjwt_agent_cache_hits_refresh_due_total{profile=\"api\"}"
        ) >= 1
    );
    agent.shutdown().await.unwrap();
}
