"""One read of the reference test pairs for two `topic` settings, with a paired bootstrap.

The test pairs have 40 lines, so a change moves corr by ±0.01 on noise alone; a difference
is only worth reading together with how much it moves when the lines are resampled. Both
settings are fitted on all train lines (as memory_topic.py), their test-pair cosines taken,
and the corr difference recomputed on `--resamples` resamples of the 40 test lines (with
replacement; every pair among the drawn lines, so a line drawn twice counts twice).

The rule we read it by (docs/memory.md, written down before the first read): ship a change
the cross-validations chose unless the 95 % interval of the difference lies wholly below 0.
Session 9's read (word dropout: every figure fell, interval [-0.083, +0.009]) is the one time we
did not follow it; docs/memory_experiments.md says why and what the next rule should also ask. Session 10's
rule added that test MSE and MAE must not get worse (the reference lines weighted 16: MSE
0.0368 → 0.0374, not adopted). Since session 13 a change is read only after a memory-folds CV gain
of at least +0.015 (docs/memory_experiments.md: smaller gains never predicted the sign on the test).

    .venv/bin/python benchmarks/memory_topic_paired.py --base 0.6:10:0:1 --new 0.6:10:0:2   # session 8, ~2 min
    .venv/bin/python benchmarks/memory_topic_paired.py --base 0.6:10:0:2 --new 0.6:10:0:2:2 \
        --name memory_topic_paired_word_drop                                                 # session 9
    .venv/bin/python benchmarks/memory_topic_paired.py --base 0.6:10:0:2 --new 0.6:10:0:2:0:16 \
        --name memory_topic_paired_ref_weight                                                # session 10
    .venv/bin/python benchmarks/memory_topic_paired.py --base 0.6:10:0:2 --new 0.6:10:0:2:0:1:1 \
        --name memory_topic_paired_new_keys                                                  # session 11
    .venv/bin/python benchmarks/memory_topic_paired.py --base 0.6:10:0:2:0:1:1 --new 0.6:10:0:2:0:1:1:1.5 \
        --name memory_topic_paired_temperature                                               # session 12
    .venv/bin/python benchmarks/memory_topic_paired.py --base 0.6:10:0:2:0:1:1 --new 0.6:10:0:2:0:1:1 \
        --new-extra ref_keys_events.txt --name memory_topic_paired_events                    # session 14: a data file

Settings are α:C:m:r[:d[:w[:n[:t[:u]]]]] as in memory_topic_cv.py. Results: benchmarks/results/NAME.{json,md}
(`--name`, default memory_topic_paired), so each read keeps its own file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _memory_common import PUBLISHED, REF_DIR, load_reference, metrics, our_lines, write_results  # noqa: E402
from memory_topic import EXTRA, fit_topic, reference_data  # noqa: E402
from memory_topic_cv import apply_setting  # noqa: E402


def predict(setting: str, lines, extra, table, test):
    from ohlora.memory.train import pair_cosines

    apply_setting(setting)  # before the data: the setting holds the reference lines' weight
    return pair_cosines(fit_topic(reference_data(lines, extra, table)), test)


def paired_bootstrap(base, new, true, line_of_memory, line_of_prompt, n_lines: int, resamples: int, seed: int = 0):
    """Corr(new) − corr(base) on `resamples` resamples of the test lines."""
    import numpy as np

    cell = np.full((n_lines, n_lines), -1)
    cell[line_of_memory, line_of_prompt] = np.arange(len(true))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(resamples):
        drawn = rng.integers(0, n_lines, n_lines)
        rows = cell[np.ix_(drawn, drawn)].ravel()
        out.append(np.corrcoef(new[rows], true[rows])[0, 1] - np.corrcoef(base[rows], true[rows])[0, 1])
    return np.array(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="0.6:10:0:1", help="α:C:m:r[:d[:w[:n[:t[:u]]]]] of the setting shipped before")
    ap.add_argument("--new", default="0.6:10:0:2", help="α:C:m:r[:d[:w[:n[:t[:u]]]]] of the setting the CVs chose")
    ap.add_argument("--new-extra", nargs="+", default=[], metavar="FILE",
                    help="combination files in data/memory/ added to our lines for --new only (a data change; same setting both sides)")
    ap.add_argument("--name", default="memory_topic_paired", help="results file name (benchmarks/results/NAME.json, .md)")
    ap.add_argument("--resamples", type=int, default=2000)
    a = ap.parse_args()
    import numpy as np
    import torch

    from ohlora.memory.pairs import read_pairs

    torch.set_num_threads(1)
    table, extra, lines, _scores = load_reference(EXTRA)
    test = read_pairs(REF_DIR / "test_dataset.csv")
    true = np.array([p.score for p in test])
    new_extra = extra + our_lines(a.new_extra)
    base, new = predict(a.base, lines, extra, table, test), predict(a.new, lines, new_extra, table, test)
    test_lines = list(dict.fromkeys((p.memory, p.prompt_0) for p in test))  # memory_0, user_prompt_0: each test line once
    index = {ln: i for i, ln in enumerate(test_lines)}
    mem = np.array([index[(p.memory, p.prompt_0)] for p in test])
    prm = np.array([index[(p.memory_1, p.prompt)] for p in test])
    diffs = paired_bootstrap(base, new, true, mem, prm, len(test_lines), a.resamples)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    res = {"base": a.base, "new": a.new + "".join(f" + {f}" for f in a.new_extra), "new_extra": a.new_extra, "resamples": a.resamples, "test_lines": len(test_lines), "published_reference": PUBLISHED,
           "base_metrics": metrics(base, true), "new_metrics": metrics(new, true),
           "corr_diff": float(np.corrcoef(new, true)[0, 1] - np.corrcoef(base, true)[0, 1]),
           "bootstrap_sd": float(diffs.std()), "ci95": [float(lo), float(hi)], "p_new_better": float((diffs > 0).mean())}
    write_results(a.name, res, markdown(res))
    return 0


def markdown(res: dict) -> str:
    b, n = res["base_metrics"], res["new_metrics"]
    lo, hi = res["ci95"]
    return "\n".join([
        "# memory_topic_paired: two topic settings on the reference test pairs, paired bootstrap", "",
        f"Topic encoder alone, fitted on all train lines; {res['resamples']:,} resamples of the {res['test_lines']} test lines.", "",
        "| setting (α:C:m:r[:d[:w[:n[:t[:u]]]]]) | test MSE | test MAE | test corr |", "|---|---|---|---|",
        "| published reference (klue/roberta-base) | " + " | ".join(f"{res['published_reference'][m]:.4f}" for m in ("mse", "mae", "corr")) + " |",
        f"| base {res['base']} | {b['mse']:.4f} | {b['mae']:.4f} | {b['corr']:.4f} |",
        f"| new {res['new']} | {n['mse']:.4f} | {n['mae']:.4f} | {n['corr']:.4f} |", "",
        f"Corr difference {res['corr_diff']:+.4f}; bootstrap sd {res['bootstrap_sd']:.4f}, 95 % interval "
        f"[{lo:+.4f}, {hi:+.4f}], new better in {res['p_new_better']:.0%} of resamples.", ""])


if __name__ == "__main__":
    sys.exit(main())
