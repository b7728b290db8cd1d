#!/usr/bin/env bash
# Runs every check: formatting, lints, and the test suite against a real Redis and the real
# embedded models (installed/fetched first when missing). Each test uses its own key prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export RFPQ_TEST_REDIS_URL="${RFPQ_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
ensure_redis "$RFPQ_TEST_REDIS_URL"
ensure_models
cargo fmt --check
cargo clippy --release --locked --all-targets -- -D warnings
cargo test --release --locked -- --test-threads 2
