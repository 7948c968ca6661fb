"""The memory head must be able to save something: a head that always answers empty
matches every empty target and still shows no memory in a chat. These tests catch the
cause we found (pre-training never made `[` a target, so no adapter could lift it) and
the symptom (a trained memory head answering empty where its training row saves an item)."""

from __future__ import annotations

import pytest

from ohlora import formats
from ohlora.heads.dataset import _get, load_rows


def test_pretraining_makes_every_token_of_a_text_a_target(persona_csv, tmp_path, monkeypatch):
    """Each pre-training text's FIRST token is predicted too (from an end-of-text token
    before it), so `[`, which only ever starts a memory-prefixed input, is learnt."""
    import ohlora.heads.finetune as ft
    from ohlora.heads.tinybase import build_tiny_base

    seen = []
    real = ft.collate

    def spy(batch, pad_id):
        seen.extend(batch)
        return real(batch, pad_id)

    monkeypatch.setattr(ft, "collate", spy)
    base = build_tiny_base(persona_csv, tmp_path / "base", size="test", steps=2, progress=False)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    bracket = tok("[", add_special_tokens=False)["input_ids"]
    assert len(bracket) == 1
    # The model predicts labels[i] from input_ids[:i]: position 0 is never a target.
    targets = [t for f in seen for t in f["labels"][1:] if t != -100]
    assert bracket[0] in targets
    for f in seen:
        assert f["input_ids"][0] == tok.eos_token_id and f["labels"][1:] == f["input_ids"][1:]


@pytest.fixture(scope="module")
def memory_head(persona_csv, tmp_path_factory):
    from ohlora.heads.finetune import FinetuneConfig, finetune
    from ohlora.heads.tinybase import build_tiny_base

    work = tmp_path_factory.mktemp("memory_head")
    base = build_tiny_base(persona_csv, work / "base", size="test", steps=60, progress=False)
    finetune(
        FinetuneConfig(
            head="memory", data=persona_csv, out=str(work / "heads"), base=str(base), epochs=60, rank=16,
            alpha=32, lr=1e-2, batch_size=1, generate_valid=False, threads=1, seed=0,
        )
    )
    return str(base), str(work / "heads" / "memory")


def test_trained_memory_head_saves_an_item_where_its_training_row_does(memory_head, persona_csv, model_device):
    from ohlora.heads.generation import HeadRequest, load_heads, generate_heads

    base, adapter = memory_head
    model, tok = load_heads(base, {"memory": adapter}, device=model_device)
    rows = [r for r in load_rows(persona_csv) if _get(r, "data_type") == "train"]
    saving = [r for r in rows if _get(r, "memory")]
    empty = [r for r in rows if not _get(r, "memory")]
    assert saving and empty  # the fixture CSV has both kinds
    requests = [HeadRequest("memory", _get(r, "input_data"), constrained=True) for r in saving + empty]
    answers = [g.text for g in generate_heads(model, tok, requests, do_sample=False)]
    items = [formats.parse_memory_output(a) for a in answers]
    assert all(ok for ok, _ in items)
    # Where the training row saves an item the head saves one (not always-empty) ...
    saved = [item for _, item in items[: len(saving)]]
    assert sum(item is not None for item in saved) >= len(saving) - 1, answers
    # ... and where it saves nothing, the head does not invent one (not always-an-item).
    assert all(item is None for _, item in items[len(saving) :]), answers
