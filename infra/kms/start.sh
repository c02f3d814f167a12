#!/usr/bin/env bash
# pkjwt's local AWS KMS endpoint (infra/kms/kms_double.py: moto 5.2.5 patched to the KMS API
# reference, with fault injection). Loopback only.
#
#   infra/kms/start.sh venv     create/update .venv at the repo root from infra/ci/requirements-kms.txt
#   infra/kms/start.sh start    venv + start the double on 127.0.0.1, free port; writes .peers/kms.env
#   infra/kms/start.sh stop     stop the double started by `start`
#   infra/kms/start.sh status   print .peers/kms.env if the double is running
#
# The Rust tests (crates/pkjwt-aws-kms/tests) do not need `start`: each test binary starts its own
# double from .venv and stops it when it exits. `start` is for manual use (aws cli, benchmarks):
#   source .peers/kms.env   # AWS_ENDPOINT_URL_KMS, AWS_REGION, static test credentials,
#                           # AWS_EC2_METADATA_DISABLED=true, PKJWT_KMS_PID
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.venv"
req="$root/infra/ci/requirements-kms.txt"
peers="$root/.peers"
envfile="$peers/kms.env"

make_venv() {
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
    fi
    local stamp="$venv/.pkjwt-kms-requirements.sha256"
    local want
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
        "$venv/bin/pip" install --disable-pip-version-check -q -r "$req"
        echo "$want" >"$stamp"
    fi
}

is_running() {
    [ -f "$envfile" ] || return 1
    local pid
    pid="$(sed -n 's/^export PKJWT_KMS_PID=//p' "$envfile")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

start() {
    make_venv
    if is_running; then
        echo "already running:"; cat "$envfile"; return 0
    fi
    mkdir -p "$peers"
    local out="$peers/kms.out"
    : >"$out"
    AWS_EC2_METADATA_DISABLED=true nohup "$venv/bin/python" "$root/infra/kms/kms_double.py" \
        --host 127.0.0.1 --port 0 --no-stdin-watch >"$out" 2>"$peers/kms.log" </dev/null &
    local pid=$!
    local port=""
    for _ in $(seq 1 300); do
        port="$(sed -n 's/^READY //p' "$out")"
        [ -n "$port" ] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "the KMS double exited; see $peers/kms.log" >&2; exit 1
        fi
        sleep 0.1
    done
    if [ -z "$port" ]; then
        kill "$pid" 2>/dev/null || true
        echo "the KMS double did not start within 30 s; see $peers/kms.log" >&2; exit 1
    fi
    cat >"$envfile" <<ENV
export AWS_ENDPOINT_URL_KMS=http://127.0.0.1:$port
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_EC2_METADATA_DISABLED=true
export PKJWT_KMS_PID=$pid
ENV
    cat "$envfile"
}

stop() {
    if is_running; then
        local pid
        pid="$(sed -n 's/^export PKJWT_KMS_PID=//p' "$envfile")"
        kill "$pid"
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        echo "stopped KMS double (pid $pid)"
    fi
    rm -f "$envfile"
}

case "${1:-start}" in
    venv) make_venv ;;
    start) start ;;
    stop) stop ;;
    status) if is_running; then cat "$envfile"; else echo "not running"; exit 1; fi ;;
    *) echo "usage: $0 venv|start|stop|status" >&2; exit 2 ;;
esac
