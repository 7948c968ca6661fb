"""The memory and expression constraints: nothing malformed under any logits, every valid
answer reachable, and the token cap always respected."""

from __future__ import annotations

import itertools
import re

import pytest
import torch

from ohlora import formats
from ohlora.heads.constraints import (
    VALUE,
    ConstraintLogits,
    _step,
    expression_completions,
    expression_constraint,
    memory_constraint,
    token_bytes,
)


@pytest.fixture(scope="module")
def tok(tiny_lm_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_lm_dir)


@pytest.fixture(scope="module")
def merged_tok():
    """A byte-level BPE trained without GPT-2's pre-split, so merges cross spaces and
    `': '`, `'일정: '` are single tokens (the tiny tokenizer only has a lone `':'`)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=[formats.EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(["[상태: 일정: 날씨]", "[내일 일정: 7:30 기상]", "[오늘 일정: 친구랑 카페 방문]", "[메모: 비율 16:9]"] * 5, trainer=trainer)
    merged = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=formats.EOS, pad_token=formats.EOS, clean_up_tokenization_spaces=False)
    table = token_bytes(merged)
    assert b": " in table and b"\xec\x9d\xbc\xec\xa0\x95: " in table  # what the tests below rely on
    return merged


@pytest.fixture(params=["tiny", "merged"])
def any_tok(request, tok, merged_tok):
    return tok if request.param == "tiny" else merged_tok


def _sample(tok, cursor, gen: torch.Generator, vocab: int, bias: torch.Tensor | None = None, scale: float = 3.0) -> str:
    """Sample a whole answer under the cursor's masks from random logits."""
    ids = []
    for _ in range(cursor.cap + 2):
        scores = torch.randn(vocab, generator=gen) * scale
        if bias is not None:
            scores = scores + bias
        keep = torch.from_numpy(cursor.allowed(vocab))
        assert keep.any()
        scores[~keep] = float("-inf")
        t = int(torch.multinomial(torch.softmax(scores, -1), 1, generator=gen))
        if t == tok.eos_token_id:
            break
        ids.append(t)
        cursor.advance(t)
    assert len(ids) <= cursor.cap
    return tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def _bias_towards(tok, vocab: int, chars: str, amount: float) -> torch.Tensor:
    """Push up tokens holding format characters, so random runs also write items."""
    bias = torch.zeros(vocab)
    for i, b in enumerate(token_bytes(tok)):
        if b and any(c.encode() in b for c in chars):
            bias[i] = amount
    return bias


@pytest.mark.parametrize("cap", [24, 12])
def test_memory_answers_under_random_logits_are_always_well_formed(tok, cap):
    spec = memory_constraint(tok)
    vocab = len(tok) + 7  # a model's vocabulary may be padded past the tokenizer's
    bias = _bias_towards(tok, vocab, "[:]", 4.0)
    items = empties = 0
    for seed in range(150):
        gen = torch.Generator().manual_seed(seed)
        text = _sample(tok, spec.start(cap), gen, vocab, bias=bias if seed % 2 else None)
        assert formats.ANSWER_END in text, text
        assert "\ufffd" not in text
        ok, item = formats.parse_memory_output(formats.parse_generated(text))
        assert ok, repr(text)
        if item:
            items += 1
            assert formats.parse_memory(item.text) == item
            assert not any(m in item.text for m in formats.MARKERS)
        else:
            empties += 1
    assert items >= 20 and empties >= 20  # both kinds of answer were exercised


@pytest.mark.parametrize(
    "answer",
    [
        " (답변 종료)",
        "  (답변 종료)",
        " [오늘 일정: 친구랑 카페 방문] (답변 종료)",
        " [좋아하는 가수: 아이유] (답변 종료)",
        " [상태: 피곤함 😴] (답변 종료)",
        " [알람: 7:30] (답변 종료)",  # a value may hold a colon
        " [내일 일정: 7:30 기상] (답변 종료)",  # ... followed by text, just not by white space
        " [메모: 끝이 콜론:] (답변 종료)",
        " [favorite food: 떡볶이 and ラーメン] (답변 종료)",
    ],
)
def test_every_well_formed_memory_answer_is_allowed(any_tok, answer):
    tok = any_tok
    spec = memory_constraint(tok)
    cursor = spec.start(64)
    for t in tok(answer, add_special_tokens=False)["input_ids"]:
        assert cursor.allowed(len(tok))[t], f"{tok.decode([t])!r} refused in {answer!r}"
        cursor.advance(t)
    assert cursor.done
    assert cursor.allowed(len(tok)).nonzero()[0].tolist() == [tok.eos_token_id]  # nothing after the marker


