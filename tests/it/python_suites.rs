//! The project's Python suites, run from `cargo test` with the project's `.venv` (pytest; made by
//! `infra/ci/setup.sh`, or `infra/kms/start.sh venv`; `PKJWT_KMS_PYTHON` names another Python):
//! the KMS double's own tests against the KMS API reference (`infra/kms/test_kms_double.py`),
//! the Cloud KMS double's against the Cloud KMS REST reference
//! (`infra/gcp-kms/test_gcp_kms_double.py`), the Key Vault double's against the Key Vault REST
//! reference (`infra/azure-kv/test_azure_kv_double.py`), the static checks of the Terraform modules
//! (`infra/terraform/test_*_module.py`, python-hcl2), and `infra/softhsm/pty_pin.py` (how the SoftHSM and OpenSC tools get PINs
//! without an argument list) against stand-in tools. Without the venv they fail under
//! `PKJWT_REQUIRE_PEERS=1` and are skipped loudly otherwise.

use std::path::PathBuf;
use std::process::Command;

/// Runs pytest on `suite` (relative to the repository root) and returns its output; checks that
/// it passed and that it ran tests.
fn run_pytest(suite: &str) -> Option<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var_os("PKJWT_KMS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    if !python.exists() {
        let msg = format!(
            "{} not found: run infra/ci/setup.sh to run {suite}",
            python.display()
        );
        assert!(
            std::env::var("PKJWT_REQUIRE_PEERS").as_deref() != Ok("1"),
            "PKJWT_REQUIRE_PEERS=1: {msg}"
        );
        eprintln!("\n!!!!!!!! SKIPPED: {msg}\n");
        return None;
    }
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", suite])
        .current_dir(&root)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run pytest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pytest {suite} failed:\n{text}");
    assert!(
        text.contains(" passed"),
        "pytest {suite} ran nothing:\n{text}"
    );
    println!("{text}");
    Some(text)
}

#[test]
fn kms_double_matches_the_kms_api_reference() {
    run_pytest("infra/kms");
}

#[test]
fn gcp_kms_double_matches_the_cloud_kms_api_reference() {
    run_pytest("infra/gcp-kms");
}

#[test]
fn azure_kv_double_matches_the_key_vault_api_reference() {
    run_pytest("infra/azure-kv");
}

#[test]
fn terraform_module_grants_exactly_what_the_backend_needs() {
    run_pytest("infra/terraform");
}

#[test]
fn pty_pin_types_pins_only_into_a_terminal_with_echo_off() {
    if let Some(text) = run_pytest("infra/softhsm/test_pty_pin.py") {
        assert!(
            text.contains("4 passed"),
            "expected the four cases:\n{text}"
        );
    }
}
