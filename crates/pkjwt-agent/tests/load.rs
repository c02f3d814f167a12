//! The agent under load, with the keys it is meant for: a SoftHSM2 key (PKCS#11) and a key in
//! the AWS KMS double (`infra/kms/kms_double.py`), tokens from oidc-provider, and callers in
//! separate processes.
//!
//! Both backends read their settings from the environment of the process that opens the key
//! (`SOFTHSM2_CONF` for SoftHSM2, the AWS credentials chain for KMS), and a test may not change
//! its own environment. So each test runs in three roles, all in this test binary:
//!
//! - the **parent** (a plain `cargo test` run) prepares a private SoftHSM2 token directory and
//!   re-runs the binary for just this test with `SOFTHSM2_CONF` and static test credentials set
//!   (no other AWS setting is read: config and credentials files point at nothing, instance
//!   metadata is off); it checks that exactly that one test ran and passed;
//! - the **agent** role starts the KMS double, oidc-provider (with the clients' public keys on
//!   a loopback JWKS endpoint) and the agent, and, for the load test, four **caller** processes;
//! - each **caller** process runs 50 threads that ask the agent's socket for tokens, one new
//!   connection per request, and prints one line per request: profile, start time, latency,
//!   HTTP status and a fingerprint of the token (never the token).
//!
//! What counts the work is independent of the agent where it can be: oidc-provider's event log
//! for token requests, the KMS double's own count of `Sign` calls for the KMS key. For the
//! SoftHSM2 key (which counts nothing) the agent's signer histogram is used, checked against
//! the token requests the server saw.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pkjwt::{Algorithm, Jwk, KeyUri, OpenOptions};
use pkjwt_agent::client::{self, AgentClientError};
use pkjwt_agent::{Agent, AgentConfig};
use pkjwt_conformance::double::PythonDouble;
use pkjwt_conformance::oidc_provider::{OidcProvider, client_metadata, missing_peer};
use pkjwt_jwks::{JwksService, ServeOptions};
use pkjwt_verify::{AccessTokenPolicy, AccessTokenValidator, FetchPolicy};
use serde_json::{Value, json};

const ROLE_ENV: &str = "PKJWT_AGENT_LOAD_ROLE";
const DIR_ENV: &str = "PKJWT_AGENT_LOAD_DIR";
const SOCKET_ENV: &str = "PKJWT_AGENT_LOAD_SOCKET";
const RUN_MS_ENV: &str = "PKJWT_AGENT_LOAD_RUN_MS";

const SCOPE: &str = "accounts:read";
const API: &str = "https://api.example.com";
const HSM_CLIENT: &str = "load-hsm";
const KMS_CLIENT: &str = "load-kms";
const TOKEN_LABEL: &str = "agent-load";
const T: Duration = Duration::from_secs(30);

/// Caller processes and threads in each: 200 callers.
const PROCESSES: usize = 4;
const THREADS: usize = 50;
/// Pause of a caller between two requests: 200 callers then send about 1,000 requests a
/// second, enough to keep requests in flight at every moment without saturating 2 cores.
const PAUSE: Duration = Duration::from_millis(200);

fn softhsm_module() -> PathBuf {
    std::env::var_os("PKJWT_TEST_PKCS11_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn temp_dir(tag: &str) -> PathBuf {
    // Short: a Unix socket path is limited to 108 bytes.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let d = std::env::temp_dir().join(format!("pl-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn epoch_micros() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}

/// A fingerprint of a token, so that caller processes can report which token they got without
/// printing it (SipHash with fixed keys: the same in every process of this binary).
fn fingerprint(token: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    token.hash(&mut h);
    h.finish()
}

// ---------------------------------------------------------------------------------------------
// Roles

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Parent,
    Agent,
    Caller,
}

fn role(test: &str) -> Role {
    match std::env::var(ROLE_ENV).ok().as_deref() {
        Some(r) if r == format!("agent:{test}") => Role::Agent,
        Some(r) if r == format!("caller:{test}") => Role::Caller,
        _ => Role::Parent,
    }
}

/// The parent's part: a private SoftHSM2 token (when `hsm`), then this test again in a child
/// process with the backends' environment; passes when the child ran that one test and passed.
fn run_in_child(test: &str, hsm: bool) {
    let dir = temp_dir(if hsm { "hsm" } else { "kms" });
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, format!("agent:{test}"))
        .env(DIR_ENV, &dir)
        // Static test credentials for the KMS double; nothing else from the AWS chain.
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        );
    if hsm {
        let Some(conf) = softhsm_token(&dir) else {
            let _ = std::fs::remove_dir_all(&dir);
            return;
        };
        cmd.env("SOFTHSM2_CONF", conf);
    }
    let out = cmd.output().expect("the test binary re-runs itself");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("---- agent process for {test} ----\n{stdout}\n{stderr}");
    assert!(out.status.success(), "the agent process failed");
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "the child ran exactly the one test"
    );
}

