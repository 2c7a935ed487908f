#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit and integration tests on SQLite and on a
# throwaway PostgreSQL the test kit starts on loopback, SIP tests against real sipp peers)
# and the Python conformance suite driving the published vendor clients.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
cargo build --workspace --all-targets --locked
cargo test --workspace --locked -- --test-threads 2
if [ -f conformance/run.sh ]; then
  bash conformance/run.sh
fi
