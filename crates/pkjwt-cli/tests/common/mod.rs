#![allow(dead_code, clippy::unwrap_used)]
//! Running the `pkjwt` binary from the CLI tests, as scripts do: in a directory of its own,
//! without the caller's `PKJWT_*` settings leaking in.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_pkjwt");

/// A fresh, empty directory for one test.
pub fn tmpdir(name: &str) -> PathBuf {
    // Unique per process and call: under `cargo test` tests share one process (threads).
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("pkjwt-clitest-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `pkjwt args` in `dir` with `env` added and the settings a caller's environment could
/// carry (`PKJWT_KEY`, `PKJWT_STATE`, `PKJWT_ISSUER`, `PKJWT_INITIAL_ACCESS_TOKEN_SOURCE`)
/// removed; `RUST_BACKTRACE=1`, so that a panic would show in the output.
pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("PKJWT_KEY")
        .env_remove("PKJWT_STATE")
        .env_remove("PKJWT_ISSUER")
        .env_remove("PKJWT_INITIAL_ACCESS_TOKEN_SOURCE")
        .env("RUST_BACKTRACE", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// [`run`] without extra environment.
pub fn pkjwt(dir: &Path, args: &[&str]) -> Output {
    run(dir, args, &[])
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    ok_env(dir, args, &[])
}

/// [`ok`] with extra environment.
pub fn ok_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let o = run(dir, args, env);
    assert!(
        o.status.success(),
        "pkjwt {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs a command that must fail as a user mistake does: exit 1, nothing on stdout, one line
/// `pkjwt: error: …` on stderr, no panic. Returns that line.
pub fn fails(dir: &Path, args: &[&str]) -> String {
    fails_env(dir, args, &[])
}

/// [`fails`] with extra environment.
pub fn fails_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let o = run(dir, args, env);
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "pkjwt {args:?}: expected exit 1, got {:?}: {err}",
        o.status
    );
    assert!(o.stdout.is_empty(), "nothing on stdout on error");
    assert!(err.starts_with("pkjwt: error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    err
}

/// A private SoftHSM2 token made by `infra/softhsm/setup.sh`.
pub struct SoftHsm {
    /// The `softhsm2.conf` to give the processes as `SOFTHSM2_CONF`.
    pub conf: PathBuf,
    /// The PIN file the key URIs name.
    pub pin: PathBuf,
    /// (JWS algorithm, key URI) of every key the script made.
    pub keys: Vec<(String, String)>,
}

/// Runs `infra/softhsm/setup.sh DIR LABEL`, or returns `None` when SoftHSM2 is not installed
/// (a failure instead when `PKJWT_REQUIRE_PEERS=1`).
pub fn softhsm_token(dir: &Path, label: &str) -> Option<SoftHsm> {
    if !Path::new("/usr/lib/softhsm/libsofthsm2.so").exists() {
        assert!(
            std::env::var("PKJWT_REQUIRE_PEERS").as_deref() != Ok("1"),
            "SoftHSM2 is required (PKJWT_REQUIRE_PEERS=1): infra/ci/setup.sh"
        );
        eprintln!("SKIPPED: SoftHSM2 not installed");
        return None;
    }
    let _ = std::fs::remove_dir_all(dir);
    let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/softhsm/setup.sh");
    let o = Command::new(setup).arg(dir).arg(label).output().unwrap();
    assert!(
        o.status.success(),
        "setup.sh: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8(o.stdout).unwrap();
    // Lines "#   ALG: URI".
    let keys: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("#   "))
        .filter_map(|l| l.split_once(": "))
        .map(|(alg, uri)| (alg.to_owned(), uri.to_owned()))
        .collect();
    assert!(keys.len() >= 5, "{out}");
    Some(SoftHsm {
        conf: dir.join("softhsm2.conf"),
        pin: dir.join("pin"),
        keys,
    })
}

/// Verifies `jwt` as an `alg` JWS against the JWKS file `jwks` with two independent JOSE
/// libraries (joserfc, jwcrypto), each selecting the key by `kid` the strict way: a key whose
/// `alg` names another algorithm is no candidate (`infra/ci/jose_verify.py`). Returns `Ok` or
/// both libraries' reasons. A missing `.venv` fails under PKJWT_REQUIRE_PEERS=1 and is `None`
/// (skipped) otherwise.
pub fn jose_verify(jwks: &Path, alg: &str, jwt: &str) -> Option<Result<(), String>> {
    use std::io::Write;
    let (root, python) = venv_python("joserfc/jwcrypto cross-check")?;
    let mut child = Command::new(python)
        .arg(root.join("infra/ci/jose_verify.py"))
        .args([jwks.to_str().unwrap(), alg])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(jwt.trim().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    match (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).trim(),
    ) {
        (true, "ok") => Some(Ok(())),
        (true, out) => panic!("jose_verify.py exited 0 without \"ok\": {out} {err}"),
        // Exit 1 is a refusal; anything else (an ImportError, a crash) is a broken setup.
        (false, _) if o.status.code() == Some(1) && !err.contains("Traceback") => Some(Err(err)),
        (false, _) => panic!("jose_verify.py failed to run: {err}"),
    }
}

/// The repository root and the test peers' Python (`PKJWT_PYTHON`, else `.venv/bin/python`).
/// Missing: a failure under PKJWT_REQUIRE_PEERS=1, else `None` with a SKIPPED line naming `what`.
pub fn venv_python(what: &str) -> Option<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("PKJWT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    if !python.exists() {
        assert!(
            std::env::var("PKJWT_REQUIRE_PEERS").as_deref() != Ok("1"),
            "{} missing: run infra/ci/setup.sh",
            python.display()
        );
        eprintln!(
            "SKIPPED: {what} ({} missing; run infra/ci/setup.sh)",
            python.display()
        );
        return None;
    }
    Some((root, python))
}
