"""Training throughput and peak memory per head on the tiny base: random (padded)
batches vs length-grouped batches, in one run, reported as a ratio.

For every head and both groupings it trains one epoch with `finetune` (valid generation
off), and reads the epoch's training time from the head's train_log.csv (it excludes
saving). Tokens/s counts real (non-padding) tokens of the epoch; the padding share
is counted from the batches the loop forms. Peak memory: on a GPU, torch's peak
allocation; on a CPU, the peak rise of the process's resident memory above its level
before the run (sampled every 5 ms) - activations, gradients and optimizer state.

    .venv/bin/python benchmarks/finetune_throughput.py --data data/persona/ohlora.csv --base /tmp/ohlora-bench/base
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ohlora import config  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


class PeakRss:
    """Peak resident memory rise during a block, sampled in a thread."""

    def __init__(self):
        import psutil

        self._proc = psutil.Process()
        self.peak = 0

    def __enter__(self):
        self._base = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss - self._base)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/persona/ohlora.csv")
    ap.add_argument("--base", required=True, help="base model folder (e.g. built by `ohlora tiny-base`)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()

    import torch

    from ohlora.heads import finetune as ft
    from ohlora.heads.dataset import head_examples, load_rows, tokenize_example
    from ohlora.models import load_tokenizer

    cuda = torch.cuda.is_available()
    tok = load_tokenizer(args.base)
    rows = load_rows(args.data)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for head in config.HEADS:
            feats = [tokenize_example(tok, e["prompt"], e["completion"], 256) for e in head_examples(rows, head)]
            real = sum(len(f["input_ids"]) for f in feats)
            for grouping in ("none", "length"):
                padded = sum(
                    len(b) * max(len(f["input_ids"]) for f in b)
                    for e in range(args.epochs)
                    for b in ft.batches(feats, args.batch_size, grouping, seed=42 * 1000 + e)
                )
                cfg = ft.FinetuneConfig(
                    head=head, data=args.data, out=f"{tmp}/{grouping}", base=args.base, epochs=args.epochs,
                    rank=args.rank, batch_size=args.batch_size, lr=1e-3, grouping=grouping, generate_valid=False,
                )
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                with PeakRss() as rss:
                    ft.finetune(cfg)
                with open(f"{tmp}/{grouping}/{head}/train_log.csv", encoding="utf-8") as f:
                    seconds = sum(float(r["time"]) for r in csv.DictReader(f))
                results.setdefault(head, {})[grouping] = {
                    "examples": len(feats),
                    "real_tokens_per_epoch": real,
                    "padding_share": round(1 - real * args.epochs / padded, 4),
                    "train_s": round(seconds, 2),
                    "tokens_per_s": round(real * args.epochs / seconds, 1),
                    "peak_mem_mb": round((torch.cuda.max_memory_allocated() if cuda else rss.peak) / 2**20, 1),
                }
            r = results[head]
            r["speedup_length_vs_none"] = round(r["length"]["tokens_per_s"] / r["none"]["tokens_per_s"], 3)
            print(
                f"{head:16s} tokens/s none {r['none']['tokens_per_s']:8.0f} (pad {r['none']['padding_share']:.0%})"
                f"  length {r['length']['tokens_per_s']:8.0f} (pad {r['length']['padding_share']:.0%})"
                f"  ratio {r['speedup_length_vs_none']:.2f}  peak {r['length']['peak_mem_mb']:.0f}/{r['none']['peak_mem_mb']:.0f} MB"
            )

        # CPU threads: the same epoch (output_message, length-grouped) at 1 and 2 torch threads.
        threads = {}
        if not cuda:
            for n in (2, 1):
                cfg = ft.FinetuneConfig(
                    head="output_message", data=args.data, out=f"{tmp}/t{n}", base=args.base, epochs=args.epochs,
                    rank=args.rank, batch_size=args.batch_size, lr=1e-3, generate_valid=False, threads=n,
                )
                ft.finetune(cfg)
                with open(f"{tmp}/t{n}/output_message/train_log.csv", encoding="utf-8") as f:
                    threads[n] = sum(float(r["time"]) for r in csv.DictReader(f))
            print(f"threads: 1 -> {threads[1]:.1f} s, 2 -> {threads[2]:.1f} s, speed-up of 1 thread {threads[2] / threads[1]:.2f}x")

    info_path = Path(args.base) / "ohlora_tiny_base.json"
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs), torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}" + (f", {torch.cuda.get_device_name()}" if cuda else ""),
        "load_average_at_end": os.getloadavg()[0],
        "data": args.data,
        "base": json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else args.base,
        "settings": {"batch_size": args.batch_size, "rank": args.rank, "epochs": args.epochs},
        "peak_memory": "torch.cuda.max_memory_allocated" if cuda else "peak RSS rise during the run (sampled, 5 ms)",
        "results": results,
        "threads_epoch_s": threads,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "finetune_throughput.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    lines = [
        "# finetune_throughput",
        "",
        f"Machine: {report['machine']}; load average {report['load_average_at_end']:.1f} at the end (timings are noisy; "
        "the padding share is exact).",
        f"Tiny base from `{args.data}`; batch {args.batch_size}, rank {args.rank}, {args.epochs} epoch(s) per run. "
        f"Peak memory: {report['peak_memory']}.",
        "",
        "| head | tokens/s random | tokens/s length-grouped | ratio | padding random | padding grouped | peak MB random | peak MB grouped |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {h} | {r['none']['tokens_per_s']:.0f} | {r['length']['tokens_per_s']:.0f} | {r['speedup_length_vs_none']:.2f} | "
            f"{r['none']['padding_share']:.0%} | {r['length']['padding_share']:.0%} | {r['none']['peak_mem_mb']:.0f} | {r['length']['peak_mem_mb']:.0f} |"
            for h, r in results.items()
        ),
        "",
        *(
            [
                f"CPU threads (output_message, length-grouped, one epoch): 1 thread {threads[1]:.1f} s, "
                f"2 threads {threads[2]:.1f} s: one thread is {threads[2] / threads[1]:.2f}x as fast.",
                "",
            ]
            if threads
            else []
        ),
    ]
    (RESULTS / "finetune_throughput.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