/// A SoftHSM2 token directory with one initialized token; `None` (skip) without SoftHSM2.
fn softhsm_token(dir: &Path) -> Option<PathBuf> {
    let tool = Command::new("softhsm2-util").arg("--version").output();
    if !softhsm_module().is_file() || tool.is_err() {
        missing_peer("SoftHSM2 (softhsm2-util and its module) is not installed")?;
    }
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    // PIN files are the owner's alone; the PINs reach the tool through a terminal
    // (infra/softhsm/pty_pin.py), never its argument list.
    for (f, pin) in [("pin", "4711-load"), ("so-pin", "0815-load")] {
        std::fs::write(dir.join(f), format!("{pin}\n")).unwrap();
        std::fs::set_permissions(
            dir.join(f),
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
        )
        .unwrap();
    }
    let out = Command::new("python3")
        .env("SOFTHSM2_CONF", &conf)
        .arg(repo_root().join("infra/softhsm/pty_pin.py"))
        .arg("--pin-file")
        .arg(dir.join("pin"))
        .arg("--so-pin-file")
        .arg(dir.join("so-pin"))
        .args([
            "--",
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            TOKEN_LABEL,
        ])
        .output()
        .expect("python3 runs infra/softhsm/pty_pin.py");
    assert!(
        out.status.success(),
        "softhsm2-util --init-token: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(conf)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The KMS double, private to the agent process (its call counts are then this test's alone).

struct KmsDouble {
    port: u16,
    // Held for the test's lifetime: dropping it stops the double.
    _process: PythonDouble,
}

impl KmsDouble {
    fn start() -> Option<KmsDouble> {
        let python = std::env::var_os("PKJWT_KMS_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
        if !python.exists() {
            missing_peer(&format!(
                "{} not found (the KMS double's Python: infra/kms/start.sh venv)",
                python.display()
            ))?;
        }
        let mut command = Command::new(&python);
        command
            .arg(repo_root().join("infra/kms/kms_double.py"))
            .args(["--host", "127.0.0.1", "--port", "0"])
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stderr(Stdio::null());
        let process = PythonDouble::start(command, "KMS double", Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("{e}"));
        Some(KmsDouble {
            port: process.port,
            _process: process,
        })
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A request to the double's control API (`/_pkjwt/…`); the JSON answer.
    fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        pkjwt_conformance::double::control(self.port, method, path, body)
    }

    /// `Sign` calls the double received, for every key (the double is this test's alone).
    fn signs(&self) -> u64 {
        self.control("GET", "/_pkjwt/calls", None)["Sign"]
            .as_u64()
            .unwrap_or(0)
    }

    fn faults(&self, rules: Value) {
        self.control("POST", "/_pkjwt/faults", Some(json!({ "rules": rules })));
    }

    fn clear_faults(&self) {
        self.control("POST", "/_pkjwt/reset", None);
    }
}

// ---------------------------------------------------------------------------------------------
// Peers of the agent process

/// A key's public half on a loopback JWKS endpoint; the URL.
async fn serve_jwks(signer: &dyn pkjwt::Signer) -> String {
    let jwk = Jwk::for_signing(signer.public_key(), Algorithm::ES256);
    let svc = JwksService::new(vec![jwk], None, ServeOptions::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, svc.router()).await.unwrap();
    });
    format!("http://{addr}/jwks")
}

/// A new ES256 key in the KMS double under a fresh alias; its URI.
async fn kms_key(kms: &KmsDouble) -> (String, String) {
    let uri = format!(
        "awskms:key-id=alias/pkjwt-agent-load-{};region=us-east-1;endpoint={}",
        std::process::id(),
        kms.endpoint()
    );
    let signer = pkjwt::generate(
        &KeyUri::parse(&uri).unwrap(),
        Algorithm::ES256,
        &OpenOptions::default(),
    )
    .await
    .expect("a key in the KMS double");
    let jwks = serve_jwks(&*signer).await;
    (uri, jwks)
}

/// A new ES256 key on the SoftHSM2 token of `dir`; its URI.
async fn hsm_key(dir: &Path) -> (String, String) {
    let uri = format!(
        "pkcs11:token={TOKEN_LABEL};object=agent-load?module-path={}&pin-source=file:{}",
        softhsm_module().display(),
        dir.join("pin").display()
    );
    let signer = pkjwt::generate(
        &KeyUri::parse(&uri).unwrap(),
        Algorithm::ES256,
        &OpenOptions::default(),
    )
    .await
    .expect("a key on the SoftHSM2 token");
    let jwks = serve_jwks(&*signer).await;
    (uri, jwks)
}

struct ProfileSpec<'a> {
    name: &'a str,
    client: &'a str,
    key: &'a str,
}

