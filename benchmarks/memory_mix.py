"""The kiwi encoder, the bundled MiniLM and their mix on the reference pairs, one run.

1. Choose the mix weight without the test pairs: k-fold over the reference's 80 *train*
   lines (16 held out a fold). Each fold trains both encoders on the other lines and
   scores pairs of held-out lines (`held×held`) and held-out prompts against every
   train memory (`all×held`) for kiwi weights 0, 0.3, 0.5, 0.7, 1.
2. Train both on all the train pairs and report MSE / MAE / corr on the reference test
   pairs for kiwi alone, MiniLM alone and the mix at the chosen weight (the other
   weights are listed too, marked as not used for the choice).

kiwi: `--base kiwi`, lines view, the train pairs plus our own prompts for the
reference's keys (data/memory/ref_keys_combs.txt, ref_keys_more.txt, train_combs.txt;
labels from the train pairs' key-pair scores), 1 epoch, batch 64. MiniLM: `--base
bundled`, block mode, lines view, 10 epochs, batch 16 (the reference's data only).

    .venv/bin/python benchmarks/memory_mix.py            # ~15 min on 2 shared cores
    .venv/bin/python benchmarks/memory_mix.py --folds 0  # skip the choice, use --weight

Results: benchmarks/results/memory_mix.{json,md}.
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
# Same reference data, results folder and offline environment as memory_quality.py.
from memory_quality import PUBLISHED, REF_DIR, RESULTS, ROOT  # noqa: E402

EXTRA = ["ref_keys_combs.txt", "ref_keys_more.txt", "train_combs.txt"]
WEIGHTS = [0.0, 0.3, 0.5, 0.7, 1.0]  # kiwi's share


def ref_lines(path) -> list[tuple[str, str]]:
    import csv

    lines: list[tuple[str, str]] = []
    with open(path, encoding="utf-8") as f:
        for r in csv.DictReader(f):
            t = (r["memory_0"], r["user_prompt_0"])
            if t not in lines:
                lines.append(t)
    return lines


def ref_combos(lines) -> list:
    """The reference's (memory, prompt) lines as parsed combination lines."""
    from ohlora.formats import parse_combination_line
    from ohlora.memory.pairs import Combination

    return [Combination(*parse_combination_line(f"{m} {p}"), n) for n, (m, p) in enumerate(lines, start=1)]


def load_reference(extra_files: list[str]):
    """(train key-pair table, our combination lines from `extra_files`, the reference train
    lines, {(memory_0, prompt_0, memory_1, prompt_1): score} of its train pairs)."""
    from ohlora.memory.pairs import read_combinations, read_pairs, score_table

    table = score_table(REF_DIR / "train_dataset.csv")
    extra = [c for name in extra_files for c in read_combinations(ROOT / "data" / "memory" / name)]
    scores = {(r.memory, r.prompt_0, r.memory_1, r.prompt): r.score for r in read_pairs(REF_DIR / "train_dataset.csv")}
    return table, extra, ref_lines(REF_DIR / "train_dataset.csv"), scores


def pairs_of(lines, extra, table):
    from ohlora.memory.pairs import Pair, make_pairs

    return [Pair(m0, p1, s, 0, p0, m1) for m0, p0, m1, p1, s in make_pairs(ref_combos(lines) + extra, None, table=table)]


def train_both(lines, extra, table):
    from ohlora.memory.train import TrainArgs, train

    t = time.perf_counter()
    kiwi = train(None, None, base="kiwi", args=TrainArgs(epochs=1, batch_size=64), pairs=pairs_of(lines, extra, table), progress=False)
    t_kiwi = time.perf_counter() - t
    t = time.perf_counter()
    minilm = train(None, None, base="bundled", args=TrainArgs(epochs=10, batch_size=16), pairs=pairs_of(lines, [], table), progress=False)
    return kiwi.model, minilm.model, {"kiwi_s": round(t_kiwi, 1), "minilm_s": round(time.perf_counter() - t, 1)}


def metrics(pred, true) -> dict:
    import numpy as np

    from ohlora.memory.train import correlations

    pred, true = np.asarray(pred), np.asarray(true)
    return {"mse": float(((pred - true) ** 2).mean()), "mae": float(np.abs(pred - true).mean()), "corr": correlations(pred, true)["pearson"], "n": len(true)}


def by_weight(kiwi, minilm, pairs) -> dict:
    from ohlora.memory.train import pair_cosines

    ck, cm = pair_cosines(kiwi, pairs), pair_cosines(minilm, pairs)
    true = [p.score for p in pairs]
    return {str(w): metrics(w * ck + (1 - w) * cm, true) for w in WEIGHTS}


# --- shared with memory_topic.py: folds of held-out train lines, the weight choice, the tables ---
def fold_sets(lines, scores, order, f: int, size: int = 16):
    """Fold f: (train lines, held-out lines, {"held×held": pairs, "all×held": pairs})."""
    from ohlora.memory.pairs import Pair

    hold = set(order[f * size : (f + 1) * size])
    held = [lines[i] for i in sorted(hold)]
    sets = {
        "held×held": [Pair(m0, p1, scores[m0, p0, m1, p1]) for m0, p0 in held for m1, p1 in held],
        "all×held": [Pair(m0, p1, scores[m0, p0, m1, p1]) for m0, p0 in lines for m1, p1 in held],
    }
    return [ln for i, ln in enumerate(lines) if i not in hold], held, sets


