"""Fixtures of the heads tests: a six-row persona CSV and a tiny Llama sharing the tiny
GPT-NeoX's tokenizer (so both architectures see the same ids)."""

from __future__ import annotations

import csv

import pytest

COLUMNS = ("data_type", "input_data", "output_message", "memory", "summary", "eyes_mouth_pose", "eyes", "mouth", "pose")

# Four train rows (plain with an empty memory, memory-prefixed, multi-turn, emoji) and two
# valid rows that, as SPEC §3 allows, hold only their input.
ROWS = [
    ("train", "로라야 안녕!", "안녕! 오늘도 와 줘서 반가워 ㅎㅎ", "", "사용자가 인사하자 로라가 반갑게 맞음",
     "(눈 크게, 입 크게, 고개 돌림 없음)", "크게", "크게", "없음"),
    ("train", "[오늘 일정: 친구랑 카페 방문] 로라야 나 뭐 입고 갈까?", "카페 가는구나! 편한 니트 어때? ☕",
     "[오늘 일정: 친구랑 카페 방문]", "사용자가 카페 갈 옷을 묻자 로라가 니트를 추천함",
     "(눈 보통, 입 보통, 고개 돌림 보통)", "보통", "보통", "보통"),
    ("train", "(오로라 답변 요약) 사용자가 시험을 잘 봤다고 함 (사용자 질문) 로라야 축하해줘",
     "우와 축하해! 오늘은 맛있는 거 먹자 🎉", "[상태: 기분 좋음]",
     "사용자가 축하를 청하자 로라가 축하하며 맛있는 걸 먹으라고 함", "(눈 아주 크게, 입 아주 크게, 고개 돌림 많이)",
     "아주 크게", "아주 크게", "많이"),
    ("train", "나 떡볶이 먹었어 😋", "오 맛있었겠다! 나는 순한맛 좋아해 ㅎㅎ", "[좋아하는 음식: 떡볶이]",
     "사용자가 떡볶이를 먹었다고 하자 로라가 순한맛을 좋아한다고 함", "(눈 작게, 입 크게, 고개 돌림 없음)",
     "작게", "크게", "없음"),
    ("valid", "로라야 오늘 뭐 했어?", "", "", "", "", "", "", ""),
    ("valid", "[좋아하는 가수: 아이유] 요즘 무슨 노래 들어?", "", "", "", "", "", "", ""),
]


def write_csv(path, rows=ROWS) -> str:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return str(path)


@pytest.fixture(scope="session")
def persona_csv(tmp_path_factory) -> str:
    return write_csv(tmp_path_factory.mktemp("persona") / "ohlora.csv")


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, tiny_lm_dir) -> str:
    """A Llama with a few dims (the Kanana family's architecture) and the tiny tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
            bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )
    )
    folder = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)
