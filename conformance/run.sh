#!/usr/bin/env bash
# Conformance: drives the real server binary with the published Python clients
# (flyflowclient 1.14.21, omnidimension 0.6.0), and checks webhook signatures with the
# published Standard Webhooks library (standardwebhooks 1.1.0; --webhook-allow-private lets
# the server deliver to the test's loopback receiver). Creates a venv, builds and starts
# `switchboard serve` on a free loopback port over a fresh data dir, runs
# conformance/test_clients.py, and stops the server it started. Exits non-zero on failure.
#
#   conformance/run.sh [extra pytest args]
#
# Environment: CONFORMANCE_VENV (default conformance/.venv; scripts/test.sh passes its shared
# venv), CARGO (default cargo). Python versions are pinned in scripts/requirements-test.txt.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
venv="${CONFORMANCE_VENV:-$here/.venv}"
cargo="${CARGO:-cargo}"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r "$root/scripts/requirements-test.txt"

(cd "$root" && "$cargo" build -q -p switchboard --bin switchboard --example conformance_seed)
target="$(cd "$root" && "$cargo" metadata --format-version 1 --no-deps | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target/debug/switchboard"
seed="$target/debug/examples/conformance_seed"

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
# --max-calls-per-org 0: the engine places no call (there is no SIP trunk here), so every
# dispatched call stays queued in `dialing` until the test plays the engine's part with the
# conformance_seed example (complete it, transcript, MP3 recording).
"$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" --sip-listen 127.0.0.1:0 \
    --max-calls-per-org 0 --webhook-allow-private >"$work/stdout" 2>"$work/stderr" &
server_pid=$!

# The first start prints the default organization's key as one JSON line on stdout.
for _ in $(seq 1 100); do
    if [ -s "$work/stdout" ] && curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "server exited early:" >&2
        cat "$work/stderr" >&2
        exit 1
    fi
    sleep 0.1
done
first="$(head -n1 "$work/stdout")"
key="$(printf '%s' "$first" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')"
org="$(printf '%s' "$first" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["organization_id"])')"

# A real MP3 for the recording test: 2 s of 440 Hz, 8 kHz mono.
mp3="$work/tone.mp3"
if command -v ffmpeg >/dev/null; then
    ffmpeg -loglevel error -f lavfi -i sine=frequency=440:duration=2 -ar 8000 -ac 1 "$mp3"
elif command -v sox >/dev/null; then
    sox -n -r 8000 -c 1 "$mp3" synth 2 sine 440
elif command -v lame >/dev/null; then
    "$venv/bin/python" -c 'import math,struct,wave; w=wave.open("'"$work"'/t.wav","wb"); w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000); w.writeframes(b"".join(struct.pack("<h",int(8000*math.sin(2*math.pi*440*i/8000))) for i in range(16000)))'
    lame --quiet "$work/t.wav" "$mp3"
else
    echo "need ffmpeg, sox or lame to make an MP3 (apt-get install ffmpeg)" >&2
    exit 1
fi

export SB_BASE="http://127.0.0.1:$port" SB_KEY="$key" SB_ORG="$org" SB_DATA_DIR="$work/data" SB_SEED="$seed" SB_MP3="$mp3"
status=0
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$here/test_clients.py" "$here/test_webhooks.py" "$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "--- server log (tail) ---" >&2
    tail -n 40 "$work/stderr" >&2
fi
exit "$status"
