//! `infra/softhsm/pty_pin.py` (how the SoftHSM and OpenSC tools get PINs without an argument
//! list) against stand-in tools: `infra/softhsm/test_pty_pin.py`, run with the project's `.venv`
//! (pytest). Without it the test fails under `PKJWT_REQUIRE_PEERS=1` and is skipped loudly
//! otherwise.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn pty_pin_types_pins_only_into_a_terminal_with_echo_off() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        let msg = format!("{} not found: run infra/ci/setup.sh", python.display());
        assert!(
            std::env::var("PKJWT_REQUIRE_PEERS").as_deref() != Ok("1"),
            "PKJWT_REQUIRE_PEERS=1: {msg}"
        );
        eprintln!("\n!!!!!!!! SKIPPED: {msg}\n");
        return;
    }
    let out = Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "infra/softhsm/test_pty_pin.py",
        ])
        .current_dir(&root)
        .output()
        .expect("run pytest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pytest failed:\n{text}");
    assert!(
        text.contains("4 passed"),
        "expected the four cases:\n{text}"
    );
}
