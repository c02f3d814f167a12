//! Test support: a private SoftHSM2 token directory for every test, and an independent verifier.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` once, at `C_Initialize`, and every `C_Login` rewrites the
//! token's files, so processes logging in on one token directory at once corrupt each other's
//! view (test-peers.md). Under nextest every test is a process already, but under `cargo test`
//! they are threads of one process. So [`isolated`] re-runs the test binary for just that test
//! in a child process with `SOFTHSM2_CONF` pointing at a token directory of its own, freshly
//! initialized with `softhsm2-util`. Either way: one process, one token directory, one test.
//! The parent checks that the child ran exactly one test and that it passed.
//!
//! Without SoftHSM2 the test fails when `PKJWT_REQUIRE_PEERS=1` (CI sets it) and is skipped with
//! a loud message otherwise.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pkjwt_core::{Algorithm, Curve, KeyUri, Pkcs11Uri, PublicKey};

/// The SoftHSM2 module, overridable with `PKJWT_TEST_PKCS11_MODULE`.
pub fn module() -> PathBuf {
    std::env::var_os("PKJWT_TEST_PKCS11_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"))
}
/// Label of the token every test gets.
pub const TOKEN: &str = "pkjwt-test";
/// Its user PIN.
pub const USER_PIN: &str = "4711-user";
/// Its security-officer PIN.
pub const SO_PIN: &str = "0815-so";

const CHILD_ENV: &str = "PKJWT_P11_TEST_CHILD";
const DIR_ENV: &str = "PKJWT_P11_TEST_DIR";

/// The token directory of this test and how to reach it.
pub struct Env {
    /// The directory holding `softhsm2.conf`, `tokens/` and `pin`.
    pub dir: PathBuf,
}

impl Env {
    /// The file holding the user PIN.
    pub fn pin_file(&self) -> PathBuf {
        self.dir.join("pin")
    }

    /// `pkcs11:token=…;{path}?module-path=…&pin-source=file:…`.
    pub fn uri_string(&self, path: &str) -> String {
        format!(
            "pkcs11:token={TOKEN};{path}?module-path={}&pin-source=file:{}",
            module().display(),
            self.pin_file().display()
        )
    }

    /// [`Env::uri_string`], parsed.
    pub fn uri(&self, path: &str) -> Pkcs11Uri {
        parse(&self.uri_string(path))
    }
}

/// Parses a `pkcs11:` URI.
pub fn parse(s: &str) -> Pkcs11Uri {
    match KeyUri::parse(s) {
        Ok(KeyUri::Pkcs11(u)) => u,
        other => panic!("{s}: {other:?}"),
    }
}

