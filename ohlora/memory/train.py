"""Fine-tuning the memory encoder on pair data (SPEC §4 'Training'), two ways.

Both modes learn cos(embed(memory_0), embed(user_prompt_1)) ≈ similarity_score with an
MSE loss, AdamW, linear warm-up over 10% of the steps then linear decay, gradient
clipping at 1, and evaluate Pearson/Spearman of the cosine on a random 90/10 *row*
split after each epoch (as the reference did: its valid rows share texts with train,
so valid scores are optimistic; the held-out measure is `ohlora memory eval` on pairs
built from other lines).

- `reference`: sentence-transformers' own `SentenceTransformerTrainer` with
  `CosineSimilarityLoss` over rows, batch 16: every row encodes its two texts, so an
  epoch over the reference's 5,760 train rows is 11,520 encoder passes — of only ~140
  distinct texts.
- `block` (default): the pairs are an n×n product of few distinct texts, so a step
  takes a block of `batch_size` distinct memories × `batch_size` distinct prompts,
  encodes each text once (same 2×16 texts a step as the reference) and scores the
  whole block of up to 256 pairs against the label matrix looked up from the pair
  table (row-weighted MSE: a (memory, prompt) pair occurring k times in the table
  weighs k, so the objective equals the reference's mean over rows up to a constant
  — same gradients). An epoch still
  visits every train pair once, but costs ~(M/16)·(P/16) steps instead of rows/16.
- `block` with `views="lines"`: a SPEC §4 score belongs to the *keys* of the two
  combination lines, not to (memory_0, user_prompt_1) alone, so all four texts of
  two lines share it, and a line's own memory and prompt share a key (score 1.0). A
  step takes 16 lines × 16 lines, shows each line as its memory or its prompt (a coin
  flip per line and step: still 32 texts a step) and scores every labelled pair of the
  32 — prompt-prompt and memory-memory pairs included, which pulls each prompt
  towards its own memory. On the reference test pairs with the bundled MiniLM this
  raised held-out corr (benchmarks/results/memory_quality.md); needs the five-column
  pair CSV (user_prompt_0, memory_1).

    >>> from ohlora.memory.train import TrainArgs
    >>> TrainArgs(mode="reference").resolved().epochs   # SPEC §4
    10
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ohlora import config
from ohlora.errors import OhloraError
from ohlora.memory.lines import Lines

_SPEC = config.MemoryTrainConfig()


@dataclass
class TrainArgs:
    """Memory-encoder training settings; defaults are the reference's (SPEC §4) except
    where a block-mode default is named."""

    mode: str = field(default="block", metadata={"help": "block: score distinct-text blocks; reference: CosineSimilarityLoss over rows"})
    epochs: int | None = field(default=None, metadata={"help": "epochs (None: 10 = SPEC §4 in reference mode, block_epochs in block mode)"})
    batch_size: int = field(default=_SPEC.batch_size, metadata={"help": "rows per step (reference) / distinct memories and prompts per block (block); SPEC §4: 16"})
    lr: float | None = field(default=None, metadata={"help": "peak learning rate (None: 2e-5 reference = sentence-transformers fit() default the reference used; block_lr in block mode)"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (sentence-transformers fit() default)"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (sentence-transformers fit() default)"})
    warmup_ratio: float = field(default=_SPEC.warmup_ratio, metadata={"help": "warm-up share of steps (SPEC §4: 10%)"})
    valid_ratio: float = field(default=_SPEC.valid_ratio, metadata={"help": "random valid share of rows (SPEC §4: 10%)"})
    max_seq_length: int = field(default=_SPEC.max_seq_length, metadata={"help": "encoder max tokens (SPEC §4: 64)"})
    seed: int = field(default=_SPEC.seed, metadata={"help": "seed of the split, shuffling and init"})
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many optimizer steps (benchmarks timing a slow mode; the schedule still spans all epochs)"})
    # Off by default: it removes the bundled MiniLM's [UNK]s, yet on the reference test
    # pairs held-out corr fell 0.48 -> 0.41 with it (benchmarks/results/memory_quality.md).
    fill_jamo: bool = field(default=False, metadata={"help": "spell Hangul jamo missing from a decomposing vocabulary (ohlora/memory/jamo.py; a no-op for klue/roberta-base)"})
    # Default lines where the CSV allows it. Chosen without the reference test pairs: holding
    # out 16 of the reference's 80 *train* lines (8 epochs, bundled MiniLM), lines vs pair
    # gave held-out-line corr 0.63 vs 0.54 and new-prompt-vs-known-memory corr 0.77 vs 0.71
    # (benchmarks/results/memory_quality.md has the test-pair figures).
    views: str = field(default="auto", metadata={"help": "block mode: pair = (memory_0, user_prompt_1) only, as the reference; lines = every text of the two lines shares the score (needs SPEC §4's five columns); auto = lines when every row has them, else pair"})
    # An epoch over line *pairs* costs (n/16)^2 steps: fine for the reference's 80 lines, hours
    # on a transformer for our ~1,300. `lines` makes it n/32 steps (each line in one block).
    epoch: str = field(default="pairs", metadata={"help": "lines view: pairs = an epoch visits every line pair once (the reference's epoch); lines = every line once (cost linear in lines)"})

    # Block mode uses the reference's epochs and lr too. Tried on the reference pairs with
    # the bundled MiniLM (benchmarks/results/memory_quality.md): lr 5e-5 for 6 epochs
    # ended at test corr 0.48, lr 2e-5 at ~0.50; held-out corr plateaus after ~5 epochs
    # while the train loss keeps falling (the model learns the ~140 train texts, not the keys).
    block_epochs = _SPEC.epochs
    block_lr = 2e-5

    def resolved(self) -> TrainArgs:
        block = self.mode == "block"
        return replace(
            self,
            epochs=self.epochs if self.epochs is not None else (self.block_epochs if block else _SPEC.epochs),
            lr=self.lr if self.lr is not None else (self.block_lr if block else 2e-5),
        )


@dataclass
class TrainResult:
    model: object  # the trained SentenceTransformer
    history: list[dict] = field(default_factory=list)  # one row per epoch
    seconds: float = 0.0  # training wall time, without the per-epoch callbacks
    steps: int = 0
    jamo_rules: int = 0  # tokenizer rules added by fill_missing_jamo
    args: TrainArgs | None = None  # the settings used, every default filled in


EpochCallback = Callable[[int, object, dict], None]  # (epoch, model, history row)


def split_rows(pairs: list, valid_ratio: float, seed: int) -> tuple[list, list]:
    """Random row split like the reference (SPEC §4: 90/10)."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_valid = int(round(len(pairs) * valid_ratio)) if len(pairs) > 1 else 0
    n_valid = min(max(n_valid, 1 if valid_ratio > 0 and len(pairs) > 1 else 0), len(pairs) - 1)
    valid = [pairs[i] for i in sorted(order[:n_valid])]
    train = [pairs[i] for i in sorted(order[n_valid:])]
    return train, valid


