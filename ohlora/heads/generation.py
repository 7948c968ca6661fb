"""Generating several heads in ONE `generate` call: one row per head, each row with its
own LoRA adapter, cap, temperature and (for structured heads) constraint.

A batch of several heads gives each row its own adapter by ohlora.heads.row_lora (the
rows' adapters stacked once per call: three operators per LoRA layer and step), or by
peft's mixed batch (`generate(adapter_names=[...])`: a loop over the batch's adapters in
every layer; `mixed="peft"`, and the fallback for LoRA layers row_lora does not cover).
Both are one base matmul for the batch plus each row's low-rank update; the stacked way
is 1.5x cheaper per decode step on a GPU (benchmarks/results/engine_replay.md). Rows are
left-padded; each stops on `(답변 종료)`, EOS or its own token cap, so a short head does
not wait for a long one.

Candidate groups (early exit): rows of one head that carry an `accept` check are an
ordered group of samples of which the caller keeps the first accepted one. The batch
stops as soon as every row without a check has finished and every group is settled
(its first accepted row has finished, every row before it finished and was rejected;
or all its rows finished), so k candidates cost the steps of the one that is kept,
not of the longest. Rows still running then come back with `cut=True`.

    >>> from ohlora.heads.generation import HeadRequest, generate_heads, load_heads  # doctest: +SKIP
    >>> model, tok = load_heads("models/base", {h: f"models/adapters/{h}" for h in HEADS})  # doctest: +SKIP
    >>> reply, memory = generate_heads(model, tok, [                                # doctest: +SKIP
    ...     HeadRequest("output_message", "로라야 안녕!"),
    ...     HeadRequest("memory", "로라야 안녕!", constrained=True)])
    >>> memory.text                                                                  # doctest: +SKIP
    ''
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from ohlora import config, formats
from ohlora.errors import ModelLoadError
from ohlora.heads.constraints import CONSTRAINTS, ConstraintLogits

BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch


@dataclass
class HeadRequest:
    """One row of a batched generate: which adapter reads which input, and how it samples."""

    head: str  # adapter name (a SPEC §2 head)
    input_text: str  # what the head reads (formats.head_input), before `(답변 시작) ### 답변:`
    constrained: bool = False  # mask with the head's format (memory / eyes_mouth_pose only)
    max_new_tokens: int | None = None  # None: the head's SPEC §2 cap
    temperature: float | None = None  # None: the head's SPEC §2 temperature
    # The caller's check of the answer (`Generated.text`); rows of one head with a check
    # form an ordered candidate group that lets the batch stop early (module docstring).
    accept: Callable[[str], bool] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        gen = config.GENERATION[self.head] if self.head in config.GENERATION else None
        if self.max_new_tokens is None:
            self.max_new_tokens = gen.max_new_tokens if gen else 32
        if self.temperature is None:
            self.temperature = gen.temperature if gen else 1.0
        if self.constrained and self.head not in CONSTRAINTS:
            raise ValueError(f"head {self.head!r} has no format constraint; constrained heads: {', '.join(CONSTRAINTS)}")


@dataclass
class Generated:
    head: str
    text: str  # the answer (formats.parse_generated of the continuation)
    raw: str  # the whole continuation, decoded
    tokens: int  # new tokens this row produced (before padding)
    closed: bool  # the row wrote `(답변 종료)` (or EOS) before its cap
    prompt_tokens: int = 0
    meta: dict = field(default_factory=dict)
    cut: bool = False  # the batch stopped early (a candidate group was settled) while this row still ran
    steps: int = 0  # forward passes the whole batch ran (= new columns; the same for every row)


class RowTemperature(LogitsProcessor):
    """A temperature per row (the expression head samples at 1.5, the others at 0.6; SPEC §2)."""

    def __init__(self, temperatures: list[float]):
        self.t = torch.tensor(temperatures, dtype=torch.float32)

    def __call__(self, input_ids, scores):
        return scores / self.t.to(scores.device, scores.dtype)[:, None]


class RowStop(StoppingCriteria):
    """Row i is done once it wrote the end marker, EOS or `caps[i]` new tokens; done is sticky.

    `accepts[i]` (None: no check) and `heads[i]` define the candidate groups: when every
    row without a check is done and every group is settled, every row is reported done,
    which ends `generate` at once; `cut[i]` then marks the rows that had not finished.
    A row's check sees its text decoded exactly as `generate_heads` decodes it after
    generation (`_decode_row`), so the caller's own check agrees with the one made here.
    """

    def __init__(self, tokenizer, prompt_width: int, caps: list[int], marker: str = formats.ANSWER_END,
                 accepts: list[Callable[[str], bool] | None] | None = None, heads: list[str] | None = None):
        self.tokenizer, self.width, self.caps, self.marker = tokenizer, prompt_width, caps, marker
        self.window = len(marker.encode("utf-8")) + 2  # a marker spans at most this many tokens
        self.closers = _closing_tokens(tokenizer, marker[-1])
        self.eos = tokenizer.eos_token_id
        n = len(caps)
        self.accepts = list(accepts) if accepts is not None else [None] * n
        self.finished = [False] * n
        self.accepted: list[bool | None] = [None] * n
        self.cut = [False] * n
        self.groups: dict[str, list[int]] = {}
        for i, check in enumerate(self.accepts):
            if check is not None:
                self.groups.setdefault(heads[i] if heads else "", []).append(i)
        self.free = [i for i in range(n) if self.accepts[i] is None]

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        new = input_ids.shape[1] - self.width
        last = input_ids[:, -1].tolist()
        for i in range(input_ids.shape[0]):
            if self.finished[i]:
                continue
            if new >= self.caps[i] or last[i] == self.eos:
                done = True
            elif new > 0 and last[i] in self.closers:  # only a token holding ')' can finish the marker
                tail = input_ids[i, max(self.width, input_ids.shape[1] - self.window) :].tolist()
                done = self.marker in self.tokenizer.decode(tail, skip_special_tokens=True)
            else:
                done = False
            if done:
                self.finished[i] = True
                if self.accepts[i] is not None:
                    ids = input_ids[i, self.width : self.width + self.caps[i]].tolist()
                    self.accepted[i] = bool(self.accepts[i](_decode_row(self.tokenizer, ids)[0]))
        if self.groups and not all(self.finished) and self._settled():
            self.cut = [not f for f in self.finished]
            return torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        return torch.tensor(self.finished, dtype=torch.bool, device=input_ids.device)

    def _settled(self) -> bool:
        if not all(self.finished[i] for i in self.free):
            return False
        for rows in self.groups.values():
            for i in rows:  # in order: the first accepted row settles, if all before it were rejected
                if not self.finished[i]:
                    return False
                if self.accepted[i]:
                    break
        return True  # (a group whose rows all finished rejected is settled too)


def _decode_row(tokenizer, ids: list[int]) -> tuple[str, str, list[int]]:
    """(answer, raw continuation, ids up to and with EOS) of one row's new tokens."""
    eos = tokenizer.eos_token_id
    if eos in ids:
        ids = ids[: ids.index(eos) + 1]
    raw = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return formats.parse_generated(raw), raw, ids


