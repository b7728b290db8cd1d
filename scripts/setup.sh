#!/usr/bin/env bash
# Installs what rfpq needs on a Debian machine (Redis, the embedded models) and builds it.
# Then run: ./target/release/rfpq demo
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_redis "${RFPQ_REDIS_URL:-redis://127.0.0.1:6379}"
ensure_models
echo "building rfpq (release)…"
cargo build --release --locked
echo "ready: ./target/release/rfpq demo"
