"""First-sample format validity of the structured heads: constrained vs unconstrained.

Over the persona dataset's valid rows (held out from training): the memory head reads
each row's input, the expression head reads the reply the reply head writes for it
(valid rows hold only their input; SPEC §3). Each head samples ONCE per row at its SPEC
§2 temperature and cap, with and without the constraint, same seeds; an answer is
valid if it parses (`formats.parse_memory_output` / `formats.parse_expression`) and
was closed with `(답변 종료)` within the cap. The reference retried invalid answers
(memory 5, expression 3 tries); constrained heads never need to.

    .venv/bin/python benchmarks/engine_validity.py [--models DIR] [--rows N]

Results: benchmarks/results/engine_validity.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
RESULTS = ROOT / "benchmarks" / "results"
BATCH = 16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None, help="MODELS_DIR (default: the demo cache if built, else taught tiny heads)")
    ap.add_argument("--rows", type=int, default=None, help="use the first N valid rows (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from ohlora import formats
    from ohlora.data.persona import load_rows, split
    from ohlora.engine.config import DEMO_CACHE, ModelPaths
    from ohlora.heads.generation import HeadRequest, generate_heads, load_heads

    torch.set_num_threads(args.threads)
    models = Path(args.models).expanduser() if args.models else DEMO_CACHE.expanduser()
    which = "given" if args.models else "demo cache"
    if not (models / "adapters").exists():
        from benchmarks.engine_latency import taught_models

        models, which = taught_models(Path(tempfile.mkdtemp(prefix="engine-validity-"))), "taught tiny test heads"
    _, valid = split(load_rows(ROOT / "data" / "persona" / "ohlora.csv", check=False))
    inputs = [r.input_data for r in valid][: args.rows]
    paths = ModelPaths.from_dir(models)
    model, tok = load_heads(paths.base, paths.adapters, device="cpu")

    def run(head: str, texts: list[str], constrained: bool, seed: int) -> list:
        torch.manual_seed(seed)
        out = []
        for i in range(0, len(texts), BATCH):
            out += generate_heads(model, tok, [HeadRequest(head, t, constrained=constrained) for t in texts[i : i + BATCH]])
        return out

    t = time.perf_counter()
    replies = [g.text or "(읽씹)" for g in run("output_message", inputs, False, args.seed)]
    checks = {
        "memory": (inputs, lambda g: g.closed and formats.parse_memory_output(g.text)[0]),
        "eyes_mouth_pose": (replies, lambda g: g.closed and formats.parse_expression(g.text) is not None),
    }
    result_rows, examples = [], {}
    for head, (texts, valid_fn) in checks.items():
        for constrained in (False, True):
            t0 = time.perf_counter()
            gens = run(head, texts, constrained, args.seed + 1)
            seconds = time.perf_counter() - t0
            ok = [bool(valid_fn(g)) for g in gens]
            nonempty = sum(1 for g in gens if head == "memory" and formats.parse_memory_output(g.text)[1] is not None)
            result_rows.append({"head": head, "constrained": constrained, "rows": len(gens), "valid": sum(ok),
                                "valid_share": sum(ok) / len(gens), "items_written": nonempty if head == "memory" else None,
                                "seconds": seconds, "mean_new_tokens": sum(g.tokens for g in gens) / len(gens)})
            examples[f"{head}/{'constrained' if constrained else 'free'}"] = [
                {"input": x, "raw": g.raw, "valid": v} for x, g, v in list(zip(texts, gens, ok))[:5]
            ] + [{"input": x, "raw": g.raw, "valid": v} for x, g, v in zip(texts, gens, ok) if not v][:5]
            print(f"{head:16s} {'constrained' if constrained else 'free':11s} {sum(ok)}/{len(gens)} valid "
                  f"({seconds:.1f}s)", flush=True)

    machine = f"{platform.machine()}, {os.cpu_count()} shared CPU cores, torch threads {args.threads}"
    result = {"machine": machine, "models": str(models), "models_kind": which, "rows": result_rows,
              "examples": examples, "seconds": time.perf_counter() - t}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "engine_validity.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    lines = [
        "# engine_validity: first-sample format validity, constrained vs unconstrained",
        "",
        f"Machine: {machine}. Models: {which} ({models}). {len(inputs)} persona valid rows; one sample per row at the",
        "SPEC §2 temperature and cap; valid = parses and closed with `(답변 종료)` within the cap.",
        "",
        "| head | decoding | valid on first sample | items written (memory) | mean new tokens | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in result_rows:
        items = "" if r["items_written"] is None else str(r["items_written"])
        lines.append(f"| {r['head']} | {'constrained' if r['constrained'] else 'unconstrained'} | "
                     f"**{r['valid']}/{r['rows']} ({100 * r['valid_share']:.0f}%)** | {items} | {r['mean_new_tokens']:.1f} | {r['seconds']:.1f} |")
    lines += ["", "Target: 100% for the constrained heads. Unconstrained failures are what the reference paid retries for."]
    (RESULTS / "engine_validity.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
