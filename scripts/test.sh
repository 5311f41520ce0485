#!/usr/bin/env bash
# Run the static checks and the whole test suite on a fresh machine: installs what it needs first.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/store -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system_deps.sh dataset-fashion-mnist postgresql chromium
bash scripts/setup_env.sh ui,postgres,dev,tensorboard,peers,ray,fastai,hf,ssl,formats,segmentation
# static checks first (config in pyproject.toml): seconds, and they name the file and line
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy            # src/activelab/{strategies,store,loop,tasks}, [tool.mypy] files
.venv/bin/lint-imports    # the layers of DESIGN.md, [tool.importlinter]
export HF_HUB_OFFLINE=1
export ACTIVELAB_REQUIRE_RAY=1   # the Ray backend test must run, not skip
exec .venv/bin/python -m pytest "$@"
