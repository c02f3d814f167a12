#!/usr/bin/env bash
# Whole-process cost of one assertion: `pkjwt assert` with a file key, timed with hyperfine
# beside /bin/true in the same run (the floor). Prints hyperfine's table and the medians.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
command -v hyperfine >/dev/null || { echo "install hyperfine (apt-get install hyperfine)" >&2; exit 1; }
cargo build --release -q -p pkjwt-cli --manifest-path "$root/Cargo.toml"
pkjwt="$root/target/release/pkjwt"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
"$pkjwt" keygen --key "$work/k.pem" --alg ES256 >/dev/null 2>&1
hyperfine -N --warmup 20 --runs "${RUNS:-500}" --export-json "$work/h.json" \
  /bin/true \
  "$pkjwt assert --key $work/k.pem --client-id c --aud https://as.example.com"
python3 - "$work/h.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"median {r['median']*1000:.2f} ms  {r['command'].split(' --key')[0]}")
PY
