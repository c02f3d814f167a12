#!/usr/bin/env bash
# Installs what the PKCS#11 tests and infra/softhsm/setup.sh need, if it is missing:
# SoftHSM2 (the token) and OpenSC (pkcs11-tool, used by two tests and by setup.sh to make keys
# the way other tools do). Idempotent; needs root (or sudo) only when something is missing.
# Debian/Ubuntu only.
set -euo pipefail

need=()
[ -f /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v pkcs11-tool >/dev/null || need+=(opensc)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -eq 0 ]; then
    echo "install.sh: softhsm2, opensc and openssl are present"
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "install.sh: installing ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
