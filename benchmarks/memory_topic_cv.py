"""Choosing the `topic` encoder's settings without the test pairs: two cross-validations.

- **Line CV** (as memory_topic.py): 5 folds of 16 held-out reference *train* lines, for each
  `--shuffles` fold order; per fold the mean corr of held×held and all×held pairs. Every
  held-out line's key stays in training through the other lines and our prompts, so this
  measures reading new prompts of *known* keys. `--folds memory` holds out whole *memory groups*
  instead (5 folds of the 60 distinct memories, every line of a memory together): the 80 lines
  have only 60 memories, and a held-out line with a same-memory sibling left in training is
  read by its sibling's conventions, which a test line need not share (session 10: the reference
  lines weighted 16 gained 0.022 on line folds, 0.0035 on memory folds, and nothing on the test).
- **Key CV**: the reference train keys with ≤ 3 lines there (the 상태 values and the rare keys:
  the kind the test pairs bring new, 마우스 소개 or 먹고 싶은 빵) in 7 groups; a fold removes
  every line of its group's keys — the reference's and ours — fits on the rest, and scores the
  held prompts against all train memories and the held memories against all train prompts.
  This measures what a key the encoder never saw looks like to it.

The line CV alone rewards memorising the known keys' wording; the key CV alone punishes it.
The test pairs have both parts: 72 % of their pairs are between keys the train pairs have,
28 % involve one of their six new keys (counted from the test pairs' keys, not their scores),
so `weighted` = 0.72 · line + 0.28 · key is the figure each setting is compared on.

    .venv/bin/python benchmarks/memory_topic_cv.py --settings 0:10:0:1 0.6:10:0:2:0:4   # α:C:key match:runs[:word drop[:ref weight[:new keys[:temperature[:prior shift]]]]], ~12-20 min each

Results: benchmarks/results/memory_topic_cv.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _memory_common import RESULTS, SEEN_SHARE, fold_sets, key_fold, key_groups, load_reference, metrics, write_results  # noqa: E402
import memory_topic  # noqa: E402  (apply_setting sets its REF_WEIGHT)
from memory_topic import EXTRA, fit_topic, reference_data  # noqa: E402


def apply_setting(setting: str) -> dict:
    """Set `α:C:m:r[:d[:w[:n[:t[:u]]]]]` as ohlora/memory/topic_encoder.py's SOFT_TARGETS, C, KEY_MATCH,
    MORPH_NGRAMS, WORD_DROP, NEW_KEYS (n: 1 on, 0 off), TEMPERATURE_SCALE and PRIOR_SHIFT, and
    memory_topic.REF_WEIGHT (what the next fit uses; d absent = 0, w absent = 1, n absent = 0,
    t absent = 1 and u absent = 0, as every setting before they existed); returns the nine values
    by their results-file names."""
    import ohlora.memory.topic_encoder as te

    parts = setting.split(":")
    parts += ["0", "1", "0", "1", "0"][len(parts) - 4 :]  # the defaults of the fields a short setting leaves out
    alpha, c, match, runs, drop, weight, new, temp, prior = (float(x) for x in parts[:9])
    te.SOFT_TARGETS, te.C, te.KEY_MATCH, te.MORPH_NGRAMS, te.WORD_DROP, te.NEW_KEYS = alpha, c, match, int(runs), int(drop), bool(new)
    te.TEMPERATURE_SCALE, te.PRIOR_SHIFT = temp, prior
    memory_topic.REF_WEIGHT = weight
    return {"alpha": alpha, "C": c, "key_match": match, "morph_ngrams": int(runs), "word_drop": int(drop), "ref_weight": weight,
            "new_keys": int(new), "temperature_scale": temp, "prior_shift": prior}


def corr(model, pairs) -> float:
    from ohlora.memory.train import pair_cosines

    return metrics(pair_cosines(model, pairs), [p.score for p in pairs])["corr"]


def line_cv(lines, extra, table, scores, shuffle: int, folds: str = "lines") -> list[float]:
    """5 folds of held-out reference train lines (`folds` "lines": 16 lines a fold; "memory":
    the lines of a fifth of the distinct memories); per fold the mean of held×held and all×held corr."""
    out = []
    if folds == "memory":
        memories = list(dict.fromkeys(m for m, _ in lines))
        random.Random(shuffle).shuffle(memories)
        groups = [set(memories[f::5]) for f in range(5)]
        cuts = [[i for i, (m, _) in enumerate(lines) if m in group] for group in groups]
    else:
        order = list(range(len(lines)))
        random.Random(shuffle).shuffle(order)
        cuts = [order[f * 16 : (f + 1) * 16] for f in range(5)]
    for cut in cuts:
        train_lines, _held, sets = fold_sets(lines, scores, cut, 0, size=len(cut))
        model = fit_topic(reference_data(train_lines, extra, table))
        out.append((corr(model, sets["held×held"]) + corr(model, sets["all×held"])) / 2)
    return out


def key_cv(lines, extra, table, scores) -> list[dict]:
    out = []
    for keys in key_groups(lines):
        train_lines, train_extra, sets = key_fold(lines, extra, scores, keys)
        model = fit_topic(reference_data(train_lines, train_extra, table))
        out.append({"keys": keys, "prompts": corr(model, sets["prompts"]), "memories": corr(model, sets["memories"])})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", nargs="+", default=["0:10:0:1", "0.6:10:0:1", "0.6:30:0:1", "0.6:10:1:1", "0.6:10:3:1", "0.6:10:0.3:1", "0.6:10:0:2"],
                    help="α:C:m:r[:d[:w[:n[:t[:u]]]]] (SOFT_TARGETS:C:KEY_MATCH:MORPH_NGRAMS[:WORD_DROP] of ohlora/memory/topic_encoder.py, "
                    "[:REF_WEIGHT] of memory_topic.py: the reference lines' weight, [:NEW_KEYS] 1 or 0, [:TEMPERATURE_SCALE], [:PRIOR_SHIFT]; "
                    "d absent = 0, w absent = 1, n absent = 0, t absent = 1, u absent = 0)")
    ap.add_argument("--shuffles", type=int, nargs="+", default=[0, 1], help="line-CV fold orders")
    ap.add_argument("--folds", choices=("lines", "memory"), default="lines",
                    help="line-CV folds: 16 lines each, or whole memory groups (results in memory_topic_cv_memory_folds.*)")
    ap.add_argument("--append", action="store_true", help="keep the settings already in the results file (the fits are deterministic: a rerun gives the same figures)")
    a = ap.parse_args()
    import numpy as np
    import torch

    torch.set_num_threads(1)
    table, extra, lines, scores = load_reference(EXTRA)
    res: dict = {"load_avg_at_start": os.getloadavg(), "extra_files": EXTRA, "seen_share": SEEN_SHARE, "settings": {}}
    name = "memory_topic_cv" if a.folds == "lines" else "memory_topic_cv_memory_folds"
    res["folds"] = a.folds
    saved = RESULTS / f"{name}.json"
    if a.append and saved.exists():
        res["settings"] = json.loads(saved.read_text(encoding="utf-8"))["settings"]
    for setting in a.settings:
        fields = apply_setting(setting)
        t = time.perf_counter()
        lines_cv = {str(s): line_cv(lines, extra, table, scores, s, a.folds) for s in a.shuffles}
        keys_cv = key_cv(lines, extra, table, scores)
        line_mean = float(np.mean([v for vs in lines_cv.values() for v in vs]))
        key_mean = float(np.mean([(g["prompts"] + g["memories"]) / 2 for g in keys_cv]))
        res["settings"][setting] = {**fields, "line_cv": lines_cv, "key_cv": keys_cv, "line_mean": line_mean, "key_mean": key_mean,
                                    "weighted": SEEN_SHARE * line_mean + (1 - SEEN_SHARE) * key_mean, "seconds": round(time.perf_counter() - t)}
        r = res["settings"][setting]
        print(f"α {fields['alpha']} C {fields['C']} key match {fields['key_match']} runs {fields['morph_ngrams']} word drop {fields['word_drop']} ref weight {fields['ref_weight']:g} "
              f"new keys {fields['new_keys']} temperature ×{fields['temperature_scale']:g} prior shift {fields['prior_shift']:g}: line {line_mean:.4f}  key {key_mean:.4f}  weighted {r['weighted']:.4f}  ({r['seconds']} s)", flush=True)
    res["load_avg_after"] = os.getloadavg()
    write_results(name, res, markdown(res))
    return 0


def markdown(res: dict) -> str:
    rows = list(res["settings"].values())
    shuffles = list(rows[0]["line_cv"]) if rows else []
    out = ["# memory_topic_cv: the topic encoder's settings on two cross-validations (no test pairs)", "",
           f"2 shared CPU cores, one torch thread, load {res['load_avg_at_start'][0]:.1f} at start. Training data: the reference train lines "
           f"(less the held-out ones) + {', '.join(res['extra_files'])}. Line-CV folds: "
           + ("whole memory groups (`--folds memory`)." if res.get("folds") == "memory" else "16 lines each."), "",
           "| α (soft targets) | C | key match | morpheme runs | word drop | reference lines' weight | new keys from their string | temperature × | prior shift | " + " | ".join(f"line CV, shuffle {s}" for s in shuffles)
           + f" | key CV: prompts / memories | key CV | weighted ({res['seen_share']:.2f} · line + {1 - res['seen_share']:.2f} · key) |",
           "|---|---|---|---|---|---|---|---|---|" + "---|" * len(shuffles) + "---|---|---|"]
    for r in rows:
        kp = sum(g["prompts"] for g in r["key_cv"]) / len(r["key_cv"])
        km = sum(g["memories"] for g in r["key_cv"]) / len(r["key_cv"])
        cells = [f"{sum(v) / len(v):.4f}" for v in r["line_cv"].values()]
        out.append(f"| {r['alpha']} | {r['C']:g} | {r.get('key_match', 0):g} | {r.get('morph_ngrams', 1)} | {r.get('word_drop', 0)} | {r.get('ref_weight', 1):g} | {'yes' if r.get('new_keys') else 'no'} | {r.get('temperature_scale', 1):g} | {r.get('prior_shift', 0):g} | " + " | ".join(cells) + f" | {kp:.3f} / {km:.3f} | {r['key_mean']:.4f} | **{r['weighted']:.4f}** |")
    if rows:
        out += ["", "Key-CV groups: " + "; ".join(", ".join(g["keys"]) for g in rows[0]["key_cv"]) + "."]
    return "\n".join(out + [""])


if __name__ == "__main__":
    sys.exit(main())
