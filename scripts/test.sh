#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs what it needs first.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/store -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system_deps.sh dataset-fashion-mnist postgresql chromium
bash scripts/setup_env.sh ui,postgres,dev,tensorboard,peers
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
