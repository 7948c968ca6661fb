"""Which layers get LoRA, and the peft config of one head (SPEC §2 'LoRA (reference)').

The reference adapts `query_key_value`, GPT-NeoX's fused attention projection. The
targets follow the architecture, so any causal LM works as a base: the q/k/v
projections of a Llama-family model (e.g. the Kanana models later Oh-LoRA versions
moved to), and, for an architecture we do not know by name, whatever Linear layers
are named like attention projections.

    >>> from ohlora.heads.lora import lora_config            # doctest: +SKIP
    >>> lora_config(model, LoraConfig(rank=8)).target_modules  # doctest: +SKIP
    {'query_key_value'}
"""

from __future__ import annotations

from ohlora import config
from ohlora.errors import OhloraError

# model_type -> attention projections the reference-equivalent LoRA adapts.
KNOWN_TARGETS: dict[str, list[str]] = {
    "gpt_neox": ["query_key_value"],  # SPEC §2 (polyglot-ko)
    "llama": ["q_proj", "k_proj", "v_proj"],  # Kanana, Llama: the same three projections
    "mistral": ["q_proj", "k_proj", "v_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj"],
    "exaone": ["q_proj", "k_proj", "v_proj"],
}

# Leaf names, in order of preference, that mean "attention input projection" in
# architectures we do not list: fused first (one layer holds q, k and v), then split.
_FALLBACK_GROUPS: tuple[tuple[str, ...], ...] = (
    ("query_key_value",),
    ("qkv_proj",),
    ("c_attn",),  # GPT-2 family (a Conv1D, which peft also adapts)
    ("Wqkv",),
    ("q_proj", "k_proj", "v_proj"),
    ("query", "key", "value"),
)


def _linear_leaf_names(model) -> set[str]:
    import torch

    names = set()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D":
            names.add(name.rsplit(".", 1)[-1])
    return names


def lora_targets(model) -> list[str]:
    """Module names LoRA adapts in `model` (leaf names, as peft's `target_modules` takes them)."""
    leaves = _linear_leaf_names(model)
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    known = KNOWN_TARGETS.get(model_type or "")
    if known and all(t in leaves for t in known):
        return list(known)
    for group in _FALLBACK_GROUPS:
        if all(t in leaves for t in group):
            return list(group)
    raise OhloraError(
        f"cannot tell which layers to adapt with LoRA in a '{model_type}' model: none of its Linear layers "
        f"is named like an attention projection (looked for {', '.join(sorted({n for g in _FALLBACK_GROUPS for n in g}))}); "
        "use a GPT-NeoX or Llama-family base"
    )


def lora_config(model, cfg: config.LoraConfig | None = None):
    """The `peft.LoraConfig` of one head on `model` (SPEC §2: r 128, alpha 16, dropout 0.05,
    gaussian init, CAUSAL_LM), with targets from `lora_targets`."""
    from peft import LoraConfig as PeftLoraConfig

    cfg = cfg or config.LoraConfig()
    return PeftLoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        init_lora_weights=cfg.init,
        target_modules=lora_targets(model),
        task_type="CAUSAL_LM",
    )
