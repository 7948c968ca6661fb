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
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _memory_common import PUBLISHED, REF_DIR, choose_weight, cv_table, fold_line, fold_sets, load_reference, metrics, ref_combos, test_table, write_results  # noqa: E402

EXTRA = ["ref_keys_combs.txt", "ref_keys_more.txt", "train_combs.txt"]
WEIGHTS = [0.0, 0.3, 0.5, 0.7, 1.0]  # kiwi's share


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


def by_weight(kiwi, minilm, pairs) -> dict:
    from ohlora.memory.train import pair_cosines

    ck, cm = pair_cosines(kiwi, pairs), pair_cosines(minilm, pairs)
    true = [p.score for p in pairs]
    return {str(w): metrics(w * ck + (1 - w) * cm, true) for w in WEIGHTS}


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
