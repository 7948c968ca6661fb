"""Filling the jamo an English WordPiece vocabulary lacks (the bundled MiniLM)."""

from __future__ import annotations

import unicodedata

import pytest

from ohlora.memory.jamo import SPELLINGS, fill_missing_jamo, missing_jamo, persist

TEXT = "[내일 일정: 술 약속] 어때? 좋아 있어 꼭 짜장면 😀"


def test_spellings_use_only_jamo():
    for src, dst in SPELLINGS.items():
        assert unicodedata.name(src).startswith("HANGUL") and all(unicodedata.name(c).startswith("HANGUL CHOSEONG") or unicodedata.name(c).startswith("HANGUL JUNGSEONG") for c in dst)


def test_bundled_loses_words_then_reads_them_after_fill(tmp_path):
    from ohlora.models import load_sentence_encoder

    model = load_sentence_encoder("bundled")
    assert missing_jamo(model.tokenizer)  # the vocabulary really lacks some
    before = model.tokenizer.tokenize(TEXT).count("[UNK]")
    assert before >= 5
    assert fill_missing_jamo(model) > 0
    assert model.tokenizer.tokenize(TEXT).count("[UNK]") == 1  # only the emoji is unknown now
    model.save(str(tmp_path / "m"))
    persist(tmp_path / "m")
    again = load_sentence_encoder(str(tmp_path / "m"))
    assert again.tokenizer.tokenize(TEXT) == model.tokenizer.tokenize(TEXT)
    assert again.tokenizer.tokenize("Hello World") == ["hello", "world"]  # English untouched


@pytest.mark.parametrize("folder", ["tiny_encoder_dir", "tiny_bert_dir"])
def test_composing_tokenizer_is_left_alone(request, folder):
    from ohlora.models import load_sentence_encoder

    # klue-shaped (no normaliser of its own) and NFC-normalising: syllables stay whole
    model = load_sentence_encoder(request.getfixturevalue(folder))
    assert missing_jamo(model.tokenizer) == [] and fill_missing_jamo(model) == 0
