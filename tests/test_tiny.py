"""The tiny stand-ins: tokenizers that lose nothing, models that load like real ones."""

import pytest

from ohlora import formats
from ohlora.tiny import KLUE_SPECIALS, build_roberta, train_bpe_tokenizer, train_klue_tokenizer


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


def test_klue_shaped_roberta_keeps_klues_ids_and_positions(korean_texts):
    # klue/roberta-base: [CLS] 0 = bos, [PAD] 1 = RoBERTa's padding index, [SEP] 2 = eos,
    # 514 positions for 512 tokens (RoBERTa counts positions from after the pad index)
    tok = train_klue_tokenizer(korean_texts, vocab_size=300, max_length=512)
    assert [tok.convert_tokens_to_ids(t) for t in KLUE_SPECIALS] == [0, 1, 2, 3, 4]
    cfg = build_roberta(tok).config
    assert (cfg.bos_token_id, cfg.pad_token_id, cfg.eos_token_id) == (0, 1, 2)
    assert cfg.max_position_embeddings == 514 and cfg.type_vocab_size == 1
    ids = tok("로라야 안녕")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2
    # a benchmark sizes the embedding like klue's 32,000 tokens; never below the tokenizer's
    assert build_roberta(tok, vocab_size=1000).config.vocab_size == 1000
    assert build_roberta(tok, vocab_size=10).config.vocab_size == len(tok)


def test_klue_shaped_tokenizer_does_not_normalise_by_itself(korean_texts):
    # like klue's: composed syllables are its vocabulary, and decomposed input is not
    # recomposed — which is why the memory code NFC-normalises before encoding
    import unicodedata

    tok = train_klue_tokenizer(korean_texts, vocab_size=300)
    text = "오늘 날씨 어때?"
    assert tok.unk_token_id not in tok(text)["input_ids"]
    assert tok.unk_token_id in tok(unicodedata.normalize("NFD", text))["input_ids"]
