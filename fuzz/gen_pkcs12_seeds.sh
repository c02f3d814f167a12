#!/usr/bin/env bash
# Writes seed inputs for the `pkcs12` fuzz target into fuzz/corpus/pkcs12/ (not committed: they
# hold throwaway private keys, like the private_key seeds infra/ci/fuzz.sh generates).
# Input framing of the target: one length byte, the password, then the keystore.
# Iteration counts are 1 so that a seed costs microseconds, not a PBKDF2 run of 100,000 rounds.
# Usage: fuzz/gen_pkcs12_seeds.sh   (needs openssl; does nothing if the seeds exist)
set -euo pipefail
cd "$(dirname "$0")"
out=corpus/pkcs12
mkdir -p "$out"
[ -f "$out/seed-ec-modern" ] && exit 0
command -v openssl >/dev/null || { echo "openssl not found: no pkcs12 seeds" >&2; exit 0; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
pw=fuzz
export PW="$pw" # for openssl -passout/-passin env:PW, never on a command line
frame() { { printf "\\$(printf '%03o' "${#pw}")%s" "$pw"; cat "$1"; } >"$out/$2"; }
for k in ec rsa ed; do
  case $k in
    ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/$k.pem" ;;
    rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/$k.pem" ;;
    ed) openssl genpkey -algorithm ED25519 -out "$tmp/$k.pem" ;;
  esac 2>/dev/null
  openssl req -x509 -new -key "$tmp/$k.pem" -subj "/CN=pkjwt fuzz $k" -days 3650 \
    -out "$tmp/$k.crt" 2>/dev/null
done
# Modern (PBES2 AES-256-CBC, HMAC-SHA256 MAC), as OpenSSL 3 writes by default.
for k in ec rsa ed; do
  openssl pkcs12 -export -inkey "$tmp/$k.pem" -in "$tmp/$k.crt" -passout "env:PW" \
    -iter 1 -nomaciter -macalg sha256 -out "$tmp/$k.p12" 2>/dev/null
  frame "$tmp/$k.p12" "seed-$k-modern"
done
# Legacy PBE-SHA1-3DES with a SHA-1 MAC (OpenSSL 1.x, old Java).
openssl pkcs12 -export -inkey "$tmp/ec.pem" -in "$tmp/ec.crt" -passout "env:PW" -iter 1 \
  -nomaciter -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1 \
  -out "$tmp/legacy.p12" 2>/dev/null && frame "$tmp/legacy.p12" seed-ec-legacy
# No encryption and no MAC: the key and certificate in the clear, so that mutations reach the
# key parsing and leaf selection instead of stopping at the MAC.
openssl pkcs12 -export -inkey "$tmp/ec.pem" -in "$tmp/ec.crt" -passout "env:PW" \
  -keypbe NONE -certpbe NONE -nomac -out "$tmp/plain.p12" 2>/dev/null && frame "$tmp/plain.p12" seed-ec-plain
# A longer password, so that the password-leak check (8 bytes or more) is exercised from the start.
pw=fuzz-password-0123
export PW="$pw"
openssl pkcs12 -export -inkey "$tmp/ec.pem" -in "$tmp/ec.crt" -passout "env:PW" -iter 1 \
  -nomaciter -macalg sha256 -out "$tmp/longpw.p12" 2>/dev/null && frame "$tmp/longpw.p12" seed-ec-long-password
pw=fuzz
export PW="$pw"
# A chain: leaf plus an extra certificate, in the clear.
openssl pkcs12 -export -inkey "$tmp/ec.pem" -in "$tmp/ec.crt" -certfile "$tmp/rsa.crt" \
  -passout "env:PW" -keypbe NONE -certpbe NONE -nomac -out "$tmp/chain.p12" 2>/dev/null \
  && frame "$tmp/chain.p12" seed-ec-chain-plain
# Certificates only (no key), and a key without its certificate.
openssl pkcs12 -export -nokeys -in "$tmp/rsa.crt" -passout "env:PW" -iter 1 -nomaciter \
  -out "$tmp/certs.p12" 2>/dev/null && frame "$tmp/certs.p12" seed-certs-only
openssl pkcs12 -export -nocerts -inkey "$tmp/ed.pem" -passout "env:PW" -iter 1 -nomaciter \
  -out "$tmp/nocert.p12" 2>/dev/null && frame "$tmp/nocert.p12" seed-ed-no-cert
ls "$out" | wc -l
