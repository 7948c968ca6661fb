"""LoRA fine-tuning of the four heads on one base model (SPEC §2).

The base is loaded once; each head gets a fresh LoRA adapter, is trained with a
completion-only loss (labels -100 up to and including `### 답변:`, see
`dataset.tokenize_example`), saved, and removed again (`unload`) before the next head.

We use our own short training loop instead of trl's SFTTrainer: it computes the same
loss (mean cross-entropy over completion tokens) and the same log columns, and lets us
checkpoint per epoch, resume a single head of four, group batches by length, and log
valid generations per epoch without fighting Trainer callbacks. Defaults mirror the
HF Trainer's that the reference ran with: AdamW (no weight decay), linear decay to 0,
no warm-up, gradient clipping at 1.0.

Output, for `out=DIR`:

    DIR/finetune_config.json           the config of the last run
    DIR/<head>/adapter_config.json     standard peft adapter:
    DIR/<head>/adapter_model.safetensors   PeftModel.from_pretrained(base, DIR/<head>)
    DIR/<head>/train_log.csv           epoch,time,loss,grad_norm,learning_rate,mean_token_accuracy
    DIR/<head>/valid_generations.csv   epoch,input,generated
    DIR/<head>/checkpoint/             the last finished epoch, for --resume: adapter,
                                       optimizer state (optimizer.pt), trainer_state.json

    >>> from ohlora.heads.finetune import FinetuneConfig, finetune, DEMO_PRESET
    >>> cfg = FinetuneConfig(head="all", data="data/persona/ohlora.csv", out="runs/heads",
    ...                      base="runs/tiny-base", **DEMO_PRESET)     # doctest: +SKIP
    >>> finetune(cfg)["memory"]                                        # doctest: +SKIP
    PosixPath('runs/heads/memory')
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ohlora import config, formats
from ohlora.errors import DataError, OhloraError
from ohlora.heads.dataset import IGNORE_INDEX, head_examples, head_inputs, load_rows, tokenize_example

_LORA = config.LoraConfig()
_LORA_HELP = {f.name: f.metadata["help"] for f in fields(config.LoraConfig)}

TRAIN_LOG_COLUMNS = ("epoch", "time", "loss", "grad_norm", "learning_rate", "mean_token_accuracy")  # SPEC §2
VALID_LOG_COLUMNS = ("epoch", "input", "generated")


@dataclass
class FinetuneConfig:
    """One `ohlora finetune` run. Defaults are the reference's (SPEC §2)."""

    head: str = field(default="all", metadata={"help": f"'all' or one of {', '.join(config.HEADS)}"})
    data: str = field(default="data/persona/ohlora.csv", metadata={"help": "dataset CSV (SPEC §3)"})
    out: str = field(default="runs/heads", metadata={"help": "output folder; each head goes to OUT/<head>/"})
    base: str = field(default=config.DEFAULT_BASE_LM, metadata={"help": "base causal LM: hub id or local folder"})
    epochs: int | None = field(
        default=None, metadata={"help": "epochs per head (default: SPEC §2 per head, 60/20/60/30)"}
    )
    epochs_per_head: str | None = field(
        default=None,
        metadata={"help": "per-head epochs that override --epochs, e.g. 'memory=20' or 'memory=20,summary=10'"},
    )
    rank: int = field(default=_LORA.rank, metadata={"help": _LORA_HELP["rank"]})
    alpha: int = field(default=_LORA.alpha, metadata={"help": _LORA_HELP["alpha"]})
    dropout: float = field(default=_LORA.dropout, metadata={"help": _LORA_HELP["dropout"]})
    lr: float = field(default=_LORA.lr, metadata={"help": _LORA_HELP["lr"]})
    batch_size: int = field(default=_LORA.batch_size, metadata={"help": _LORA_HELP["batch_size"]})
    # The longest SPEC text (summary head: a 48-token prompt after a summary, plus the
    # reply and the summary) stays well under 256 polyglot-ko tokens.
    max_length: int = field(default=256, metadata={"help": "tokens per training text; longer ones are cut"})
    seed: int = field(default=42, metadata={"help": "seed for LoRA init, batch order and dropout"})
    resume: bool = field(default=False, metadata={"help": "continue each head from its last finished epoch"})
    grouping: str = field(
        default="length",
        metadata={
            "help": "length: batch texts of similar length (less padding); none: random batches",
            "choices": ("length", "none"),
        },
    )
    log_every: int = field(default=10, metadata={"help": "steps averaged for the loss shown in the progress bar"})
    generate_valid: bool = field(
        default=True, metadata={"help": "generate answers for the valid prompts after each epoch (SPEC §2)"}
    )
    max_valid_generations: int | None = field(
        default=None, metadata={"help": "cap on valid prompts generated per epoch (default: all)"}
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (HF Trainer default)"})
    device: str | None = field(default=None, metadata={"help": "cuda or cpu (default: cuda if available)"})
    threads: int | None = field(
        default=None, metadata={"help": "torch CPU threads while training (default: torch's; 1 is fastest for tiny models)"}
    )

    def heads(self) -> tuple[str, ...]:
        if self.head == "all":
            return config.HEADS
        if self.head not in config.HEADS:
            raise OhloraError(f"unknown head '{self.head}'; expected all or one of {', '.join(config.HEADS)}")
        return (self.head,)

    def head_epochs(self, head: str) -> int:
        per_head = self.epochs_overrides()
        if head in per_head:
            return per_head[head]
        return self.epochs if self.epochs is not None else config.HEAD_EPOCHS[head]

    def epochs_overrides(self) -> dict[str, int]:
        """`epochs_per_head` ('memory=20,summary=10') as {head: epochs}."""
        out: dict[str, int] = {}
        for part in (self.epochs_per_head or "").split(","):
            if not part.strip():
                continue
            head, sep, n = part.partition("=")
            head = head.strip()
            if not sep or head not in config.HEADS or not n.strip().isdigit() or int(n) < 1:
                raise OhloraError(
                    f"epochs per head must look like 'memory=20,summary=10' with heads from "
                    f"{', '.join(config.HEADS)} and epochs of at least 1, not '{part.strip()}'"
                )
            out[head] = int(n)
        return out

    def lora(self) -> config.LoraConfig:
        return config.LoraConfig(
            rank=self.rank, alpha=self.alpha, dropout=self.dropout, lr=self.lr, batch_size=self.batch_size
        )


# Fastest settings measured to still give well-formed outputs on the tiny stand-in base
# (benchmarks/results/finetune_format_validity.md): the demo builds everything in minutes.
# Sweep (benchmarks/results/finetune_preset_sweep.md): 3 epochs at rank 8 or 32 left 17%
# of replies in another head's format; 6 epochs at rank 32, lr 3e-3 is the cheapest we
# tried that gets the heads apart, at about 1.5 min for all four on 2 cores.
# The memory head gets SPEC §2's 20 epochs: its texts are short (~1.6 s an epoch) and on
# the tiny base it wrote the target exactly on 29 of 53 training rows with an item
# instead of 23 at 6 epochs (the demo's memory turn is such a row).
DEMO_PRESET: dict[str, object] = {
    "epochs": 6,
    "epochs_per_head": "memory=20",
    "rank": 32,
    "alpha": 16,  # SPEC §2
    "lr": 3e-3,  # 10x the reference: a tiny base and few epochs
    "batch_size": 16,
    "max_valid_generations": 8,
    "threads": 1,  # see tinybase.build_tiny_base: one thread is fastest for tiny models on a shared CPU
}


# --- the loop -------------------------------------------------------------------------------------
def finetune(cfg: FinetuneConfig) -> dict[str, Path]:
    """Train the adapter(s) `cfg.head` names; returns head -> adapter folder."""
    from ohlora.models import load_causal_lm

    heads = cfg.heads()
    if cfg.grouping not in ("length", "none"):
        raise OhloraError(f"grouping must be 'length' or 'none', not '{cfg.grouping}'")
    if cfg.batch_size < 1 or cfg.rank < 1 or (cfg.epochs is not None and cfg.epochs < 1):
        raise OhloraError("batch size, rank and epochs must be at least 1")
    cfg.epochs_overrides()  # a malformed --epochs-per-head stops here, before any work
    rows = load_rows(cfg.data)  # bad data stops here, before a model is loaded
    examples = {h: head_examples(rows, h, "train") for h in heads}
    for h, ex in examples.items():
        if not ex:
            raise DataError(cfg.data, None, f"no train rows with a target for head '{h}'")
    valid = {h: head_inputs(rows, h, "valid") for h in heads}

    model, tokenizer = load_causal_lm(cfg.base, flag="--base", device=cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "finetune_config.json", {**asdict(cfg), "head_epochs": {h: cfg.head_epochs(h) for h in heads}})

    done = {}
    with torch_threads(cfg.threads):
        for i, head in enumerate(heads):
            model, done[head] = _train_head(model, tokenizer, head, examples[head], valid[head], cfg, out / head, i)
    return done


def _train_head(model, tokenizer, head, examples, valid_inputs, cfg: FinetuneConfig, head_dir: Path, index: int):
    """Train one adapter on `model`; returns (the bare base again, the adapter folder)."""
    import torch
    from peft import get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    from ohlora.heads.lora import lora_config

    epochs = cfg.head_epochs(head)
    ckpt = head_dir / "checkpoint"
    state = _read_state(ckpt) if cfg.resume else None
    if state is not None:
        _check_compatible(state, cfg, head, ckpt)
    start_epoch = state["epoch"] if state else 0
    if state and start_epoch >= epochs:
        _publish(ckpt, head_dir)
        print(f"{head}: all {epochs} epochs already done (checkpoint {ckpt}); skipping")
        return model, head_dir

    features = [tokenize_example(tokenizer, e["prompt"], e["completion"], cfg.max_length) for e in examples]
    features = [f for f in features if any(lab != IGNORE_INDEX for lab in f["labels"])]
    if not features:
        raise OhloraError(f"every '{head}' training text is longer than --max-length {cfg.max_length} before its answer")

    torch.manual_seed(cfg.seed + index)  # the LoRA init, reproducible per head
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5: not ours to fix
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(model, lora_config(model, cfg.lora()))
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    if state:
        set_peft_model_state_dict(peft_model, load_file(str(ckpt / "adapter_model.safetensors")))
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=_device_of(peft_model)))
    head_dir.mkdir(parents=True, exist_ok=True)
    train_log = _read_log(head_dir / "train_log.csv", start_epoch)
    valid_log = _read_log(head_dir / "valid_generations.csv", start_epoch)

    steps_per_epoch = math.ceil(len(features) / cfg.batch_size)
    total_steps = steps_per_epoch * epochs
    step = start_epoch * steps_per_epoch
    device = _device_of(peft_model)
    with _progress(f"{head}", (epochs - start_epoch) * steps_per_epoch) as bar:
        for epoch in range(start_epoch, epochs):
            started = time.perf_counter()
            torch.manual_seed(cfg.seed * 1000 + epoch)  # dropout: same stream on resume
            peft_model.train()
            sums = {"loss": 0.0, "tokens": 0, "correct": 0, "grad_norm": 0.0}
            recent: list[float] = []
            for batch in batches(features, cfg.batch_size, cfg.grouping, seed=cfg.seed * 1000 + epoch):
                lr = cfg.lr * (1 - step / total_steps)  # linear decay to 0, no warm-up (Trainer default)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch = {k: v.to(device) for k, v in collate(batch, tokenizer.pad_token_id).items()}
                out = peft_model(**batch)
                out.loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm).item()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                n, correct = _token_accuracy(out.logits.detach(), batch["labels"])
                sums["loss"] += out.loss.item() * n
                sums["tokens"] += n
                sums["correct"] += correct
                sums["grad_norm"] += grad_norm
                step += 1
                recent = (recent + [out.loss.item()])[-max(1, cfg.log_every) :]
                bar(epoch=f"{epoch + 1}/{epochs}", loss=sum(recent) / len(recent))
            train_log.append(
                {
                    "epoch": epoch + 1,
                    "time": round(time.perf_counter() - started, 3),  # seconds this epoch took
                    "loss": round(sums["loss"] / sums["tokens"], 6),
                    "grad_norm": round(sums["grad_norm"] / steps_per_epoch, 6),  # mean before clipping
                    "learning_rate": lr,  # at the epoch's last step
                    "mean_token_accuracy": round(sums["correct"] / sums["tokens"], 6),
                }
            )
            if cfg.generate_valid and valid_inputs:
                prompts = valid_inputs[: cfg.max_valid_generations]
                answers = generate_answers(peft_model, tokenizer, prompts, head, seed=cfg.seed + epoch)
                valid_log += [{"epoch": epoch + 1, "input": p, "generated": a} for p, a in zip(prompts, answers)]
            _write_csv(head_dir / "train_log.csv", TRAIN_LOG_COLUMNS, train_log)
            _write_csv(head_dir / "valid_generations.csv", VALID_LOG_COLUMNS, valid_log)
            _save_checkpoint(peft_model, optimizer, ckpt, {"epoch": epoch + 1, "step": step, **_run_identity(cfg, head)})
            _publish(ckpt, head_dir)
    return peft_model.unload(), head_dir


