"""Memory-encoder training cost at klue/roberta-base's size: block mode vs reference mode.

memory_quality.py times both modes with the bundled MiniLM (22M parameters: 6 layers, 384
wide). The reference — and a user with the hub — trains klue/roberta-base (12 layers, 768
wide, a 32,000-token vocabulary; SPEC §4). This builds that architecture from its config
with random weights (`ohlora.tiny.save_tiny_roberta`: klue's config fields, special tokens
and tokenizer class; a WordPiece vocabulary trained on the reference train texts and our
combination files stands in for klue's), and trains it on the reference train pairs with
`ohlora.memory.train`, each mode in its own process so that each has its own peak memory:
block mode one whole epoch (with the reference's pair view and with the lines view, the
default on these five-column CSVs), reference mode `--ref-steps` steps, its epoch
extrapolated from seconds per step. Weights change nothing about time or memory, so the
figures hold for the real model; quality is not measured (the weights are random).

    .venv/bin/python benchmarks/memory_train_klue.py            # ~10 min on 2 CPU cores

Results: benchmarks/results/memory_train_klue.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _memory_common import REF_DIR, RESULTS, ROOT  # noqa: E402
from memory_quality import machine, steps_per_epoch  # noqa: E402

# klue/roberta-base's sizes (its config.json): 768 wide, 12 layers, 12 heads, 32,000 tokens
KLUE_SIZE = dict(hidden_size=768, num_layers=12, num_heads=12)
KLUE_VOCAB = 32000
# The tokenizer's own vocabulary, trained on the texts below: enough that the reference's
# texts split into about as many pieces as a 32k Korean vocabulary would give them.
TOKENIZER_VOCAB = 8000
COMBS = ["train_combs.txt", "test_combs.txt", "ref_keys_combs.txt", "ref_keys_more.txt", "ref_keys_indirect.txt"]
RUNS = {  # name: (mode, views)
    "block": ("block", "pair"),
    "block-lines": ("block", "lines"),
    "reference": ("reference", "pair"),
}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def build(folder: Path) -> dict:
    from ohlora.files import read_lines
    from ohlora.memory.pairs import read_pairs
    from transformers import AutoTokenizer

    from ohlora.tiny import TinyBertSize, save_tiny_roberta

    pairs = read_pairs(REF_DIR / "train_dataset.csv")
    ref_texts = sorted({t for p in pairs for t in (p.memory, p.prompt_0)})
    texts = ref_texts + [line for name in COMBS for line in read_lines(ROOT / "data" / "memory" / name) if line.strip()]
    save_tiny_roberta(folder, texts, TinyBertSize(**KLUE_SIZE), vocab_size=TOKENIZER_VOCAB, model_vocab_size=KLUE_VOCAB)
    tok = AutoTokenizer.from_pretrained(folder)
    lengths = [len(tok(t)["input_ids"]) for t in ref_texts]
    return {"tokenizer_vocab": len(tok), "model_vocab": KLUE_VOCAB, **KLUE_SIZE,
            "tokens_per_text_mean": round(statistics.mean(lengths), 1), "tokens_per_text_max": max(lengths)}


def worker(name: str, folder: str, ref_steps: int, threads: int) -> dict:
    """One mode, in this process: seconds, steps and peak memory."""
    import torch

    from ohlora.memory.pairs import read_pairs
    from ohlora.memory.train import TrainArgs, train

    torch.set_num_threads(threads)
    mode, views = RUNS[name]
    pairs = read_pairs(REF_DIR / "train_dataset.csv")
    before = rss_mb()
    asked = TrainArgs(mode=mode, epochs=1, views=views, max_steps=ref_steps if mode == "reference" else None)
    t0 = time.perf_counter()
    result = train(None, None, base=folder, args=asked, pairs=pairs, progress=False)
    wall = time.perf_counter() - t0
    n_params = sum(p.numel() for p in result.model.parameters())
    spe = steps_per_epoch(mode, pairs, result.args)
    s_step = result.seconds / max(result.steps, 1)
    return {
        "mode": mode, "views": views, "steps": result.steps, "steps_per_epoch": spe,
        "train_seconds": round(result.seconds, 1), "wall_seconds_with_load": round(wall, 1),
        "seconds_per_step": round(s_step, 3), "seconds_per_epoch": round(s_step * spe, 1),
        "seconds_per_epoch_extrapolated": result.steps < spe,
        "parameters": n_params, "peak_rss_mb": round(rss_mb()), "rss_before_train_mb": round(before),
    }


def markdown(res: dict) -> str:
    b, m = res["build"], res["machine"]
    lines = [
        "# memory_train_klue: block vs reference training at klue/roberta-base's size",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores shared with other jobs (load average at start {m['load_avg_at_start'][0]:.1f}); "
        f"GPU: {m['gpu']}; one torch thread per run (as memory_quality.py). Model: RoBERTa built from klue/roberta-base's config "
        f"({b['num_layers']} layers, {b['hidden_size']} wide, {b['num_heads']} heads, {b['model_vocab']:,}-token embedding), random weights; "
        f"its tokenizer (klue's class and special tokens, a {b['tokenizer_vocab']:,}-piece WordPiece vocabulary trained on the reference train "
        f"texts and our combination files) splits the reference's texts into {b['tokens_per_text_mean']} pieces on average (max "
        f"{b['tokens_per_text_max']}). Data: the reference train pairs (6,400 rows, 90/10 row split as SPEC §4), batch 16, 1 epoch "
        f"(reference mode: {res['ref_steps']} steps, its epoch extrapolated).",
        "",
        "| run | parameters | steps run / per epoch | s / step | s / epoch | peak RSS (before training) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in res["runs"].items():
        lines.append(f"| {name} ({r['mode']}, {r['views']} view) | {r['parameters'] / 1e6:.1f} M | {r['steps']} / {r['steps_per_epoch']} | "
                     f"{r['seconds_per_step']:.2f} | {r['seconds_per_epoch']:.0f}{' (extrapolated)' if r['seconds_per_epoch_extrapolated'] else ''} | "
                     f"{r['peak_rss_mb']:,} MB ({r['rss_before_train_mb']:,} MB) |")
    lines += ["", *[f"- {k}: {v}" for k, v in res["summary"].items()], ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref-steps", type=int, default=30, help="reference-mode steps to time (of ~360 an epoch)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--worker", choices=tuple(RUNS), help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.folder, a.ref_steps, a.threads)))
        return 0

    res = {"machine": machine(), "ref_steps": a.ref_steps, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="ohlora-klue-") as tmp:
        folder = Path(tmp) / "klue-shaped"
        res["build"] = build(folder)
        print(f"built {folder}: {res['build']}", flush=True)
        for name in RUNS:
            out = subprocess.run([sys.executable, __file__, "--worker", name, "--folder", str(folder),
                                  "--ref-steps", str(a.ref_steps), "--threads", str(a.threads)],
                                 capture_output=True, text=True, check=True)
            res["runs"][name] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{name}: {res['runs'][name]}", flush=True)
    runs = res["runs"]
    ref = runs["reference"]
    res["summary"] = {
        "time per epoch, reference / block (pair view)": f"{ref['seconds_per_epoch'] / runs['block']['seconds_per_epoch']:.1f}x",
        "time per epoch, reference / block-lines (the default view)": f"{ref['seconds_per_epoch'] / runs['block-lines']['seconds_per_epoch']:.1f}x",
        "time per step, reference / block (same 32 texts a step)": f"{ref['seconds_per_step'] / runs['block']['seconds_per_step']:.2f}x",
        "peak RSS, block / reference": f"{runs['block']['peak_rss_mb'] / ref['peak_rss_mb']:.2f}x",
        "reference schedule (10 epochs), reference mode vs block mode": f"{10 * ref['seconds_per_epoch'] / 3600:.1f} h vs {10 * runs['block']['seconds_per_epoch'] / 60:.0f} min on this CPU",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "memory_train_klue.json").write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (RESULTS / "memory_train_klue.md").write_text(markdown(res), encoding="utf-8")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
