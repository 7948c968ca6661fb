"""Training the `topic` encoder from n² pair rows vs from lines (`train --combs`), one run.

The data memory_topic.py trains on: the reference's 80 train lines plus our prompts for
its keys (data/memory/ref_keys_*.txt), 2,060 lines, labelled by the reference train
pairs' key-pair scores. Two ways, each in a fresh child process (peak RSS is per process):

- rows: `make_pairs` → the n² five-column rows → `train(pairs=rows)` (what `ohlora memory
  make-pairs` + `train PAIRS.csv` do, less the CSV file itself: 4.2 M rows, ~250 MB);
- lines: `Lines.from_combinations` → `train(lines=...)` (what `train --combs` does).

Both fit on every line (valid_ratio 0) so they fit the same encoder; the script checks
that their embeddings of the reference test texts agree and reports the test pairs'
corr for both.

    .venv/bin/python benchmarks/memory_lines.py      # ~3 min on 2 shared cores

Results: benchmarks/results/memory_lines.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _memory_common import REF_DIR, load_reference, metrics, ref_combos, write_results  # noqa: E402
from memory_topic import EXTRA  # noqa: E402  (the same lines as memory_topic.py)


def child(way: str, out: str) -> None:
    import resource

    import numpy as np
    import torch

    from ohlora.memory.lines import Lines
    from ohlora.memory.pairs import Pair, make_pairs, read_pairs
    from ohlora.memory.train import TrainArgs, pair_cosines, train

    torch.set_num_threads(1)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    table, extra, lines, _ = load_reference(EXTRA)
    combos = ref_combos(lines) + extra
    args = TrainArgs(valid_ratio=0.0)
    if way == "rows":
        rows = [Pair(m0, p1, s, 0, p0, m1) for m0, p0, m1, p1, s in make_pairs(combos, None, table=table)]
        data = {"rows": len(rows)}
        prepared = time.perf_counter() - t0
        model = train(None, None, base="topic", args=args, pairs=rows, progress=False).model
    else:
        lines = Lines.from_combinations(combos, table=table)
        data = {"lines": len(lines)}
        prepared = time.perf_counter() - t0
        model = train(None, None, base="topic", args=args, lines=lines, progress=False).model
    seconds = time.perf_counter() - t0
    test = read_pairs(REF_DIR / "test_dataset.csv")
    texts = sorted({p.memory for p in test} | {p.prompt for p in test})
    np.save(out, model.encode(texts))
    result = {"way": way, **data, "prepare_s": round(prepared, 1), "total_s": round(seconds, 1),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "import_rss_mb": round(base_rss),
              "test": metrics(pair_cosines(model, test), [p.score for p in test])}
    print(json.dumps(result))


def run(way: str, tmp: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", way, str(tmp / f"{way}.npy")], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})
    if out.returncode:
        raise SystemExit(f"{way} child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=2, metavar=("WAY", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(*a.child)
        return
    import tempfile

    import numpy as np

    tmp = Path(tempfile.mkdtemp(prefix="memory-lines-"))
    res = {way: run(way, tmp) for way in ("rows", "lines")}
    diff = float(np.abs(np.load(tmp / "rows.npy") - np.load(tmp / "lines.npy")).max())
    r, li = res["rows"], res["lines"]
    res["max_embedding_diff"] = diff
    res["ratios"] = {"time": li["total_s"] / r["total_s"], "peak_rss": li["peak_rss_mb"] / r["peak_rss_mb"]}
    md = "\n".join([
        "# memory_lines: the topic encoder from n² pair rows vs from lines (`train --combs`)",
        "",
        f"Reference train lines + data/memory/{', '.join(EXTRA)}: {li['lines']:,} lines, {r['rows']:,} rows; every line",
        "fitted (valid_ratio 0); each way in a fresh process, 1 torch thread, 2 shared CPU cores.",
        "",
        "| way | data built (s) | total, fit included (s) | peak RSS (MB) | test corr | test MSE / MAE |",
        "|---|---|---|---|---|---|",
        *(f"| {w['way']} | {w['prepare_s']} | {w['total_s']} | {w['peak_rss_mb']:,} | {w['test']['corr']:.4f} | "
          f"{w['test']['mse']:.4f} / {w['test']['mae']:.4f} |" for w in (r, li)),
        "",
        f"Lines vs rows: **{res['ratios']['time']:.2f}x** the time, **{res['ratios']['peak_rss']:.2f}x** the peak RSS "
        f"(a process that imports the stack alone: ~{li['import_rss_mb']} MB). Largest embedding difference between the",
        f"two encoders on the reference test texts: {diff:.1e} (the same fit).",
    ]) + "\n"
    write_results("memory_lines", res, md)


if __name__ == "__main__":
    main()
