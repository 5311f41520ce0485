#!/usr/bin/env bash
# Run activelab's main job on the embedded default: a demo project (SQLite,
# bundled real Fashion-MNIST images) in ./demo-project. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh ui
exec .venv/bin/activelab demo demo-project "$@"