@pytest.mark.parametrize(
    "answer",
    [
        " [: 값] (답변 종료)",  # empty key
        " [키: ] (답변 종료)",  # empty value
        " [키 값] (답변 종료)",  # no colon
        " [키: [값]] (답변 종료)",  # nested bracket
        " [키: 값] [키2: 값2] (답변 종료)",  # two items
        " 안녕 (답변 종료)",  # free text
        " [키: 값 (답변 종료)",  # never closed
        " [키:\u200b값] (답변 종료)",  # invisible character
        " [키: 값 ### 답변: 더] (답변 종료)",  # a marker inside the value
        " [상태: 일정: 날씨] (답변 종료)",  # a second `key: ` inside the value (the demo's turn 1)
        " [키:: 값] (답변 종료)",
        " [키: 값: ] (답변 종료)",
        " [키: 7:\u202f30] (답변 종료)",  # white space beyond ' ' (U+202F, three byte tokens)
    ],
)
def test_malformed_memory_answers_are_refused_somewhere(any_tok, answer):
    tok = any_tok
    if "\u200b" not in answer:  # (parsing drops invisible characters; decoding never writes them)
        assert formats.parse_memory_output(formats.parse_generated(answer))[0] is False  # both rules agree
    spec = memory_constraint(tok)
    cursor = spec.start(64)
    for t in tok(answer, add_special_tokens=False)["input_ids"]:
        if not cursor.allowed(len(tok))[t]:
            return
        cursor.advance(t)
    pytest.fail(f"{answer!r} was allowed to the end")


def test_a_tight_cap_still_closes_the_item(tok):
    """Started an item with few tokens left: the mask steers to `]` and the marker in time."""
    spec = memory_constraint(tok)
    prefix = tok(" [오늘 일정: 친구랑", add_special_tokens=False)["input_ids"]
    needed = spec.need(_advance(spec.start(100), prefix).state)
    cap = len(prefix) + needed
    for seed in range(30):
        cursor = _advance(spec.start(cap), prefix)
        text = tok.decode(prefix) + _sample(tok, cursor, torch.Generator().manual_seed(seed), len(tok))
        assert formats.parse_memory_output(formats.parse_generated(text))[1] is not None, text


def _advance(cursor, ids):
    for t in ids:
        assert cursor.allowed(cursor.spec.n)[t]
        cursor.advance(t)
    return cursor


def test_a_value_pushed_towards_colon_space_never_gets_it(any_tok):
    """A fake model that wants `:` in the value and, right after one, white space (or a
    whole `일정: ` token): the mask keeps `: ` out, the item still closes, and plain
    colons (`7:30`-style) are still written."""
    tok = any_tok
    spec = memory_constraint(tok)
    vocab = len(tok)
    table = token_bytes(tok)
    colon = torch.tensor([bool(b) and b":" in b for b in table])
    spacey = torch.tensor([bool(b) and (b[:1] == b" " or b": " in b) for b in table])
    prefix = tok(" [상태: 일정", add_special_tokens=False)["input_ids"]
    cap = len(prefix) + spec.need(_advance(spec.start(200), prefix).state) + 8  # room for 8 value tokens
    colons = overruled = 0
    for seed in range(40):
        gen = torch.Generator().manual_seed(seed)
        cursor = _advance(spec.start(cap), list(prefix))
        ids = list(prefix)
        while not cursor.done:
            after_colon = table[ids[-1]].endswith(b":")
            scores = torch.randn(vocab, generator=gen) + torch.where(spacey, 30.0, 0.0) * after_colon + torch.where(colon, 8.0, 0.0)
            keep = torch.from_numpy(cursor.allowed(vocab))
            overruled += after_colon and not keep[int(scores.argmax())]
            t = int(torch.multinomial(torch.softmax(scores.masked_fill(~keep, float("-inf")), -1), 1, generator=gen))
            ids.append(t)
            cursor.advance(t)
        assert len(ids) <= cap
        text = tok.decode(ids)
        ok, item = formats.parse_memory_output(formats.parse_generated(text))
        assert ok and item is not None, repr(text)
        assert not re.search(r":\s", text.split(":", 1)[1].split("]", 1)[0]), repr(text)
        colons += ":" in item.value
    assert overruled >= 20 and colons >= 20, (overruled, colons)  # the push was real, and colons stay writable


