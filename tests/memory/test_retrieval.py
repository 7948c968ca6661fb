"""Retriever: SPEC §1.2 pick rules and one encoder pass per prompt once items are cached."""

from __future__ import annotations

import math

import pytest

from ohlora.memory.retrieval import Retriever, encoder_id
from ohlora.memory.store import MemoryStore

RAIN, GOLD, TIRED = "[오늘 날씨: 비]", "[롤 티어: 골드]", "[상태: 피곤함]"
PROMPT = "오늘 비 와?"


@pytest.fixture
def encoder(fake_encoder):
    # cos(prompt, RAIN) = 0.8, cos(prompt, GOLD) = 0.6, cos(prompt, TIRED) = 0
    return fake_encoder({PROMPT: [1, 0, 0, 0], RAIN: [0.8, 0.6, 0, 0], GOLD: [0.6, 0, 0.8, 0], TIRED: [0, 0, 0, 1]})


def test_scores_are_cosines(encoder):
    r = Retriever(encoder, model_id="fake")
    assert r.score([RAIN, GOLD, TIRED], PROMPT) == pytest.approx([0.8, 0.6, 0.0], abs=1e-6)


def test_best_applies_threshold(encoder):
    r = Retriever(encoder, model_id="fake")
    assert r.best([GOLD, RAIN], PROMPT, threshold=0.6) == (RAIN, pytest.approx(0.8))
    assert r.best([GOLD, RAIN], PROMPT, threshold=0.8) == (RAIN, pytest.approx(0.8))  # >= threshold
    assert r.best([GOLD, RAIN], PROMPT, threshold=0.81) is None
    assert r.best([GOLD], PROMPT, threshold=0.6) == (GOLD, pytest.approx(0.6))
    assert r.best([], PROMPT, threshold=0.0) is None


def test_short_items_are_never_picked(fake_encoder):
    # "[a:b]" has 5 characters, but SPEC counts the item text: with min_chars=6 it is too short
    enc = fake_encoder({PROMPT: [1, 0, 0, 0], "[a: b]": [1, 0, 0, 0], "[a: bc]": [0.5, 0.5, 0, 0]})
    r = Retriever(enc, model_id="fake")
    assert r.best(["[a: b]", "[a: bc]"], PROMPT, threshold=0.1, min_chars=6) == ("[a: bc]", pytest.approx(math.sqrt(0.5)))
    assert r.best(["[a: b]"], PROMPT, threshold=0.1, min_chars=6) is None
    assert r.best(["[a: b]"], PROMPT, threshold=0.1) == ("[a: b]", pytest.approx(1.0))  # default 3


def test_one_pass_per_prompt_once_cached(encoder):
    r = Retriever(encoder, model_id="fake")
    items = [RAIN, GOLD, TIRED]
    r.score(items, PROMPT)
    assert r.encode_calls == 2  # items once, prompt once
    for _ in range(3):
        r.score(items, PROMPT)
    assert r.encode_calls == 5
    assert encoder.calls[-1] == [PROMPT]


def test_only_missing_items_are_encoded(encoder):
    r = Retriever(encoder, model_id="fake")
    r.score([RAIN, GOLD], PROMPT)
    r.score([RAIN, GOLD, TIRED, TIRED], PROMPT)
    assert encoder.calls == [[RAIN, GOLD], [PROMPT], [TIRED], [PROMPT]]


def test_cache_persists_in_store(tmp_path, encoder):
    path = tmp_path / "cache.sqlite"
    with MemoryStore(path) as store:
        Retriever(encoder, store, model_id="fake").score([RAIN, GOLD], PROMPT)
    n = len(encoder.calls)
    with MemoryStore(path) as store:
        r = Retriever(encoder, store, model_id="fake")
        assert r.score([RAIN, GOLD], PROMPT) == pytest.approx([0.8, 0.6], abs=1e-6)
        assert r.encode_calls == 1 and encoder.calls[n:] == [[PROMPT]]
        other = Retriever(encoder, store, model_id="other-model")  # another model never reuses them
        other.score([RAIN], PROMPT)
        assert other.encode_calls == 2


def test_best_for_user_uses_active_items_of_that_user(tmp_path, encoder):
    with MemoryStore(tmp_path / "m.sqlite") as store:
        store.add("alice", GOLD)
        store.add("bob", RAIN)
        r = Retriever(encoder, store, model_id="fake")
        assert r.best_for_user("alice", PROMPT, threshold=0.5) == (GOLD, pytest.approx(0.6))
        assert r.best_for_user("bob", PROMPT, threshold=0.5) == (RAIN, pytest.approx(0.8))
        store.forget("bob", "오늘 날씨")
        assert r.best_for_user("bob", PROMPT, threshold=0.0) is None


def test_encoder_id_changes_with_weights(tiny_encoder_dir):
    import torch

    from ohlora.models import load_sentence_encoder

    enc = load_sentence_encoder(tiny_encoder_dir)
    a = encoder_id(enc)
    assert a == encoder_id(load_sentence_encoder(tiny_encoder_dir))  # stable across loads
    with torch.no_grad():
        next(enc.parameters()).add_(0.01)
    assert encoder_id(enc) != a


def test_real_encoder_scores_match_direct_cosine(tiny_encoder_dir, tmp_path):
    import numpy as np

    from ohlora.models import load_sentence_encoder

    enc = load_sentence_encoder(tiny_encoder_dir)
    items = [RAIN, GOLD, "[좋아하는 가수: 아이유]"]
    with MemoryStore(tmp_path / "c.sqlite") as store:
        got = Retriever(enc, store).score(items, PROMPT)
        got_cached = Retriever(enc, store).score(items, PROMPT)
    e = enc.encode(items + [PROMPT], convert_to_numpy=True)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    want = e[:3] @ e[3]
    assert got == pytest.approx(list(want), abs=1e-5)
    assert got_cached == pytest.approx(list(want), abs=1e-5)


def test_decomposed_korean_scores_as_composed(tiny_encoder_dir):
    # klue's tokenizer does not recompose NFD Hangul (test_tiny.py): the retriever must, or a
    # prompt typed on a decomposing keyboard would be read as unknown pieces
    import unicodedata

    from ohlora.models import load_sentence_encoder

    enc = load_sentence_encoder(tiny_encoder_dir)
    items = [RAIN, GOLD, "[좋아하는 가수: 아이유]"]
    nfd = [unicodedata.normalize("NFD", t) for t in items]
    prompt = "로라야\u200b 오늘 비 와?"
    want = Retriever(enc, model_id="klue-tiny").score(items, prompt)
    got = Retriever(enc, model_id="klue-tiny").score(nfd, unicodedata.normalize("NFD", prompt))
    assert got == pytest.approx(want, abs=1e-6)
    raw = enc.encode([unicodedata.normalize("NFD", prompt), "로라야 오늘 비 와?"], normalize_embeddings=True)
    assert float(raw[0] @ raw[1]) < 0.999  # the encoder alone does see a difference


def test_changed_item_list_is_rescored(encoder):
    r = Retriever(encoder, model_id="fake")
    assert r.best([GOLD], PROMPT, threshold=0.0) == (GOLD, pytest.approx(0.6))
    assert r.best([GOLD], PROMPT, threshold=0.0) == (GOLD, pytest.approx(0.6))  # same list: kept matrix
    assert r.best([GOLD, RAIN], PROMPT, threshold=0.0) == (RAIN, pytest.approx(0.8))  # a new item counts at once
    assert r.best([TIRED], PROMPT, threshold=0.0) == (TIRED, pytest.approx(0.0, abs=1e-6))
