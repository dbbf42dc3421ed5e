#!/usr/bin/env bash
# Runs every test of the workspace against real services the tests start themselves
# (redis-server on free ports, single node and cluster). Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/env.sh
infra/setup.sh
cargo test --workspace --all-targets "$@"