def test_after_a_colon_in_the_value_no_token_may_start_with_white_space(tok, merged_tok):
    for t in (tok, merged_tok):
        spec = memory_constraint(t)
        table = token_bytes(t)
        cursor = _advance(spec.start(64), t(" [상태: 일정:", add_special_tokens=False)["input_ids"])
        allowed = cursor.allowed(len(t)).nonzero()[0].tolist()
        assert allowed and not [table[i] for i in allowed if table[i][:1] == b" "]
        assert t.convert_tokens_to_ids("0") in allowed  # '7:30': a digit may follow
    # one token holding ': ' is refused in the value; a lone ':' is not
    spec = memory_constraint(merged_tok)
    cursor = _advance(spec.start(64), merged_tok(" [상태: 일정", add_special_tokens=False)["input_ids"])
    ids = {b: i for i, b in enumerate(token_bytes(merged_tok)) if b}
    mask = cursor.allowed(len(merged_tok))
    assert mask[ids[b":"]] and not mask[ids[b": "]] and not mask[ids["일정: ".encode()]]
    # U+202F after ':' arrives as three byte tokens: refused on the byte that completes it
    spec = memory_constraint(tok)
    byte = {b: i for i, b in enumerate(token_bytes(tok)) if b and len(b) == 1}
    cursor = _advance(spec.start(64), tok(" [키: 7:", add_special_tokens=False)["input_ids"] + [byte[b"\xe2"], byte[b"\x80"]])
    mask = cursor.allowed(len(tok))
    assert not mask[byte[b"\xaf"]] and mask[byte[b"\x90"]]  # U+202F no, U+2010 '‐' yes


@pytest.mark.parametrize("prefix", [" [키: 7:", " [키: 값", " [키: 값 ", " [키: 1:2:"])
def test_the_fast_value_mask_agrees_with_the_state_machine(any_tok, prefix):
    """The precomputed tables (fast path) allow exactly the tokens `_step` accepts."""
    tok = any_tok
    spec = memory_constraint(tok)
    cursor = _advance(spec.start(200), tok(prefix, add_special_tokens=False)["input_ids"])
    assert cursor.state[0] == VALUE and not cursor.state[1]
    left = cursor.cap - cursor.count - 1
    want = [
        i for i, b in enumerate(spec.table) if b and (new := _step(cursor.state, b, spec.limits)) is not None and spec.need(new) <= left
    ]
    assert cursor.allowed(spec.n).nonzero()[0].tolist() == want


def test_expression_answers_under_random_logits_are_always_one_of_36(tok):
    spec = expression_constraint(tok)
    seen = set()
    for seed in range(200):
        text = _sample(tok, spec.start(max(32, spec.longest)), torch.Generator().manual_seed(seed), len(tok) + 3, scale=5.0)
        e = formats.parse_expression(formats.parse_generated(text))
        assert e is not None, repr(text)
        seen.add(e.text)
    assert len(seen) >= 20  # the sampling really wandered over the label space


def test_all_36_expression_labels_are_allowed(tok):
    spec = expression_constraint(tok)
    completions = expression_completions()
    assert len(completions) == 4 * 3 * 3 == len(set(completions))
    labels = {formats.Expression(e, m, p).text for e, m, p in itertools.product(("작게", "보통", "크게", "아주 크게"), ("보통", "크게", "아주 크게"), ("없음", "보통", "많이"))}
    assert {formats.parse_generated(c) for c in completions} == labels
    for text in completions:
        cursor = spec.start(64)
        for t in tok(text, add_special_tokens=False)["input_ids"]:
            assert cursor.allowed(len(tok))[t]
            cursor.advance(t)
        assert cursor.done


def test_the_processor_masks_only_constrained_rows(tok):
    spec = expression_constraint(tok)
    proc = ConstraintLogits([None, spec.start(40)], prompt_width=3)
    ids = torch.zeros((2, 3), dtype=torch.long)
    scores = torch.randn(2, len(tok))
    before = scores.clone()
    out = proc(ids, scores)
    assert torch.equal(out[0], before[0])
    assert torch.isfinite(out[1]).sum() == len(spec.root) - (None in spec.root)
    nxt = torch.cat([ids, torch.tensor([[5], [int(out[1].argmax())]])], dim=1)
    out2 = proc(nxt, torch.randn(2, len(tok)))  # one step further: the cursor follows row 1's token
    assert torch.isfinite(out2[1]).any()


def test_token_bytes_round_trip_korean_and_emoji(tok):
    table = token_bytes(tok)
    text = "오늘 날씨 😀 [키: 값] (답변 종료)"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert b"".join(table[i] for i in ids).decode("utf-8") == text
    assert table[tok.eos_token_id] is None
