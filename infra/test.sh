#!/usr/bin/env bash
# Runs every test of the workspace against real services the tests start themselves
# (redis-server on free ports: single node, cluster, TLS cluster; moto's server for DynamoDB
# and EventBridge), then schemathesis against the dev server (openapi.yaml must say exactly
# what the server does). Installs what is missing first. Ends with one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/env.sh
infra/setup.sh
mkdir -p .tmp
log=.tmp/test.log
status=0
cargo test --workspace --all-targets "$@" 2>&1 | tee "$log" || status=$?
echo
echo "== openapi.yaml against the dev server (schemathesis, all checks)"
infra/schemathesis.sh || status=$?
passed=$(grep -E '^test result:' "$log" | sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\1/' | awk '{s+=$1} END {print s+0}')
failed=$(grep -E '^test result:' "$log" | sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\2/' | awk '{s+=$1} END {print s+0}')
echo
echo "workspace: $passed passed, $failed failed"
exit "$status"
