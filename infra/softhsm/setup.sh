#!/usr/bin/env bash
# Creates a private SoftHSM2 token directory and configuration (never the system one), a token,
# and one signing key per algorithm family, then prints the environment and key URIs to use.
#
# Usage: infra/softhsm/setup.sh DIR [TOKEN_LABEL]
#   DIR                 new or empty directory; receives softhsm2.conf, tokens/, pin and so-pin
#                       (mode 600)
#   TOKEN_LABEL         default: pkjwt
# Environment:
#   PKJWT_SOFTHSM_MODULE   module path (default /usr/lib/softhsm/libsofthsm2.so)
#   PKJWT_SOFTHSM_PIN      user PIN (default: random); the SO PIN is always random
#   PKJWT_SOFTHSM_KEYGEN   pkcs11-tool | cargo (default: pkcs11-tool when installed, else cargo,
#                          which runs this repository's `keygen` example)
#
# Prerequisites: apt-get install -y softhsm2 (and opensc for pkcs11-tool); python3.
# No PIN is ever passed on a command line: pty_pin.py types them into the tools' terminal.
# Keys: p256 (id 01), p384 (02), p521 (03), rsa2048 (04), ed25519 (05).
# The output's last lines are shell: eval "$(infra/softhsm/setup.sh DIR | grep ^export)".
set -euo pipefail

dir=${1:?usage: $0 DIR [TOKEN_LABEL]}
label=${2:-pkjwt}
module=${PKJWT_SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
pin=${PKJWT_SOFTHSM_PIN:-$(rand_hex 8)}
so_pin=$(rand_hex 8)

command -v softhsm2-util >/dev/null || {
    echo "setup.sh: softhsm2-util not found; install it with: apt-get install -y softhsm2" >&2
    exit 1
}
[ -f "$module" ] || {
    echo "setup.sh: PKCS#11 module $module not found (apt-get install -y softhsm2, or set PKJWT_SOFTHSM_MODULE)" >&2
    exit 1
}
keygen=${PKJWT_SOFTHSM_KEYGEN:-}
if [ -z "$keygen" ]; then
    if command -v pkcs11-tool >/dev/null; then keygen=pkcs11-tool; else keygen=cargo; fi
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ -d "$dir/tokens" ] && [ -n "$(ls -A "$dir/tokens")" ]; then
    echo "setup.sh: $dir/tokens already holds tokens; use a new directory" >&2
    exit 1
fi
mkdir -p "$dir/tokens"
chmod 700 "$dir"
cat >"$dir/softhsm2.conf" <<CONF
# Private SoftHSM2 configuration written by infra/softhsm/setup.sh
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
(umask 077 && printf '%s\n' "$pin" >"$dir/pin" && printf '%s\n' "$so_pin" >"$dir/so-pin")
export SOFTHSM2_CONF="$dir/softhsm2.conf"
here=$(cd "$(dirname "$0")" && pwd)
# softhsm2-util and pkcs11-tool read PINs from their command line or a terminal; pty_pin.py gives
# them a terminal and types the PINs from the files, so no PIN is ever in an argument list.
python3 "$here/pty_pin.py" --so-pin-file "$dir/so-pin" --pin-file "$dir/pin" -- \
    softhsm2-util --init-token --free --label "$label" >/dev/null

uri() { echo "pkcs11:token=$label;object=$1?module-path=$module&pin-source=file:$dir/pin"; }
keys=(
    "p256 01 EC:prime256v1 ES256"
    "p384 02 EC:secp384r1 ES384"
    "p521 03 EC:secp521r1 ES512"
    "rsa2048 04 rsa:2048 PS256"
    "ed25519 05 EC:edwards25519 EdDSA"
)
root=$(cd "$(dirname "$0")/../.." && pwd)
for k in "${keys[@]}"; do
    read -r name id tool_type alg <<<"$k"
    if [ "$keygen" = pkcs11-tool ]; then
        python3 "$here/pty_pin.py" --pin-file "$dir/pin" -- \
            pkcs11-tool --module "$module" --token-label "$label" --login \
            --keypairgen --key-type "$tool_type" --label "$name" --id "$id" --usage-sign \
            >/dev/null || {
            echo "setup.sh: pkcs11-tool could not create $name ($tool_type)" >&2
            exit 1
        }
    else
        (cd "$root" && cargo run -q -p pkjwt-pkcs11 --example keygen -- \
            "pkcs11:token=$label;object=$name;id=%$id?module-path=$module&pin-source=file:$dir/pin" \
            "$alg" >/dev/null)
    fi
done

echo "# SoftHSM2 token \"$label\" in $dir (keys made with $keygen)"
for k in "${keys[@]}"; do
    read -r name _ _ alg <<<"$k"
    echo "#   $alg: $(uri "$name")"
done
echo "export SOFTHSM2_CONF=$dir/softhsm2.conf"
echo "export PKJWT_SOFTHSM_TOKEN=$label"
echo "export PKJWT_SOFTHSM_PIN_FILE=$dir/pin"
