//! Runs the project's Python suites from `cargo test`: the KMS double's own tests against the
//! KMS API reference (`infra/kms/test_kms_double.py`) and the static checks of the Terraform
//! module (`infra/terraform/test_aws_kms_module.py`, python-hcl2). Both need `.venv`
//! (`infra/kms/start.sh venv`); without it they fail under `PKJWT_REQUIRE_PEERS=1` and are
//! skipped loudly otherwise.

use std::path::PathBuf;
use std::process::Command;

fn run_pytest(suite: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("PKJWT_KMS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    if !python.exists() {
        let msg = format!(
            "{} not found: run `infra/kms/start.sh venv` to run {suite}",
            python.display()
        );
        if std::env::var("PKJWT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("PKJWT_REQUIRE_PEERS=1: {msg}");
        }
        eprintln!("\n!!!!!!!! SKIPPED: {msg}\n");
        return;
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
}

#[test]
fn kms_double_matches_the_kms_api_reference() {
    run_pytest("infra/kms");
}

#[test]
fn terraform_module_grants_exactly_what_the_backend_needs() {
    run_pytest("infra/terraform");
}