# --- batching -------------------------------------------------------------------------------------
def batches(features: list[dict], batch_size: int, grouping: str, seed: int) -> list[list[dict]]:
    """One epoch's batches. `length` sorts within shuffled windows of 50 batches and
    shuffles the batches (HF's LengthGroupedSampler idea): similar lengths share a batch,
    so little padding, while the order stays random."""
    import torch

    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(features), generator=g).tolist()
    if grouping == "length":
        window = batch_size * 50
        order = [
            i
            for start in range(0, len(order), window)
            for i in sorted(order[start : start + window], key=lambda j: -len(features[j]["input_ids"]))
        ]
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if grouping == "length":
        chunks = [chunks[i] for i in torch.randperm(len(chunks), generator=g).tolist()]
    return [[features[i] for i in chunk] for chunk in chunks]


def collate(features: list[dict], pad_id: int) -> dict:
    """Right-pad a batch to its longest text; padding is masked out of attention and loss."""
    import torch

    width = max(len(f["input_ids"]) for f in features)

    def pad(key, value):
        return torch.tensor([f[key] + [value] * (width - len(f[key])) for f in features])

    return {"input_ids": pad("input_ids", pad_id), "attention_mask": pad("attention_mask", 0), "labels": pad("labels", IGNORE_INDEX)}


