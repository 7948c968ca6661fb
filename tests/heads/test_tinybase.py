"""The offline stand-in base: a GPT-NeoX folder whose tokenizer loses nothing."""

from __future__ import annotations

import json

import pytest

from ohlora import formats

# What users type: rare syllables, emoji (with skin tone and ZWJ), zero-width, Hanja, Latin.
USER_TEXTS = [
    "똠뷁횣 쀍 햏 ㅋㅋㅋ",
    "로라야 🫠👍🏽 👨‍👩‍👧 오늘 기분 최고!!",
    "내일\u200b 시험인데\u200d 떨려",
    "漢字도 읽어? ABC abc 123 ~!@#$%^&*()",
    "  앞뒤 공백\t탭\n줄바꿈  ",
    "분해된 한글: \u1100\u1161\u11a8",
]


@pytest.fixture(scope="module")
def tiny_base(persona_csv, tmp_path_factory):
    from ohlora.heads.tinybase import build_tiny_base

    out = tmp_path_factory.mktemp("base") / "tiny-base"
    return build_tiny_base(persona_csv, out, size="test", steps=12, progress=False)


def test_folder_loads_as_a_gpt_neox_causal_lm(tiny_base, model_device):
    from ohlora.models import load_causal_lm

    model, tok = load_causal_lm(str(tiny_base), device=model_device)
    assert model.config.model_type == "gpt_neox"  # polyglot-ko's family
    assert tok.eos_token == formats.EOS and tok.pad_token_id == tok.eos_token_id
    info = json.loads((tiny_base / "ohlora_tiny_base.json").read_text(encoding="utf-8"))
    assert info["steps"] == 12 and info["stand_in_for"] == "EleutherAI/polyglot-ko-1.3b"
    assert info["final_loss"] < info["first_loss"]  # pre-training learnt something


@pytest.mark.parametrize("text", USER_TEXTS + [formats.ANSWER_START, formats.ANSWER_HEADER, formats.ANSWER_END])
def test_any_text_round_trips_without_unknowns(tiny_base, text):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    ids = tok(text)["input_ids"]
    assert tok.unk_token_id is None or tok.unk_token_id not in ids
    assert all(0 <= i < len(tok) for i in ids)
    assert tok.decode(ids) == text


def test_markers_are_few_tokens(tiny_base):
    """Trained on the format strings, the markers are merged as a real vocabulary would."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    for marker in (formats.ANSWER_START, formats.ANSWER_HEADER, formats.ANSWER_END):
        assert len(tok(" " + marker)["input_ids"]) <= 4
    assert tok(formats.EOS)["input_ids"] == [tok.eos_token_id]


def test_cli_tiny_base(persona_csv, tmp_path, capsys):
    from ohlora.cli import main

    assert main(["tiny-base", "--data", persona_csv, "--out", str(tmp_path / "b"), "--size", "test", "--steps", "2"]) == 0
    assert (tmp_path / "b" / "config.json").exists() and (tmp_path / "b" / "tokenizer.json").exists()
    assert not (tmp_path / ".b.tmp").exists()
    assert main(["tiny-base", "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "c")]) == 1
    assert "nope.csv" in capsys.readouterr().err and not (tmp_path / "c").exists()
