#!/usr/bin/env bash
# Cold start of every function (x86_64 release build, this machine) against a local mock of the
# Lambda Runtime API, beside a minimal lambda_http hello built in the same run; median of N runs
# (default 10). Starts its own redis-server for the "redis reachable" scenario. Then the AWS
# SDK's share of init, step by step (init-profile).
#   ./infra/coldstart.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/env.sh
infra/setup.sh >/dev/null
packages=(-p livecache-coldstart)
for f in $(ls functions); do packages+=(-p "$f"); done
cargo build -q --release "${packages[@]}"
bin="${CARGO_TARGET_DIR:-target}/release"
"$bin/coldstart" "$bin" "${1:-10}"
echo
AWS_LAMBDA_FUNCTION_NAME=init-profile AWS_ENDPOINT_URL=http://127.0.0.1:9 "$bin/init-profile" 20