def _closing_tokens(tokenizer, char: str) -> frozenset[int]:
    """Ids of the tokens whose text holds `char` (computed once per tokenizer)."""
    from ohlora.heads.constraints import _cached, token_bytes

    def build() -> frozenset[int]:
        enc = char.encode("utf-8")
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        return frozenset(
            i for i, (b, p) in enumerate(zip(token_bytes(tokenizer), pieces))
            if (b is not None and enc in b) or (b is None and p and char in p)
        )

    return _cached(tokenizer, f"closers:{char}", build)


def generate_heads(
    model,
    tokenizer,
    requests: list[HeadRequest],
    *,
    do_sample: bool = True,
    top_k: int = 50,
    mixed: str = config.MIXED_ADAPTERS[0],
) -> list[Generated]:
    """Run all `requests` as one left-padded batch; row i uses adapter `requests[i].head`.

    `model` is a peft model holding the heads' adapters (or a plain model, then every
    row reads the base). Structured rows (`constrained=True`) cannot write a malformed
    answer; their cap is raised to the shortest valid answer's length if it is lower.
    `mixed` says how a batch of several adapters applies them: "stacked"
    (ohlora.heads.row_lora: fixed operators per layer; 0.41x the reference's turn on an
    H200 vs 0.64x with peft's, benchmarks/results/engine_replay.md) or "peft" (its
    `adapter_names` mixed batch; also what "stacked" falls back to for LoRA variants it
    does not reproduce).

    Not re-entrant: a mixed batch registers forward hooks (row_lora's or peft's) on the shared layers and a
    single-adapter batch calls `set_adapter`, so callers sharing a model serialise
    calls (the Engine holds a lock around each).
    """
    prompts = [formats.inference_prompt(r.input_text) for r in requests]
    enc = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    device = next(model.parameters()).device
    enc = {k: v.to(device) for k, v in enc.items()}
    width = enc["input_ids"].shape[1]
    prompt_tokens = enc["attention_mask"].sum(dim=1).tolist()

    cursors, caps = [], []
    for r in requests:
        cap = int(r.max_new_tokens)
        if r.constrained:
            spec = CONSTRAINTS[r.head](tokenizer)
            cap = max(cap, spec.shortest if r.head == "memory" else spec.longest)
            cursors.append(spec.start(cap))
        else:
            cursors.append(None)
        caps.append(cap)

    processors = LogitsProcessorList()
    if any(c is not None for c in cursors):
        processors.append(ConstraintLogits(cursors, width))
    kwargs = {}
    if do_sample:
        temps = [float(r.temperature) for r in requests]
        if len(set(temps)) == 1:
            kwargs["temperature"] = temps[0]
        else:
            processors.append(RowTemperature(temps))
            kwargs["temperature"] = 1.0
        kwargs["top_k"] = top_k
        kwargs["top_p"] = 1.0
    adapter_ctx = contextlib.nullcontext()
    if _is_peft(model):
        names = [r.head if r.head in model.peft_config else BASE_ADAPTER for r in requests]
        if len(set(names)) > 1:
            adapter_ctx = _row_adapters(model, names, mixed)
            if adapter_ctx is None:
                adapter_ctx = contextlib.nullcontext()
                kwargs["adapter_names"] = names  # peft's mixed batch: each row its own adapter
        elif names[0] == BASE_ADAPTER:
            adapter_ctx = model.disable_adapter()
        else:
            # One adapter for the whole batch: the plain LoRA forward is cheaper than
            # peft's mixed-batch path (no per-layer sub-batch gather/scatter).
            model.set_adapter(names[0])
    stop = RowStop(tokenizer, width, caps, accepts=[r.accept for r in requests], heads=[r.head for r in requests])
    with torch.inference_mode(), adapter_ctx:
        out = model.generate(
            **enc,
            do_sample=do_sample,
            max_new_tokens=max(caps),
            logits_processor=processors,
            stopping_criteria=StoppingCriteriaList([stop]),
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **kwargs,
        )
    steps = out.shape[1] - width  # one forward pass per new column, the prefill included
    results = []
    for i, r in enumerate(requests):
        text, raw, ids = _decode_row(tokenizer, out[i, width : width + caps[i]].tolist())
        closed = formats.ANSWER_END in raw or (bool(ids) and ids[-1] == tokenizer.eos_token_id)
        results.append(
            Generated(
                head=r.head,
                text=text,
                raw=raw,
                tokens=len(ids),
                closed=closed and not stop.cut[i],
                prompt_tokens=int(prompt_tokens[i]),
                cut=stop.cut[i],
                steps=steps,
            )
        )
    return results


