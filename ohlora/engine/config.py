"""Where the chat's models live (the MODELS_DIR layout) and how a turn runs (EngineConfig).

One folder holds everything a chat needs, so `ohlora chat --models DIR`,
`ohlora serve --models DIR` and the demo cache are interchangeable:

    MODELS_DIR/base/             HF causal LM folder (or ohlora.json "base": hub id / folder)
    MODELS_DIR/adapters/<head>/  one peft LoRA adapter per head (`ohlora finetune all --out MODELS_DIR/adapters`)
    MODELS_DIR/memory_encoder/   SentenceTransformer folder (`ohlora memory train --out ...`)
    MODELS_DIR/ohlora.json       optional overrides {"base": ..., "adapters": ..., "memory_encoder": ...}
    MODELS_DIR/memory.sqlite     the default memory store (per user)

    >>> from ohlora.engine.config import EngineConfig
    >>> EngineConfig().retrieval_threshold, EngineConfig().pipeline
    (0.95, 'batched')
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ohlora import config
from ohlora.errors import ModelLoadError

DEMO_CACHE = Path("~/.cache/ohlora/demo")  # `ohlora demo` builds here; chat/serve default to it
MODELS_FLAG = "--models"
PIPELINES = ("batched", "reference")


def default_models_dir() -> Path:
    """$OHLORA_MODELS, else the demo cache (a valid MODELS_DIR once `ohlora demo` ran)."""
    env = os.environ.get("OHLORA_MODELS")
    return Path(env).expanduser() if env else DEMO_CACHE.expanduser()


@dataclass(frozen=True)
class ModelPaths:
    """The resolved names of everything a chat loads (each a folder, or a hub id for the base)."""

    base: str
    adapters: dict[str, str]
    memory_encoder: str
    store: str

    @classmethod
    def from_dir(cls, models_dir: str | Path | None) -> ModelPaths:
        """Resolve a MODELS_DIR; a missing folder or part is one ModelLoadError line naming `--models`."""
        if models_dir is None:
            models_dir = default_models_dir()
            if not models_dir.is_dir():
                raise ModelLoadError(
                    f"no models: {models_dir} does not exist (run `ohlora demo` to build the offline stand-ins) "
                    f"and the real base {config.DEFAULT_BASE_LM} needs its adapters and memory encoder; "
                    f"pass a folder holding base/, adapters/<head>/ and memory_encoder/ with {MODELS_FLAG}"
                )
        root = Path(models_dir).expanduser()
        if not root.is_dir():
            raise ModelLoadError(f"models folder '{models_dir}' does not exist; pass an existing folder with {MODELS_FLAG}")
        overrides: dict = {}
        spec = root / "ohlora.json"
        if spec.exists():
            try:
                overrides = json.loads(spec.read_text(encoding="utf-8"))
                if not isinstance(overrides, dict):
                    raise ValueError("expected a JSON object")
            except ValueError as e:
                raise ModelLoadError(f"{spec}: not a JSON object of overrides ({e}); fix it or remove it") from None

        def local(name: str) -> str | None:
            """An override: a folder relative to MODELS_DIR, an absolute folder, or a hub id."""
            value = overrides.get(name)
            if value is None:
                return None
            rel = root / str(value)
            return str(rel) if rel.exists() else str(Path(value).expanduser()) if str(value).startswith(("/", "~")) else str(value)

        # No base/ folder and no override: the real model, as SPEC §2 names it.
        base = local("base") or (str(root / "base") if (root / "base").is_dir() else config.DEFAULT_BASE_LM)
        adapters_root = Path(local("adapters") or root / "adapters")
        encoder = local("memory_encoder") or str(root / "memory_encoder")
        for name, path in (("adapters", adapters_root), ("memory_encoder", Path(encoder))):
            if name not in overrides and not path.exists():  # an override may be `bundled` or a hub id
                raise ModelLoadError(
                    f"models folder '{models_dir}' has no {name} ({path} missing); "
                    f"pass a folder holding base/, adapters/<head>/ and memory_encoder/ with {MODELS_FLAG}"
                )
        adapters = {head: str(adapters_root / head) for head in config.HEADS}
        store = str(Path(overrides.get("store", root / "memory.sqlite")).expanduser())
        return cls(base=base, adapters=adapters, memory_encoder=encoder, store=store)


@dataclass
class EngineConfig:
    """How the engine runs a turn. SPEC defaults come from `ohlora.config`."""

    max_prompt_tokens: int = field(
        default=config.ChatConfig.max_prompt_tokens, metadata={"help": "longer prompts are refused (SPEC §1.1: 48)"}
    )
    retrieval_threshold: float = field(
        default=config.ChatConfig.retrieval_threshold, metadata={"help": "cosine needed to use a memory (SPEC §1.2: 0.95)"}
    )
    min_memory_chars: int = field(
        default=config.ChatConfig.min_memory_chars,
        metadata={"help": "items shorter than this, spaces removed, are never picked (SPEC §1.2: 3)"},
    )
    seed: int | None = field(default=None, metadata={"help": "sampling seed (None: random)"})
    pipeline: str = field(
        default="batched",
        metadata={
            "help": "batched: 2 generate calls a turn with per-row adapters and constrained structured heads; "
            "reference: four sequential heads with retries, no constraints (SPEC §2), for comparison"
        },
    )
    constrained: bool = field(default=True, metadata={"help": "constrain the memory and expression heads"})
    # 3 candidates, measured with the early exit on (benchmarks/results/engine_latency.md: demo
    # stand-ins, 96 turns, seed 0, one run), k = 1/2/3/4:
    #   generate calls a turn        2.90 / 2.21 / 2.08 / 2.03   (issue #4 target: 2)
    #   decode steps vs reference    0.50 / 0.39 / 0.37 / 0.36
    #   CPU wall vs reference        0.71 / 0.58 / 0.61 / 0.67   (tiny models: a step's cost grows with rows)
    # 3 holds the calls at 2 with a short tail (max 6 calls vs 9 for 2; 2.02-2.12 over seeds 0-2
    # at 48 turns, vs 2.02-2.40 for 2); 4 adds a row to every call for little (2.03 calls). On an H200 at
    # polyglot-ko-1.3b's shapes the k=3 turn is 0.41x the reference's (engine_replay.md).
    reply_candidates: int = field(
        default=3,
        metadata={
            "help": "reply samples per generate call; the batch stops once the first that passes the checks "
            "(in order) has finished. 3: 2.08 calls a turn (2.90 with 1), decode steps 0.37x the reference, "
            "turn latency 0.41x on a GPU at 1.3B shapes (benchmarks/results/engine_latency.md, engine_replay.md)"
        },
    )
    summary_candidates: int = field(
        default=3,
        metadata={"help": "summary samples per generate call, early exit like the reply's (3: measured with the reply's)"},
    )
    min_reply_tokens: int = field(
        default=16,
        metadata={
            "help": "floor on the reply's new-token budget; the reference capped reply at 96 tokens in all "
            "(SPEC §2), which leaves nothing when a memory/summary makes the input long"
        },
    )
    strict_reply: bool = field(
        default=True,
        metadata={
            "help": "beyond the reference checks, reject a reply that is only another head's format "
            "(an expression label or a `[key: value]` item) and retry it"
        },
    )
    top_k: int = field(default=50, metadata={"help": "top-k at sampling (transformers' default, which the reference used)"})
    # stacked, measured on an H200 at polyglot-ko-1.3b's shapes (benchmarks/results/engine_replay.md, 40 turns):
    # a 4-row step of two heads costs 27.4 ms stacked, 41.7 ms with peft's mixed batch, 27.6 ms for the
    # reference's one-row step; the default engine's turn is 0.43x the reference's stacked, 0.66x with peft.
    mixed_adapters: str = field(
        default=config.MIXED_ADAPTERS[0],
        metadata={
            "help": "how a batch of two heads applies their adapters: stacked (ohlora.heads.row_lora, fixed "
            "operators per layer) or peft (its `adapter_names` mixed batch, a loop over adapters in every layer)"
        },
    )
    device: str | None = field(default=None, metadata={"help": "cpu / cuda (None: cuda if available)"})

    def __post_init__(self) -> None:
        if self.pipeline not in PIPELINES:
            raise ValueError(f"pipeline must be one of {PIPELINES}, got {self.pipeline!r}")
        if self.mixed_adapters not in config.MIXED_ADAPTERS:
            raise ValueError(f"mixed_adapters must be one of {config.MIXED_ADAPTERS}, got {self.mixed_adapters!r}")
