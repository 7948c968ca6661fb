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