def _row_adapters(model, names: list[str], mixed: str):
    """The stacked per-row adapters' context, or None where peft's mixed batch must run."""
    from ohlora.heads.row_lora import Unsupported, row_adapters

    if mixed not in config.MIXED_ADAPTERS:
        raise ValueError(f"mixed={mixed!r}: one of {', '.join(config.MIXED_ADAPTERS)}")
    if mixed == "peft":
        return None
    try:
        return row_adapters(model, names)
    except Unsupported:
        return None


def _is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


# --- loading one base with the four adapters --------------------------------------------------------
def _check_adapter(head: str, path: Path) -> None:
    where = f"adapter '{head}' at {path}"
    if not path.is_dir():
        raise ModelLoadError(f"{where} is missing; train it (`ohlora finetune`) or pass a folder holding adapters/{head}/ with --models")
    cfg = path / "adapter_config.json"
    if not cfg.exists():
        raise ModelLoadError(f"{where} has no adapter_config.json; pass a folder holding a peft adapter with --models")
    try:
        json.loads(cfg.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{where} is corrupt (adapter_config.json: {e}); re-train it or fix --models") from None
    if not any((path / f).exists() for f in ("adapter_model.safetensors", "adapter_model.bin")):
        raise ModelLoadError(f"{where} has no adapter_model.safetensors; re-train it or fix --models")


def load_heads(base: str, adapters: dict[str, str | Path], flag: str = "--models", dtype=None, device: str | None = None):
    """(peft model with one adapter per head, tokenizer): ONE base, the heads as adapters.

    A missing or unreadable adapter is one ModelLoadError line naming the head and path.
    """
    from peft import PeftModel

    from ohlora.models import load_causal_lm

    for head, path in adapters.items():
        _check_adapter(head, Path(path))
    model, tokenizer = load_causal_lm(base, flag=flag, dtype=dtype, device=device)
    peft_model = None
    for head, path in adapters.items():
        try:
            if peft_model is None:
                peft_model = PeftModel.from_pretrained(model, str(path), adapter_name=head)
            else:
                peft_model.load_adapter(str(path), adapter_name=head)
        except Exception as e:
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise ModelLoadError(f"adapter '{head}' at {path} cannot be loaded ({reason}); re-train it or fix {flag}") from e
    peft_model.eval()
    tokenizer.padding_side = "left"
    return peft_model, tokenizer