def _device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def train(
    pairs_path: str | Path,
    out_dir: str | Path | None,
    base: str = config.DEFAULT_MEMORY_ENCODER,
    args: TrainArgs | None = None,
    device: str | None = None,
    on_epoch: EpochCallback | None = None,
    pairs: list | None = None,
    progress: bool = True,
    lines: Lines | None = None,
) -> TrainResult:
    """Train from a pair CSV (or already-read `pairs`, or `lines`) and save a
    Sentence-Transformer folder at `out_dir` (None: do not save). Returns the model and
    per-epoch history.

    `lines` (ohlora/memory/lines.py, e.g. from combination files) skips the n² rows:
    it trains the lines view or a fitted encoder, and validates on whole held-out lines."""
    import torch

    from ohlora.memory.pairs import read_pairs
    from ohlora.models import load_sentence_encoder

    given = args or TrainArgs()
    args = given.resolved()
    if args.mode not in ("block", "reference"):
        raise OhloraError(f"unknown --mode {args.mode!r}; expected block or reference")
    if args.views not in ("auto", "pair", "lines"):
        raise OhloraError(f"unknown --views {args.views!r}; expected auto, pair or lines")
    if args.epoch not in ("pairs", "lines"):
        raise OhloraError(f"unknown --epoch {args.epoch!r}; expected pairs or lines")
    if args.views == "lines" and args.mode != "block":
        raise OhloraError("--views lines is a block-mode option; use --mode block")
    if args.epochs < 1 or args.batch_size < 1:
        raise OhloraError("--epochs and --batch-size must be at least 1")
    if lines is not None:
        if args.mode != "block" or args.views == "pair":
            raise OhloraError("training from lines (--combs) runs the lines view in block mode, or a fitted encoder; "
                              "for --views pair or --mode reference write a pair CSV with `ohlora memory make-pairs`")
        if len(lines) < 2:
            raise OhloraError("training from lines needs at least 2 distinct lines")
        train_lines, valid_rows = lines.split(args.valid_ratio, args.seed)
        train_rows = None
        args = replace(args, views="lines")
        five_columns = True
    else:
        pairs = pairs if pairs is not None else read_pairs(pairs_path)
        train_rows, valid_rows = split_rows(pairs, args.valid_ratio, args.seed)
        train_lines = None
        five_columns = all(r.prompt_0 and r.memory_1 for r in train_rows)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    dev = _device(device)
    model = load_sentence_encoder(base, flag="--base", max_seq_length=args.max_seq_length, device=dev)
    # An encoder may name its own defaults for what the user left unset (the `kiwi`
    # encoder trains a small head over frozen vectors: a far larger lr than a transformer).
    own = getattr(model[0], "train_defaults", {})
    args = replace(args, **{k: v for k, v in own.items() if getattr(given, k, None) is None})
    jamo_rules = 0
    if args.fill_jamo:
        from ohlora.memory.jamo import fill_missing_jamo

        jamo_rules = fill_missing_jamo(model)
    if args.views == "lines" and not five_columns:
        where = pairs_path or "the pairs"
        raise OhloraError(f"--views lines needs user_prompt_0 and memory_1 in every row of {where} (SPEC §4's five columns); use --views pair")
    if args.views == "auto":
        args = replace(args, views="lines" if args.mode == "block" and five_columns else "pair")
    if args.epoch == "lines" and args.views != "lines":
        raise OhloraError("--epoch lines needs the lines view (--views lines, or auto on five-column CSVs)")
    fitted = is_fitted(model)
    if (fitted or args.views == "lines") and train_lines is None:
        if not five_columns:
            raise OhloraError(f"the {base} encoder learns from whole lines: every row of {pairs_path or 'the pairs'} needs "
                              "user_prompt_0 and memory_1 (SPEC §4's five columns, as `ohlora memory make-pairs` writes)")
        train_lines = Lines.from_rows(train_rows)
    if fitted:  # an encoder fitted in closed form (topic): no epochs, no lr
        result = _fit(model, train_lines, valid_rows, args, on_epoch)
    elif args.views == "lines":
        result = _train_lines(model, train_lines, valid_rows, args, on_epoch, progress)
    else:
        run = _train_reference if args.mode == "reference" else _train_block
        result = run(model, train_rows, valid_rows, args, on_epoch, progress)
    result.jamo_rules = jamo_rules
    result.args = args
    if out_dir is not None:
        save(result, out_dir, args, base)
    return result


