#!/usr/bin/env bash
# Everything the AWS KMS backend's CI job runs. Needs python3 (3.11+, with the venv module;
# Debian: apt-get install -y python3-venv) and network access to PyPI for the first setup.
#
#   infra/ci/test-kms.sh            venv, the double's tests, Terraform checks, cargo tests
#   infra/ci/test-kms.sh --bench    ... and the overhead benchmark
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

export AWS_EC2_METADATA_DISABLED=true   # never walk to the EC2 metadata address
export PKJWT_REQUIRE_PEERS="${PKJWT_REQUIRE_PEERS:-1}"

infra/kms/start.sh venv
.venv/bin/python -m pytest -q -p no:cacheprovider infra/kms infra/terraform
cargo fmt -p pkjwt-aws-kms -- --check
cargo clippy -p pkjwt-aws-kms --all-targets --no-deps -- -D warnings
cargo test -p pkjwt-aws-kms
if [ "${1:-}" = "--bench" ]; then
    cargo bench -p pkjwt-aws-kms --bench kms_sign
fi
