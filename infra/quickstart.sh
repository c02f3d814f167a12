#!/usr/bin/env bash
# The quick start's main job, end to end, on an embedded default: create a signing key, publish
# its JWKS, sign an RFC 7523 client assertion (private_key_jwt), and verify it.
#
# Everything happens in a fresh temporary directory; nothing outside it is touched except the
# build in target/ and the tools infra/ci/setup.sh installs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

say() { printf '\n\033[1;32m== %s\033[0m\n' "$*"; }

"$root/infra/ci/setup.sh"
say "building pkjwt"
cargo build --release -q -p pkjwt-cli
pkjwt="$root/target/release/pkjwt"
"$pkjwt" --version

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

client_id="quickstart-client"
issuer="https://as.example.com"
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

say "1. generate a P-256 key (ES256): $key"
"$pkjwt" keygen --key "$key" --alg ES256 >/dev/null

say "2. its JWKS (publish this at your jwks_uri, or register it with the authorization server)"
"$pkjwt" pubkey --key "$key" --format jwks | tee jwks.json

say "3. a client assertion for client_id=$client_id, aud=$issuer"
"$pkjwt" assert --key "$key" --client-id "$client_id" --aud "$issuer" --json | tee assertion.json
jwt="$("$root/.venv/bin/python" -c 'import json,sys; print(json.load(open("assertion.json"))["jwt"])')"

say "4. verify it"
"$pkjwt" verify --jwks jwks.json --client-id "$client_id" --aud "$issuer" "$jwt"
# A second opinion from an independent JOSE implementation (PyJWT).
"$root/.venv/bin/python" - "$jwt" <<'PY'
import json, sys, jwt
keys = json.load(open("jwks.json"))["keys"]
token = sys.argv[1]
claims = jwt.decode(token, key=jwt.PyJWK(keys[0]).key, algorithms=["ES256"],
                    audience="https://as.example.com", issuer="quickstart-client")
print(f"PyJWT: signature valid; iss={claims['iss']} aud={claims['aud']} exp-iat={claims['exp']-claims['iat']}s jti={claims['jti']}")
PY
say "done: key -> JWKS -> client assertion -> verified"
