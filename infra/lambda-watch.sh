#!/usr/bin/env bash
# Runs every function under `cargo lambda watch` (the Lambda runtime emulator) on loopback,
# installing cargo-lambda into the project venv if needed. Embedded data by default.
#   ./infra/lambda-watch.sh
#   .venv/bin/cargo-lambda lambda invoke feeds -A 127.0.0.1 -P 9000 --data-file events/http/feeds-discover.json
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/env.sh
[ -x .venv/bin/cargo-lambda ] || { python3 -m venv .venv; .venv/bin/pip install -q --disable-pip-version-check cargo-lambda; }
export PATH="$PWD/.venv/bin:$PATH"
export DATA_BACKEND="${DATA_BACKEND:-memory}"
exec cargo lambda watch -A 127.0.0.1 -P "${PORT:-9000}" "$@"