fn require_peers() -> bool {
    std::env::var("PKJWT_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Skips (or, with `PKJWT_REQUIRE_PEERS=1`, fails) when a peer tool is missing. Returns true
/// when the test should go on.
pub fn have(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if require_peers() {
        panic!(
            "{what} is not installed and PKJWT_REQUIRE_PEERS=1: install it with \
             `apt-get install -y softhsm2 opensc` (or run infra/softhsm/setup.sh's prerequisites)"
        );
    }
    eprintln!(
        "\n!!!!!!!! SKIPPED: {what} is not installed; this test proves nothing on this machine. \
         Install softhsm2 (and opensc) or set PKJWT_REQUIRE_PEERS=1 to make this a failure. !!!!!!!!\n"
    );
    false
}

fn on_path(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
        || std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// True when `pkcs11-tool` (OpenSC) is there, skipping or failing as [`have`] does otherwise.
pub fn have_pkcs11_tool() -> bool {
    have("pkcs11-tool (OpenSC)", on_path("pkcs11-tool"))
}

/// Creates a fresh token directory with one initialized token. Used by tests and the bench.
pub fn make_token_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!(
        "pkjwt-softhsm-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    std::fs::write(
        dir.join("softhsm2.conf"),
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("pin"), format!("{USER_PIN}\n")).unwrap();
    std::fs::write(dir.join("so-pin"), format!("{SO_PIN}\n")).unwrap();
    // PIN files must be the owner's alone (issue 12, item 12).
    for f in ["pin", "so-pin"] {
        std::fs::set_permissions(
            dir.join(f),
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
        )
        .unwrap();
    }
    let out = with_pins(
        &dir,
        "softhsm2-util",
        &["--init-token", "--free", "--label", TOKEN],
    );
    assert!(
        out.status.success(),
        "softhsm2-util --init-token failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// The environment variable holding the user PIN in every test child process.
pub const PIN_ENV: &str = "PKJWT_TEST_USER_PIN";

/// Runs a SoftHSM or OpenSC tool on the token directory `dir`, typing the PINs from its `pin`
/// and `so-pin` files into a pseudo-terminal (`infra/softhsm/pty_pin.py`): no PIN in an
/// argument list, even in tests.
pub fn with_pins(dir: &Path, program: &str, args: &[&str]) -> std::process::Output {
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/softhsm/pty_pin.py");
    Command::new("python3")
        .env("SOFTHSM2_CONF", dir.join("softhsm2.conf"))
        .arg(helper)
        .arg("--pin-file")
        .arg(dir.join("pin"))
        .arg("--so-pin-file")
        .arg(dir.join("so-pin"))
        .arg("--")
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 runs infra/softhsm/pty_pin.py: {e}"))
}

/// Runs `body` for test `name` in a child process with a token directory of its own; `setup`
/// runs first, in the parent, with no PKCS#11 module loaded (for `pkcs11-tool`).
pub fn isolated(name: &str, setup: impl FnOnce(&Env), body: impl FnOnce(&Env)) {
    if std::env::var(CHILD_ENV).as_deref() == Ok(name) {
        let dir = PathBuf::from(std::env::var_os(DIR_ENV).expect("token dir given by the parent"));
        body(&Env { dir });
        return;
    }
    if !have("SoftHSM2", module().is_file() && on_path("softhsm2-util")) {
        return;
    }
    let dir = make_token_dir(name);
    let env = Env { dir: dir.clone() };
    setup(&env);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .env(DIR_ENV, &dir)
        .env("SOFTHSM2_CONF", dir.join("softhsm2.conf"))
        // For URIs with pin-source=env:PKJWT_TEST_USER_PIN.
        .env(PIN_ENV, USER_PIN)
        .output()
        .expect("the test binary re-runs itself");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("---- child process for {name} ----\n{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "{name} failed in its child process (token directory kept: {})",
        dir.display()
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{name}: the child process did not run exactly this one test"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A multi-threaded Tokio runtime for a test body.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn b64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

/// Verifies a compact JWS with RustCrypto / ed25519-dalek, independent of pkjwt and of the
/// token: the header's `alg` must be `alg`, and the signature must verify over the signing
/// input with `key`. Returns the claims.
pub fn verify_jws(jwt: &str, key: &PublicKey, alg: Algorithm) -> serde_json::Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS has three parts");
    let header: serde_json::Value = serde_json::from_slice(&b64(parts[0])).unwrap();
    assert_eq!(header["alg"], alg.name(), "header alg");
    let input = format!("{}.{}", parts[0], parts[1]);
    let sig = b64(parts[2]);
    verify_raw(input.as_bytes(), &sig, key, alg);
    serde_json::from_slice(&b64(parts[1])).unwrap()
}

/// Verifies a JWS-form signature (`r || s` for ECDSA) over `msg`.
pub fn verify_raw(msg: &[u8], sig: &[u8], key: &PublicKey, alg: Algorithm) {
    use p256::ecdsa::signature::Verifier;
    match (key, alg) {
        (PublicKey::Ec { curve, x, y }, _) => {
            let mut sec1 = vec![4u8];
            sec1.extend(x);
            sec1.extend(y);
            match (curve, alg) {
                (Curve::P256, Algorithm::ES256) => {
                    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
                    let s = p256::ecdsa::Signature::from_slice(sig).unwrap();
                    vk.verify(msg, &s).expect("ES256 signature verifies");
                }
                (Curve::P384, Algorithm::ES384) => {
                    let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
                    let s = p384::ecdsa::Signature::from_slice(sig).unwrap();
                    vk.verify(msg, &s).expect("ES384 signature verifies");
                }
                (Curve::P521, Algorithm::ES512) => {
                    let vk = p521::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
                    let s = p521::ecdsa::Signature::from_slice(sig).unwrap();
                    vk.verify(msg, &s).expect("ES512 signature verifies");
                }
                other => panic!("no verifier for {other:?}"),
            }
        }
        (PublicKey::Rsa { n, e }, _) => {
            use rsa::BigUint;
            use sha2::{Sha256, Sha384, Sha512};
            let pk = rsa::RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e))
                .unwrap();
            macro_rules! pkcs1 {
                ($d:ty) => {{
                    let vk = rsa::pkcs1v15::VerifyingKey::<$d>::new(pk);
                    let s = rsa::pkcs1v15::Signature::try_from(sig).unwrap();
                    vk.verify(msg, &s)
                        .expect("RSASSA-PKCS1-v1_5 signature verifies");
                }};
            }
            macro_rules! pss {
                ($d:ty) => {{
                    // Salt length = hash length, as RFC 7518 §3.5 requires.
                    let vk = rsa::pss::VerifyingKey::<$d>::new(pk);
                    let s = rsa::pss::Signature::try_from(sig).unwrap();
                    vk.verify(msg, &s).expect("RSASSA-PSS signature verifies");
                }};
            }
            match alg {
                Algorithm::RS256 => pkcs1!(Sha256),
                Algorithm::RS384 => pkcs1!(Sha384),
                Algorithm::RS512 => pkcs1!(Sha512),
                Algorithm::PS256 => pss!(Sha256),
                Algorithm::PS384 => pss!(Sha384),
                Algorithm::PS512 => pss!(Sha512),
                other => panic!("no RSA verifier for {other:?}"),
            }
        }
        (PublicKey::Ed25519(x), Algorithm::EdDSA) => {
            let vk = ed25519_dalek::VerifyingKey::from_bytes(x).unwrap();
            let s = ed25519_dalek::Signature::from_slice(sig).unwrap();
            vk.verify_strict(msg, &s)
                .expect("Ed25519 signature verifies");
        }
        other => panic!("no verifier for {other:?}"),
    }
}

/// Removes a path if it exists (test cleanup).
pub fn remove(p: &Path) {
    let _ = std::fs::remove_file(p);
}
