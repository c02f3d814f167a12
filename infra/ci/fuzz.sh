#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 60 s each) and prints the figures.
# cargo-fuzz needs nightly-only sanitizer flags; this machine has only the stable toolchain, so
# RUSTC_BOOTSTRAP=1 lets stable rustc accept them (the same compiler, unlocked).
# Usage: infra/ci/fuzz.sh [SECONDS] [TARGET…]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root/fuzz"
secs="${1:-60}"; shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
# Seed keys are generated here rather than committed.
mkdir -p corpus/private_key
if command -v openssl >/dev/null && [ ! -f corpus/private_key/seed-p8.pem ]; then
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out corpus/private_key/seed-p8.pem 2>/dev/null
  openssl ec -in corpus/private_key/seed-p8.pem -out corpus/private_key/seed-sec1.pem 2>/dev/null
  openssl genpkey -algorithm ED25519 -out corpus/private_key/seed-ed.pem 2>/dev/null
fi
# PKCS#12 seeds hold throwaway private keys too: generated (once), never committed.
./gen_pkcs12_seeds.sh
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== $t (${secs}s)"
  cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$secs" -print_final_stats=1 2>&1 \
    | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|stat::new_units_added)|Done|ERROR|panicked|SUMMARY" || true
done
