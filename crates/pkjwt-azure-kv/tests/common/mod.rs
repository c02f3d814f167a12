//! Test harness: starts pkjwt's Azure Key Vault double (`infra/azure-kv/azure_kv_double.py`)
//! once per test binary on 127.0.0.1 over HTTPS with a test CA it writes to a temporary
//! directory, and gives tests the options that reach it, its test controls and call counts.
//!
//! The double runs from the repository's `.venv` (`infra/ci/setup.sh`), or the Python named by
//! `PKJWT_AZURE_KV_PYTHON`. It exits when this process's end closes its stdin, so a test binary
//! that crashes leaves nothing behind. Without the venv, tests fail when `PKJWT_REQUIRE_PEERS=1`
//! (CI) and are skipped with a loud message otherwise.
//!
//! No test here walks the Azure credential chain or reaches the managed-identity address: every
//! signer gets a client-secret credential against the double's token endpoint through an
//! explicit `authority_host`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use pkjwt_azure_kv::{AzureKvOptions, CredentialSource};
use pkjwt_conformance::double::PythonDouble;
use pkjwt_core::uri::AzureKvUri;

/// The double's fixed test identity (see the double's module docs).
pub const TENANT: &str = "pkjwt-test-tenant";
pub const CLIENT_ID: &str = "pkjwt-test-client";
pub const CLIENT_SECRET: &str = "pkjwt-test-secret";
pub const FEDERATED_TOKEN: &str = "pkjwt-test-federated-token";

/// A running double.
pub struct Double {
    pub port: u16,
    /// The test CA, PEM.
    pub ca_pem: Vec<u8>,
    /// Where `ca.pem` lives (for child processes).
    pub ca_file: PathBuf,
    // Held for the process's lifetime: dropping it stops the double.
    _process: PythonDouble,
}

impl Double {
    /// `https://127.0.0.1:PORT`: the vault and the Entra ID authority host alike.
    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn start() -> Result<Double, String> {
    let root = repo_root();
    let python = std::env::var_os("PKJWT_AZURE_KV_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    if !python.exists() {
        return Err(format!(
            "{} not found: run infra/ci/setup.sh (creates .venv with infra/ci/requirements-azure-kv.txt)",
            python.display()
        ));
    }
    let ca_dir = std::env::temp_dir().join(format!("pkjwt-azure-kv-double-{}", std::process::id()));
    let mut command = Command::new(&python);
    command
        .arg(root.join("infra/azure-kv/azure_kv_double.py"))
        .args(["--host", "127.0.0.1", "--port", "0", "--ca-dir"])
        .arg(&ca_dir)
        .stderr(Stdio::inherit());
    let process = PythonDouble::start(command, "Azure Key Vault double", Duration::from_secs(60))?;
    let ca_file = ca_dir.join("ca.pem");
    let ca_pem = std::fs::read(&ca_file).map_err(|e| format!("{}: {e}", ca_file.display()))?;
    Ok(Double {
        port: process.port,
        ca_pem,
        ca_file,
        _process: process,
    })
}

/// The double, or `None` (test skipped) when it cannot run and peers are not required.
pub fn double() -> Option<&'static Double> {
    static DOUBLE: OnceLock<Result<Double, String>> = OnceLock::new();
    match DOUBLE.get_or_init(start) {
        Ok(d) => Some(d),
        Err(e) if std::env::var("PKJWT_REQUIRE_PEERS").as_deref() == Ok("1") => {
            panic!("PKJWT_REQUIRE_PEERS=1 and the Azure Key Vault double is unavailable: {e}")
        }
        Err(e) => {
            eprintln!(
                "\n!!!!!!!! SKIPPED: Azure Key Vault double unavailable: {e}\n!!!!!!!! set PKJWT_REQUIRE_PEERS=1 to make this a failure\n"
            );
            None
        }
    }
}

/// Options for the backend under test: the double's client secret, its authority and CA, fast
/// backoff.
pub fn options(d: &Double) -> AzureKvOptions {
    let mut o = AzureKvOptions::default()
        .credential(CredentialSource::ClientSecret {
            tenant_id: TENANT.into(),
            client_id: CLIENT_ID.into(),
            secret: CLIENT_SECRET.into(),
        })
        .authority_host(d.base())
        .root_certificates_pem(d.ca_pem.clone())
        .backoff(Duration::from_millis(10), Duration::from_millis(50));
    // The double makes RSA keys in Python: on a loaded 2-core machine a Create Key can take
    // longer than the 10 s default, and Create Key is not retried. No test waits on a timeout.
    o.attempt_timeout = Duration::from_secs(60);
    o
}

/// The key URI a user would write, pointing at the double.
pub fn uri(d: &Double, name: &str) -> AzureKvUri {
    let text = format!("azurekv:{}/keys/{name}", d.base());
    match pkjwt_core::KeyUri::parse(&text) {
        Ok(pkjwt_core::KeyUri::AzureKv(u)) => u,
        other => panic!("{text} did not parse as an Azure Key Vault URI: {other:?}"),
    }
}

/// A unique key name for one test.
pub fn name(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "pkjwt-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn admin_client(d: &Double) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&d.ca_pem).expect("test CA"))
        .build()
        .expect("admin client")
}

/// A call to the double's test controls (`/_admin/…`); returns the JSON answer.
pub async fn admin(
    d: &Double,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let url = format!("{}/_admin/{path}", d.base());
    let client = admin_client(d);
    let req = match method {
        "GET" => client.get(&url),
        _ => client
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body.unwrap_or_default().to_string()),
    };
    let resp = req.send().await.expect("admin call");
    let status = resp.status();
    let text = resp.text().await.expect("admin body");
    assert!(status.is_success(), "admin {path}: {status} {text}");
    serde_json::from_str(&text).expect("admin JSON")
}

/// Creates a key version directly in the double (no token); returns its `kid`.
pub async fn create(d: &Double, name: &str, spec: serde_json::Value) -> String {
    let out = admin(d, "POST", &format!("create/{name}"), Some(spec)).await;
    out["key"]["kid"].as_str().expect("kid").to_owned()
}

/// Adds fault rules.
pub async fn faults(d: &Double, rules: serde_json::Value) {
    admin(
        d,
        "POST",
        "faults",
        Some(serde_json::json!({ "rules": rules })),
    )
    .await;
}

/// Calls of `op` (`sign`, `get_key`, …) the double received for key `name`.
pub async fn calls(d: &Double, name: &str, op: &str) -> u64 {
    admin(d, "GET", &format!("calls?name={name}"), None).await[op]
        .as_u64()
        .unwrap_or(0)
}