def fold_line(fold: dict, weights) -> str:
    return "  ".join(f"w{w}: {fold['held×held'][str(w)]['corr']:.3f}/{fold['all×held'][str(w)]['corr']:.3f}" for w in weights)


def choose_weight(folds: list[dict], weights) -> tuple[dict, float]:
    """Mean of held×held and all×held corr per weight over the folds, and the best weight."""
    import numpy as np

    mean = {str(w): float(np.mean([(fd["held×held"][str(w)]["corr"] + fd["all×held"][str(w)]["corr"]) / 2 for fd in folds])) for w in weights}
    return mean, float(max(weights, key=lambda w: mean[str(w)]))


def cv_table(res: dict, weights, share: str) -> list[str]:
    out = ["Weight choice, held-out reference *train* lines (corr held×held / all×held):", "",
           f"| {share} weight | " + " | ".join(f"fold {fd['fold']}" for fd in res["folds"]) + " | mean |",
           "|---|" + "---|" * (len(res["folds"]) + 1)]
    for k in weights:
        cells = [f"{fd['held×held'][str(k)]['corr']:.3f} / {fd['all×held'][str(k)]['corr']:.3f}" for fd in res["folds"]]
        out.append(f"| {k} | " + " | ".join(cells) + f" | {res['cv_mean_corr'][str(k)]:.3f} |")
    return out


def test_table(res: dict, share: str, names: dict) -> list[str]:
    """The test-pair table; `names` labels the weights 0.0 and 1.0 (one encoder alone)."""
    w = res["chosen_weight"]
    out = ["Reference test pairs (1,600):", "", "| encoder | test MSE | test MAE | test corr |", "|---|---|---|---|",
           f"| published reference (klue/roberta-base) | {PUBLISHED['mse']:.4f} | {PUBLISHED['mae']:.4f} | {PUBLISHED['corr']:.4f} |"]
    for k, m in res["test"].items():
        label = names.get(k, f"mix, {share} weight {k}") + (" **(chosen)**" if float(k) == w else (" (not used for the choice)" if k not in names else ""))
        out.append(f"| {label} | {m['mse']:.4f} | {m['mae']:.4f} | {m['corr']:.4f} |")
    return out


def write_results(name: str, res: dict, md: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=1, ensure_ascii=False))
    (RESULTS / f"{name}.md").write_text(md, encoding="utf-8")
    print(md)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=3, help="folds of 16 held-out train lines used to choose the weight (0: use --weight)")
    ap.add_argument("--weight", type=float, default=0.7, help="kiwi's share when --folds 0")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from ohlora.memory.pairs import read_pairs

    table, extra, lines, scores = load_reference(EXTRA)
    res: dict = {"load_avg_at_start": os.getloadavg(), "folds": [], "extra_files": EXTRA, "published_reference": PUBLISHED}

    order = list(range(len(lines)))
    random.Random(0).shuffle(order)
    for f in range(a.folds):
        train_lines, _held, sets = fold_sets(lines, scores, order, f)
        kiwi, minilm, secs = train_both(train_lines, extra, table)
        fold = {"fold": f, **secs, **{name: by_weight(kiwi, minilm, ps) for name, ps in sets.items()}}
        res["folds"].append(fold)
        print(f"fold {f}: " + fold_line(fold, WEIGHTS), flush=True)
    if a.folds:
        res["cv_mean_corr"], weight = choose_weight(res["folds"], WEIGHTS)
    else:
        weight = a.weight
    res["chosen_weight"] = weight

    test = read_pairs(REF_DIR / "test_dataset.csv")
    kiwi, minilm, secs = train_both(lines, extra, table)
    res["final_train_seconds"] = secs
    res["test"] = by_weight(kiwi, minilm, test)
    if str(weight) not in res["test"]:
        from ohlora.memory.train import pair_cosines

        ck, cm = pair_cosines(kiwi, test), pair_cosines(minilm, test)
        res["test"][str(weight)] = metrics(weight * ck + (1 - weight) * cm, [p.score for p in test])
    res["load_avg_after"] = os.getloadavg()
    write_results("memory_mix", res, markdown(res))
    return 0


def markdown(res: dict) -> str:
    w = res["chosen_weight"]
    out = [
        "# memory_mix: kiwi, bundled MiniLM and their mix on the reference pairs",
        "",
        f"2 shared CPU cores, one torch thread, load {res['load_avg_at_start'][0]:.1f} at start. kiwi: lines view + our prompts "
        f"({', '.join(res['extra_files'])}), 1 epoch, batch 64; MiniLM: lines view, 10 epochs, batch 16.",
        "",
    ]
    if res["folds"]:
        out += cv_table(res, WEIGHTS, "kiwi") + ["", f"Chosen: kiwi weight **{w}** (best mean)."]
    out += [""] + test_table(res, "kiwi", {"0.0": "bundled MiniLM alone", "1.0": "kiwi alone"})
    s = res["final_train_seconds"]
    out += ["", f"Training on all train pairs: kiwi {s['kiwi_s']} s, MiniLM {s['minilm_s']} s.", ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
