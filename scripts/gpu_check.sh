#!/usr/bin/env bash
# The model code paths on a GPU, which CI (CPU only) never runs: the engine, heads,
# fine-tuning, memory-training and app tests with their models on CUDA — in bf16, the
# dtype a user gets there (ohlora.models.load_causal_lm) — then three chat turns of an
# Engine built from a models folder, checked to have run on the GPU.
#
#   PYTHON=/path/to/python bash scripts/gpu_check.sh     # default: python3
#
# Needs a CUDA build of torch and the project's dependencies in $PYTHON, except Kiwi and
# the bundled MiniLM: the tests that need them are left out (their packages are ~90 MB
# each, more than the lent machine could be sent), so the `kiwi` and `topic` memory
# encoders are not checked on CUDA by this script.
# Output: pass/fail per test, then one line per turn; exit status of pytest, or of the
# turn check when pytest passed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export OHLORA_TEST_DEVICE=cuda PYTHONUNBUFFERED=1

"$PY" - <<'EOF' || exit 2
import sys, torch, transformers, peft, sentence_transformers
if not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA device")
print(f"gpu_check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, transformers {transformers.__version__}, "
      f"peft {peft.__version__}, sentence-transformers {sentence_transformers.__version__}")
EOF

# -k: building a wheel needs setuptools from an index (build isolation), not a GPU.
"$PY" -m pytest -q -p no:cacheprovider -k "not wheel" \
  tests/engine tests/heads tests/app tests/test_tiny.py tests/test_formats.py \
  tests/memory/test_train.py tests/memory/test_retrieval.py tests/memory/test_store.py \
  tests/memory/test_evaluate.py tests/memory/test_pairs.py
status=$?

"$PY" - <<'EOF' || exit 1
import tempfile, time
from pathlib import Path

import torch

from ohlora.engine.engine import Engine
from ohlora.engine.models_dir import build_random_models_dir
from ohlora.tiny import save_tiny_causal_lm, save_tiny_roberta

texts = ["로라야 안녕! 나 오늘 친구랑 카페 가 😀", "[좋아하는 음식: 떡볶이] 뭐 먹을까", "내일 시험인데 너무 떨려\u200b 어떡하지"] * 10
root = Path(tempfile.mkdtemp())
lm = save_tiny_causal_lm(root / "lm", texts, vocab_size=400, hidden_size=32, num_layers=2, num_heads=2)
encoder = save_tiny_roberta(root / "encoder", texts, vocab_size=300)  # klue/roberta-base's shape, as the tests use
engine = Engine(build_random_models_dir(root / "models", lm, encoder, rank=4))  # config.device None: cuda when there is one
param = next(engine.model.parameters())
assert param.device.type == "cuda" and param.dtype == torch.bfloat16, (param.device, param.dtype)
for prompt in ["로라야 안녕!", "나 떡볶이 좋아해 🍢", "내일\u200b 시험이야"]:
    start = time.perf_counter()
    r = engine.turn("gpu", prompt)
    print(f"gpu_check turn on {param.device} {param.dtype}: {1000 * (time.perf_counter() - start):.0f} ms, "
          f"{r.generate_calls} generate calls, {r.decode_steps} decode steps, memory saved {r.memory_saved!r}, "
          f"expression {r.expression}, answer {r.answer[:30]!r}")
engine.close()
EOF
exit $status
