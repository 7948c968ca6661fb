"""Model memory: one base + four LoRA adapters (the engine) vs four separately loaded
models, each with its own adapter (the reference: SPEC §2 "four full copies").

Two base configs, both GPT-NeoX with random weights (weights' values change nothing
about memory):
- tiny: the test stand-in (hidden 32, 2 layers), rank-4 adapters, fp32;
- polyglot-ko-1.3b: its exact config (24 layers, hidden 2048, 16 heads, intermediate
  8192, vocab 30080, rotary_pct 0.5, max positions 2048), bf16, rank-128 adapters on
  `query_key_value` (SPEC §2).

Figures: bytes of parameters and buffers, exact, for both ways (the adapters are
really attached with peft and counted); and the peak RSS of a fresh process holding
each way, measured in a child process (`--measure-copies` also measures the four
1.3B copies for real, ~11 GB; without it the 1.3B four-copy RSS is not measured —
only the one-copy process is, which bounds everything but the Python overhead).

    .venv/bin/python benchmarks/engine_memory.py [--skip-1b] [--measure-copies]

Results: benchmarks/results/engine_memory.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
RESULTS = ROOT / "benchmarks" / "results"
HEADS = ("output_message", "memory", "summary", "eyes_mouth_pose")

CONFIGS = {
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, vocab_size=600,
                 max_position_embeddings=512, rotary_pct=0.5, dtype="float32", rank=4),
    # polyglot-ko-1.3b's config.json (SPEC §2), rank 128 (SPEC §2 LoRA).
    "polyglot-ko-1.3b": dict(hidden_size=2048, num_hidden_layers=24, num_attention_heads=16, intermediate_size=8192,
                             vocab_size=30080, max_position_embeddings=2048, rotary_pct=0.5, dtype="bfloat16", rank=128),
}


def build(name: str, adapters: int):
    """A GPT-NeoX of config `name` with `adapters` LoRA adapters attached (0: bare)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    spec = dict(CONFIGS[name])
    dtype = getattr(torch, spec.pop("dtype"))
    rank = spec.pop("rank")
    cfg = GPTNeoXConfig(**spec, use_parallel_residual=True, tie_word_embeddings=False)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # create the weights in bf16 directly: no fp32 peak
    try:
        with torch.no_grad():
            model = GPTNeoXForCausalLM(cfg)
    finally:
        torch.set_default_dtype(old)
    model.eval()
    if adapters:
        lcfg = LoraConfig(r=rank, lora_alpha=16, lora_dropout=0.0, target_modules=["query_key_value"], task_type="CAUSAL_LM")
        model = get_peft_model(model, lcfg, adapter_name=HEADS[0])
        for head in HEADS[1:adapters]:
            model.add_adapter(head, lcfg)
        model.to(dtype)
    return model


def nbytes(model) -> dict[str, int]:
    base = lora = 0
    for n, p in model.named_parameters():
        if "lora_" in n:
            lora += p.numel() * p.element_size()
        else:
            base += p.numel() * p.element_size()
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return {"base": base, "lora": lora, "buffers": buffers, "total": base + lora + buffers}


def child(name: str, way: str) -> None:
    """Build one way in this (fresh) process and print its byte counts and peak RSS."""
    import resource

    import torch

    torch.set_num_threads(1)
    t = time.perf_counter()
    if way == "shared":
        models = [build(name, adapters=4)]
    elif way == "copies":
        models = [build(name, adapters=1) for _ in HEADS]
    else:  # "one": a single bare copy
        models = [build(name, adapters=0)]
    counts = [nbytes(m) for m in models]
    total = {k: sum(c[k] for c in counts) for k in counts[0]}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"bytes": total, "peak_rss_mb": peak_mb, "seconds": time.perf_counter() - t}))


