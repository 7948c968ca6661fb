"""`ohlora data stats`: what each head would learn from a persona dataset.

Counts per head (rows that give that head a training target), the shape of input_data
(plain / memory-prefixed / multi-turn), the expression label distributions, and length
percentiles in characters (and tokens, given a tokenizer) — the figures that decide
whether a dataset meets the issue's ratios and what `max_length` training needs.

    >>> from ohlora.data.persona import Row
    >>> from ohlora.data.stats import dataset_stats
    >>> rows = [Row("train", "로라야 안녕", "안녕! ㅎㅎ", "", "인사함", "(눈 보통, 입 크게, 고개 돌림 없음)",
    ...             "보통", "크게", "없음", line=2)]
    >>> dataset_stats(rows)["heads"]["memory_empty"]["train"]
    1
"""

from __future__ import annotations

import math
from collections import Counter

from ohlora import config, formats
from ohlora.data.check import LABELS
from ohlora.data.persona import DATA_TYPES, Row

KINDS: tuple[str, ...] = ("plain", "memory", "multi_turn")
LENGTH_COLUMNS: tuple[str, ...] = ("input_data", "output_message", "memory", "summary", "eyes_mouth_pose")
PERCENTILES: tuple[int, ...] = (50, 90)


def percentile(values: list[int], p: float) -> int | None:
    """Nearest-rank percentile (the smallest value with at least p% of values <= it)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)), 1) - 1]


def _lengths(values: list[int]) -> dict[str, int | None]:
    out: dict[str, int | None] = {"n": len(values)}
    for p in PERCENTILES:
        out[f"p{p}"] = percentile(values, p)
    out["max"] = max(values) if values else None
    return out


def _per_split(predicate, rows: list[Row]) -> dict[str, int]:
    counts = {t: sum(1 for r in rows if r.data_type == t and predicate(r)) for t in DATA_TYPES}
    counts["total"] = counts["train"] + counts["valid"]
    return counts


def dataset_stats(rows: list[Row], tokenizer=None) -> dict:
    """Plain-dict statistics (JSON-ready); token lengths only if `tokenizer` is given.

    A row counts for the memory head when it has a reply (every train row, and valid
    rows written in full): its memory column is then a target, empty meaning
    'nothing to remember'. Valid rows holding only input_data count for no head.
    """
    labelled = lambda r: bool(r.output_message.strip())  # noqa: E731
    heads = {
        "output_message": _per_split(labelled, rows),
        "memory": _per_split(lambda r: labelled(r) and bool(r.memory.strip()), rows),
        "memory_empty": _per_split(lambda r: labelled(r) and not r.memory.strip(), rows),
        "summary": _per_split(lambda r: bool(r.summary.strip()), rows),
        "eyes_mouth_pose": _per_split(lambda r: bool(r.eyes_mouth_pose.strip()), rows),
    }
    n = _per_split(lambda r: True, rows)
    kinds = {kind: _per_split(lambda r, k=kind: r.kind == k, rows) for kind in KINDS}
    share = {
        kind: {t: round(kinds[kind][t] / n[t], 4) if n[t] else 0.0 for t in (*DATA_TYPES, "total")} for kind in KINDS
    }
    memory_output_share = {
        t: round(heads["memory"][t] / n[t], 4) if n[t] else 0.0 for t in (*DATA_TYPES, "total")
    }

    labels: dict[str, dict[str, dict[str, int]]] = {}
    for column, names in LABELS.items():
        labels[column] = {name: _per_split(lambda r, c=column, v=name: getattr(r, c) == v, rows) for name in names}

    keys = Counter()
    for r in rows:
        item = formats.parse_memory(r.memory) if r.memory.strip() else None
        if item is not None:
            keys[config.KEY_ALIASES.get(item.key, item.key)] += 1

    chars = {c: _lengths([len(getattr(r, c)) for r in rows if getattr(r, c).strip()]) for c in LENGTH_COLUMNS}
    stats = {
        "rows": n,
        "heads": heads,
        "input_kinds": kinds,
        "input_kind_share": share,
        "memory_output_share": memory_output_share,
        "labels": labels,
        "memory_keys": dict(keys.most_common()),
        "lengths_chars": chars,
    }
    if tokenizer is not None:
        count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
        tokens = {c: _lengths([count(getattr(r, c)) for r in rows if getattr(r, c).strip()]) for c in LENGTH_COLUMNS}
        # The full SPEC §2 training text of each head: what training's max_length must hold.
        for head in config.HEADS:
            texts = [formats.training_text(r.head_input(head), r.target(head)) for r in rows if labelled(r)]
            tokens[f"train_text:{head}"] = _lengths([count(t) for t in texts])
        stats["lengths_tokens"] = tokens
    return stats


def render(stats: dict, path: str, console=None) -> None:
    """Print the statistics as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    n = stats["rows"]
    console.print(f"[bold]{path}[/bold]: {n['train']} train, {n['valid']} valid rows", soft_wrap=True)

    heads = Table(title="training targets per head")
    for col in ("head", "train", "valid", "total"):
        heads.add_column(col, justify="left" if col == "head" else "right")
    names = {"memory": "memory (non-empty)", "memory_empty": "memory (empty)"}
    for head, counts in stats["heads"].items():
        heads.add_row(names.get(head, head), *(str(counts[t]) for t in ("train", "valid", "total")))
    share = stats["memory_output_share"]
    heads.caption = f"train rows with a memory output: {share['train']:.1%}"
    console.print(heads)

    kinds = Table(title="input_data shape")
    for col in ("kind", "train", "valid", "share (all)"):
        kinds.add_column(col, justify="left" if col == "kind" else "right")
    for kind in KINDS:
        c = stats["input_kinds"][kind]
        kinds.add_row(kind, str(c["train"]), str(c["valid"]), f"{stats['input_kind_share'][kind]['total']:.1%}")
    console.print(kinds)

    labels = Table(title="expression labels (train / valid)")
    labels.add_column("column")
    labels.add_column("label")
    labels.add_column("train", justify="right")
    labels.add_column("valid", justify="right")
    for column, by_label in stats["labels"].items():
        for label, c in by_label.items():
            labels.add_row(column, label, str(c["train"]), str(c["valid"]))
    console.print(labels)

    for unit in ("chars", "tokens"):
        data = stats.get(f"lengths_{unit}")
        if not data:
            continue
        table = Table(title=f"lengths in {unit} (non-empty values, all rows)")
        table.add_column("column")
        for col in ("n", *(f"p{p}" for p in PERCENTILES), "max"):
            table.add_column(col, justify="right")
        for column, v in data.items():
            table.add_row(column, *("-" if v[k] is None else str(v[k]) for k in ("n", *(f"p{p}" for p in PERCENTILES), "max")))
        console.print(table)

    if stats["memory_keys"]:
        top = list(stats["memory_keys"].items())[:15]
        console.print("memory keys: " + ", ".join(f"{k} {v}" for k, v in top), soft_wrap=True)