def save(result: TrainResult, out_dir: str | Path, args: TrainArgs, base: str) -> None:
    """Write the model folder atomically, with train_log.csv and train_args.json beside it."""
    from ohlora.files import atomic_dir, atomic_write_csv

    with atomic_dir(out_dir) as tmp:
        result.model.save(str(tmp))
        if result.jamo_rules:
            from ohlora.memory.jamo import persist

            persist(tmp)
        cols = ["epoch", "seconds", "loss", "pearson", "spearman", "learning_rate"]
        atomic_write_csv(tmp / "train_log.csv", cols, [[row.get(c, "") for c in cols] for row in result.history])
        (tmp / "train_args.json").write_text(json.dumps({**asdict(args), "base": base}, ensure_ascii=False, indent=2), encoding="utf-8")


# --- evaluation on the valid rows (distinct texts encoded once) -------------------------------
def pair_cosines(model, pairs: list, batch_size: int = 64):
    """Predicted cosine of each pair; every distinct text is encoded once."""
    import numpy as np

    texts = list(dict.fromkeys([p.memory for p in pairs] + [p.prompt for p in pairs]))
    if not texts:
        return np.zeros(0)
    vecs = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    index = {t: i for i, t in enumerate(texts)}
    a = vecs[[index[p.memory] for p in pairs]]
    b = vecs[[index[p.prompt] for p in pairs]]
    return (a * b).sum(axis=1)


