//! The Redis replay store against a real `redis-server` started here on 127.0.0.1 (Debian
//! package `redis-server`): a jti accepted by one verifier is refused by every other, including
//! verifiers in other processes racing for it, and an outage fails closed.
//!
//! Without `redis-server` on PATH the tests fail when `PKJWT_REQUIRE_PEERS=1` (CI) and otherwise
//! skip with a loud message.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use pkjwt_core::{Algorithm, Clock, FixedClock, SystemClock};
use pkjwt_verify::{
    AssertionVerifier, KeySet, RedisReplayStore, RedisTls, ReplayStore, VerifyPolicy,
};

struct RedisServer {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl RedisServer {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn redis_server_binary() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .chain(["/usr/bin".into(), "/usr/sbin".into()])
            .map(|d| d.join("redis-server"))
            .find(|c| c.is_file())
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts redis-server on a free loopback port, or returns None (skip) when it is not
/// installed and peers are not required.
fn start_redis() -> Option<RedisServer> {
    let port = free_port();
    let server = spawn_redis(port, |_| vec!["--port".into(), port.to_string()])?;
    wait_for(port, |s| {
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        s.write_all(b"PING\r\n").unwrap();
        let mut line = String::new();
        std::io::BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("+PONG")
    });
    Some(server)
}

/// Runs redis-server in a fresh directory with the arguments `args` makes for that directory
/// (plus loopback binding and no persistence).
fn spawn_redis(
    port: u16,
    args: impl FnOnce(&std::path::Path) -> Vec<String>,
) -> Option<RedisServer> {
    let Some(bin) = redis_server_binary() else {
        if std::env::var("PKJWT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!(
                "redis-server not found and PKJWT_REQUIRE_PEERS=1: apt-get install -y redis-server"
            );
        }
        eprintln!(
            "\n*** SKIPPING Redis replay tests: redis-server not found (apt-get install -y redis-server) ***\n"
        );
        return None;
    };
    let dir = std::env::temp_dir().join(format!("pkjwt-redis-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new(bin)
        .args(args(&dir))
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Some(RedisServer { child, port, dir })
}

/// Waits up to 10 s for `ready` to hold on a connection to `port`.
fn wait_for(port: u16, ready: impl Fn(&mut std::net::TcpStream) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port))
            && ready(&mut s)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "redis-server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn store(url: &str) -> Arc<RedisReplayStore> {
    Arc::new(
        RedisReplayStore::connect(url, "pkjwt-test:", Duration::from_secs(2))
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn a_jti_used_at_one_verifier_is_refused_by_another() {
    let Some(redis) = start_redis() else { return };
    let a = TestSigner::new(Algorithm::ES256);
    let set = keyset(&jwks(vec![a.jwk("a")]));
    let clock = Arc::new(FixedClock::new(NOW));
    // Two replicas: separate verifiers, separate connections.
    let v1 = AssertionVerifier::new(AS, VerifyPolicy::default())
        .unwrap()
        .with_clock(clock.clone())
        .with_replay_store(store(&redis.url()).await);
    let v2 = AssertionVerifier::new(AS, VerifyPolicy::default())
        .unwrap()
        .with_clock(clock.clone())
        .with_replay_store(store(&redis.url()).await);
    let t1 = craft(&a, &header("ES256", "a"), &claims("r1"));
    let t2 = craft(&a, &header("ES256", "a"), &claims("r2"));
    v1.verify(&t1, CLIENT, &set).await.unwrap();
    let e = v2.verify(&t1, CLIENT, &set).await.unwrap_err();
    assert_eq!(e.kind(), "replayed", "{e}");
    v2.verify(&t2, CLIENT, &set).await.unwrap();
    assert_eq!(
        v1.verify(&t2, CLIENT, &set).await.unwrap_err().kind(),
        "replayed"
    );

    // The key expires with the assertion: exp (NOW + 60) + leeway 5 − now = 65 s.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("pkjwt-test:*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut c)
        .await
        .unwrap();
    // exp + leeway - now = 65 s, plus 1 s so the key outlives the last accepting second.
    assert!((60_000..=66_000).contains(&pttl), "PTTL {pttl}");
}

const CHILD_URL: &str = "PKJWT_REDIS_CHILD_URL";
const CHILD_FILE: &str = "PKJWT_REDIS_CHILD_FILE";

/// Verifies every token in the file at a common start time and prints one line per token.
async fn race(url: &str, file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines = text.lines();
    let start_ms: u128 = lines.next().unwrap().parse().unwrap();
    let set = Arc::new(KeySet::from_json(lines.next().unwrap()).unwrap());
    let tokens: Vec<String> = lines.map(String::from).collect();
    let v = Arc::new(
        AssertionVerifier::new(AS, VerifyPolicy::default())
            .unwrap()
            .with_replay_store(store(url).await),
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    if start_ms > now_ms {
        tokio::time::sleep(Duration::from_millis((start_ms - now_ms) as u64)).await;
    }
    let mut tasks = Vec::new();
    for t in tokens {
        let (v, set) = (v.clone(), set.clone());
        tasks.push(tokio::spawn(async move {
            match v.verify(&t, CLIENT, &set).await {
                Ok(ok) => format!("ACCEPTED {}", ok.jti),
                Err(e) => format!("REFUSED {}", e.kind()),
            }
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process for concurrent_verifiers_in_separate_processes"]
async fn child_worker() {
    let url = std::env::var(CHILD_URL).expect("run by the parent test only");
    let file = std::env::var(CHILD_FILE).unwrap();
    for line in race(&url, &file).await {
        println!("RESULT {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_verifiers_in_separate_processes() {
    let Some(redis) = start_redis() else { return };
    const TOKENS: usize = 60;
    const CHILDREN: usize = 3;
    let a = TestSigner::new(Algorithm::ES256);
    let now = SystemClock.now();
    let mut body = String::new();
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1500;
    body.push_str(&format!(
        "{start_ms}\n{}\n",
        jwks(vec![a.jwk("a")]).to_json()
    ));
    for i in 0..TOKENS {
        let mut c = claims(&format!("race-{i}"));
        c["iat"] = now.into();
        c["nbf"] = now.into();
        c["exp"] = (now + 120).into();
        body.push_str(&craft(&a, &header("ES256", "a"), &c));
        body.push('\n');
    }
    let file = redis.dir.join("tokens.txt");
    std::fs::write(&file, body).unwrap();

    let exe = std::env::current_exe().unwrap();
    let children: Vec<Child> = (0..CHILDREN)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "child_worker",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_URL, redis.url())
                .env(CHILD_FILE, &file)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // This process races too.
    let mut results = race(&redis.url(), file.to_str().unwrap()).await;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<String> = text
            .lines()
            .filter_map(|l| l.split_once("RESULT ").map(|(_, r)| r.to_string()))
            .collect();
        assert_eq!(lines.len(), TOKENS, "child output:\n{text}");
        results.extend(lines);
    }
    assert_eq!(results.len(), TOKENS * (CHILDREN + 1));
    let mut accepted = std::collections::HashMap::<String, usize>::new();
    for r in &results {
        if let Some(jti) = r.strip_prefix("ACCEPTED ") {
            *accepted.entry(jti.to_string()).or_default() += 1;
        } else {
            assert_eq!(r, "REFUSED replayed");
        }
    }
    assert_eq!(accepted.len(), TOKENS, "every token accepted somewhere");
    assert!(
        accepted.values().all(|n| *n == 1),
        "a jti was accepted twice: {accepted:?}"
    );
}

#[tokio::test]
async fn a_redis_outage_fails_closed() {
    let Some(mut redis) = start_redis() else {
        return;
    };
    let a = TestSigner::new(Algorithm::ES256);
    let set = keyset(&jwks(vec![a.jwk("a")]));
    let v = AssertionVerifier::new(AS, VerifyPolicy::default())
        .unwrap()
        .with_clock(Arc::new(FixedClock::new(NOW)))
        .with_replay_store(store(&redis.url()).await);
    v.verify(
        &craft(&a, &header("ES256", "a"), &claims("before")),
        CLIENT,
        &set,
    )
    .await
    .unwrap();
    redis.stop();
    let started = Instant::now();
    let e = v
        .verify(
            &craft(&a, &header("ES256", "a"), &claims("during")),
            CLIENT,
            &set,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "replay_store_unavailable", "{e}");
    assert!(
        e.to_string().contains("fail closed") && e.to_string().contains("Redis"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // Connecting to a port where nothing listens is an error, not a hang.
    let e = RedisReplayStore::connect(&redis.url(), "x:", Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("127.0.0.1"), "{e}");
}

/// Runs openssl in `dir`, asserting success.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (apt-get install -y openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private CA, a server certificate for 127.0.0.1 and a client certificate, made by openssl.
fn make_certs(dir: &std::path::Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "1",
                "-subj",
                "/CN=pkjwt test CA",
            ],
        ]
        .concat(),
    );
    for (name, ext) in [
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let subj = format!("/CN=pkjwt test {name}");
        openssl(
            dir,
            &[
                &["req", "-new"][..],
                &ec[..],
                &["-keyout", &key, "-out", &csr, "-subj", &subj],
            ]
            .concat(),
        );
        std::fs::write(dir.join(format!("{name}.ext")), format!("{ext}\n")).unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-out",
                &crt,
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
}

/// `rediss://`: a Redis that speaks only TLS and requires client certificates. With the private
/// CA and a client certificate the replay guarantee holds; without the CA, without the client
/// certificate, or with TLS settings on a plain URL, connecting fails with an error (and a
/// verifier that cannot reach its store refuses: fail closed).
#[tokio::test]
async fn tls_with_a_private_ca_and_client_certificates() {
    let port = free_port();
    let Some(redis) = spawn_redis(port, |dir| {
        make_certs(dir);
        let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &path("server.crt"),
            "--tls-key-file",
            &path("server.key"),
            "--tls-ca-cert-file",
            &path("ca.crt"),
            "--tls-auth-clients",
            "yes",
        ]
        .map(String::from)
        .to_vec()
    }) else {
        return;
    };
    wait_for(port, |_| true);
    let dir = redis.dir.clone();
    let url = format!("rediss://127.0.0.1:{port}/");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let tls = RedisTls::default()
        .root_ca(read("ca.crt"))
        .client_identity(read("client.crt"), read("client.key"));
    let t = Duration::from_secs(2);
    let s = RedisReplayStore::connect_tls(&url, &tls, "pkjwt-tls:", t)
        .await
        .unwrap();
    assert!(s.insert_if_absent("c:j1", NOW + 60, NOW).await.unwrap());
    assert!(
        !s.insert_if_absent("c:j1", NOW + 60, NOW).await.unwrap(),
        "second use refused"
    );
    // A second replica over its own TLS connection sees the first one's jti.
    let s2 = RedisReplayStore::connect_tls(&url, &tls, "pkjwt-tls:", t)
        .await
        .unwrap();
    assert!(!s2.insert_if_absent("c:j1", NOW + 60, NOW).await.unwrap());

    // The operating system's trust store does not know the private CA.
    let e = RedisReplayStore::connect(&url, "pkjwt-tls:", t)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.to_lowercase().contains("certificate"),
        "{text}"
    );
    // The server requires a client certificate.
    let ca_only = RedisTls::default().root_ca(read("ca.crt"));
    let e = match RedisReplayStore::connect_tls(&url, &ca_only, "pkjwt-tls:", t).await {
        Err(e) => e.to_string(),
        // The TLS 1.3 handshake completes before the server checks the client: the first
        // command then fails.
        Ok(s) => s
            .insert_if_absent("c:j2", NOW + 60, NOW)
            .await
            .unwrap_err()
            .to_string(),
    };
    assert!(e.contains("Redis at"), "{e}");
    // TLS settings only make sense with rediss://.
    let e = RedisReplayStore::connect_tls(&format!("redis://127.0.0.1:{port}/"), &tls, "p:", t)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("expected a rediss:// URL"), "{e}");
    // The key material never shows in Debug output.
    let dbg = format!("{tls:?}");
    assert!(
        !dbg.contains("PRIVATE KEY") && !dbg.contains("BEGIN"),
        "{dbg}"
    );
    drop(redis);
}
