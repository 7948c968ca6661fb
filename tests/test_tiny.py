"""The tiny stand-ins: tokenizers that lose nothing, models that load like real ones."""

import pytest

from ohlora import formats
from ohlora.tiny import train_bpe_tokenizer


@pytest.fixture(scope="module")
def tok(korean_texts):
    return train_bpe_tokenizer(korean_texts, vocab_size=500)


@pytest.mark.parametrize(
    "text",
    [
        "뷁 똠얌꿍 쀍",  # syllables never seen in training
        "🫠🧑‍💻 이모지 조합",  # emoji with a zero-width joiner
        "제로\u200b폭 공백",
        "mixed 한국어 and English 123",
        formats.training_text("[오늘 일정: 카페] 안녕", "응 좋아!"),
    ],
)
def test_bpe_round_trips_anything_without_unknowns(tok, text):
    ids = tok(text)["input_ids"]
    assert tok.unk_token_id is None or tok.unk_token_id not in ids
    assert tok.decode(ids) == text


def test_eos_is_one_special_token(tok):
    ids = tok("안녕 <|endoftext|>")["input_ids"]
    assert ids[-1] == tok.eos_token_id
    assert tok.convert_ids_to_tokens(tok.eos_token_id) == "<|endoftext|>"
