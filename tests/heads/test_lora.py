"""LoRA targets per architecture, one optimisation step per head, save -> reload."""

from __future__ import annotations

import pytest
import torch

from ohlora import config
from ohlora.errors import OhloraError
from ohlora.heads.dataset import head_examples, load_rows, tokenize_example
from ohlora.heads.finetune import collate
from ohlora.heads.lora import lora_config, lora_targets


def _load(folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def test_targets_follow_the_architecture(tiny_lm_dir, tiny_llama_dir):
    neox, _ = _load(tiny_lm_dir)
    llama, _ = _load(tiny_llama_dir)
    assert lora_targets(neox) == ["query_key_value"]  # SPEC §2
    assert lora_targets(llama) == ["q_proj", "k_proj", "v_proj"]


def test_unknown_architectures_fall_back_to_attention_names_or_fail_clearly():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=50))
    assert lora_targets(gpt2) == ["c_attn"]  # not listed by name: found by its fused projection

    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mixer = torch.nn.Linear(4, 4)

    with pytest.raises(OhloraError, match="cannot tell which layers"):
        lora_targets(Odd())


def test_lora_config_is_the_reference_one(tiny_lm_dir):
    model, _ = _load(tiny_lm_dir)
    cfg = lora_config(model)
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout, cfg.init_lora_weights) == (128, 16, 0.05, "gaussian")
    assert cfg.task_type == "CAUSAL_LM"
    assert set(cfg.target_modules) == {"query_key_value"}
    small = lora_config(model, config.LoraConfig(rank=8, alpha=32, dropout=0.0))
    assert (small.r, small.lora_alpha, small.lora_dropout) == (8, 32, 0.0)


def _batch(tok, persona_csv, head):
    rows = load_rows(persona_csv)
    feats = [tokenize_example(tok, e["prompt"], e["completion"], 256) for e in head_examples(rows, head)]
    return collate(feats, tok.pad_token_id)


@pytest.mark.parametrize("which", ["neox", "llama"])
@pytest.mark.parametrize("head", config.HEADS)
def test_one_step_lowers_the_loss_on_that_batch(tiny_lm_dir, tiny_llama_dir, persona_csv, head, which):
    from peft import get_peft_model

    model, tok = _load(tiny_lm_dir if which == "neox" else tiny_llama_dir)
    torch.manual_seed(0)
    peft_model = get_peft_model(model, lora_config(model, config.LoraConfig(rank=8, dropout=0.0)))
    batch = _batch(tok, persona_csv, head)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    assert params and all("lora_" in n for n, p in peft_model.named_parameters() if p.requires_grad)
    opt = torch.optim.AdamW(params, lr=1e-2)
    before = peft_model(**batch).loss
    before.backward()
    opt.step()
    with torch.no_grad():
        after = peft_model(**batch).loss
    assert after.item() < before.item()


@pytest.mark.parametrize("which", ["neox", "llama"])
def test_adapter_saves_and_reloads_to_identical_logits(tiny_lm_dir, tiny_llama_dir, persona_csv, tmp_path, which):
    from peft import PeftModel, get_peft_model

    folder = tiny_lm_dir if which == "neox" else tiny_llama_dir
    model, tok = _load(folder)
    torch.manual_seed(0)
    peft_model = get_peft_model(model, lora_config(model, config.LoraConfig(rank=8)))
    batch = _batch(tok, persona_csv, "summary")
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model(**batch).loss.backward()
    opt.step()  # B is no longer zero: the adapter now changes the output
    peft_model.eval()
    with torch.no_grad():
        expected = peft_model(**batch).logits
        bare = peft_model.get_base_model()
        with peft_model.disable_adapter():
            assert not torch.allclose(bare(**batch).logits, expected)
    peft_model.save_pretrained(tmp_path / "summary")

    base, _ = _load(folder)
    reloaded = PeftModel.from_pretrained(base, tmp_path / "summary").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, expected)
