"""`Lines`: training data for the memory encoder as distinct lines, not n² pair rows.

A SPEC §4 pair CSV of n combination lines has n² rows, and every row is a pair of two
lines: (memory_0, user_prompt_0) and (memory_1, user_prompt_1), scored by their keys.
The lines view (`train.TrainArgs.views="lines"`) and the fitted `topic` encoder only
need the lines and a score for any ordered pair of them. `Lines` is that, built either

- from pair rows (`from_rows`: each ordered line pair's mean score in the rows), or
- from combination files and key-pair scores (`from_combinations`: a score per distinct
  key pair — from a pair CSV's `score_table` and/or a teacher, as `make_pairs` labels
  rows — so nothing n² is ever built: `ohlora memory train --combs`).

For our 2,060 lines the rows are 4.2 M Python objects (~2 GB) before training starts;
the lines are 2,060 and a 40 × 40 key table.

    >>> from ohlora.memory.lines import Lines
    >>> lines = Lines.from_combinations(read_combinations("train_combs.txt"), table=score_table("pairs.csv"))  # doctest: +SKIP
    >>> lines.label(0, 1)                                                                                     # doctest: +SKIP
    0.7412
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ohlora.errors import OhloraError


@dataclass
class Lines:
    """Distinct (memory, prompt) lines and the score of ordered pairs of them.

    Scores come from `key_scores` over `keys` (one key per line: the pair key SPEC §4
    compares) or, for lines read from pair rows, from `line_scores` over line indices.
    A line with itself is 1.0 (its memory and prompt share the key); an unknown pair is
    None and is not trained on."""

    lines: list[tuple[str, str]]
    keys: list[str] | None = None
    key_scores: dict[tuple[str, str], float] = field(default_factory=dict)
    line_scores: dict[tuple[int, int], float] = field(default_factory=dict)
    # How much each line's prompt counts in the topic encoder's key classifier (None: 1 each).
    # Lines in the style of the texts to be read (the user's own, the reference's) can count more
    # than many generic prompts: benchmarks/memory_topic_cv.py, docs/memory_experiments.md.
    weights: list[float] | None = None

    def __post_init__(self) -> None:
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=np.float64)
            if w.shape != (len(self.lines),) or not (np.isfinite(w) & (w > 0)).all():
                raise OhloraError(f"line weights must be {len(self.lines)} positive numbers, one per line")

    def __len__(self) -> int:
        return len(self.lines)

    @classmethod
    def from_rows(cls, rows: list) -> Lines:
        """From pair rows with SPEC §4's five columns (line 0 = memory_0 + user_prompt_0,
        line 1 = memory_1 + user_prompt_1): each ordered line pair's mean score."""
        index: dict[tuple[str, str], int] = {}
        acc: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0])
        for r in rows:
            i = index.setdefault((r.memory, r.prompt_0), len(index))
            j = index.setdefault((r.memory_1, r.prompt), len(index))
            a = acc[i, j]
            a[0] += r.score
            a[1] += 1
        return cls(list(index), line_scores={k: s / n for k, (s, n) in acc.items()})

    @classmethod
    def from_combinations(cls, combos: list, teacher=None, table: dict[tuple[str, str], float] | None = None,
                          weights: list[float] | None = None) -> Lines:
        """From parsed combination lines (`pairs.read_combinations`). Key pairs found in
        `table` (`pairs.score_table` of a pair CSV) take its score, the teacher scores
        the rest once per distinct key pair, and without a teacher pairs of unknown keys
        stay unknown: `pairs.key_pair_scores`, the labels `pairs.make_pairs` writes.
        `weights`: one per combination (a line given twice keeps the larger)."""
        from ohlora.memory.pairs import key_pair_scores

        if weights is not None and len(weights) != len(combos):
            raise OhloraError(f"{len(weights)} weights for {len(combos)} combination lines")
        lines = list(dict.fromkeys((c.item.text, c.prompt) for c in combos))  # a repeated line counts once
        key_of = {(c.item.text, c.prompt): c.pair_key for c in combos}
        keys = [key_of[line] for line in lines]
        weight_of: dict[tuple[str, str], float] | None = None
        if weights is not None:
            weight_of = {}
            for c, w in zip(combos, weights):
                line = (c.item.text, c.prompt)
                weight_of[line] = max(float(w), weight_of.get(line, float(w)))
        return cls(lines, keys=keys, key_scores=key_pair_scores(keys, teacher, table),
                   weights=[weight_of[line] for line in lines] if weight_of is not None else None)

    def label(self, i: int, j: int) -> float | None:
        if i == j:
            return 1.0
        if self.keys is not None:
            a, b = self.keys[i], self.keys[j]
            if a == b:
                return 1.0
            s = self.key_scores.get((a, b))
            return s if s is not None else self.key_scores.get((b, a))
        s = self.line_scores.get((i, j))
        return s if s is not None else self.line_scores.get((j, i))

    def matrix(self) -> np.ndarray:
        """(n, n) float32 of `label(i, j)`, NaN where unknown."""
        n = len(self.lines)
        if self.keys is not None:
            distinct = list(dict.fromkeys(self.keys))
            at = {k: i for i, k in enumerate(distinct)}
            table = np.full((len(distinct), len(distinct)), np.nan, dtype=np.float32)
            for (a, b), s in self.key_scores.items():
                if a in at and b in at:
                    table[at[a], at[b]] = s
                    if np.isnan(table[at[b], at[a]]):
                        table[at[b], at[a]] = s
            np.fill_diagonal(table, 1.0)
            idx = np.array([at[k] for k in self.keys], dtype=np.int64)
            out = table[idx][:, idx]
        else:
            out = np.full((n, n), np.nan, dtype=np.float32)
            if self.line_scores:
                ij = np.array(list(self.line_scores), dtype=np.int64)
                out[ij[:, 0], ij[:, 1]] = np.fromiter(self.line_scores.values(), dtype=np.float32, count=len(self.line_scores))
            out = np.where(np.isnan(out), out.T, out)  # a score belongs to both orders
        np.fill_diagonal(out, 1.0)
        return out

    def subset(self, ids: list[int]) -> Lines:
        ids = list(ids)
        weights = [self.weights[i] for i in ids] if self.weights is not None else None
        if self.keys is not None:
            return Lines([self.lines[i] for i in ids], keys=[self.keys[i] for i in ids], key_scores=self.key_scores, weights=weights)
        at = {old: new for new, old in enumerate(ids)}
        scores = {(at[i], at[j]): s for (i, j), s in self.line_scores.items() if i in at and j in at}
        return Lines([self.lines[i] for i in ids], line_scores=scores, weights=weights)

    def split(self, valid_ratio: float, seed: int) -> tuple[Lines, list]:
        """Hold out whole lines for validation: (training lines, validation pair rows
        between the held-out lines — memory of one, prompt of another, the line itself
        included). Stricter than a row split, where every held-out row's lines were seen."""
        from ohlora.memory.pairs import Pair

        n = len(self.lines)
        order = list(range(n))
        random.Random(seed).shuffle(order)
        n_valid = min(int(round(n * valid_ratio)), n - 2) if valid_ratio > 0 else 0
        if n_valid < 2:
            return self, []
        held, kept = sorted(order[:n_valid]), sorted(order[n_valid:])
        valid = [
            Pair(self.lines[i][0], self.lines[j][1], lab, 0, self.lines[i][1], self.lines[j][0])
            for i in held
            for j in held
            if (lab := self.label(i, j)) is not None
        ]
        return self.subset(kept), valid