fn config(
    socket: &Path,
    issuer: &str,
    agent_extra: &str,
    profiles: &[ProfileSpec<'_>],
) -> AgentConfig {
    let mut text = format!(
        "[agent]\nsocket = {:?}\n{agent_extra}\n",
        socket.display().to_string()
    );
    for p in profiles {
        text.push_str(&format!(
            "\n[profile.{}]\nkey = {:?}\nissuer = {issuer:?}\nclient_id = {:?}\nscope = {SCOPE:?}\n\
             resources = [{API:?}]\n",
            p.name, p.key, p.client
        ));
    }
    AgentConfig::parse(&text, "load.toml").unwrap()
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

/// Grants for `client` once at least `n` are logged, after a pause in which a surplus one
/// would show.
fn settled_grants(op: &OidcProvider, client: &str, n: usize) -> usize {
    op.events_when(|ev| {
        ev.iter()
            .filter(|e| e["event"] == "grant.success" && e["client_id"] == client)
            .count()
            >= n
    });
    std::thread::sleep(Duration::from_millis(500));
    op.grants(client)
}

async fn validator(issuer: &str) -> AccessTokenValidator {
    let mut fetch = FetchPolicy::default();
    fetch.allow_loopback_http = true;
    AccessTokenValidator::discover(issuer, API, AccessTokenPolicy::default(), fetch)
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Caller processes

/// One request as a caller process reports it.
#[derive(Clone, Debug)]
struct Record {
    caller: usize,
    profile: String,
    /// Microseconds since the epoch.
    start: u64,
    latency: u64,
    status: u16,
    token: u64,
}

impl Record {
    fn end(&self) -> u64 {
        self.start + self.latency
    }
}

/// The caller role: `THREADS` threads released together on "GO" from stdin, each asking for
/// `kms` and `hsm` in turn (all threads the same profile at the same step) until the run time
/// is over; one `R …` line per request on stdout.
fn caller_main() {
    let socket = PathBuf::from(std::env::var_os(SOCKET_ENV).unwrap());
    let run = Duration::from_millis(std::env::var(RUN_MS_ENV).unwrap().parse().unwrap());
    let start = Arc::new(Barrier::new(THREADS + 1));
    let mut threads = Vec::new();
    for i in 0..THREADS {
        let (socket, start) = (socket.clone(), start.clone());
        threads.push(std::thread::spawn(move || {
            start.wait();
            let go = Instant::now();
            let mut out = Vec::new();
            let mut step = 0usize;
            while go.elapsed() < run {
                let profile = ["kms", "hsm"][step % 2];
                let at = epoch_micros();
                let t0 = Instant::now();
                let a = client::get(&socket, &format!("/token?profile={profile}"), T);
                let latency = u64::try_from(t0.elapsed().as_micros()).unwrap();
                let (status, token) = match a {
                    Ok(a) => {
                        let v: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
                        let fp = v["access_token"].as_str().map_or(0, fingerprint);
                        (a.status, fp)
                    }
                    Err(_) => (0, 0),
                };
                out.push(format!("R {i} {profile} {at} {latency} {status} {token:x}"));
                step += 1;
                std::thread::sleep(PAUSE);
            }
            out
        }));
    }
    println!("READY");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "GO");
    start.wait();
    let mut stdout = std::io::stdout().lock();
    for t in threads {
        for l in t.join().unwrap() {
            writeln!(stdout, "{l}").unwrap();
        }
    }
}

fn parse_records(process: usize, text: &str) -> Vec<Record> {
    text.lines()
        .filter_map(|l| l.strip_prefix("R "))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Record {
                caller: process * THREADS + f[0].parse::<usize>().unwrap(),
                profile: f[1].to_owned(),
                start: f[2].parse().unwrap(),
                latency: f[3].parse().unwrap(),
                status: f[4].parse().unwrap(),
                token: u64::from_str_radix(f[5], 16).unwrap(),
            }
        })
        .collect()
}

