#!/usr/bin/env bash
# The whole test suite: what `.ci/run` and the README's second command run.
# Installs the test peers (infra/ci/setup.sh), then: format, lints (per package with its own
# features, and the CLI built with only the file backend), tests against the real peers, docs,
# and the quick start as a smoke test. A missing peer is a failure here (PKJWT_REQUIRE_PEERS=1).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export PKJWT_REQUIRE_PEERS=1
export AWS_EC2_METADATA_DISABLED=true
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-always}"

step() { printf '\n\033[1;34m==> %s\033[0m\n' "$*" >&2; }
start=$(date +%s)

step "setup"
infra/ci/setup.sh

step "cargo fmt --check"
cargo fmt --all --check

step "clippy (workspace, all features)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "clippy (CLI with only the file backend)"
cargo clippy -p pkjwt-cli --all-targets --no-default-features -- -D warnings

step "feature gating: PKCS#11-only and file-only CLIs compile neither the AWS nor the Azure SDK (nor the Cloud KMS client)"
if cargo tree -p pkjwt-cli --no-default-features --features pkcs11 -e normal | grep -E "aws-sdk|aws-config|azure_core|azure_identity"; then
  echo "the PKCS#11-only build depends on the AWS or Azure SDK" >&2; exit 1
fi
if cargo tree -p pkjwt-cli --no-default-features -e normal | grep -E "aws-sdk|aws-config|azure_core|azure_identity|pkjwt-(pkcs11|aws-kms|gcp-kms|azure-kv) "; then
  echo "the file-only build depends on a cloud SDK or another backend crate" >&2; exit 1
fi
# The quick start's own build (its packages and features): no AWS SDK either, counting the
# features that dev-dependencies unify in when it builds examples.
read -ra qs <<<"$(infra/quickstart.sh --cargo-selection)"
if cargo tree "${qs[@]}" -e normal,build | grep -E "aws-sdk|aws-config|azure_core|azure_identity" ||
   cargo tree "${qs[@]}" -e features,normal,build,dev -i pkjwt | grep -E 'pkjwt feature "(aws-kms|azure-kv)"'; then
  echo "the quick start's build ($(infra/quickstart.sh --cargo-selection)) compiles the AWS SDK" >&2; exit 1
fi

step "feature gating: each backend's feature alone builds no other backend crate"
# The backends are the facade's optional dependencies (`FEATURE = ["dep:pkjwt-NAME"]` in
# crates/pkjwt/Cargo.toml), so a new backend is checked here without an edit.
backends=$(sed -n 's/^\([a-z0-9-]*\) = \["dep:\(pkjwt-[a-z0-9-]*\)"\]$/\1:\2/p' crates/pkjwt/Cargo.toml)
[ -n "$backends" ] || { echo "no optional backends found in crates/pkjwt/Cargo.toml" >&2; exit 1; }
for fb in $backends; do
  tree=$(cargo tree -p pkjwt-cli --no-default-features --features "${fb%%:*}" -e normal --prefix none)
  for other in $backends; do
    if [ "$other" != "$fb" ] && grep -q "^${other#*:} " <<<"$tree"; then
      echo "the ${fb%%:*}-only CLI build depends on ${other#*:}" >&2; exit 1
    fi
  done
done

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --no-fail-fast
  cargo test --workspace --all-features --doc
else
  cargo test --workspace --all-features --no-fail-fast
fi

step "tests (CLI with only the file backend)"
# What a user who builds `--no-default-features` gets: every command works on file keys, and a
# URI of a backend left out is refused by name. Backend tests are compiled out (#[cfg(feature)]).
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run -p pkjwt-cli --no-default-features --no-fail-fast
else
  cargo test -p pkjwt-cli --no-default-features --no-fail-fast
fi

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --quiet

step "examples"
# Both sides of private_key_jwt with no server: signs, verifies, refuses the replay. Built with
# the test step's selection (whole workspace, all features), so nothing compiles again; `cargo
# run -p pkjwt-examples` would resolve other features and rebuild ~40 crates, the AWS SDK among them.
cargo build -q --workspace --all-features --example sign_and_verify
"${CARGO_TARGET_DIR:-target}/debug/examples/sign_and_verify" >/dev/null

step "quick start (smoke)"
# The dev profile and the test step's selection: it reuses that build instead of compiling its own.
PKJWT_QUICKSTART_PROFILE=dev infra/quickstart.sh >/dev/null

step "done in $(( $(date +%s) - start ))s"
