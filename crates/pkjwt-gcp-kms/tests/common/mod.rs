//! Test harness: starts pkjwt's Cloud KMS double (`infra/gcp-kms/gcp_kms_double.py`) once per
//! test binary on 127.0.0.1, and gives tests keys, service account files, fault injection and
//! call counts.
//!
//! The double runs from the repository's `.venv` (infra/ci/setup.sh), or the Python named by
//! `PKJWT_GCP_KMS_PYTHON`. It exits when this process's end closes its stdin. Without it, tests
//! fail when `PKJWT_REQUIRE_PEERS=1` (CI) and are skipped with a loud message otherwise.
//!
//! No test here walks Application Default Credentials: every signer gets an explicit service
//! account key file whose `token_uri` is the double, so nothing ever asks the metadata server.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use pkjwt_conformance::double::PythonDouble;
use pkjwt_core::GcpKmsUri;
use pkjwt_gcp_kms::{Credentials, GcpKmsOptions};

/// A running double.
pub struct Double {
    pub port: u16,
    // Held for the process's lifetime: dropping it stops the double.
    _process: PythonDouble,
    /// A service account key file (JSON) the double issued, with its token endpoint.
    pub service_account: PathBuf,
}

impl Double {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A directory for this test process's files.
pub fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pkjwt-gcp-kms-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn start() -> Result<Double, String> {
    let root = repo_root();
    let python = std::env::var_os("PKJWT_GCP_KMS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    if !python.exists() {
        return Err(format!(
            "{} not found: run infra/ci/setup.sh (creates .venv with infra/ci/requirements-gcp-kms.txt)",
            python.display()
        ));
    }
    let mut command = Command::new(&python);
    command
        .arg(root.join("infra/gcp-kms/gcp_kms_double.py"))
        .args(["--port", "0", "--pending-ms", "300"])
        .stderr(Stdio::null());
    let process = PythonDouble::start(command, "Cloud KMS double", Duration::from_secs(60))?;
    let mut d = Double {
        port: process.port,
        _process: process,
        service_account: PathBuf::new(),
    };
    d.service_account = service_account_file(&d, "sa.json");
    Ok(d)
}

/// The double, or `None` (test skipped) when it cannot run and peers are not required.
pub fn double() -> Option<&'static Double> {
    static DOUBLE: OnceLock<Result<Double, String>> = OnceLock::new();
    match DOUBLE.get_or_init(start) {
        Ok(d) => Some(d),
        Err(e) if std::env::var("PKJWT_REQUIRE_PEERS").as_deref() == Ok("1") => {
            panic!("PKJWT_REQUIRE_PEERS=1 and the Cloud KMS double is unavailable: {e}")
        }
        Err(e) => {
            eprintln!(
                "\n!!!!!!!! SKIPPED: Cloud KMS double unavailable: {e}\n!!!!!!!! set PKJWT_REQUIRE_PEERS=1 to make this a failure\n"
            );
            None
        }
    }
}

/// Writes a new service account key file the double issued (mode 0600, as a key file must be);
/// returns its path.
pub fn service_account_file(d: &Double, file: &str) -> PathBuf {
    let sa = control(
        d,
        "POST",
        "/_pkjwt/service-account",
        Some(serde_json::json!({})),
    );
    let path = scratch().join(file);
    write_secret(&path, &sa.to_string());
    path
}

/// Writes a file that holds a secret with mode 0600.
pub fn write_secret(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write the file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 0600");
}

/// Options for the backend under test: the double's service account, fast backoff.
pub fn options(d: &Double) -> GcpKmsOptions {
    GcpKmsOptions::default()
        .credentials(Credentials::File(d.service_account.clone()))
        .backoff(Duration::from_millis(5), Duration::from_millis(20))
}

/// The key URI a user would write, pointing at the double.
pub fn uri(d: &Double, version_name: &str) -> GcpKmsUri {
    let text = format!("gcpkms:{version_name};endpoint={}", d.endpoint());
    match pkjwt_core::KeyUri::parse(&text) {
        Ok(pkjwt_core::KeyUri::GcpKms(u)) => u,
        other => panic!("{text} did not parse as a Cloud KMS URI: {other:?}"),
    }
}

/// A fresh crypto key id.
pub fn key_id(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The key ring tests use (created by the double on the first key).
pub const RING: &str = "projects/pkjwt-test/locations/global/keyRings/tests";

/// Creates a key (directly in the double, no auth) with `algorithm`; returns the version name.
pub fn create_key(d: &Double, tag: &str, algorithm: &str, extra: serde_json::Value) -> String {
    let name = format!("{RING}/cryptoKeys/{}/cryptoKeyVersions/1", key_id(tag));
    let mut body = serde_json::json!({"name": name, "algorithm": algorithm});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    control(d, "POST", "/_pkjwt/keys", Some(body))["name"]
        .as_str()
        .expect("name")
        .to_owned()
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

/// Appends fault rules (see the double's module docs).
pub fn faults(d: &Double, rules: serde_json::Value) {
    control(
        d,
        "POST",
        "/_pkjwt/faults",
        Some(serde_json::json!({ "rules": rules })),
    );
}

/// Withholds `permission` on resources starting with `resource`.
pub fn deny(d: &Double, permission: &str, resource: &str) {
    control(
        d,
        "POST",
        "/_pkjwt/deny",
        Some(serde_json::json!({"permission": permission, "resource": resource})),
    );
}

/// Calls per operation on `name` (all names when `None`).
pub fn calls(d: &Double, name: Option<&str>) -> serde_json::Value {
    let path = match name {
        Some(n) => format!("/_pkjwt/calls?name={}", n.replace('/', "%2F")),
        None => "/_pkjwt/calls".to_owned(),
    };
    control(d, "GET", &path, None)
}

/// One operation's count on `name`.
pub fn count(d: &Double, name: &str, op: &str) -> u64 {
    calls(d, Some(name))[op].as_u64().unwrap_or(0)
}
