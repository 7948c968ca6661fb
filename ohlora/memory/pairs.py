"""Pair data for the memory encoder from a combinations file (SPEC §4 'Pair data').

A combinations file has one `[key: value] user prompt` per line; n lines give n×n
rows `memory_0, user_prompt_0, memory_1, user_prompt_1, similarity_score`. The score
compares the two *keys*: equal keys 1.0, else the teacher's cosine x of the two key
strings, rescaled x <- max(2.6x - 1.6, 0) and rounded to 4 decimals. Key 좋아하는 아이돌
is read as 좋아하는 가수, and a key 상태 is replaced by its value.

The reference ran the teacher on every row (n² pairs of key strings); the rows only
hold k distinct keys, so we encode each distinct key once and take the k×k cosine
matrix — for the reference's 80 lines that is ~60 encodings instead of 12,800.

A score depends on the two keys only, so an existing pair CSV is also a table of
key-pair scores: `score_table` reads one, and `make_pairs(..., table=...)` labels new
lines with it (no teacher needed for keys the table knows) — how new prompts for the
reference's keys get the reference teacher's labels without loading klue/roberta-base.

    >>> from ohlora.memory.pairs import rescale
    >>> rescale(0.9), rescale(0.5), rescale(1.0)
    (0.74, 0.0, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ohlora import config
from ohlora.errors import DataError
from ohlora.formats import CombinationLineError, MemoryItem, normalize, parse_combination_line, parse_memory
from ohlora.files import atomic_write_csv, read_csv, read_lines

PAIR_COLUMNS = ("memory_0", "user_prompt_0", "memory_1", "user_prompt_1", "similarity_score")  # SPEC §4
TRAIN_COLUMNS = ("memory_0", "user_prompt_1", "similarity_score")  # what training and eval read


@dataclass(frozen=True)
class Combination:
    item: MemoryItem  # key alias already applied
    prompt: str
    line: int

    @property
    def pair_key(self) -> str:
        """The string compared between two lines: the key, or the value for 상태 (SPEC §4)."""
        return self.item.canonical_key()


@dataclass(frozen=True)
class Pair:
    memory: str  # memory_0
    prompt: str  # user_prompt_1
    score: float  # similarity_score
    line: int = 0
    # The other halves of the two combination lines, when the CSV has them (SPEC §4's
    # five columns): the score belongs to the two lines' keys, so training may also
    # pair prompt_0 with memory_1 (train.TrainArgs.views).
    prompt_0: str = ""  # user_prompt_0
    memory_1: str = ""  # memory_1


def read_combinations(path: str | Path) -> list[Combination]:
    """Parse a combinations file; blank lines are skipped. DataError names file and line."""
    combos = []
    for n, line in enumerate(read_lines(path), start=1):
        if not normalize(line):
            continue
        try:
            item, prompt = parse_combination_line(line)
        except CombinationLineError as e:
            raise DataError(path, n, str(e)) from None
        combos.append(Combination(item, prompt, n))
    if not combos:
        raise DataError(path, None, "no combination lines; expected '[key: value] prompt' on each line")
    return combos


def rescale(x: float) -> float:
    """SPEC §4: x <- max(2.6x - 1.6, 0), rounded to 4 decimals."""
    return round(max(config.PAIR_SCALE * float(x) - config.PAIR_SHIFT, 0.0), config.PAIR_DECIMALS)


def key_cosines(keys: list[str], teacher) -> np.ndarray:
    """Cosine matrix of distinct key strings under the teacher, one encoder pass."""
    vecs = np.asarray(teacher.encode(keys, convert_to_numpy=True, show_progress_bar=False), dtype=np.float64)
    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    return vecs @ vecs.T


def score_matrix(keys: list[str], teacher) -> dict[tuple[str, str], float]:
    """Rescaled score for every ordered pair of the given keys (equal keys 1.0)."""
    distinct = list(dict.fromkeys(keys))
    cos = key_cosines(distinct, teacher) if len(distinct) > 1 else np.ones((1, 1))
    scores = {}
    for i, a in enumerate(distinct):
        for j, b in enumerate(distinct):
            scores[a, b] = 1.0 if a == b else rescale(cos[i, j])
    return scores


def key_pair_scores(keys: list[str], teacher, table: dict[tuple[str, str], float] | None = None) -> dict[tuple[str, str], float]:
    """The score of every pair of `keys` that can be scored: a key pair found in `table`
    (see `score_table`, either order) takes its score; the teacher scores the rest, once
    per distinct key pair; with `teacher=None` they stay unscored. Both orders of each
    scored pair are in the result; equal keys are 1.0."""
    distinct = list(dict.fromkeys(keys))
    table = dict(table or {})
    out = {}
    for a in distinct:
        for b in distinct:
            s = 1.0 if a == b else table.get((a, b), table.get((b, a)))
            if s is not None:
                out[a, b] = s
    unknown = [k for k in distinct if any((k, o) not in out for o in distinct)]
    if teacher is not None and unknown:
        for kk, s in score_matrix(unknown, teacher).items():
            out.setdefault(kk, s)  # the table wins where it has either order
    return out


def make_pairs(combos: list[Combination], teacher, table: dict[tuple[str, str], float] | None = None) -> list[tuple[str, str, str, str, float]]:
    """All n×n rows in the reference order (outer loop memory_0, inner memory_1).

    Labels from `key_pair_scores`: the table first, then the teacher; with `teacher=None`,
    rows of key pairs the table lacks are left out (equal keys are always 1.0)."""
    scores = key_pair_scores([c.pair_key for c in combos], teacher, table)
    rows = []
    for a in combos:
        for b in combos:
            s = scores.get((a.pair_key, b.pair_key))
            if s is not None:
                rows.append((a.item.text, a.prompt, b.item.text, b.prompt, s))
    return rows


def score_table(path: str | Path) -> dict[tuple[str, str], float]:
    """Key-pair scores of a SPEC §4 pair CSV: {(key_0, key_1): similarity_score}, keys as
    compared (alias applied, 상태 -> value). A key pair scored two ways is a DataError
    naming the line (the score must be a function of the keys)."""
    table: dict[tuple[str, str], float] = {}
    seen_at: dict[tuple[str, str], int] = {}
    for n, row in read_csv(path, PAIR_COLUMNS):
        keys = []
        for col in ("memory_0", "memory_1"):
            item = parse_memory(row[col])
            if item is None:
                raise DataError(path, n, f"{col} {row[col]!r} is not one '[key: value]'")
            keys.append(item.canonical_key())
        try:
            score = float(row["similarity_score"])
        except ValueError:
            raise DataError(path, n, f"similarity_score {row['similarity_score']!r} is not a number") from None
        k = (keys[0], keys[1])
        if k in table and abs(table[k] - score) > 10 ** -config.PAIR_DECIMALS:
            raise DataError(path, n, f"keys {k[0]!r} / {k[1]!r} scored {score} here but {table[k]} at line {seen_at[k]}")
        table.setdefault(k, score)
        seen_at.setdefault(k, n)
    return table


def write_pairs(rows, path: str | Path) -> None:
    atomic_write_csv(path, PAIR_COLUMNS, rows)


def read_pairs(path: str | Path) -> list[Pair]:
    """Training/eval view of a pairs CSV: (memory_0, user_prompt_1, similarity_score),
    plus user_prompt_0 / memory_1 when the CSV has them."""
    pairs = []
    for n, row in read_csv(path, TRAIN_COLUMNS):
        memory, prompt, raw = (normalize(row[c]) for c in TRAIN_COLUMNS)
        if not memory or not prompt:
            raise DataError(path, n, "empty memory_0 or user_prompt_1")
        try:
            score = float(raw)
        except ValueError:
            raise DataError(path, n, f"similarity_score {raw!r} is not a number") from None
        if not np.isfinite(score):
            raise DataError(path, n, f"similarity_score {raw!r} is not finite")
        pairs.append(Pair(memory, prompt, score, n, normalize(row.get("user_prompt_0", "")), normalize(row.get("memory_1", ""))))
    return pairs
