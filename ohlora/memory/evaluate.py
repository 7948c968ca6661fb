"""Testing a memory encoder on pair data (SPEC §4 'Test').

Predicted score = cosine(embed(memory_0), embed(user_prompt_1)); metrics MSE, MAE and
Pearson correlation against `similarity_score`; a per-row CSV and a scatter plot.
Each distinct text is encoded once (the test pairs are an n×n product of 2n texts).

    >>> from ohlora.memory.evaluate import metrics
    >>> metrics([0.5, 1.0], [0.0, 1.0])["mse"]
    0.125
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ohlora.files import atomic_write_csv, atomic_write_text

RESULT_COLUMNS = ("memory", "user_prompt", "predicted_score", "ground_truth_score", "absolute_error")  # SPEC §4


@dataclass
class EvalResult:
    pairs: list  # ohlora.memory.pairs.Pair
    predicted: np.ndarray
    metrics: dict


def metrics(pred, true) -> dict:
    """mse, mae, corr (Pearson; NaN when either side is constant), n."""
    pred, true = np.asarray(pred, dtype=float), np.asarray(true, dtype=float)
    err = pred - true
    corr = float(np.corrcoef(pred, true)[0, 1]) if len(pred) > 1 and pred.std() > 0 and true.std() > 0 else float("nan")
    return {"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err))), "corr": corr, "n": int(len(pred))}


def evaluate_pairs(model, pairs: list) -> EvalResult:
    from ohlora.memory.train import pair_cosines

    model.eval()
    pred = np.asarray(pair_cosines(model, pairs), dtype=float)
    return EvalResult(pairs, pred, metrics(pred, [p.score for p in pairs]))


def write_report(result: EvalResult, out_dir: str | Path) -> None:
    """DIR/metrics.json, DIR/test_result.csv (SPEC §4 columns), DIR/scatter.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [
        (p.memory, p.prompt, round(float(s), 4), p.score, round(abs(float(s) - p.score), 4))
        for p, s in zip(result.pairs, result.predicted)
    ]
    atomic_write_csv(out / "test_result.csv", RESULT_COLUMNS, rows)
    scatter(result, out / "scatter.png")
    atomic_write_text(out / "metrics.json", json.dumps(result.metrics, indent=2) + "\n")


def scatter(result: EvalResult, path: Path) -> None:
    import os
    import tempfile

    import matplotlib

    matplotlib.use("Agg")  # no display; never opens a window
    import matplotlib.pyplot as plt

    true = [p.score for p in result.pairs]
    m = result.metrics
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.scatter(true, result.predicted, s=6, alpha=0.35)
    ax.plot([0, 1], [0, 1], color="gray", linewidth=1, linestyle="--")
    ax.set_xlabel("ground-truth score (similarity_score)")
    ax.set_ylabel("predicted score (cosine)")
    ax.set_title(f"MSE {m['mse']:.4f}  MAE {m['mae']:.4f}  corr {m['corr']:.4f}  (n={m['n']})")
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(prefix=".scatter.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