def run_child(name: str, way: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", name, way], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def python_baseline_mb() -> float:
    """Peak RSS of a process that imports torch+transformers+peft and builds nothing."""
    code = ("import resource, torch, transformers, peft; from transformers import GPTNeoXForCausalLM;"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-1b", action="store_true", help="tiny config only")
    ap.add_argument("--measure-copies", action="store_true", help="also build four 1.3B copies for real (~11 GB RAM)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--md-only", action="store_true", help="rewrite the markdown from the saved JSON")
    args = ap.parse_args()
    if args.md_only:
        write_md(json.loads((RESULTS / "engine_memory.json").read_text(encoding="utf-8")))
        return
    if args.child:
        child(*args.child)
        return

    baseline = python_baseline_mb()
    rows = []
    for name in CONFIGS:
        if name != "tiny" and args.skip_1b:
            continue
        shared = run_child(name, "shared")
        print(f"{name}: one base + four adapters: {shared['bytes']['total'] / 2**20:.1f} MiB, peak RSS {shared['peak_rss_mb']:.0f} MB", flush=True)
        measure_copies = name == "tiny" or args.measure_copies
        if measure_copies:
            copies = run_child(name, "copies")
        else:
            # Four copies, counted exactly without holding them: one copy with one adapter
            # is built for real and its bytes x4 are what four loaded copies hold.
            one = run_child(name, "one")
            shared_lora_each = shared["bytes"]["lora"] // 4
            b = one["bytes"]
            copies = {"bytes": {"base": 4 * b["base"], "lora": 4 * shared_lora_each, "buffers": 4 * b["buffers"],
                                "total": 4 * (b["total"] + shared_lora_each)},
                      "peak_rss_mb": None, "one_copy_peak_rss_mb": one["peak_rss_mb"]}
        ratio = shared["bytes"]["total"] / copies["bytes"]["total"]
        row = {"config": name, "shared_bytes": shared["bytes"], "copies_bytes": copies["bytes"], "ratio_bytes": ratio,
               "shared_peak_rss_mb": shared["peak_rss_mb"], "copies_peak_rss_mb": copies.get("peak_rss_mb"),
               "one_copy_peak_rss_mb": copies.get("one_copy_peak_rss_mb"), "copies_measured": measure_copies}
        if copies.get("peak_rss_mb"):
            row["ratio_rss_above_baseline"] = (shared["peak_rss_mb"] - baseline) / (copies["peak_rss_mb"] - baseline)
        rows.append(row)
        print(f"{name}: four copies: {copies['bytes']['total'] / 2**20:.1f} MiB -> ratio {ratio:.3f}", flush=True)

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs shared, {platform.python_version()}"
    result = {"machine": machine, "python_torch_baseline_rss_mb": baseline, "rows": rows, "target_ratio_1b": 0.3}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "engine_memory.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    write_md(result)


def write_md(result: dict) -> None:
    baseline, machine, rows = result["python_torch_baseline_rss_mb"], result["machine"], result["rows"]
    mib = lambda b: f"{b / 2**20:,.1f}"  # noqa: E731
    lines = [
        "# engine_memory: one base + four LoRA adapters vs four loaded copies",
        "",
        f"Machine: {machine}. Bytes are exact counts of parameters + buffers with the adapters attached by peft;",
        f"RSS is the peak of a fresh child process (a bare `import torch, transformers, peft` process peaks at {baseline:.0f} MB).",
        "",
        "| base config | dtype, LoRA rank | one base + 4 adapters (MiB) | 4 copies + 1 adapter each (MiB) | ratio, bytes (target ≤ 0.3 at 1.3B) | peak RSS shared / copies (MB) | ratio, RSS above the import baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        spec = CONFIGS[r["config"]]
        rss_copies = f"{r['copies_peak_rss_mb']:.0f}" if r["copies_peak_rss_mb"] else f"not built (one copy: {r['one_copy_peak_rss_mb']:.0f})"
        rss_ratio = f"{r['ratio_rss_above_baseline']:.3f}" if r.get("ratio_rss_above_baseline") is not None else "—"
        lines.append(
            f"| {r['config']} | {spec['dtype']}, r={spec['rank']} | {mib(r['shared_bytes']['total'])} "
            f"(adapters {mib(r['shared_bytes']['lora'])}) | {mib(r['copies_bytes']['total'])} | **{r['ratio_bytes']:.3f}** | "
            f"{r['shared_peak_rss_mb']:.0f} / {rss_copies} | {rss_ratio} |"
        )
    lines += [
        "",
        "Random weights change nothing about memory, so the 1.3B row holds for the real polyglot-ko-1.3b.",
        "The RSS ratio of the tiny config is meaningless (the interpreter and libraries dwarf a 0.3 MB model).",
        "The reference needed ~11.3 GB of GPU memory for its four bf16 copies (SPEC §2); one base with four",
        "adapters needs a bit over a quarter of that, i.e. one 12 GB GPU instead of two.",
    ]
    (RESULTS / "engine_memory.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
