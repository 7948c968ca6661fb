"""Writing a MODELS_DIR (layout in `ohlora.engine.config`) from parts.

`assemble` copies a base, adapters and an encoder into the layout; `random_adapters`
writes untrained LoRA adapters (random A and B, so each head really differs from the
base and from the others) — what tests and benchmarks use when training is not the point.

    >>> from ohlora.engine.models_dir import random_adapters      # doctest: +SKIP
    >>> random_adapters("tiny_lm/", "models/adapters", rank=4)    # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ohlora import config


def random_adapters(base_dir: str | Path, out_dir: str | Path, rank: int = 4, alpha: int = 16, seed: int = 0) -> dict[str, Path]:
    """One random-init LoRA adapter per head on `query_key_value` (SPEC §2's target)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    paths = {}
    for i, head in enumerate(config.HEADS):
        torch.manual_seed(seed + i)
        base = AutoModelForCausalLM.from_pretrained(str(base_dir))
        cfg = LoraConfig(
            r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=["query_key_value"], task_type="CAUSAL_LM",
            init_lora_weights=False,  # random B too: a zero B would make every head equal the base
        )
        model = get_peft_model(base, cfg)
        model.save_pretrained(str(out / head))
        paths[head] = out / head
    return paths


def save_encoder(encoder_src: str | Path, out_dir: str | Path) -> Path:
    """Save a plain HF encoder (mean pooling added) or a SentenceTransformer folder as a
    SentenceTransformer folder."""
    from ohlora.models import load_sentence_encoder

    model = load_sentence_encoder(str(encoder_src), flag="--encoder")
    model.save(str(out_dir))
    return Path(out_dir)


def assemble(out_dir: str | Path, base: str | Path, adapters: dict[str, str | Path] | str | Path, encoder: str | Path) -> Path:
    """Copy the parts into `out_dir` in the MODELS_DIR layout (base and encoder as folders)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if Path(base).resolve() != (out / "base").resolve():
        shutil.copytree(base, out / "base", dirs_exist_ok=True)
    if isinstance(adapters, (str, Path)):
        adapters = {h: Path(adapters) / h for h in config.HEADS}
    for head, src in adapters.items():
        if Path(src).resolve() != (out / "adapters" / head).resolve():
            shutil.copytree(src, out / "adapters" / head, dirs_exist_ok=True)
    if Path(encoder, "modules.json").exists():
        if Path(encoder).resolve() != (out / "memory_encoder").resolve():
            shutil.copytree(encoder, out / "memory_encoder", dirs_exist_ok=True)
    else:
        save_encoder(encoder, out / "memory_encoder")
    return out


def build_random_models_dir(out_dir: str | Path, base_dir: str | Path, encoder_src: str | Path, rank: int = 4) -> Path:
    """A complete MODELS_DIR from a base folder and an encoder, with random adapters."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(base_dir, out / "base", dirs_exist_ok=True)
    random_adapters(out / "base", out / "adapters", rank=rank)
    save_encoder(encoder_src, out / "memory_encoder")
    (out / "ohlora.json").write_text(json.dumps({"note": "random stand-ins for tests"}) + "\n", encoding="utf-8")
    return out


# --- taught stand-ins: tiny models that follow the formats (for tests and benchmarks) ----------------
def _completion_batch(tokenizer, pairs: list[tuple[str, str]]):
    """Left-to-right training batch; loss only after `### 답변:` (SPEC §2 completion-only)."""
    import torch

    from ohlora import formats

    ids, labels = [], []
    for inp, out in pairs:
        p = tokenizer(formats.training_prompt(inp), add_special_tokens=False)["input_ids"]
        c = tokenizer(formats.training_completion(out), add_special_tokens=False)["input_ids"]
        ids.append(p + c)
        labels.append([-100] * len(p) + c)
    width = max(map(len, ids))
    pad = tokenizer.pad_token_id
    return (
        torch.tensor([x + [pad] * (width - len(x)) for x in ids]),
        torch.tensor([x + [-100] * (width - len(x)) for x in labels]),
        torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids]),
    )


def _fit(model, tokenizer, pairs, steps: int, lr: float) -> float:
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    x, y, m = _completion_batch(tokenizer, pairs)
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(steps):
        loss = model(input_ids=x, attention_mask=m, labels=y).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.detach())


def teach_models_dir(
    models_dir: str | Path, examples: dict[str, list[tuple[str, str]]], *, base_steps: int = 60, head_steps: int = 40,
    rank: int = 8, lr: float = 1e-2, seed: int = 0,
) -> dict[str, float]:
    """Overwrite a MODELS_DIR's base and adapters with tiny models that have memorised
    `examples` (head -> [(input, output)]): the base on all of them, then one LoRA
    adapter per head on its own. Seconds on a CPU for a tiny base; returns final losses."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = Path(models_dir)
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(str(root / "base"))
    base = AutoModelForCausalLM.from_pretrained(str(root / "base"))
    losses = {"base": _fit(base, tok, [p for h in config.HEADS for p in examples.get(h, [])], base_steps, lr)}
    base.save_pretrained(str(root / "base"))
    for head in config.HEADS:
        torch.manual_seed(seed + 1)
        model = AutoModelForCausalLM.from_pretrained(str(root / "base"))
        cfg = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, task_type="CAUSAL_LM",
                         target_modules=["query_key_value", "dense_h_to_4h", "dense_4h_to_h"])
        peft_model = get_peft_model(model, cfg)
        losses[head] = _fit(peft_model, tok, examples.get(head, []), head_steps, lr) if examples.get(head) else 0.0
        shutil.rmtree(root / "adapters" / head, ignore_errors=True)
        peft_model.save_pretrained(str(root / "adapters" / head))
    return losses
