//! Test harness: starts pkjwt's KMS double (`infra/kms/kms_double.py`, moto 5.2.5 patched to the
//! KMS API reference) once per test binary on 127.0.0.1, and gives tests a KMS admin client,
//! fault injection and call counts.
//!
//! The double runs from the repository's `.venv` (created by `infra/kms/start.sh venv`), or the
//! Python named by `PKJWT_KMS_PYTHON`. It exits when this process's end closes its stdin, so a
//! test binary that crashes leaves nothing behind. Without the venv, tests fail when
//! `PKJWT_REQUIRE_PEERS=1` (CI) and are skipped with a loud message otherwise.
//!
//! No test here walks the AWS credentials chain: every client gets static test credentials
//! through an explicit `SdkConfig`, so nothing ever asks the EC2 metadata address.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kms::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use pkjwt_aws_kms::AwsKmsOptions;
use pkjwt_conformance::double::PythonDouble;
use pkjwt_core::AwsKmsUri;

pub const REGION: &str = "us-east-1";

/// A running double.
pub struct Double {
    pub port: u16,
    // Held for the process's lifetime: dropping it stops the double.
    _process: Process,
}

enum Process {
    Double(PythonDouble),
    // `PKJWT_KMS_STOCK_MOTO=1`: the pipe stays open for the process's lifetime.
    StockMoto(Mutex<ChildStdin>, Mutex<Child>),
}

impl Double {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn start() -> Result<Double, String> {
    let root = repo_root();
    let python = std::env::var_os("PKJWT_KMS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    if !python.exists() {
        return Err(format!(
            "{} not found: run `infra/kms/start.sh venv` (creates .venv with moto[server]==5.2.5)",
            python.display()
        ));
    }
    if std::env::var("PKJWT_KMS_STOCK_MOTO").as_deref() == Ok("1") {
        return start_stock_moto(&python);
    }
    let mut command = Command::new(&python);
    command
        .arg(root.join("infra/kms/kms_double.py"))
        .args(["--host", "127.0.0.1", "--port", "0"])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stderr(Stdio::null());
    let d = PythonDouble::start(command, "KMS double", Duration::from_secs(60))?;
    Ok(Double {
        port: d.port,
        _process: Process::Double(d),
    })
}

/// `PKJWT_KMS_STOCK_MOTO=1`: unpatched `moto.server` instead of the double, to show what the
/// suite says about an endpoint that is not faithful (expected: the DIGEST and PS* conformance
/// tests fail, and every test that needs the control API fails). Never set in CI.
fn start_stock_moto(python: &std::path::Path) -> Result<Double, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut child = Command::new(python)
        .args(["-c", "import sys, threading, os\nfrom moto.server import main\nthreading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()\nmain(sys.argv[1:])"])
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start moto.server: {e}"))?;
    let stdin = child.stdin.take().ok_or("no stdin pipe")?;
    for _ in 0..300 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            eprintln!(
                "!!!!!!!! PKJWT_KMS_STOCK_MOTO=1: testing against UNPATCHED moto on port {port}"
            );
            return Ok(Double {
                port,
                _process: Process::StockMoto(Mutex::new(stdin), Mutex::new(child)),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("stock moto.server did not listen within 30 s".into())
}

/// The double, or `None` (test skipped) when it cannot run and peers are not required.
pub fn double() -> Option<&'static Double> {
    static DOUBLE: OnceLock<Result<Double, String>> = OnceLock::new();
    match DOUBLE.get_or_init(start) {
        Ok(d) => Some(d),
        Err(e) if std::env::var("PKJWT_REQUIRE_PEERS").as_deref() == Ok("1") => {
            panic!("PKJWT_REQUIRE_PEERS=1 and the local KMS endpoint is unavailable: {e}")
        }
        Err(e) => {
            eprintln!(
                "\n!!!!!!!! SKIPPED: local KMS endpoint unavailable: {e}\n!!!!!!!! set PKJWT_REQUIRE_PEERS=1 to make this a failure\n"
            );
            None
        }
    }
}

/// Shorthand: `let Some(d) = require!() else { return };`
#[macro_export]
macro_rules! require {
    () => {
        common::double()
    };
}

/// SDK configuration with static test credentials, the test region and no endpoint (the URI
/// carries it, as a user's would).
pub fn sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDTEST",
            "test-secret",
            None,
            None,
            "pkjwt-tests",
        )))
        .build()
}

/// Options for the backend under test: static credentials, fast backoff.
pub fn options() -> AwsKmsOptions {
    AwsKmsOptions::default()
        .sdk_config(sdk_config())
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
}

/// The key URI a user would write, pointing at the double.
pub fn uri(d: &Double, key_id: &str) -> AwsKmsUri {
    let text = format!(
        "awskms:key-id={key_id};region={REGION};endpoint={}",
        d.endpoint()
    );
    match pkjwt_core::KeyUri::parse(&text) {
        Ok(pkjwt_core::KeyUri::AwsKms(u)) => u,
        other => panic!("{text} did not parse as an AWS KMS URI: {other:?}"),
    }
}

/// A KMS client for setting up keys (no retries, so the setup never hides a fault).
pub fn admin(d: &Double) -> aws_sdk_kms::Client {
    let conf = aws_sdk_kms::config::Builder::from(&sdk_config())
        .endpoint_url(d.endpoint())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

/// A unique alias name for one test.
pub fn alias(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "alias/pkjwt-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a key with `spec` and `usage`, names it with a fresh alias; returns (alias, key ARN).
pub async fn create_key(
    d: &Double,
    spec: KeySpec,
    usage: KeyUsageType,
    tag: &str,
) -> (String, String) {
    let kms = admin(d);
    let out = kms
        .create_key()
        .key_spec(spec)
        .key_usage(usage)
        .send()
        .await
        .expect("CreateKey on the double");
    let meta = out.key_metadata().expect("KeyMetadata");
    let arn = meta.arn().expect("Arn").to_owned();
    let alias = alias(tag);
    kms.create_alias()
        .alias_name(&alias)
        .target_key_id(meta.key_id())
        .send()
        .await
        .expect("CreateAlias on the double");
    (alias, arn)
}

/// A request to the double's control API; returns the JSON body.
pub fn control(
    d: &Double,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    pkjwt_conformance::double::control(d.port, method, path, body)
}

/// Adds fault rules.
pub fn faults(d: &Double, rules: serde_json::Value) {
    control(
        d,
        "POST",
        "/_pkjwt/faults",
        Some(serde_json::json!({ "rules": rules })),
    );
}

/// How many calls of `op` the double received with `KeyId` exactly `key_id`.
pub fn calls(d: &Double, key_id: &str, op: &str) -> u64 {
    let q: String = key_id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    control(d, "GET", &format!("/_pkjwt/calls?key_id={q}"), None)
        .get(op)
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
}