def correlations(pred, true) -> dict[str, float]:
    import numpy as np
    from scipy.stats import pearsonr, spearmanr

    pred, true = np.asarray(pred, dtype=float), np.asarray(true, dtype=float)
    if len(pred) < 2 or np.std(pred) == 0 or np.std(true) == 0:
        return {"pearson": float("nan"), "spearman": float("nan")}
    return {"pearson": float(pearsonr(pred, true)[0]), "spearman": float(spearmanr(pred, true)[0])}


def _validate(model, valid_rows) -> dict[str, float]:
    if not valid_rows:
        return {}
    was_training = model.training
    model.eval()
    pred = pair_cosines(model, valid_rows)
    model.train(was_training)
    return correlations(pred, [p.score for p in valid_rows])


# --- shared pieces -------------------------------------------------------------------------------
def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def _optimizer(model, args: TrainArgs, total_steps: int):
    """AdamW (no decay on biases and LayerNorm, as sentence-transformers fit()) with
    linear warm-up then linear decay."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if ("bias" in name or "LayerNorm" in name or "norm" in name.lower()) else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr
    )
    warmup = math.ceil(total_steps * args.warmup_ratio)
    return opt, get_linear_schedule_with_warmup(opt, warmup, total_steps)


def _embed(model, texts: list[str]):
    features = model.preprocess(texts)
    features = {k: (v.to(model.device) if hasattr(v, "to") else v) for k, v in features.items()}
    return model(features)["sentence_embedding"]


# --- block mode ----------------------------------------------------------------------------------
def label_table(rows: list) -> tuple[list[str], list[str], dict[tuple[int, int], tuple[float, int]]]:
    """Distinct memories, distinct prompts, and for each (memory, prompt) present in
    the rows: (mean label, count)."""
    mem_index: dict[str, int] = {}
    prm_index: dict[str, int] = {}
    acc: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0])
    for r in rows:
        i = mem_index.setdefault(r.memory, len(mem_index))
        j = prm_index.setdefault(r.prompt, len(prm_index))
        a = acc[i, j]
        a[0] += r.score
        a[1] += 1
    table = {k: (s / n, n) for k, (s, n) in acc.items()}
    return list(mem_index), list(prm_index), table


def _line_blocks(n: int, size: int, rng: random.Random) -> list[tuple[list[int], list[int]]]:
    """`epoch="lines"`: one shuffle of the lines cut into blocks of 2·size, each line in one."""
    order = list(range(n))
    rng.shuffle(order)
    groups = [order[i : i + 2 * size] for i in range(0, n, 2 * size)]
    return [(g[: (len(g) + 1) // 2], g[(len(g) + 1) // 2 :]) for g in groups]


def _blocks(n_mem: int, n_prm: int, size: int, rng: random.Random) -> list[tuple[list[int], list[int]]]:
    mems, prms = list(range(n_mem)), list(range(n_prm))
    rng.shuffle(mems)
    rng.shuffle(prms)
    mem_groups = [mems[i : i + size] for i in range(0, n_mem, size)]
    prm_groups = [prms[i : i + size] for i in range(0, n_prm, size)]
    blocks = [(g, h) for g in mem_groups for h in prm_groups]
    rng.shuffle(blocks)
    return blocks


def _train_block(model, train_rows, valid_rows, args: TrainArgs, on_epoch, progress) -> TrainResult:
    memories, prompts, table = label_table(train_rows)

    def block(mem_ids, prm_ids, rng):
        # texts: the block's memories, then its prompts; cell weight = the pair's row count
        texts = [memories[m] for m in mem_ids] + [prompts[p] for p in prm_ids]
        cells = [
            (a, len(mem_ids) + b, lc[0], lc[1])
            for a, m in enumerate(mem_ids)
            for b, p in enumerate(prm_ids)
            if (lc := table.get((m, p))) is not None
        ]
        return texts, cells

    return _block_loop(model, valid_rows, args, on_epoch, progress, "block", len(memories), len(prompts), block)


def _block_loop(model, valid_rows, args: TrainArgs, on_epoch, progress, name: str, n_a: int, n_b: int, block, blocks=_blocks) -> TrainResult:
    """The block-mode loop both views share: `_blocks` of n_a × n_b ids; `block(ids_a,
    ids_b, rng)` gives the step's texts and its labelled cells (i, j, label, weight) into
    them; each text is encoded once and the loss is the weighted MSE of those cosines."""
    import torch
    import torch.nn.functional as F

    rng = random.Random(args.seed)
    steps_per_epoch = len(blocks(n_a, n_b, args.batch_size, random.Random(0)))
    total = steps_per_epoch * args.epochs
    opt, sched = _optimizer(model, args, total)
    result = TrainResult(model=model)
    model.train()
    elapsed = 0.0
    with _progress(progress) as bar:
        task = bar.add_task(name, total=total, status="")
        for epoch in range(1, args.epochs + 1):
            t0 = time.perf_counter()
            losses = []
            for ids_a, ids_b in blocks(n_a, n_b, args.batch_size, rng):
                if args.max_steps is not None and result.steps >= args.max_steps:
                    break
                texts, cells = block(ids_a, ids_b, rng)
                if not cells:
                    bar.advance(task)
                    continue
                emb = F.normalize(_embed(model, texts), dim=-1)
                cos = emb @ emb.T
                ia = torch.tensor([c[0] for c in cells], device=cos.device)
                ib = torch.tensor([c[1] for c in cells], device=cos.device)
                label = torch.tensor([c[2] for c in cells], device=cos.device, dtype=cos.dtype)
                weight = torch.tensor([c[3] for c in cells], device=cos.device, dtype=cos.dtype)
                loss = (weight * (cos[ia, ib] - label) ** 2).sum() / weight.sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                opt.step()
                sched.step()
                result.steps += 1
                losses.append(float(loss.detach()))
                bar.update(task, advance=1, status=f"epoch {epoch}/{args.epochs} loss {losses[-1]:.4f}")
            elapsed += time.perf_counter() - t0
            _end_epoch(result, model, valid_rows, epoch, elapsed, losses, sched, on_epoch, bar, task)
            if args.max_steps is not None and result.steps >= args.max_steps:
                break
    result.seconds = elapsed
    return result


def _train_lines(model, lines: Lines, valid_rows, args: TrainArgs, on_epoch, progress) -> TrainResult:
    """Block mode over lines (`views="lines"`, see the module docstring)."""

    def block(ids_a, ids_b, rng):
        owners = list(ids_a) + list(ids_b)
        texts = [lines.lines[i][rng.random() < 0.5] for i in owners]  # memory or prompt of each line
        cells = [
            (a, b, lab, 1.0)
            for a in range(len(owners))
            for b in range(a + 1, len(owners))
            if (lab := lines.label(owners[a], owners[b])) is not None
        ]
        return texts, cells

    blocks = (lambda n, _m, size, rng: _line_blocks(n, size, rng)) if args.epoch == "lines" else _blocks
    return _block_loop(model, valid_rows, args, on_epoch, progress, "block/lines", len(lines), len(lines), block, blocks)


def _end_epoch(result, model, valid_rows, epoch, elapsed, losses, sched, on_epoch, bar, task) -> None:
    row = {
        "epoch": epoch,
        "seconds": round(elapsed, 3),
        "loss": round(sum(losses) / len(losses), 6) if losses else float("nan"),
        "learning_rate": sched.get_last_lr()[0] if sched is not None else float("nan"),
        **_validate(model, valid_rows),
    }
    result.history.append(row)
    if bar is not None:
        bar.update(task, status=f"epoch {epoch} loss {row['loss']:.4f} valid r {row.get('pearson', float('nan')):.3f}")
    if on_epoch is not None:
        was = model.training
        on_epoch(epoch, model, row)
        model.train(was)


# --- encoders fitted in closed form ----------------------------------------------------------------
def is_fitted(model) -> bool:
    """An encoder fitted in closed form from lines (`fit_lines`, the topic encoder), not trained by epochs."""
    return hasattr(model[0], "fit_lines")


def _fit(model, lines: Lines, valid_rows, args: TrainArgs, on_epoch) -> TrainResult:
    """`model[0].fit_lines(lines, seed)` once (ohlora/memory/topic_encoder.py); one history row."""
    t0 = time.perf_counter()
    fitted = model[0].fit_lines(lines, seed=args.seed)
    result = TrainResult(model=model, seconds=time.perf_counter() - t0)
    model.eval()
    row = {"epoch": 1, "seconds": round(result.seconds, 3), "loss": round(fitted.get("loss", float("nan")), 6), **_validate(model, valid_rows)}
    result.history.append(row)
    if on_epoch is not None:
        on_epoch(1, model, row)
    return result


# --- reference mode ------------------------------------------------------------------------------
def _train_reference(model, train_rows, valid_rows, args: TrainArgs, on_epoch, progress) -> TrainResult:
    """sentence-transformers' trainer + CosineSimilarityLoss over rows, as the reference."""
    import tempfile

    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    data = Dataset.from_dict(
        {
            "sentence1": [r.memory for r in train_rows],
            "sentence2": [r.prompt for r in train_rows],
            "label": [float(r.score) for r in train_rows],
        }
    )
    result = TrainResult(model=model)
    state = {"elapsed": 0.0, "t0": 0.0, "losses": []}

    class Hooks(TrainerCallback):
        def __init__(self, bar, task):
            self.bar, self.task = bar, task

        def on_epoch_begin(self, targs, tstate, control, **kw):
            state["t0"] = time.perf_counter()
            state["losses"] = []

        def on_step_end(self, targs, tstate, control, **kw):
            self.bar.update(self.task, completed=tstate.global_step, status=f"epoch {math.ceil(tstate.epoch or 0)}/{args.epochs}")
            if args.max_steps is not None and tstate.global_step >= args.max_steps:
                control.should_training_stop = True
                control.should_epoch_stop = True

        def on_log(self, targs, tstate, control, logs=None, **kw):
            if logs and "loss" in logs:
                state["losses"].append(float(logs["loss"]))

        def on_epoch_end(self, targs, tstate, control, **kw):
            state["elapsed"] += time.perf_counter() - state["t0"]
            result.steps = tstate.global_step
            epoch = round(tstate.epoch or 0, 3)  # fractional when stopped by max_steps
            _end_epoch(result, model, valid_rows, epoch, state["elapsed"], state["losses"], None, on_epoch, self.bar, self.task)
            result.history[-1]["learning_rate"] = tstate.log_history[-1].get("learning_rate", float("nan")) if tstate.log_history else float("nan")

    steps_per_epoch = math.ceil(len(train_rows) / args.batch_size)
    with tempfile.TemporaryDirectory(prefix="ohlora-st-") as tmp, _progress(progress) as bar:
        task = bar.add_task("reference", total=steps_per_epoch * args.epochs, status="")
        targs = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.lr,
            weight_decay=args.weight_decay,
            max_grad_norm=args.max_grad_norm,
            warmup_steps=args.warmup_ratio,  # a float < 1 is a ratio of the total steps
            lr_scheduler_type="linear",
            seed=args.seed,
            data_seed=args.seed,
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="steps",
            logging_steps=max(1, min(steps_per_epoch // 10, 10)),
            report_to="none",
            disable_tqdm=True,
            use_cpu=str(model.device) == "cpu",
        )
        # The model card's widget examples are for the hub; computing them draws a tqdm bar
        # through ours as the trainer starts (sentence-transformers 6 ignores its
        # generate_widget_examples flag there), so this model's card skips them.
        model.model_card_data.set_widget_examples = lambda dataset: None
        trainer = SentenceTransformerTrainer(
            model=model, args=targs, train_dataset=data, loss=CosineSimilarityLoss(model), callbacks=[Hooks(bar, task)]
        )
        trainer.remove_callback(PrinterCallback)  # it prints every log dict when tqdm is off; our bar shows them
        trainer.train()
    result.seconds = state["elapsed"]
    return result
