//! Test harness for the authorization server: starts `infra/oidc-provider/server.mjs` (oidc-provider
//! installed by `npm ci`) on 127.0.0.1 with a free port, waits until it reports ready, collects its
//! JSON-line log (grant errors with oidc-provider's internal reason), and kills it on drop.
//!
//! When node or the npm dependencies are missing, [`OidcProvider::start`] returns `None` and the
//! test skips with a message — unless `PKJWT_REQUIRE_PEERS=1` (set by `infra/ci/test.sh`), where
//! it panics: a missing peer is then a failure, not a skip.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::Value;

/// The folder holding `package.json`, the lockfile and `server.mjs`.
pub fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/oidc-provider")
}

/// True when tests must fail rather than skip for a missing peer.
pub fn peers_required() -> bool {
    std::env::var("PKJWT_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Skips (returns `None`) or fails, as [`peers_required`] says.
pub fn missing_peer(what: &str) -> Option<std::convert::Infallible> {
    if peers_required() {
        panic!("{what} (PKJWT_REQUIRE_PEERS=1: run infra/ci/setup.sh)");
    }
    eprintln!("SKIP: {what}; run infra/ci/setup.sh (PKJWT_REQUIRE_PEERS=1 makes this a failure)");
    None
}

/// How long one start of the provider may take before the harness kills it and starts another.
/// Normally under a second; generous because a 2-core CI machine runs many peers and test
/// processes at once.
const READY_WITHIN: Duration = Duration::from_secs(40);

/// Starts tried before the harness gives up. CI runs have twice seen one start in about a hundred
/// stall before `new Provider` (node alive, no error, no ready line); a fresh process then starts
/// normally, so a stalled start is retried, with its stderr printed as a note. An exit before
/// ready is a real error and is not retried.
const ATTEMPTS: usize = 3;

/// Lines of the provider's stderr kept for a failure message.
const STDERR_LINES: usize = 40;

/// A started provider: the child, its ready line, and the log its reader thread collects.
type Started = (Child, Value, Arc<Mutex<Vec<Value>>>);

/// A running oidc-provider.
pub struct OidcProvider {
    child: Child,
    /// The issuer identifier, `http://127.0.0.1:PORT`.
    pub issuer: String,
    /// The port.
    pub port: u16,
    log: Arc<Mutex<Vec<Value>>>,
    _config: tempfile_path::TempPath,
}

mod tempfile_path {
    //! A file removed on drop (no extra dependency for one temporary config file).
    use std::path::PathBuf;
    pub struct TempPath(pub PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

impl OidcProvider {
    /// Starts a provider with `config` (see `server.mjs` for the fields: `clients`, `resources`,
    /// `accessTokenTTL`, …). `None` when the peer is missing and not required.
    pub fn start(config: &Value) -> Option<Self> {
        Self::start_within(config, READY_WITHIN)
    }

    /// [`OidcProvider::start`] with another wait per start than `READY_WITHIN` (the harness's
    /// own test of a stalled start).
    pub fn start_within(config: &Value, ready_within: Duration) -> Option<Self> {
        let dir = provider_dir();
        if !dir.join("node_modules/oidc-provider").is_dir() {
            missing_peer(&format!(
                "oidc-provider is not installed in {} (npm ci)",
                dir.display()
            ))?;
        }
        let node = std::env::var("PKJWT_NODE").unwrap_or_else(|_| "node".into());
        let path =
            std::env::temp_dir().join(format!("pkjwt-op-{}-{}.json", std::process::id(), unique()));
        std::fs::write(&path, config.to_string()).expect("write provider config");
        let temp = tempfile_path::TempPath(path.clone());
        let mut stalls = Vec::new();
        let (child, ready, log) = loop {
            match Self::spawn_once(&node, &dir, &path, ready_within)? {
                Ok(started) => break started,
                Err(stall) => {
                    eprintln!("note: {stall}; starting it again");
                    stalls.push(stall);
                    if stalls.len() == ATTEMPTS {
                        panic!("oidc-provider never started:\n{}", stalls.join("\n"));
                    }
                }
            }
        };
        Some(OidcProvider {
            child,
            issuer: ready["issuer"].as_str().expect("issuer").to_owned(),
            port: u16::try_from(ready["port"].as_u64().expect("port")).expect("port"),
            log,
            _config: temp,
        })
    }

    /// One start: the running child, its ready line and its log; `Err` with a description
    /// (stderr included) when it did not report ready within `ready_within` (it is killed);
    /// a panic when it exited before ready; `None` for a missing peer.
    fn spawn_once(
        node: &str,
        dir: &std::path::Path,
        config: &std::path::Path,
        ready_within: Duration,
    ) -> Option<Result<Started, String>> {
        let spawned = Command::new(node)
            .arg(dir.join("server.mjs"))
            .arg(config)
            .current_dir(dir)
            // server.mjs exits when this pipe closes: no server outlives a killed test process.
            .env("PKJWT_EXIT_ON_STDIN_CLOSE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => match missing_peer(&format!("cannot run {node}: {e}"))? {},
        };
        let stdout = child.stdout.take().expect("piped stdout");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if v["event"] == "ready" {
                    let _ = tx.send(v.clone());
                }
                if let Ok(mut g) = sink.lock() {
                    g.push(v);
                }
            }
        });
        let stderr = child.stderr.take().expect("piped stderr");
        let errors = Arc::new(Mutex::new(Vec::<String>::new()));
        let err_sink = errors.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut g) = err_sink.lock() {
                    g.push(line);
                    // Only the tail matters for a diagnosis.
                    if g.len() > STDERR_LINES {
                        g.remove(0);
                    }
                }
            }
        });
        let stderr_tail = || {
            // Give the reader thread a moment to collect what a dying process wrote last.
            std::thread::sleep(Duration::from_millis(200));
            errors.lock().map(|g| g.join("\n")).unwrap_or_default()
        };
        let started = std::time::Instant::now();
        let ready = match rx.recv_timeout(ready_within) {
            Ok(v) => v,
            // The reader thread ended: stdout closed before a ready line, so node exited.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                panic!(
                    "oidc-provider exited before it was ready ({status}); its stderr:\n{}",
                    stderr_tail()
                );
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                return Some(Err(format!(
                    "oidc-provider did not report ready within {} s; its stderr:\n{}",
                    ready_within.as_secs(),
                    stderr_tail()
                )));
            }
        };
        let took = started.elapsed();
        if took > Duration::from_secs(5) {
            // Not a failure (the machine may be busy), but worth seeing in a slow CI log.
            eprintln!("note: oidc-provider took {took:.1?} to report ready");
        }
        Some(Ok((child, ready, log)))
    }

    /// Every JSON line logged so far.
    pub fn events(&self) -> Vec<Value> {
        self.log.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// The logged lines once `done` holds for them, or after 5 s whatever they are: the server
    /// writes an event line after it answers, and a reader thread collects it, so a test that
    /// looks right after a response can otherwise miss the newest line.
    pub fn events_when(&self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let events = self.events();
            if done(&events) || std::time::Instant::now() >= deadline {
                return events;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Internal reasons (`error_detail`) of the grant errors logged so far.
    pub fn grant_errors(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e["event"] == "grant.error")
            .map(|e| {
                format!(
                    "{}: {}",
                    e["error_description"].as_str().unwrap_or(""),
                    e["error_detail"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    /// Successful grants for `client_id` so far.
    pub fn grants(&self, client_id: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e["event"] == "grant.success" && e["client_id"] == client_id)
            .count()
    }

    /// The token endpoint.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Client metadata for a `private_key_jwt` client_credentials client (test-peers.md).
pub fn client_metadata(client_id: &str, jwks_uri: &str, alg: &str, scope: &str) -> Value {
    serde_json::json!({
        "client_id": client_id,
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": alg,
        "jwks_uri": jwks_uri,
        "grant_types": ["client_credentials"],
        "response_types": [],
        "redirect_uris": [],
        "scope": scope,
    })
}
