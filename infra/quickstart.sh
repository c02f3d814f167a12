#!/usr/bin/env bash
# The quick start, end to end on this machine: a signing key → its JWKS served by `pkjwt serve`
# → a client registered at a real authorization server (oidc-provider) with that jwks_uri → an
# access token from `pkjwt token` (private_key_jwt) → a call to a protected API that checks the
# token against the server's keys.
#
# Everything binds 127.0.0.1 and runs from a fresh temporary directory; every process started
# here is stopped on exit. infra/ci/setup.sh installs what is missing (Debian packages and
# `npm ci` for oidc-provider; the quick start needs no Python venv).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# What the quick start builds: the CLI and the two examples it runs, with only the backends it
# uses (its key is on SoftHSM, or in a file without SoftHSM), so the AWS SDK never compiles.
# `--cargo-selection` prints these packages and features (infra/ci/test.sh checks with
# `cargo tree` that they leave the AWS SDK out).
selection=(-p pkjwt-cli -p pkjwt-examples --no-default-features
  --features pkjwt-cli/pkcs11,pkjwt-examples/pkcs11)
if [ "${1:-}" = --cargo-selection ]; then echo "${selection[*]}"; exit 0; fi

say() { printf '\n\033[1;32m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }

# Debian packages and `npm ci`; no .venv: the Python here is the standard library's alone.
"$root/infra/ci/setup.sh" --without-venv
# The profile: `quickstart` (Cargo.toml: the dev profile without debug info, the fastest build
# from a fresh clone; nothing here needs optimized code), `release`, or `dev`, which reuses the
# test suite's debug build: infra/ci/test.sh sets it after its test step, so the selection is
# then the test step's own (whole workspace, all features) and nothing compiles a second time.
profile="${PKJWT_QUICKSTART_PROFILE:-quickstart}"
case "$profile" in
  quickstart) dir=quickstart ;;
  release) dir=release ;;
  dev) dir=debug; selection=(--workspace --all-features) ;;
  *) echo "PKJWT_QUICKSTART_PROFILE must be quickstart, release or dev" >&2; exit 2 ;;
esac
say "building pkjwt and the examples ($profile)"
# One invocation: one feature resolution, so every library both need compiles once.
cargo build --profile "$profile" -q "${selection[@]}" \
  --bin pkjwt --example protected_api --example client_credentials
target="${CARGO_TARGET_DIR:-$root/target}"
pkjwt="$target/$dir/pkjwt"
api_bin="$target/$dir/examples/protected_api"
rust_client="$target/$dir/examples/client_credentials"
py="${PYTHON:-python3}"
"$pkjwt" --version

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

