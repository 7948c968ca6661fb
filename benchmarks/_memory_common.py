"""What the memory benchmarks share: the reference data, the offline environment, the
fold sets of held-out reference train lines, the metrics and the results files.

memory_quality.py, memory_train_klue.py, memory_mix.py, memory_lines.py, memory_topic.py, memory_topic_cv.py and
memory_topic_paired.py import from here; importing it only sets the offline environment
(no hub) and puts the repository on sys.path.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REF_DIR = ROOT.parent / "shared" / "reference" / "ohlora_v2_memory"
RESULTS = ROOT / "benchmarks" / "results"
PUBLISHED = {"mse": 0.0355, "mae": 0.1280, "corr": 0.7449}  # SPEC §4, klue/roberta-base, 10 epochs


# --- the reference's data -------------------------------------------------------------------------
def ref_lines(pairs) -> list[tuple[str, str]]:
    """The distinct (memory_0, user_prompt_0) lines of pair rows (`read_pairs`), in file order."""
    return list(dict.fromkeys((r.memory, r.prompt_0) for r in pairs))


def ref_combos(lines) -> list:
    """The reference's (memory, prompt) lines as parsed combination lines."""
    from ohlora.formats import parse_combination_line
    from ohlora.memory.pairs import Combination

    return [Combination(*parse_combination_line(f"{m} {p}"), n) for n, (m, p) in enumerate(lines, start=1)]


def our_lines(files: list[str]) -> list:
    """Our combination lines from `files` (names in data/memory/), in order."""
    from ohlora.memory.pairs import read_combinations

    return [c for name in files for c in read_combinations(ROOT / "data" / "memory" / name)]


def load_reference(extra_files: list[str]):
    """(train key-pair table, our combination lines from `extra_files`, the reference train
    lines, {(memory_0, prompt_0, memory_1, prompt_1): score} of its train pairs)."""
    from ohlora.memory.pairs import read_pairs, score_table

    table = score_table(REF_DIR / "train_dataset.csv")
    extra = our_lines(extra_files)
    pairs = read_pairs(REF_DIR / "train_dataset.csv")
    scores = {(r.memory, r.prompt_0, r.memory_1, r.prompt): r.score for r in pairs}
    return table, extra, ref_lines(pairs), scores


# --- folds of held-out train lines, the metrics, the mix-weight choice, the tables ---------------
def metrics(pred, true) -> dict:
    import numpy as np

    from ohlora.memory.train import correlations

    pred, true = np.asarray(pred), np.asarray(true)
    return {"mse": float(((pred - true) ** 2).mean()), "mae": float(np.abs(pred - true).mean()), "corr": correlations(pred, true)["pearson"], "n": len(true)}


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


KEY_GROUPS = 7
SEEN_SHARE = 0.72  # share of the 1,600 test pairs whose two keys both occur in the train pairs


def key_groups(lines) -> list[list[str]]:
    """The key CV's groups: the keys with ≤ 3 reference train lines (the 상태 values and the rare
    keys, the kind the test pairs bring new) in KEY_GROUPS groups."""
    import random
    from collections import Counter

    from ohlora.formats import parse_memory

    count = Counter(parse_memory(m).canonical_key() for m, _ in lines)
    rare = sorted(k for k, n in count.items() if n <= 3)
    random.Random(0).shuffle(rare)
    return [sorted(rare[g::KEY_GROUPS]) for g in range(KEY_GROUPS)]


def key_fold(lines, extra, scores, keys):
    """Key-CV fold of group `keys`: (train lines, our lines, {"prompts": held prompts × every
    train memory, "memories": held memories × every train prompt}) — every line of those keys,
    the reference's and ours, removed from training."""
    from ohlora.formats import parse_memory
    from ohlora.memory.pairs import Pair

    gone = set(keys)
    held = [ln for ln in lines if parse_memory(ln[0]).canonical_key() in gone]
    sets = {"prompts": [Pair(m0, p1, scores[m0, p0, m1, p1]) for m0, p0 in lines for m1, p1 in held],
            "memories": [Pair(m0, p1, scores[m0, p0, m1, p1]) for m0, p0 in held for m1, p1 in lines]}
    return [ln for ln in lines if ln not in held], [c for c in extra if c.pair_key not in gone], sets


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
