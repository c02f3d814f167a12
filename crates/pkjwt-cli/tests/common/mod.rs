#![allow(dead_code, clippy::unwrap_used)]
//! Running the `pkjwt` binary from the CLI tests, as scripts do: in a directory of its own,
//! without the caller's `PKJWT_*` settings leaking in.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_pkjwt");

/// A fresh, empty directory for one test.
pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pkjwt-clitest-{name}-{}", std::process::id()));
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
