#!/usr/bin/env bash
# The README's run command, literally as written: start it, read a feed page, mint a token with
# the README's token command and use it on a signed-in route, stop it with Ctrl-C (SIGINT).
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/env.sh
mkdir -p .tmp
log=.tmp/smoke.log
cargo build -q -p livecache-dev   # so that the command below starts at once
cargo run -p livecache-dev > "$log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  grep -q "listening on" "$log" && break
  kill -0 $pid 2>/dev/null || { cat "$log"; echo "smoke: livecache-dev exited"; exit 1; }
  sleep 0.5
done
url=$(grep -o 'http://[0-9.:]*' "$log" | head -1)
[ -n "$url" ] || { cat "$log"; echo "smoke: livecache-dev did not say where it listens"; exit 1; }
check() { python3 -c "import json,sys; d=json.load(sys.stdin); assert $1, d" ; }

curl -fsS "$url/api/v1/feeds/discover?per_page=5" | check 'd["cached"] is False and len(d["items"]) == 5'
curl -fsS "$url/api/v1/feeds/discover?per_page=5" | check 'd["cached"] is True'
TOKEN=$(cargo run -q -p livecache-dev -- token --sub user-0050)
curl -fsS -X POST "$url/api/v1/streams/stream-050/go-live" -H "Authorization: Bearer $TOKEN" \
  | check 'd["stream"]["status"] == "LIVE"'
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/api/v1/streams/stream-050/end")
[ "$code" = 401 ] || { echo "smoke: an unsigned write answered $code, not 401"; exit 1; }

kill -INT $pid
wait $pid || { cat "$log"; echo "smoke: livecache-dev did not stop cleanly on SIGINT"; exit 1; }
trap - EXIT
echo "smoke: the README's run and token commands work as written"
