//! Runs the Python suites that hold the Cloud KMS double to the API reference
//! (infra/gcp-kms/test_gcp_kms_double.py) and check the Terraform module
//! (infra/terraform/test_gcp_kms_module.py), so that `cargo test` covers them too.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn double_and_terraform_suites_pass() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("PKJWT_GCP_KMS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    if !python.exists() {
        assert!(
            std::env::var("PKJWT_REQUIRE_PEERS").as_deref() != Ok("1"),
            "PKJWT_REQUIRE_PEERS=1 and {} is missing (infra/ci/setup.sh)",
            python.display()
        );
        eprintln!("\n!!!!!!!! SKIPPED: {} not found\n", python.display());
        return;
    }
    let out = Command::new(&python)
        .current_dir(&root)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "infra/gcp-kms",
            "infra/terraform/test_gcp_kms_module.py",
        ])
        .output()
        .expect("run pytest");
    assert!(
        out.status.success(),
        "pytest failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
