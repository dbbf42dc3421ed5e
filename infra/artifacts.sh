#!/usr/bin/env bash
# Builds every Lambda function for AWS (arm64, release, `cargo lambda build`, zig as the cross
# linker) and prints each bootstrap's size and the build time. Installs cargo-lambda and zig
# into .venv if needed. Artifacts: target/lambda/<function>/bootstrap.
#   ./infra/artifacts.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/env.sh
[ -x .venv/bin/moto_server ] || infra/setup.sh
if [ ! -x .venv/bin/cargo-lambda ] || ! .venv/bin/python -c 'import ziglang' 2>/dev/null; then
  echo "installing cargo-lambda and zig into .venv"
  .venv/bin/pip install -q --disable-pip-version-check cargo-lambda ziglang
fi
export PATH="$PWD/.venv/bin:$PATH"
rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || true
functions=$(ls functions)
packages=()
for f in $functions; do packages+=(-p "$f"); done
started=$(date +%s)
cargo lambda build --release --arm64 "${packages[@]}"
took=$(( $(date +%s) - started ))
echo
printf '%-16s %12s\n' function "bootstrap (bytes)"
for f in $functions; do
  printf '%-16s %12s\n' "$f" "$(stat -c %s "target/lambda/$f/bootstrap")"
done
echo "built $(echo $functions | wc -w) functions for arm64 in ${took} s"
