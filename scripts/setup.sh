#!/usr/bin/env bash
# One-time set-up on a fresh machine: a venv in .venv with the CPU build of torch
# (a bare `torch` requirement would pull a multi-GB CUDA build) and ohlora itself.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import ohlora, torch, transformers, peft, sentence_transformers, kiwipiepy" 