# The key lives on a SoftHSM2 token (a private token directory in $work) when SoftHSM is
# installed, as it would in an HSM; otherwise in a file.
if [ -f /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null; then
  mkdir -p "$work/hsm"
  "$root/infra/softhsm/setup.sh" "$work/hsm" quickstart >/dev/null
  export SOFTHSM2_CONF="$work/hsm/softhsm2.conf"
  key="pkcs11:token=quickstart;object=client?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:$work/hsm/pin"
else
  key="file:$work/client.pem"
fi
# Waits until FILE has a line matching REGEX (a started process announcing itself), at most 30 s.
wait_line() {
  local file="$1" re="$2"
  for _ in $(seq 300); do
    if grep -Eq "$re" "$file" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for /$re/ in $file:" >&2; cat "$file" >&2; return 1
}
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

api_audience="https://api.example.com"
scope="accounts:read"

say "1. a P-256 signing key (ES256): $key"
"$pkjwt" keygen --key "$key" --alg ES256 >/dev/null
note "kid (RFC 7638 thumbprint): $("$pkjwt" pubkey --key "$key" --format thumbprint)"

say "2. pkjwt serve: publish its public key (the client's jwks_uri)"
"$pkjwt" serve --key "$key" --listen 127.0.0.1:0 2>serve.log &
pids+=($!)
wait_line serve.log 'serving JWKS'
jwks_uri="$(grep -Eo 'http://[0-9.:]+/jwks' serve.log | head -1)"
note "jwks_uri: $jwks_uri"
curl -fsS -D jwks.headers "$jwks_uri" | "$py" -m json.tool
note "$(grep -i '^cache-control' jwks.headers | tr -d '\r')"

say "3. the authorization server: oidc-provider on 127.0.0.1 (test configuration, in memory)"
cat > op.json <<JSON
{ "resources": { "$api_audience": { "scope": "$scope" } } }
JSON
# A start that stalls (seen about once in a hundred on a loaded 2-core CI machine: node alive, no
# ready line) is killed and tried again, as the test harness does; its stderr shows the stage.
for attempt in 1 2 3; do
  node "$root/infra/oidc-provider/server.mjs" op.json >op.log 2>op.err &
  op_pid=$!
  if wait_line op.log '"event":"ready"' 2>/dev/null; then pids+=("$op_pid"); break; fi
  kill "$op_pid" 2>/dev/null || true
  echo "note: oidc-provider start $attempt did not report ready; its stderr:" >&2; cat op.err >&2
  if [ "$attempt" = 3 ]; then echo "oidc-provider never started" >&2; exit 1; fi
done
issuer="$("$py" -c 'import json,sys; print(next(json.loads(l)["issuer"] for l in open("op.log") if "ready" in l))')"
note "issuer: $issuer"

say "4. pkjwt register: the client (RFC 7591) with private_key_jwt and the served jwks_uri"
client_id="$("$pkjwt" register --issuer "$issuer" --key "$key" --jwks-uri "$jwks_uri" \
  --scope "$scope" --client-name "pkjwt quick start" --out registration.json)"
note "client_id: $client_id; registration.json is mode $(stat -c %a registration.json)"
"$py" -c 'import json; d=json.load(open("registration.json")); print(json.dumps({k: d[k] for k in ("client_id","token_endpoint_auth_method","token_endpoint_auth_signing_alg","jwks_uri","grant_types")}, indent=2))' | sed 's/^/   /'

say "5. a client assertion for this server, explained claim by claim by pkjwt verify"
curl -fsS "$jwks_uri" > jwks.json
jwt="$("$pkjwt" assert --key "$key" --client-id="$client_id" --aud "$issuer")"
"$pkjwt" verify --jwks jwks.json --client-id="$client_id" --aud "$issuer" "$jwt" | sed 's/^/   /'

say "6. pkjwt token: discovery, a fresh signed client assertion, the token request"
"$pkjwt" token --key "$key" --client-id="$client_id" --issuer "$issuer" --scope "$scope" --json > token.json
token="$("$py" -c 'import json; print(json.load(open("token.json"))["access_token"])')"
"$py" - <<'PY'
import json, base64
t = json.load(open("token.json"))
def part(i):
    s = t["access_token"].split(".")[i]
    return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
print(f"   token_type={t['token_type']} expires_in={t['expires_in']} scope={t.get('scope')}")
print(f"   access token header: {json.dumps(part(0))}")
c = part(1)
print(f"   access token claims: iss={c['iss']} aud={c['aud']} client_id={c['client_id']} scope={c.get('scope')}")
PY

say "7. the protected API (pkjwt-verify's axum layer) validates tokens against $issuer/jwks"
api_port="$(free_port)"
PKJWT_ISSUER="$issuer" PKJWT_AUDIENCE="$api_audience" "$api_bin" "127.0.0.1:$api_port" 2>api.log &
pids+=($!)
wait_line api.log 'protected API on'
api="http://127.0.0.1:$api_port/balance"
note "GET $api with the token:"
curl -fsS -H "authorization: Bearer $token" "$api" | sed 's/^/   /'
note "GET $api without a token:"
code="$(curl -s -o /dev/null -w '%{http_code}' "$api")"
note "HTTP $code (refused, as it must be)"
[ "$code" = 401 ]

say "8. the same from Rust (examples/client_credentials.rs): ten concurrent callers, one token request"
# Every token request the server saw for this client, refused ones included.
grants() { grep -E "\"event\":\"grant\.(success|error)\",\"client_id\":\"$client_id\"" op.log | wc -l; }
before="$(grants)"
PKJWT_KEY="$key" PKJWT_CLIENT_ID="$client_id" PKJWT_ISSUER="$issuer" PKJWT_SCOPE="$scope" \
  "$rust_client" | sed 's/^/   /'
after="$(grants)"
note "token requests the server answered for these ten callers: $((after - before))"
[ "$((after - before))" = 1 ]

say "done: key -> JWKS at $jwks_uri -> client $client_id -> access token -> protected API"
