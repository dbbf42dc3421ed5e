#!/usr/bin/env bash
# openapi.yaml says exactly what the server does: schemathesis (pinned, in .venv) runs every
# check against the dev server on embedded defaults and must find nothing. Fixed seed, so a
# failure can be replayed with the same command (no example database carried between runs). One worker: hypothesis describes its strategies
# with ast.parse, which is not thread-safe on CPython 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/env.sh
mkdir -p .tmp
target=${CARGO_TARGET_DIR:-target}
cargo build -q -p livecache-dev
export LIVECACHE_ADMIN_TOKEN="schemathesis-admin-$RANDOM$RANDOM"
export SCHEMATHESIS_ADMIN_TOKEN="$LIVECACHE_ADMIN_TOKEN"
SCHEMATHESIS_USER_TOKEN=$("$target/debug/livecache-dev" token --sub user-0049 --ttl-secs 7200)
export SCHEMATHESIS_USER_TOKEN
log=.tmp/schemathesis-server.log
PORT=0 "$target/debug/livecache-dev" --no-jobs > "$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do grep -q "listening on" "$log" && break; sleep 0.25; done
url=$(grep -o 'http://[0-9.:]*' "$log" | head -1)
[ -n "$url" ] || { cat "$log"; echo "schemathesis: the dev server did not start"; exit 1; }
.venv/bin/schemathesis --config-file infra/schemathesis.toml run openapi.yaml --url "$url" \
  --checks all --seed "${SCHEMATHESIS_SEED:-20261121}" --max-examples "${SCHEMATHESIS_EXAMPLES:-60}" \
  --generation-database none --workers 1 --no-color "$@"
