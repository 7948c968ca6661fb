"""Training throughput and peak memory per head on the tiny base: random (padded)
batches vs length-grouped batches, in one run, reported as a ratio.

For every head and both groupings a child process trains `--epochs` epochs with
`finetune` (valid generation off, one torch thread) and reports its epoch times from the
head's train_log.csv (saving excluded); the fastest epoch counts, the one least
disturbed by other jobs on a shared machine. Tokens/s counts real (non-padding) tokens;
the padding share is counted exactly from the batches the loop forms. Peak memory: on a
GPU, torch's peak allocation; on a CPU, the child's peak resident memory (ru_maxrss; the
torch runtime is in every figure, the differences are the training's). A last pair of
runs compares 1 and 2 torch threads.

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
import subprocess
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ohlora import config  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def run_one(args) -> None:
    """Child process: train one head with one grouping and print its figures as JSON.

    A fresh process per configuration, so its peak resident memory (ru_maxrss) belongs
    to that configuration alone; all children carry the same torch runtime baseline."""
    import resource

    import torch

    from ohlora.heads import finetune as ft

    head, grouping, threads = args.one
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ft.FinetuneConfig(
            head=head, data=args.data, out=tmp, base=args.base, epochs=args.epochs, rank=args.rank,
            batch_size=args.batch_size, lr=1e-3, grouping=grouping, generate_valid=False, threads=int(threads),
        )
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        ft.finetune(cfg)
        with open(f"{tmp}/{head}/train_log.csv", encoding="utf-8") as f:
            epoch_s = [float(r["time"]) for r in csv.DictReader(f)]
    peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("RESULT " + json.dumps({"epoch_s": epoch_s, "peak_bytes": peak}))


def child(args, head: str, grouping: str, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--data", args.data, "--base", args.base, "--batch-size", str(args.batch_size),
           "--rank", str(args.rank), "--epochs", str(args.epochs), "--one", head, grouping, str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/persona/ohlora.csv")
    ap.add_argument("--base", required=True, help="base model folder (e.g. built by `ohlora tiny-base`)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per run; the fastest epoch counts (least disturbed)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the grouping comparison")
    ap.add_argument("--one", nargs=3, metavar=("HEAD", "GROUPING", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return run_one(args)

    import torch

    from ohlora.heads import finetune as ft
    from ohlora.heads.dataset import head_examples, load_rows, tokenize_example
    from ohlora.models import load_tokenizer

    cuda = torch.cuda.is_available()
    tok = load_tokenizer(args.base)
    rows = load_rows(args.data)
    results = {}
    for head in config.HEADS:
        feats = [tokenize_example(tok, e["prompt"], e["completion"], 256) for e in head_examples(rows, head)]
        real = sum(len(f["input_ids"]) for f in feats)
        for grouping in ("none", "length"):
            padded = sum(
                len(b) * max(len(f["input_ids"]) for f in b)
                for e in range(args.epochs)
                for b in ft.batches(feats, args.batch_size, grouping, seed=42 * 1000 + e)
            )
            got = child(args, head, grouping, args.threads)
            seconds = min(got["epoch_s"])  # the least disturbed epoch (shared machine)
            results.setdefault(head, {})[grouping] = {
                "examples": len(feats),
                "real_tokens_per_epoch": real,
                "padding_share": round(1 - real * args.epochs / padded, 4),
                "fastest_epoch_s": round(seconds, 2),
                "tokens_per_s": round(real / seconds, 1),
                "peak_mem_mb": round(got["peak_bytes"] / 2**20, 1),
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
            threads[n] = min(child(args, "output_message", "length", n)["epoch_s"])
        print(f"threads: 1 -> {threads[1]:.1f} s, 2 -> {threads[2]:.1f} s, speed-up of 1 thread {threads[2] / threads[1]:.2f}x")

    info_path = Path(args.base) / "ohlora_tiny_base.json"
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs), torch {torch.__version__}"
        + (f", {torch.cuda.get_device_name()}" if cuda else ""),
        "load_average_at_end": os.getloadavg()[0],
        "data": args.data,
        "base": json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else args.base,
        "settings": {"batch_size": args.batch_size, "rank": args.rank, "epochs": args.epochs, "threads": args.threads},
        "peak_memory": "torch.cuda.max_memory_allocated" if cuda else "peak RSS of the run's own process (torch runtime included)",
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
        f"Tiny base from `{args.data}`; batch {args.batch_size}, rank {args.rank}, {args.threads} torch thread(s); "
        f"each run trains {args.epochs} epochs in its own process and its fastest epoch counts. "
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
