#!/usr/bin/env bash
# Installs what the test suite and the quick start need on a fresh Debian machine that has only
# the Rust toolchain, Python and Node: Debian packages (SoftHSM2, OpenSSL, Redis), a Python venv
# (.venv) with the test peers' packages, and npm dependencies of the authorization server.
# Idempotent: a second run checks and returns quickly.
#
# `--without-venv` skips the venv: the quick start needs only the Python standard library (the
# venv's packages, moto and its AWS dependencies above all, are for the test suite).
set -euo pipefail
venv=yes
case "${1:-}" in
  "") ;;
  --without-venv) venv=no ;;
  *) echo "usage: $0 [--without-venv]" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages: only those missing, so a warm machine does not touch apt at all.
packages=(softhsm2 opensc openssl redis-server ca-certificates curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python venv with pinned requirements (every infra/ci/requirements*.txt).
python="${PYTHON:-python3}"
if [ "$venv" = no ]; then
  log "no .venv (--without-venv)"
else
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$python" -m venv .venv
  fi
  stamp=.venv/.requirements.sha256
  want="$(cat infra/ci/requirements*.txt | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "pip install -r infra/ci/requirements*.txt"
    .venv/bin/pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    for r in infra/ci/requirements*.txt; do
      .venv/bin/pip install -q --disable-pip-version-check -r "$r"
    done
    echo "$want" > "$stamp"
  fi
fi

# Authorization server (oidc-provider) dependencies, when present.
if [ -f infra/oidc-provider/package-lock.json ]; then
  if [ ! -d infra/oidc-provider/node_modules ] || [ infra/oidc-provider/package-lock.json -nt infra/oidc-provider/node_modules ]; then
    log "npm ci (infra/oidc-provider)"
    (cd infra/oidc-provider && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
log "ready"
