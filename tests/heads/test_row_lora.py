"""Stacked per-row adapters (ohlora.heads.row_lora) against peft's own mixed batch."""

from __future__ import annotations

import pytest
import torch

from ohlora.engine.config import EngineConfig
from ohlora.heads.generation import HeadRequest, generate_heads
from ohlora.heads.row_lora import Unsupported, row_adapters


def _model(ranks=(4, 2, 4), dora=False):
    """A tiny GPT-NeoX with three LoRA adapters of the given ranks, B not zero (so each
    adapter really changes the output), on two target modules."""
    from peft import LoraConfig, get_peft_model
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    base = GPTNeoXForCausalLM(GPTNeoXConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                            intermediate_size=64, vocab_size=100, max_position_embeddings=64))
    cfgs = [LoraConfig(r=r, lora_alpha=8 * (i + 1), target_modules=["query_key_value", "dense_4h_to_h"], lora_dropout=0.1,
                       use_dora=dora) for i, r in enumerate(ranks)]
    model = get_peft_model(base, cfgs[0], adapter_name="one")
    for name, cfg in zip(["two", "three"], cfgs[1:]):
        model.add_adapter(name, cfg)
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)
    return model.eval()


IDS = torch.tensor([[5, 6, 7, 8, 9], [9, 8, 7, 6, 5], [10, 11, 12, 13, 14], [1, 2, 3, 4, 5]])
NAMES = ["one", "two", "three", "__base__"]  # every adapter once, mixed ranks and scalings, and a base row


def test_logits_equal_pefts_mixed_batch():
    model = _model()
    with torch.no_grad():
        want = model(input_ids=IDS, adapter_names=NAMES).logits
        with row_adapters(model, NAMES):
            got = model(input_ids=IDS).logits
        with model.disable_adapter():
            base = model(input_ids=IDS).logits
    assert torch.allclose(got, want, atol=1e-5)
    # not trivially equal: every adapter row differs from the base, the base row does not
    for i in range(3):
        assert (want[i] - base[i]).abs().max() > 1e-2
    assert torch.allclose(got[3], base[3], atol=1e-6)


def test_rows_of_the_same_adapter_and_a_reordered_batch():
    model = _model()
    names = ["three", "three", "one", "three"]
    with torch.no_grad():
        want = model(input_ids=IDS, adapter_names=names).logits
        with row_adapters(model, names):
            got = model(input_ids=IDS).logits
    assert torch.allclose(got, want, atol=1e-5)


def test_the_model_is_unchanged_after_the_block():
    model = _model()
    model.set_adapter("two")
    with torch.no_grad():
        before = model(input_ids=IDS).logits
        with row_adapters(model, NAMES):
            model(input_ids=IDS)
        after = model(input_ids=IDS).logits
    assert torch.equal(before, after)


def test_one_context_serves_many_forwards_but_not_nested():
    model = _model()
    ctx = row_adapters(model, NAMES)
    with torch.no_grad():
        with ctx:
            first = model(input_ids=IDS).logits
        with ctx:
            second = model(input_ids=IDS).logits
        with ctx, pytest.raises(RuntimeError, match="already entered"):
            ctx.__enter__()
        plain = model(input_ids=IDS).logits  # the failed nesting left no hooks behind
    assert torch.equal(first, second)
    assert not torch.allclose(plain, first)
    model.set_adapter("one")
    with torch.no_grad():
        assert torch.equal(model(input_ids=IDS).logits, plain)


def test_a_forward_of_another_batch_size_is_refused_not_misapplied():
    model = _model()
    with torch.no_grad(), row_adapters(model, NAMES), pytest.raises(RuntimeError, match="4"):
        model(input_ids=IDS[:2])


def test_dora_and_training_mode_are_unsupported_at_once():
    with pytest.raises(Unsupported):
        row_adapters(_model(dora=True), NAMES)  # raised before any `with`
    with pytest.raises(Unsupported, match="training"):
        row_adapters(_model().train(), NAMES)


def test_fewer_operators_per_forward_than_pefts_mixed_batch():
    """The point of the module: a fixed operator count per LoRA layer instead of peft's
    loop over the batch's adapters (each operator is a kernel launch on a GPU)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n += 1
            return func(*args, **(kwargs or {}))

    model = _model()
    with torch.no_grad():
        with Count() as peft_ops:
            model(input_ids=IDS, adapter_names=NAMES)
        with row_adapters(model, NAMES), Count() as stacked_ops:
            model(input_ids=IDS)
        model.set_adapter("one")
        with Count() as one_adapter_ops:
            model(input_ids=IDS)
    assert stacked_ops.n < peft_ops.n
    assert stacked_ops.n <= one_adapter_ops.n  # no dearer than a batch of one adapter


def test_generate_heads_falls_back_to_peft_for_unsupported_layers(tiny_lm_dir):
    """A LoRA on the embedding is not stacked: generate_heads uses peft's mixed batch."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    torch.manual_seed(0)
    cfg = LoraConfig(r=4, target_modules=["query_key_value", "embed_in"])
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_lm_dir), cfg, adapter_name="output_message")
    model.add_adapter("summary", cfg)
    with pytest.raises(Unsupported, match="Embedding"):
        row_adapters(model, ["output_message", "summary"])
    for n, p in model.named_parameters():
        if "lora_B" in n or "lora_embedding_B" in n:
            torch.nn.init.normal_(p, std=0.5)
    model.eval()
    reqs = [HeadRequest("output_message", "로라야 안녕", max_new_tokens=8), HeadRequest("summary", "로라야 안녕", max_new_tokens=8)]
    stacked = generate_heads(model, tok, reqs, do_sample=False, mixed="stacked")
    peft = generate_heads(model, tok, reqs, do_sample=False, mixed="peft")
    assert [g.raw for g in stacked] == [g.raw for g in peft]
    assert stacked[0].raw != stacked[1].raw


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mixed_adapters"):
        EngineConfig(mixed_adapters="fused")
