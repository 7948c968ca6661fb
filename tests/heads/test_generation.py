"""Batched generation with a different LoRA adapter per row (peft `adapter_names`)."""

from __future__ import annotations

import pytest
import torch

from ohlora import config, formats
from ohlora.heads.generation import HeadRequest, generate_heads, load_heads


@pytest.fixture(scope="module")
def heads(tiny_models_dir, model_device):
    from ohlora.engine.config import ModelPaths

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    paths = ModelPaths.from_dir(tiny_models_dir)
    yield load_heads(paths.base, paths.adapters, device=model_device)
    torch.set_num_threads(before)


REQUESTS = [
    ("output_message", "로라야 안녕! 나 오늘 친구랑 카페 가 😀", False),
    ("memory", "로라야 안녕! 나 오늘 친구랑 카페 가 😀", True),
    ("summary", "로라야 안녕 (오로라 답변) 안녕! 반가워", False),
    ("eyes_mouth_pose", "안녕! 반가워", True),
]


def _requests(cap=12):
    return [HeadRequest(h, text, constrained=c, max_new_tokens=cap) for h, text, c in REQUESTS]


@pytest.mark.parametrize("mixed", config.MIXED_ADAPTERS)
def test_mixed_adapter_batch_equals_each_head_alone_greedy(heads, mixed):
    model, tok = heads
    batched = generate_heads(model, tok, _requests(), do_sample=False, mixed=mixed)
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


# --- early exit for candidate groups (HeadRequest.accept) ---------------------------------
# Greedy decoding and the random tiny adapters: a row never writes the end marker within
# these caps (asserted), so each row runs exactly to its own cap and every step count
# below is fixed in advance.
PROMPT = "로라야 안녕"


def _greedy(model, tok, rows):
    return generate_heads(model, tok, rows, do_sample=False)


def _alone(model, tok, head, cap):
    g = _greedy(model, tok, [HeadRequest(head, PROMPT, max_new_tokens=cap)])[0]
    assert not g.closed and g.tokens == cap  # the premise: rows run to their caps
    return g


def test_early_exit_stops_at_the_first_accepted_candidate(heads):
    model, tok = heads
    seen = []

    def accept(text):
        seen.append(text)
        return True

    rows = [HeadRequest("output_message", PROMPT, max_new_tokens=c) for c in (4, 30)]
    without = _greedy(model, tok, rows)
    assert without[0].steps == 30 and not any(g.cut for g in without)
    rows = [HeadRequest("output_message", PROMPT, max_new_tokens=c, accept=accept) for c in (4, 30)]
    out = _greedy(model, tok, rows)
    assert out[0].steps == 4 < without[0].steps  # the batch did not wait for the 30-token candidate
    assert not out[0].cut and out[1].cut and not out[1].closed
    assert out[0].text == without[0].text == _alone(model, tok, "output_message", 4).text
    assert seen == [out[0].text]  # the check saw the text exactly as the caller gets it


def test_an_earlier_candidate_is_waited_for_even_if_a_later_one_passed_first(heads):
    model, tok = heads
    rows = [HeadRequest("output_message", PROMPT, max_new_tokens=c, accept=lambda s: True) for c in (10, 3, 30)]
    out = _greedy(model, tok, rows)
    assert out[0].steps == 10  # row 1 passed at step 3, but row 0 comes first in order
    assert [g.cut for g in out] == [False, False, True]
    assert out[0].text == _alone(model, tok, "output_message", 10).text


def test_a_rejected_first_candidate_settles_on_the_next(heads):
    from ohlora.engine.engine import Engine

    model, tok = heads
    first = _alone(model, tok, "output_message", 3).text
    assert first != _alone(model, tok, "output_message", 6).text
    rows = [HeadRequest("output_message", PROMPT, max_new_tokens=c, accept=lambda s: s != first) for c in (3, 6, 30)]
    out = _greedy(model, tok, rows)
    assert out[0].steps == 6
    assert [g.cut for g in out] == [False, False, True]
    problem = lambda s: None if s != first else "rejected"  # noqa: E731
    assert Engine._first_passing(out, problem) == out[1].text


def test_a_group_where_all_fail_is_settled_once_all_its_rows_finish(heads):
    model, tok = heads
    failing = [HeadRequest("summary", PROMPT, max_new_tokens=c, accept=lambda s: False) for c in (3, 5)]
    passing = [HeadRequest("output_message", PROMPT, max_new_tokens=c, accept=lambda s: True) for c in (4, 30)]
    out = _greedy(model, tok, failing + passing)
    assert out[0].steps == 5  # not 4 (the failing group still ran), not 30 (both groups settled at 5)
    assert [g.cut for g in out] == [False, False, False, True]


def test_a_row_without_accept_is_never_cut(heads):
    model, tok = heads
    rows = [HeadRequest("output_message", PROMPT, max_new_tokens=c, accept=lambda s: True) for c in (3, 30)]
    rows.append(HeadRequest("summary", PROMPT, max_new_tokens=12))
    out = _greedy(model, tok, rows)
    assert out[0].steps == 12  # the group settled at 3; the plain row ran to its cap
    assert [g.cut for g in out] == [False, True, False]
    alone = _alone(model, tok, "summary", 12)
    assert (out[2].tokens, out[2].raw) == (12, alone.raw)


def test_sampled_candidates_keep_the_first_passing_in_order(heads):
    """Sampling: the kept answer (first non-cut passing row) is the first passing row of
    the same seed run to the end without the early exit."""
    model, tok = heads
    ok = lambda s: len(s) % 2 == 0  # noqa: E731 - any deterministic check that rejects some samples
    for seed in range(6):
        rows = [HeadRequest("output_message", PROMPT, max_new_tokens=c) for c in (5, 9, 14)]
        torch.manual_seed(seed)
        full = generate_heads(model, tok, rows)
        for r in rows:
            r.accept = ok
        torch.manual_seed(seed)
        early = generate_heads(model, tok, rows)
        expected = next((g.text for g in full if ok(g.text)), None)
        kept = next((g.text for g in early if not g.cut and ok(g.text)), None)
        assert kept == expected
        assert early[0].steps <= full[0].steps
