#!/usr/bin/env bash
# HTTP load benchmark on loopback (bounded: a few 10-second wrk runs and 400 sequential curls).
#  1. feed cache hits per second on livecache-dev vs a minimal hello server on the same stack,
#     and (WITH_REDIS=1) vs `redis-get`: the same stack answering the page's bytes from one
#     Redis GET through the same adapter — the limit of the Redis path;
#  2. cache hit vs cache miss latency of the discover feed.
# Embedded defaults by default; WITH_REDIS=1 puts the cache in a private redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/env.sh
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk"; exit 1; }
DURATION=${DURATION:-5s}
CONN=${CONN:-16}
cargo build -q --release -p livecache-dev --bins
HELLO_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
DEV_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
REDIS_PID=""
if [ "${WITH_REDIS:-0}" = 1 ]; then
  REDIS_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no > /dev/null & REDIS_PID=$!
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  sleep 0.5
fi
target/release/hello "$HELLO_PORT" & HELLO=$!
# A share of product hits is checked against the source after the response (reported last).
export CACHE_VERIFY_RATE=${CACHE_VERIFY_RATE:-0.05}
export LIVECACHE_ADMIN_TOKEN=${LIVECACHE_ADMIN_TOKEN:-loadbench-admin}
RUST_LOG=warn target/release/livecache-dev --port "$DEV_PORT" > .tmp/loadbench-dev.log 2>&1 & DEV=$!
trap 'kill $HELLO $DEV $REDIS_PID 2>/dev/null' EXIT
for p in "$HELLO_PORT" "$DEV_PORT"; do
  for _ in $(seq 100); do curl -s "http://127.0.0.1:$p/" >/dev/null && break; sleep 0.1; done
done
FEED="http://127.0.0.1:$DEV_PORT/api/v1/feeds/discover?page=1&per_page=20"
curl -s "$FEED" >/dev/null   # now cached
GET_PID=""
if [ -n "$REDIS_PID" ]; then
  GET_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  curl -s "$FEED" | redis-cli -p "$REDIS_PORT" -x SET loadbench:page >/dev/null
  target/release/redis-get "$GET_PORT" "$REDIS_URL" loadbench:page & GET_PID=$!
  trap 'kill $HELLO $DEV $REDIS_PID $GET_PID 2>/dev/null' EXIT
  for _ in $(seq 100); do curl -s "http://127.0.0.1:$GET_PORT/" >/dev/null && break; sleep 0.1; done
fi

rps() { wrk -t1 -c"$CONN" -d"$DURATION" --latency "$1" | tee -a .tmp/loadbench-wrk.log | awk '/Requests\/sec/ {print $2}'; }
: > .tmp/loadbench-wrk.log
# ROUNDS rounds (5 by default), each measuring the baselines and the feed back to back, so
# both sides of a ratio see the same machine state; the feed goes first in odd rounds and last
# in even ones (the machine drifts within a round too); the median round is reported.
ROUNDS=${ROUNDS:-5}
ratios=()
gets=()
for round in $(seq "$ROUNDS"); do
  hello=$(rps "http://127.0.0.1:$HELLO_PORT/")
  if [ -n "$GET_PID" ] && [ $((round % 2)) = 0 ]; then
    get=$(rps "http://127.0.0.1:$GET_PORT/")
    hits=$(rps "$FEED")
  else
    hits=$(rps "$FEED")
    [ -n "$GET_PID" ] && get=$(rps "http://127.0.0.1:$GET_PORT/")
  fi
  ratio=$(python3 -c "print(f'{$hits/$hello:.2f}')")
  ratios+=("$ratio")
  line="round $round: hello $hello req/s, feed cache hits $hits req/s, ratio ${ratio}x"
  if [ -n "$GET_PID" ]; then
    g=$(python3 -c "print(f'{$hits/$get:.2f}')")
    gets+=("$g")
    line="$line; redis GET $get req/s, feed hits / redis GET ${g}x"
  fi
  echo "$line"
done
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
echo "median ratio (feed hits / hello): $(median "${ratios[@]}")x"
if [ -n "$GET_PID" ]; then
  echo "median ratio (feed hits / one redis GET): $(median "${gets[@]}")x"
fi

# Hit vs miss latency: 200 distinct pages (misses), then the same 200 again (hits). Odd pages
# with the page size changing every request, so no request finds a page prefetched for another.
lat() { for i in $(seq 0 199); do
  curl -s -o /dev/null -w '%{time_total}\n' \
    "http://127.0.0.1:$DEV_PORT/api/v1/feeds/discover?page=$(( 1 + 2 * (i / 50) ))&per_page=$(( 30 + i % 50 ))&sort=$1"; done; }
miss=$(lat newest | sort -n)
hit=$(lat newest | sort -n)
stats() { python3 -c "import sys; v=[float(x)*1000 for x in sys.stdin.read().split()]; v.sort(); print(f'median {v[len(v)//2]:.2f} ms, p99 {v[int(len(v)*0.99)-1]:.2f} ms')"; }
echo "cache miss latency:  $(echo "$miss" | stats)"
echo "cache hit latency:   $(echo "$hit" | stats)"

# The sampled consistency checks under load: product hits (one product per run, the hot
# product of a live drop) with CACHE_VERIFY_RATE of them checked after the response.
for id in 00001 00002 00003; do
  curl -s "http://127.0.0.1:$DEV_PORT/api/v1/products/prod-$id" >/dev/null
  product=$(rps "http://127.0.0.1:$DEV_PORT/api/v1/products/prod-$id")
  echo "product prod-$id hits: $product req/s (CACHE_VERIFY_RATE=$CACHE_VERIFY_RATE)"
done
sleep 2   # checks of a mismatch settle after 1 s
curl -s -H "Authorization: Bearer $LIVECACHE_ADMIN_TOKEN" "http://127.0.0.1:$DEV_PORT/api/v1/cache/stats/details" \
  | python3 -c "import sys, json; v = json.load(sys.stdin)['verify']; n = v['consistent'] + v['inconsistent'] + v['settled']; print(f\"sampled checks: {n} (consistent {v['consistent']}, inconsistent {v['inconsistent']}, settled {v['settled']}); source reads per check: {v['source_reads'] / max(n, 1):.2f}\")"