fn max_latency<'a>(rs: impl Iterator<Item = &'a Record>) -> (usize, u64) {
    rs.fold((0, 0), |(n, m), r| (n + 1, m.max(r.latency)))
}

// ---------------------------------------------------------------------------------------------
// Tests

const LOAD_TEST: &str =
    "two_hundred_callers_in_four_processes_one_grant_and_one_signature_per_profile_and_token";

/// 200 callers in 4 processes against a SoftHSM2 and a KMS profile, through the first fetch
/// and one refresh (token lifetime 16 s, refresh at half of it; the KMS double delays that
/// refresh's `Sign` by 2 s):
///
/// - each profile: exactly one token request at oidc-provider and one signature per token
///   (2 tokens in the run: the first and its refresh), whatever the number of callers;
/// - all 200 callers' first answers are the same token, and every answer is one of the two
///   tokens, each valid for the API at the provider (pkjwt-verify, the provider's JWKS);
/// - no caller waits on the refresh: the slowest answer while it runs is within a generous
///   factor of the slowest cached answer before it (a caller that waited would wait the 2 s).
#[test]
fn two_hundred_callers_in_four_processes_one_grant_and_one_signature_per_profile_and_token() {
    match role(LOAD_TEST) {
        Role::Parent => run_in_child(LOAD_TEST, true),
        Role::Caller => caller_main(),
        Role::Agent => runtime().block_on(load_test_agent()),
    }
}

