"""The offline stand-in for polyglot-ko-1.3b: a small GPT-NeoX pre-trained on our own text.

It is a stand-in, not a language model of Korean: it has seen only the persona dataset,
so the heads trained on it learn the formats and the persona's phrases, and little else.
A real run uses `--base EleutherAI/polyglot-ko-1.3b` (docs/finetune.md says what it needs).

What it does, in a few CPU minutes:
1. trains a byte-level BPE tokenizer (`ohlora.tiny.train_bpe_tokenizer`) on every
   column of every row plus the format strings (markers, labels) - byte-level, so any
   text a user types (rare syllables, emoji, zero-width characters) encodes without an
   unknown token and decodes back unchanged;
2. builds a small GPT-NeoX (`ohlora.tiny.build_causal_lm`, the polyglot-ko family);
3. pre-trains it as a plain causal LM on `formats.training_text` of the train rows'
   examples of the four heads (`PRETRAIN_HEADS`; why all four: see there), each after
   an end-of-text token, so the markers and answer shapes are already known when the
   LoRA heads are trained;
4. saves an ordinary Hugging Face folder that `--base` accepts.

    >>> from ohlora.heads.tinybase import build_tiny_base
    >>> build_tiny_base("data/persona/ohlora.csv", "runs/tiny-base")   # doctest: +SKIP
    PosixPath('runs/tiny-base')
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from ohlora import config, formats
from ohlora.errors import DataError, OhloraError
from ohlora.heads.dataset import head_examples, load_rows


@dataclass(frozen=True)
class TinyBaseSize:
    """Model and pre-training size (polyglot-ko-1.3b: hidden 2048, 24 layers, 16 heads, vocab 30k)."""

    hidden_size: int
    num_layers: int
    num_heads: int
    vocab_size: int
    steps: int  # optimiser steps of pre-training
    batch_size: int
    lr: float


SIZES: dict[str, TinyBaseSize] = {
    # The demo's base: measured on 2 shared CPU cores (benchmarks/results/finetune_format_validity.md).
    # 900 steps (was 600) since the memory texts joined pre-training: ~25 s more, and the
    # replies passing the SPEC checks 77% -> 79%, well-formed expressions 35% -> 53% (one
    # sample of 99 valid rows each; benchmarks/results/finetune_format_validity.md).
    "small": TinyBaseSize(hidden_size=128, num_layers=4, num_heads=4, vocab_size=3000, steps=900, batch_size=16, lr=3e-3),
    # For tests: seconds, and enough to see the formats start to form.
    "test": TinyBaseSize(hidden_size=32, num_layers=2, num_heads=2, vocab_size=800, steps=30, batch_size=16, lr=3e-3),
}

# Strings the heads read and write that the dataset may not spell out in full.
FORMAT_TEXTS: tuple[str, ...] = (
    *formats.MARKERS,
    formats.training_text("로라야 안녕", "안녕!"),
    *(f"[{k}: ]" for k in ("오늘 일정", "좋아하는 음식", "상태")),
    *(
        formats.Expression(e, m, p).text
        for e in formats.EYES_LABELS
        for m in formats.MOUTH_LABELS
        for p in formats.POSE_LABELS
    ),
)

# Heads whose training texts the base is pre-trained on: all four. The memory head's were
# once left out (it reads the same input as the reply head, so the base learns a mixture
# after `### 답변:` that the reply adapter must undo), and then the memory head always
# answered empty: `[` was never a pre-training target, so its logit was pushed down
# everywhere and the memory adapter (LoRA on q/k/v only) could not lift it (P(`[`) 0.003
# on its own non-empty training rows). Making each text's first token a target (the
# end-of-text token in `_build`) let it decide *whether* to save, but it still wrote keys
# and values unrelated to the message (the target's key on 4 of 53 training rows). With
# the memory texts in pre-training: 36 of 53 (29 exact), 76% of valid rows with an item
# target get an item; the cost is the reply head, which passes the SPEC checks on 79% of
# the valid rows instead of 86-89% (6% in another head's format, as before)
# (benchmarks/results/finetune_format_validity.md).
PRETRAIN_HEADS: tuple[str, ...] = config.HEADS

MAX_LENGTH = 256  # pre-training texts are cut here (the same cap as fine-tuning's default)


def _row_texts(rows) -> list[str]:
    names = ("input_data", "output_message", "memory", "summary", "eyes_mouth_pose")
    texts = []
    for row in rows:
        for name in names:
            value = row.get(name, "") if isinstance(row, dict) else getattr(row, name, "")
            if value:
                texts.append(value)
    return texts


def build_tiny_base(
    data_csv: str | Path,
    out_dir: str | Path,
    *,
    extra_texts: Iterable[str] = (),
    seed: int = 0,
    steps: int | None = None,
    size: str = "small",
    progress: bool = True,
    threads: int | None = 1,
    pretrain_heads: Iterable[str] = PRETRAIN_HEADS,
) -> Path:
    """Train the tokenizer, build and pre-train the tiny GPT-NeoX, save it to `out_dir`.

    `threads`: torch's intra-op threads while pre-training (None: torch's default). One
    thread is the fastest for a model this small on a shared 2-core machine: a second
    thread barely helps the tiny matrix products and, with other jobs running, spins
    (measured: benchmarks/results/finetune_throughput.md).
    """
    from ohlora.heads.finetune import torch_threads

    with torch_threads(threads):
        return _build(data_csv, out_dir, extra_texts, seed, steps, size, progress, tuple(pretrain_heads))


def _build(data_csv, out_dir, extra_texts, seed, steps, size, progress, pretrain_heads) -> Path:
    import torch

    from ohlora.heads.finetune import batches, collate
    from ohlora.tiny import build_causal_lm, train_bpe_tokenizer
    from ohlora.heads.dataset import tokenize_example

    if size not in SIZES:
        raise OhloraError(f"unknown tiny-base size '{size}'; expected one of {', '.join(SIZES)}")
    spec = SIZES[size]
    steps = spec.steps if steps is None else steps
    rows = load_rows(data_csv)
    texts = [*_row_texts(rows), *extra_texts, *FORMAT_TEXTS]
    train_texts = [e["prompt"] + e["completion"] for h in pretrain_heads for e in head_examples(rows, h, "train")]
    if not train_texts:
        raise DataError(data_csv, None, "no train rows to pre-train the tiny base on")

    started = time.perf_counter()
    torch.manual_seed(seed)
    tokenizer = train_bpe_tokenizer(texts, vocab_size=spec.vocab_size)
    model = build_causal_lm(
        tokenizer, hidden_size=spec.hidden_size, num_layers=spec.num_layers, num_heads=spec.num_heads,
        max_positions=MAX_LENGTH, seed=seed,
    )
    # Plain causal LM: every token is a target (prompt="" puts nothing under the mask).
    # Each text starts after an end-of-text token (the usual document separator of GPT-style
    # pre-training), so its FIRST token is a target too. Without it `[` (which starts the
    # memory-prefixed inputs and is never mid-text) was never predicted, pre-training
    # drove its logit down everywhere, and the memory adapter could not lift it: the memory
    # head always answered empty (P(`[`) 0.003 on its own training rows after 6 epochs).
    features = [_after_eos(tokenize_example(tokenizer, "", t, MAX_LENGTH - 1), tokenizer.eos_token_id) for t in train_texts]
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:  # warm-up, then cosine to 10%: the usual small-LM schedule
        if step < warmup:
            return spec.lr * (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return spec.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    model.train()
    step, epoch, losses = 0, 0, []
    bar = _bar(steps) if progress else None
    while step < steps:
        for batch in batches(features, spec.batch_size, "length", seed=seed * 1000 + epoch):
            if step >= steps:
                break
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            loss = model(**collate(batch, tokenizer.pad_token_id)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
            if bar:
                bar(loss=sum(losses[-20:]) / len(losses[-20:]))
        epoch += 1
    if bar:
        bar.close()

    out = Path(out_dir)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    info = {
        "stand_in_for": config.DEFAULT_BASE_LM,
        "data": str(data_csv),
        "size": size,
        **asdict(spec),
        "steps": steps,
        "epochs_seen": round(step * spec.batch_size / len(features), 2),
        "train_texts": len(features),
        "first_loss": round(losses[0], 4) if losses else None,
        "final_loss": round(sum(losses[-20:]) / max(1, len(losses[-20:])), 4),
        "seconds": round(time.perf_counter() - started, 1),
        "seed": seed,
    }
    (tmp / "ohlora_tiny_base.json").write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def _after_eos(feature: dict, eos_id: int) -> dict:
    """`feature` with an end-of-text token in front (attended to; as a label it is never a
    target, since the model predicts token i+1 from token i)."""
    return {
        "input_ids": [eos_id, *feature["input_ids"]],
        "attention_mask": [1, *feature["attention_mask"]],
        "labels": [eos_id, *feature["labels"]],
    }


class _bar:
    def __init__(self, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._p = Progress(
            TextColumn("[bold]tiny-base"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        )
        self._t = self._p.add_task("pre-train", total=total, loss=float("nan"))
        self._p.start()

    def __call__(self, **fields):
        self._p.update(self._t, advance=1, **fields)

    def close(self):
        self._p.stop()
