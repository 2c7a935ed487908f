#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit and integration tests on SQLite and on a
# throwaway PostgreSQL the test kit starts on loopback, SIP tests against real sipp peers,
# S3 recordings against moto's S3 server) and the Python conformance suite driving the
# published vendor clients.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# One venv for the Python the tests need (pinned in scripts/requirements-test.txt): moto's S3
# server for the Rust S3 tests, the vendor clients for the conformance suite.
venv="${SWITCHBOARD_VENV:-$PWD/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r scripts/requirements-test.txt
export SWITCHBOARD_TEST_MOTO="$venv/bin/moto_server"
# The STT server (faster-whisper) of the voice-agent tests runs from this venv.
export SWITCHBOARD_TEST_VENV="$venv"
export CONFORMANCE_VENV="$venv"
cargo build --workspace --all-targets --locked
cargo test --workspace --locked -- --test-threads 2
if [ -f conformance/run.sh ]; then
  bash conformance/run.sh
fi