async fn load_test_agent() {
    const TTL_SECS: u64 = 16;
    const RUN: Duration = Duration::from_millis(12_000);
    const KMS_REFRESH_DELAY_MS: u64 = 2_000;
    const FACTOR: u64 = 5;

    let dir = PathBuf::from(std::env::var_os(DIR_ENV).unwrap());
    let Some(kms) = KmsDouble::start() else {
        return;
    };
    let (hsm_uri, hsm_jwks) = hsm_key(&dir).await;
    let (kms_uri, kms_jwks) = kms_key(&kms).await;
    let Some(op) = OidcProvider::start(&json!({
        "clients": [
            client_metadata(HSM_CLIENT, &hsm_jwks, "ES256", SCOPE),
            client_metadata(KMS_CLIENT, &kms_jwks, "ES256", SCOPE),
        ],
        "resources": { API: { "scope": SCOPE } },
        "accessTokenTTL": TTL_SECS,
    })) else {
        return;
    };
    let socket = dir.join("agent.sock");
    let agent = Agent::start(config(
        &socket,
        &op.issuer,
        "refresh_fraction = 0.5\njitter = 0.0",
        &[
            ProfileSpec {
                name: "hsm",
                client: HSM_CLIENT,
                key: &hsm_uri,
            },
            ProfileSpec {
                name: "kms",
                client: KMS_CLIENT,
                key: &kms_uri,
            },
        ],
    ))
    .await
    .unwrap();
    let signs_before = kms.signs();
    assert_eq!(op.grants(HSM_CLIENT) + op.grants(KMS_CLIENT), 0);

    // Four caller processes, 50 threads each, released together.
    let mut callers = Vec::new();
    for _ in 0..PROCESSES {
        let mut c = Command::new(std::env::current_exe().unwrap())
            .args([LOAD_TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, format!("caller:{LOAD_TEST}"))
            .env(SOCKET_ENV, &socket)
            .env(RUN_MS_ENV, RUN.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(c.stdout.take().unwrap());
        let mut line = String::new();
        // libtest prints "running 1 test" (and the test's name) first; READY follows.
        while !line.contains("READY") {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "caller exited early");
        }
        callers.push((c, out));
    }
    for (c, _) in &mut callers {
        c.stdin.as_mut().unwrap().write_all(b"GO\n").unwrap();
    }

    // Once the first KMS signature is done, the next one (the refresh) is slowed down by 2 s.
    let deadline = Instant::now() + T;
    while kms.signs() < signs_before + 1 {
        assert!(Instant::now() < deadline, "no KMS signature within {T:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kms.faults(json!([{ "operation": "Sign", "times": 1, "delay_ms": KMS_REFRESH_DELAY_MS }]));
    // The first tokens, as a caller gets them: for validation below.
    let s = socket.clone();
    let first: BTreeMap<&str, String> = tokio::task::spawn_blocking(move || {
        ["hsm", "kms"]
            .into_iter()
            .map(|p| (p, client::token(&s, p, T).unwrap()))
            .collect()
    })
    .await
    .unwrap();

    let mut records = Vec::new();
    for (i, (mut c, mut out)) in callers.into_iter().enumerate() {
        let mut text = String::new();
        out.read_to_string(&mut text).unwrap();
        let status = c.wait().unwrap();
        let mut err = String::new();
        c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(status.success(), "caller process {i}: {err}");
        records.extend(parse_records(i, &text));
    }
    let s = socket.clone();
    let last: BTreeMap<&str, String> = tokio::task::spawn_blocking(move || {
        ["hsm", "kms"]
            .into_iter()
            .map(|p| (p, client::token(&s, p, T).unwrap()))
            .collect()
    })
    .await
    .unwrap();

    let failed = records.iter().filter(|r| r.status != 200).count();
    assert_eq!(failed, 0, "every request answered 200");
    let callers: BTreeSet<usize> = records.iter().map(|r| r.caller).collect();
    assert_eq!(callers.len(), PROCESSES * THREADS, "every caller reported");

    let v = validator(&op.issuer).await;
    let m = metrics(&socket);
    for (profile, client_id) in [("hsm", HSM_CLIENT), ("kms", KMS_CLIENT)] {
        let rs: Vec<&Record> = records.iter().filter(|r| r.profile == profile).collect();
        let (t1, t2) = (fingerprint(&first[profile]), fingerprint(&last[profile]));
        assert_ne!(t1, t2, "{profile}: refreshed during the run");

        // Every caller's first answer: the same token, from one request.
        let mut firsts: BTreeMap<usize, &Record> = BTreeMap::new();
        for r in &rs {
            let e = firsts.entry(r.caller).or_insert(r);
            if r.start < e.start {
                *e = r;
            }
        }
        assert_eq!(firsts.len(), PROCESSES * THREADS);
        assert!(
            firsts.values().all(|r| r.token == t1),
            "{profile}: all 200 callers' first answer is the first token"
        );
        let seen: BTreeSet<u64> = rs.iter().map(|r| r.token).collect();
        assert_eq!(
            seen,
            BTreeSet::from([t1, t2]),
            "{profile}: every answer is one of the two tokens"
        );
        for t in [&first[profile], &last[profile]] {
            let claims = v.validate(t).await.unwrap();
            assert_eq!(claims.client_id, client_id);
            assert!(claims.has_scope(SCOPE));
        }

        // One token request and one signature per token.
        assert_eq!(
            settled_grants(&op, client_id, 2),
            2,
            "{profile}: {} requests for 2 tokens, 2 token requests; grant errors: {:?}",
            rs.len(),
            op.grant_errors()
        );
        assert_eq!(
            metric(
                &m,
                &format!("pkjwt_agent_token_fetches_total{{profile=\"{profile}\"}}")
            ),
            2
        );
        assert_eq!(
            metric(
                &m,
                &format!("pkjwt_agent_signer_seconds_count{{profile=\"{profile}\"}}")
            ),
            2,
            "{profile}: two signatures in the agent's histogram"
        );
        assert_eq!(
            metric(
                &m,
                &format!("pkjwt_agent_tokens_served_total{{profile=\"{profile}\"}}")
            ),
            rs.len() as u64 + 2,
            "{profile}: every request (and this test's own two) answered"
        );

        // Latency: the cached path (well after the first token, well before the refresh point)
        // against the time from the refresh point until the new token is served.
        let arrived = rs.iter().map(|r| r.end()).min().unwrap();
        let refresh_at = arrived + TTL_SECS * 1_000_000 / 2;
        let renewed = rs
            .iter()
            .filter(|r| r.token == t2)
            .map(|r| r.end())
            .min()
            .unwrap();
        let (n_cached, cached) = max_latency(
            rs.iter()
                .copied()
                .filter(|r| r.start > arrived + 500_000 && r.end() + 500_000 < refresh_at),
        );
        let (n_during, during) = max_latency(
            rs.iter()
                .copied()
                .filter(|r| r.start + 500_000 > refresh_at && r.start < renewed),
        );
        println!(
            "{profile}: {} requests; cached: {n_cached} requests, max {cached} µs; during the \
             refresh (the {} ms from 0.5 s before the refresh point to the first answer with \
             the new token): {n_during} requests, max {during} µs",
            rs.len(),
            (renewed + 500_000).saturating_sub(refresh_at) / 1000
        );
        assert!(
            n_cached >= 200 && n_during >= 50,
            "enough requests in each phase"
        );
        if profile == "kms" {
            assert!(
                renewed > refresh_at + KMS_REFRESH_DELAY_MS * 1000 / 2,
                "the slowed refresh took its time while callers were answered"
            );
        }
        assert!(
            during <= FACTOR * cached,
            "{profile}: a caller waited {during} µs during the refresh; the slowest cached answer \
             took {cached} µs"
        );
    }
    assert_eq!(
        kms.signs() - signs_before,
        2,
        "the KMS double saw two Sign calls: one per token"
    );
    agent.shutdown().await.unwrap();
}

const KMS_DOWN_TEST: &str =
    "kms_key_throttled_sign_then_server_down_serve_the_valid_token_then_a_clear_error";

/// With a KMS key: a refresh whose `Sign` the KMS throttles is a metric, not a caller error,
/// while the token is valid; then the authorization server goes away: the valid token is still
/// served until its expiry, then a 503 naming the server (and holding no token).
#[test]
fn kms_key_throttled_sign_then_server_down_serve_the_valid_token_then_a_clear_error() {
    match role(KMS_DOWN_TEST) {
        Role::Parent => run_in_child(KMS_DOWN_TEST, false),
        Role::Caller => unreachable!("no caller processes in this test"),
        Role::Agent => runtime().block_on(kms_down_agent()),
    }
}

async fn kms_down_agent() {
    const TTL: Duration = Duration::from_secs(8);
    let dir = PathBuf::from(std::env::var_os(DIR_ENV).unwrap());
    let Some(kms) = KmsDouble::start() else {
        return;
    };
    let (kms_uri, kms_jwks) = kms_key(&kms).await;
    let Some(op) = OidcProvider::start(&json!({
        "clients": [client_metadata(KMS_CLIENT, &kms_jwks, "ES256", SCOPE)],
        "resources": { API: { "scope": SCOPE } },
        "accessTokenTTL": TTL.as_secs(),
    })) else {
        return;
    };
    let issuer = op.issuer.clone();
    let socket = dir.join("agent.sock");
    let agent = Agent::start(config(
        &socket,
        &issuer,
        "refresh_fraction = 0.25\njitter = 0.0",
        &[ProfileSpec {
            name: "kms",
            client: KMS_CLIENT,
            key: &kms_uri,
        }],
    ))
    .await
    .unwrap();
    let fetched = Instant::now();
    let t1 = client::token(&socket, "kms", T).unwrap();
    let got = Instant::now();
    assert_eq!(settled_grants(&op, KMS_CLIENT, 1), 1);
    let claims = validator(&issuer).await.validate(&t1).await.unwrap();
    assert_eq!(claims.client_id, KMS_CLIENT);

    // KMS throttles every Sign; past the refresh point (2 s of 8) the refresh fails in the
    // background and callers still get the valid token.
    kms.faults(json!([{
        "operation": "Sign", "times": -1,
        "type": "ThrottlingException", "message": "Rate exceeded", "status": 400
    }]));
    tokio::time::sleep(
        (got + Duration::from_millis(2300)).saturating_duration_since(Instant::now()),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(3);
    let m = loop {
        assert_eq!(client::token(&socket, "kms", T).unwrap(), t1);
        let m = metrics(&socket);
        if metric(&m, "pkjwt_agent_signer_errors_total{profile=\"kms\"}") >= 1 {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "no throttled signature counted:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        metric(&m, "pkjwt_agent_token_unavailable_total{profile=\"kms\"}"),
        0,
        "no caller got an error while the token was valid"
    );
    assert!(
        metric(
            &m,
            "pkjwt_agent_cache_hits_refresh_due_total{profile=\"kms\"}"
        ) >= 1
    );
    assert!(
        metric(
            &m,
            "pkjwt_agent_signer_errors_by_kind_total{profile=\"kms\",kind=\"throttled\"}"
        ) >= 1,
        "KMS throttling counted as such:\n{m}"
    );
    assert!(
        m.contains("pkjwt_agent_token_fetch_errors_total{profile=\"kms\",kind=\"assertion\"}"),
        "the throttled refresh counted as an assertion error:\n{m}"
    );
    assert_eq!(
        op.grants(KMS_CLIENT),
        1,
        "the throttled refresh sent nothing"
    );

    // The server goes away, then KMS recovers: later refreshes sign and fail at the network.
    drop(op);
    kms.clear_faults();
    let deadline = got + TTL;
    let m = loop {
        assert_eq!(client::token(&socket, "kms", T).unwrap(), t1, "still valid");
        let m = metrics(&socket);
        if m.contains("pkjwt_agent_token_fetch_errors_total{profile=\"kms\",kind=\"network\"}") {
            break m;
        }
        assert!(
            Instant::now() + Duration::from_millis(500) < deadline,
            "no refresh failed at the network before expiry:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        metric(&m, "pkjwt_agent_token_unavailable_total{profile=\"kms\"}"),
        0
    );

    // After the lifetime: a clear error naming the server, and no token in it; never before.
    let deadline = got + TTL + Duration::from_secs(6);
    let e = loop {
        match client::token(&socket, "kms", T) {
            Ok(t) => assert_eq!(t, t1),
            Err(e) => break e,
        }
        assert!(Instant::now() < deadline, "still served long after expiry");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        fetched.elapsed() >= TTL,
        "an error {:?} after the fetch, before the token's {TTL:?} lifetime",
        fetched.elapsed()
    );
    let text = e.to_string();
    assert!(
        matches!(&e, AgentClientError::Refused { status: 503, error, .. } if error == "token_unavailable"),
        "{text}"
    );
    assert!(
        text.contains("profile kms: no valid token") && text.contains("cannot reach"),
        "{text}"
    );
    assert!(text.contains(&issuer[7..]), "names the server: {text}");
    assert!(!text.contains(&t1));
    agent.shutdown().await.unwrap();
}
