"""Session-wide tiny models, built from configs once per test run (no download).

Sub-folders add their own fixtures in their own conftest.py.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

# Real Korean, emoji and a zero-width space: the text our tiny tokenizers learn from.
KOREAN_TEXTS = [
    "오늘 날씨 어때? 비 오면 우산 챙겨야지 ☔",
    "로라야 안녕! 나 오늘 친구랑 카페 가 😀",
    "[오늘 일정: 친구랑 카페 방문] 로라야 나 뭐 입고 갈까?",
    "[좋아하는 가수: 아이유] 요즘 무슨 노래 들어?",
    "(오로라 답변 요약) 사용자가 시험을 잘 봤다고 함 (사용자 질문) 로라야 축하해줘",
    "응! 나도 떡볶이 진짜 좋아해 ㅋㅋ 매운 거 잘 먹어?",
    "(눈 크게, 입 보통, 고개 돌림 없음)",
    "롤 티어 올랐다! 드디어 골드야",
    "내일 시험인데 너무 떨려\u200b 어떡하지",
    "[상태: 피곤함] 오늘 너무 힘들었어",
] * 3


@pytest.fixture(scope="session")
def model_device() -> str:
    """Where the model tests load their models: the CPU here and in CI (the tiny models are
    fastest there); `OHLORA_TEST_DEVICE=cuda` runs the same tests on a GPU, in the dtype a
    user gets there (bf16: ohlora.models.load_causal_lm), as scripts/gpu_check.sh does."""
    return os.environ.get("OHLORA_TEST_DEVICE", "cpu")


@pytest.fixture(scope="session")
def korean_texts() -> list[str]:
    return list(KOREAN_TEXTS)


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> str:
    """A tiny GPT-NeoX + byte-level BPE tokenizer saved as a plain HF folder."""
    from ohlora.tiny import save_tiny_causal_lm

    folder = tmp_path_factory.mktemp("tiny_lm")
    return save_tiny_causal_lm(folder, KOREAN_TEXTS, vocab_size=600, hidden_size=32, num_layers=2, num_heads=2)


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> str:
    """The memory encoder's stand-in, saved as a plain HF folder: a tiny RoBERTa shaped like
    klue/roberta-base (SPEC §4's encoder: its config fields, special-token order, BertTokenizer
    without normalisation of its own, saved as RobertaForMaskedLM), so every memory test goes
    through the code path the real default takes."""
    from ohlora.tiny import save_tiny_roberta

    folder = tmp_path_factory.mktemp("tiny_roberta")
    return save_tiny_roberta(folder, KOREAN_TEXTS, vocab_size=300)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> str:
    """A tiny plain BERT + WordPiece tokenizer (a user's own BERT folder; the encoder family
    the bundled MiniLM belongs to)."""
    from ohlora.tiny import save_tiny_bert

    folder = tmp_path_factory.mktemp("tiny_bert")
    return save_tiny_bert(folder, KOREAN_TEXTS, vocab_size=300)


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory, tiny_lm_dir, tiny_encoder_dir) -> str:
    """A MODELS_DIR (layout: docs/engine.md): the tiny GPT-NeoX as base/, four random-init
    rank-4 LoRA adapters in adapters/<head>/, and the tiny klue-shaped RoBERTa with mean pooling
    saved as a SentenceTransformer in memory_encoder/. Built once a session, in a few seconds."""
    from ohlora.engine.models_dir import build_random_models_dir

    folder = tmp_path_factory.mktemp("tiny_models")
    return str(build_random_models_dir(folder, tiny_lm_dir, tiny_encoder_dir, rank=4))
