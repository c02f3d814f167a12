#!/usr/bin/env bash
# Everything the Google Cloud KMS backend's own checks run: the double's tests, the Terraform
# module's static checks (both also run by `cargo test -p pkjwt-tests --test python_suites`),
# fmt, clippy and the crate's tests against the double. The double needs
# nothing beyond infra/ci/setup.sh's .venv (requirements-gcp-kms.txt), so infra/ci/test.sh does
# not call this script: its workspace test step runs the same tests.
#
#   infra/ci/test-gcp-kms.sh            the checks
#   infra/ci/test-gcp-kms.sh --bench    ... and the overhead benchmark
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

export PKJWT_REQUIRE_PEERS="${PKJWT_REQUIRE_PEERS:-1}"
# Never let an unset test configuration walk to the metadata server or a gcloud login.
unset GOOGLE_APPLICATION_CREDENTIALS
export GCE_METADATA_HOST=127.0.0.1:9

.venv/bin/python -m pytest -q -p no:cacheprovider infra/gcp-kms infra/terraform/test_gcp_kms_module.py
cargo fmt -p pkjwt-gcp-kms -- --check
cargo clippy -p pkjwt-gcp-kms --all-targets --all-features --no-deps -- -D warnings
cargo test -p pkjwt-gcp-kms --all-features
if [ "${1:-}" = "--bench" ]; then
    cargo bench -p pkjwt-gcp-kms --bench gcp_sign
fi