def _token_accuracy(logits, labels) -> tuple[int, int]:
    """(completion tokens, of which predicted right): trl's mean_token_accuracy, unreduced."""
    pred = logits[:, :-1].argmax(-1)
    target = labels[:, 1:]
    mask = target != IGNORE_INDEX
    return int(mask.sum()), int(((pred == target) & mask).sum())


# --- generation for the valid log and the benchmarks -----------------------------------------------
def generate_answers(model, tokenizer, inputs: list[str], head: str, *, seed: int | None = None, batch_size: int = 16) -> list[str]:
    """One sampled answer per input, unconstrained, with the head's SPEC §2 temperature and
    length cap; cut at `(답변 종료)`. (The chat engine has its own constrained decoding.)"""
    import torch

    gen = config.GENERATION[head]
    if seed is not None:
        torch.manual_seed(seed)
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    answers = []
    try:
        for start in range(0, len(inputs), batch_size):
            prompts = [formats.inference_prompt(t) for t in inputs[start : start + batch_size]]
            enc = tokenizer(prompts, return_tensors="pt", padding=True).to(_device_of(model))
            lengths = enc["attention_mask"].sum(1).tolist()
            caps = [gen.max_new_tokens - n if gen.cap_includes_prompt else gen.max_new_tokens for n in lengths]
            with torch.no_grad():
                out = model.generate(
                    **enc,
                    do_sample=True,
                    temperature=gen.temperature,
                    max_new_tokens=max(1, max(caps)),
                    stop_strings=[formats.ANSWER_END],
                    tokenizer=tokenizer,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = out[:, enc["input_ids"].shape[1] :]
            for ids, cap in zip(new.tolist(), caps):
                text = tokenizer.decode(ids[: max(cap, 0)], skip_special_tokens=False)
                answers.append(formats.parse_generated(text))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers


# --- checkpoints and logs ---------------------------------------------------------------------------
def _run_identity(cfg: FinetuneConfig, head: str) -> dict:
    """What must match for --resume to continue a checkpoint (the rest may change)."""
    return {"head": head, "base": cfg.base, "rank": cfg.rank, "alpha": cfg.alpha, "batch_size": cfg.batch_size}


def _check_compatible(state: dict, cfg: FinetuneConfig, head: str, ckpt: Path) -> None:
    want = _run_identity(cfg, head)
    diff = [f"{k} {state.get(k)!r} -> {v!r}" for k, v in want.items() if state.get(k) != v]
    if diff:
        raise OhloraError(f"cannot resume {ckpt}: it was trained with other settings ({'; '.join(diff)}); drop --resume or use another --out")


def _read_state(ckpt: Path) -> dict | None:
    path = ckpt / "trainer_state.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _save_checkpoint(peft_model, optimizer, ckpt: Path, state: dict) -> None:
    """Adapter + optimizer + state into a temp folder, then swapped in: a crash leaves
    either the previous checkpoint or this one, never a mix."""
    import torch

    tmp = ckpt.with_name(ckpt.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    peft_model.save_pretrained(tmp)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
    old = ckpt.with_name(ckpt.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if ckpt.exists():
        os.replace(ckpt, old)
    os.replace(tmp, ckpt)
    shutil.rmtree(old, ignore_errors=True)


def _publish(ckpt: Path, head_dir: Path) -> None:
    """Copy the checkpoint's adapter files into the head folder (what users load)."""
    for name in ("adapter_config.json", "adapter_model.safetensors", "README.md"):
        if (ckpt / name).exists():
            tmp = head_dir / f".{name}.tmp"
            shutil.copyfile(ckpt / name, tmp)
            os.replace(tmp, head_dir / name)


def _read_log(path: Path, upto_epoch: int) -> list[dict]:
    """Rows of an earlier run's log up to the epoch we resume after (later ones are redone)."""
    if upto_epoch == 0 or not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        return [r for r in csv.DictReader(f) if int(r["epoch"]) <= upto_epoch]


def _write_csv(path: Path, columns, rows: list[dict]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        # Every field quoted: a generated answer may hold a bare '\r' or other control
        # characters that minimal quoting (with a '\n' line end) would leave unquoted.
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """torch's intra-op CPU thread count set to `n` for a block (None: unchanged), then restored."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _device_of(model):
    return next(model.parameters()).device


class _progress:
    """A rich progress bar with epoch, loss and ETA; `bar(**fields)` advances one step."""

    def __init__(self, name: str, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        self._task = self._progress.add_task(name, total=total, epoch="-", loss=float("nan"))

    def __enter__(self):
        self._progress.start()
        return self

    def __exit__(self, *exc):
        self._progress.stop()

    def __call__(self, **fields):
        self._progress.update(self._task, advance=1, **fields)
