"""Batched generation with a different LoRA adapter per row (peft `adapter_names`)."""

from __future__ import annotations

import pytest
import torch

from ohlora import config, formats
from ohlora.heads.generation import HeadRequest, generate_heads, load_heads


@pytest.fixture(scope="module")
def heads(tiny_models_dir):
    from ohlora.engine.config import ModelPaths

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    paths = ModelPaths.from_dir(tiny_models_dir)
    yield load_heads(paths.base, paths.adapters, device="cpu")
    torch.set_num_threads(before)


REQUESTS = [
    ("output_message", "로라야 안녕! 나 오늘 친구랑 카페 가 😀", False),
    ("memory", "로라야 안녕! 나 오늘 친구랑 카페 가 😀", True),
    ("summary", "로라야 안녕 (오로라 답변) 안녕! 반가워", False),
    ("eyes_mouth_pose", "안녕! 반가워", True),
]


def _requests(cap=12):
    return [HeadRequest(h, text, constrained=c, max_new_tokens=cap) for h, text, c in REQUESTS]


def test_mixed_adapter_batch_equals_each_head_alone_greedy(heads):
    model, tok = heads
    batched = generate_heads(model, tok, _requests(), do_sample=False)
    alone = [generate_heads(model, tok, [r], do_sample=False)[0] for r in _requests()]
    assert [b.raw for b in batched] == [a.raw for a in alone]
    # The heads really differ (random adapters), so the equality above is not trivial:
    same_input = generate_heads(model, tok, [HeadRequest(h, "로라야 안녕", max_new_tokens=12) for h in config.HEADS], do_sample=False)
    assert len({g.raw for g in same_input}) > 1


def test_each_row_uses_its_own_adapter_not_the_base(heads):
    model, tok = heads
    r = HeadRequest("summary", "로라야 안녕", max_new_tokens=12)
    with_adapter = generate_heads(model, tok, [r], do_sample=False)[0].raw
    with model.disable_adapter():
        base = generate_heads(model.base_model.model, tok, [r], do_sample=False)[0].raw
    assert with_adapter != base


def test_constrained_rows_of_a_sampled_batch_always_parse(heads):
    model, tok = heads
    for seed in range(4):
        torch.manual_seed(seed)
        out = generate_heads(model, tok, _requests(cap=32))
        assert formats.parse_memory_output(out[1].text)[0], out[1].raw
        assert out[1].closed
        assert formats.parse_expression(out[3].text) is not None, out[3].raw


def test_rows_stop_at_their_own_caps(heads):
    model, tok = heads
    reqs = [HeadRequest("output_message", "안녕", max_new_tokens=3), HeadRequest("summary", "안녕", max_new_tokens=9)]
    out = generate_heads(model, tok, reqs)
    assert out[0].tokens <= 3 and out[1].tokens <= 9


def test_per_row_temperatures_follow_spec():
    assert HeadRequest("eyes_mouth_pose", "x").temperature == 1.5  # SPEC §2
    assert HeadRequest("memory", "x").temperature == 0.6
    assert HeadRequest("memory", "x").max_new_tokens == 24
    with pytest.raises(ValueError):
        HeadRequest("summary", "x", constrained=True)
