#!/usr/bin/env bash
# ES256 client assertions per second: pkjwt beside PyJWT and node `jose` on the same machine.
#
#   infra/bench/peers.sh            the Rust bench (all algorithms, in-process Rust peers), then
#                                   CYCLES interleaved cycles of pkjwt / PyJWT / jose, ES256
#
# Python and Node are optional: a missing one is reported and skipped. Their packages are pinned
# (requirements.txt, package.json + package-lock.json) and installed into infra/bench/.venv and
# infra/bench/node_modules (git-ignored). The machine is shared, so the three loops take turns in
# CYCLES cycles of ROUND_SECONDS each and the medians are compared, and every loop counts the CPU
# time it used (the Rust bench its thread's, Python and Node their process's), not wall time:
# only the ratios printed at the end mean something across runs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cycles="${CYCLES:-3}"
round="${ROUND_SECONDS:-1}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT

echo "== Rust: cargo bench -p pkjwt-file --bench assertion"
cargo bench -q -p pkjwt-file --bench assertion --manifest-path "$root/Cargo.toml" --no-run \
  2>"$work/build.txt" || { cat "$work/build.txt" >&2; exit 1; }
bench="$(sed -n 's/.*Executable .*(\(.*\)).*/\1/p' "$work/build.txt" | tail -1)"
[ -x "$bench" ] || bench="$(ls -t "$root"/target/release/deps/assertion-* | grep -v '\.d$' | head -1)"
"$bench" --seconds "${BENCH_SECONDS:-0.4}"

# One P-256 key for the Python and Node loops (the Rust bench makes its own: an ECDSA signature
# costs the same with any key of the curve).
key="$work/k.pem"
if command -v openssl >/dev/null; then
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key" 2>/dev/null
fi

peers=()
if command -v python3 >/dev/null; then
  stamp="$here/.venv/.requirements.txt"
  if ! cmp -s "$here/requirements.txt" "$stamp"; then
    python3 -m venv "$here/.venv"
    "$here/.venv/bin/pip" install -q -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
  fi
  [ -s "$key" ] || "$here/.venv/bin/python" - "$key" <<'PY'
import sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
k = ec.generate_private_key(ec.SECP256R1())
open(sys.argv[1], "wb").write(k.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
PY
  peers+=(pyjwt)
else
  echo "python3 not found: no PyJWT figures"
fi
if command -v node >/dev/null && command -v npm >/dev/null; then
  if ! cmp -s "$here/package-lock.json" "$here/node_modules/.peers-lock.json" 2>/dev/null; then
    (cd "$here" && npm ci --no-audit --no-fund --silent)
    cp "$here/package-lock.json" "$here/node_modules/.peers-lock.json"
  fi
  [ -s "$key" ] || node -e '
    const { generateKeyPairSync } = require("node:crypto");
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    require("node:fs").writeFileSync(process.argv[1], privateKey.export({ type: "pkcs8", format: "pem" }));
  ' "$key"
  peers+=(jose)
else
  echo "node/npm not found: no jose figures"
fi
[ "${#peers[@]}" -gt 0 ] || exit 0

py_version="$("$here/.venv/bin/python" -c 'import jwt, sys; print(f"PyJWT {jwt.__version__}, Python {sys.version.split()[0]}")' 2>/dev/null || true)"
node_version="$(cd "$here" && node -p '"jose " + require("./node_modules/jose/package.json").version + ", Node " + process.versions.node' 2>/dev/null || true)"

echo
echo "== ES256, $cycles interleaved cycles of ${round}s: pkjwt / ${peers[*]}"
for ((c = 1; c <= cycles; c++)); do
  "$bench" --algs ES256 --rounds 1 --seconds "$round" | awk '$1 == "ES256" && NF == 5 && $4 ~ /x$/ { print $3 }' >>"$work/pkjwt"
  for p in "${peers[@]}"; do
    case "$p" in
      pyjwt) "$here/.venv/bin/python" "$here/pyjwt_assert.py" "$key" "$round" ;;
      jose) node "$here/jose_assert.mjs" "$key" "$round" ;;
    esac | awk '$1 == "rate" { print $2 }' >>"$work/$p"
  done
done

median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
pk="$(median "$work/pkjwt")"
printf '\n%-46s %12s %12s %8s\n' "ES256 assertion loop" "per second" "pkjwt/s" "ratio"
printf '%-46s %12.0f %12s %8s\n' "pkjwt (file key, aws-lc-rs)" "$pk" "" ""
for p in "${peers[@]}"; do
  r="$(median "$work/$p")"
  case "$p" in
    pyjwt) name="$py_version, key loaded once" ;;
    jose) name="$node_version, key imported once" ;;
  esac
  printf '%-46s %12.0f %12.0f %7.2fx\n' "$name" "$r" "$pk" "$(awk -v a="$pk" -v b="$r" 'BEGIN { print a / b }')"
done
echo "(ratio = pkjwt / peer, medians of $cycles cycles; rates per CPU-second of the process, one core)"
