"""Decoding at polyglot-ko-1.3b's shapes: the dynamic KV cache vs a static one, in one run.

engine_replay.md found a decode step at 1.3B shapes costs 15-27 ms on an H200 while streaming
the bf16 weights once takes ~0.6 ms: the step is bound by kernel launches and Python, not by
arithmetic. With a static KV cache, transformers' `generate` compiles the decoding forward
(torch.compile, CUDA graphs) by itself when the model is on a GPU. This measures what that buys
on the bare base model of the real config (random weights: they change neither memory nor
compute; no adapters — the engine's per-row adapter hooks are the step after this one), same
prompts, greedy decoding, a fixed number of new tokens (EOS held off with min_new_tokens):

- ms per decode step after warm-up, from (time for N new tokens − time for 1) / (N − 1), so the
  prefill is not in it; the median of `--repeats` runs;
- the first call's seconds (the static way compiles there), and peak GPU memory of each way;
- how many generated tokens the two ways agree on (bf16 kernels differ between eager and compiled
  code, and random weights make near-ties, so a few may differ; a gross mismatch means a bug).

    python benchmarks/engine_static_cache.py                     # on a GPU: a few minutes
    .venv/bin/python benchmarks/engine_static_cache.py --config tiny --device cpu --out-dir /tmp/esc   # CPU smoke run (no compile there)

Results: benchmarks/results/engine_static_cache.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import engine_memory as em  # noqa: E402  (CONFIGS: polyglot-ko-1.3b's exact config)
from finetune_gpu import peaks, reset, sync  # noqa: E402

# "static-eager" separates what the static cache does from what compiling does (on a CPU the
# two static ways are the same: generate compiles only on a GPU).
WAYS = {"dynamic": {}, "static-eager": {"cache_implementation": "static", "disable_compile": True},
        "static": {"cache_implementation": "static"}}


def generate(model, ids, new: int, way: str):
    import torch

    with torch.no_grad():
        return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                              do_sample=False, pad_token_id=0, **WAYS[way])


def timed(model, ids, new: int, way: str, device: str) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    out = generate(model, ids, new, way)
    sync(device)
    return time.perf_counter() - start, out


def measure(model, ids, new: int, way: str, device: str, repeats: int) -> dict:
    reset(device)
    first, _ = timed(model, ids, new, way, device)  # compiles on a GPU (static)
    timed(model, ids, 1, way, device)  # a second shape for the static cache warms here too
    steps, fulls = [], []
    out = None
    for _ in range(repeats):
        t_one, _ = timed(model, ids, 1, way, device)
        t_all, out = timed(model, ids, new, way, device)
        steps.append((t_all - t_one) / (new - 1) * 1000)
        fulls.append(t_all)
    return {"first_call_s": round(first, 2), "step_ms": round(statistics.median(steps), 3),
            "step_ms_runs": [round(s, 3) for s in steps], "call_s": round(statistics.median(fulls), 3),
            **{k: round(v, 3) for k, v in peaks(device).items()}, "tokens": out[:, ids.shape[1]:].tolist()}


def write_md(res: dict, folder: Path) -> None:
    d, s = res["runs"]["dynamic"], res["runs"]["static"]
    lines = [
        "# engine_static_cache: decode steps with the dynamic vs a static (compiled) KV cache",
        "",
        f"Device: {res['device_name']}; torch {res['torch']}, transformers {res['transformers']}. Model: GPT-NeoX of the "
        f"`{res['config']}` config ({res['params'] / 1e6:,.1f} M parameters, {res['dtype']}), random weights, no adapters. "
        f"Batch {res['batch']} × {res['prompt_tokens']} prompt tokens, {res['new_tokens']} new tokens, greedy; "
        f"median of {res['repeats']} runs after warm-up.",
        "",
        "| way | compiled | ms / decode step | s / call | first call (s) | peak allocated (GB) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in res["runs"].items():
        lines.append(f"| {name} | {'yes' if r['compiled'] else 'no'} | {r['step_ms']:.2f} | {r['call_s']:.3f} | {r['first_call_s']:.1f} | "
                     f"{r.get('peak_allocated_gb', '–')} |")
    e = res["runs"]["static-eager"]
    lines += ["", f"- decode step, static / dynamic: **{s['step_ms'] / d['step_ms']:.2f}x** (static cache without compiling: "
              f"{e['step_ms'] / d['step_ms']:.2f}x)",
              f"- generated tokens static and dynamic agree on: {res['tokens_agree']:.1%}", ""]
    (folder / "engine_static_cache.md").write_text("\n".join(lines), encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="polyglot-ko-1.3b", choices=sorted(em.CONFIGS))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=6, help="rows in one call (the engine's first call: 3 reply candidates + memory rows)")
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=48, help="SPEC §1's reply cap is 48 tokens of input; answers are of that order")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    a = ap.parse_args()
    import torch
    import transformers

    torch.manual_seed(0)
    with torch.device(a.device):
        model = em.build(a.config, adapters=0)
    model.generation_config.eos_token_id = model.config.eos_token_id = None
    vocab = model.config.vocab_size
    ids = torch.randint(1, vocab, (a.batch, a.prompt_tokens), device=a.device)
    res = {"config": a.config, "device": a.device, "platform": platform.platform(), "torch": torch.__version__,
           "transformers": transformers.__version__, "params": sum(p.numel() for p in model.parameters()),
           "dtype": str(next(model.parameters()).dtype), "batch": a.batch, "prompt_tokens": a.prompt_tokens,
           "new_tokens": a.new_tokens, "repeats": a.repeats,
           "device_name": torch.cuda.get_device_name(0) if a.device.startswith("cuda") else platform.processor() or "CPU",
           "runs": {}}
    for way in WAYS:
        res["runs"][way] = measure(model, ids, a.new_tokens, way, a.device, a.repeats)
        res["runs"][way]["compiled"] = getattr(model, "_compiled_call", None) is not None  # generate's own compiled forward
        print(f"{way}: {res['runs'][way]['step_ms']:.2f} ms/step, first call {res['runs'][way]['first_call_s']:.1f} s", flush=True)
    got = [(x, y) for rx, ry in zip(res["runs"]["dynamic"]["tokens"], res["runs"]["static"]["tokens"]) for x, y in zip(rx, ry)]
    res["tokens_agree"] = sum(x == y for x, y in got) / len(got)
    folder = Path(a.out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "engine_static_cache.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    write_md(res, folder)
    print((folder / "engine_static_cache.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
