"""How often the stand-in heads' FIRST unconstrained sample is well-formed, on the valid rows.

Builds the tiny stand-in base (`ohlora.heads.tinybase`, default size) and trains the four
heads with `DEMO_PRESET` (or takes a built base / adapters folder), timing both; then,
for every valid row, samples one answer per head with the SPEC §2 temperature and cap
and no constraint, and counts the answers that pass:
  memory           formats.parse_memory_output (one `[key: value]`, or empty)
  eyes_mouth_pose  formats.parse_expression (labels from the SPEC §1.7 sets)
  output_message   formats.reply_problem is None   (reference checks)
  summary          formats.summary_problem is None
The chat issue's constrained decoding is compared against these shares.

    .venv/bin/python benchmarks/finetune_format_validity.py --data data/persona/ohlora.csv
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ohlora import config, formats  # noqa: E402
from ohlora.heads.dataset import _get, _input_of, load_rows  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def well_formed(head: str, answer: str, target: str | None) -> tuple[bool, bool]:
    """(parses, equals the dataset's target)."""
    if head == "memory":
        ok, item = formats.parse_memory_output(answer)
        return ok, ok and formats.compact(item.text if item else "") == formats.compact(target or "")
    if head == "eyes_mouth_pose":
        expr = formats.parse_expression(answer)
        return expr is not None, expr is not None and expr.text == formats.normalize(target or "")
    check = formats.reply_problem if head == "output_message" else formats.summary_problem
    return check(answer) is None, formats.normalize(answer) == formats.normalize(target or "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/persona/ohlora.csv")
    ap.add_argument("--work", default="/tmp/ohlora-bench", help="where the base and adapters are built")
    ap.add_argument("--base", default=None, help="a built base folder (default: build one in --work)")
    ap.add_argument("--heads", default=None, help="a built adapters folder (default: train in --work)")
    ap.add_argument("--size", default="small", help="tiny-base size")
    ap.add_argument("--base-steps", type=int, default=None)
    ap.add_argument("--preset", default="{}", help="JSON overrides of DEMO_PRESET, e.g. '{\"epochs\": 5}'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="finetune_format_validity", help="results file name")
    args = ap.parse_args()

    import torch
    from peft import PeftModel

    from ohlora.heads.finetune import DEMO_PRESET, FinetuneConfig, finetune, generate_answers
    from ohlora.heads.tinybase import build_tiny_base
    from ohlora.models import load_causal_lm

    work = Path(args.work)
    timings = {}
    base = args.base
    if base is None:
        t = time.perf_counter()
        base = str(build_tiny_base(args.data, work / "base", size=args.size, steps=args.base_steps, seed=args.seed))
        timings["tiny_base_s"] = round(time.perf_counter() - t, 1)
    preset = {**DEMO_PRESET, **json.loads(args.preset)}
    heads_dir = args.heads
    if heads_dir is None:
        heads_dir = str(work / "heads")
        t = time.perf_counter()
        finetune(FinetuneConfig(head="all", data=args.data, out=heads_dir, base=base, seed=args.seed, **preset))
        timings["four_heads_s"] = round(time.perf_counter() - t, 1)

    rows = load_rows(args.data)
    valid = [r for r in rows if _get(r, "data_type") == "valid"]
    model, tok = load_causal_lm(base, device="cpu")
    model = PeftModel.from_pretrained(model, Path(heads_dir) / config.HEADS[0], adapter_name=config.HEADS[0])
    for head in config.HEADS[1:]:
        model.load_adapter(str(Path(heads_dir) / head), adapter_name=head)

    results = {}
    samples = {}
    for head in config.HEADS:
        model.set_adapter(head)
        pairs = [(text, _get(r, head)) for r in valid if (text := _input_of(r, head)) is not None]
        inputs, targets = [p[0] for p in pairs], [p[1] for p in pairs]
        t = time.perf_counter()
        answers = generate_answers(model, tok, inputs, head, seed=args.seed)
        seconds = time.perf_counter() - t
        judged = [well_formed(head, a, tg) for a, tg in zip(answers, targets)]
        results[head] = {
            "valid_rows": len(inputs),
            "parse_rate": round(sum(ok for ok, _ in judged) / max(1, len(judged)), 4),
            "exact_match": round(sum(eq for _, eq in judged) / max(1, len(judged)), 4),
            "generate_s": round(seconds, 1),
        }
        if head in ("output_message", "summary"):  # another head's format where prose belongs
            other = [formats.parse_expression(a) is not None or formats.parse_memory(a) is not None for a in answers]
            results[head]["other_heads_format"] = round(sum(other) / max(1, len(other)), 4)
        if head == "memory":
            empty = [not formats.normalize(a) for a in answers]
            results[head]["empty_answers"] = round(sum(empty) / max(1, len(empty)), 4)
            results[head]["empty_targets"] = round(sum(not tg for tg in targets) / max(1, len(targets)), 4)
            # A head that always answers empty scores `empty_targets` on "equals target":
            # these say whether it saves anything where the dataset saves something.
            items = [formats.parse_memory_output(a)[1] for a in answers]
            want = [(it, formats.parse_memory(tg)) for it, tg in zip(items, targets) if tg]
            results[head]["nonempty_targets_answered_item"] = round(sum(it is not None for it, _ in want) / max(1, len(want)), 4)
            results[head]["nonempty_targets_same_key"] = round(
                sum(it is not None and t is not None and formats.compact(it.key) == formats.compact(t.key) for it, t in want) / max(1, len(want)), 4
            )
        samples[head] = [{"input": i, "generated": a, "target": tg} for i, a, tg in list(zip(inputs, answers, targets))[:5]]
        print(f"{head:16s} parse {results[head]['parse_rate']:.1%}  exact {results[head]['exact_match']:.1%}  (n={len(inputs)})")

    info = json.loads((Path(base) / "ohlora_tiny_base.json").read_text(encoding="utf-8")) if (Path(base) / "ohlora_tiny_base.json").exists() else {}
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared), torch {torch.__version__}; training with the preset's threads",
        "load_average_at_end": os.getloadavg()[0],
        "data": args.data,
        "base": {k: info.get(k) for k in ("size", "hidden_size", "num_layers", "vocab_size", "steps", "epochs_seen", "final_loss", "seconds")},
        "preset": preset,
        "timings": timings,
        "sampling": "first sample, unconstrained, SPEC §2 temperatures and caps, seed %d" % args.seed,
        "results": results,
        "examples": samples,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    lines = [
        f"# {args.name}",
        "",
        f"Machine: {report['machine']}; load average {report['load_average_at_end']:.1f} at the end.",
        f"Data: `{args.data}`. Base: {report['base']}. Preset: `{json.dumps(preset)}`.",
        f"Build times: {timings or 'given (not built here)'}.",
        "",
        "First sample, unconstrained (SPEC §2 temperatures: 0.6, expression 1.5), valid rows:",
        "",
        "| head | valid rows | parses (reply/summary: passes the SPEC checks) | equals target | prose head wrote a label/memory |",
        "|---|---|---|---|---|",
        *(
            f"| {h} | {r['valid_rows']} | {r['parse_rate']:.1%} | {r['exact_match']:.1%} | "
            f"{format(r['other_heads_format'], '.1%') if 'other_heads_format' in r else '-'} |"
            for h, r in results.items()
        ),
        "",
        *(
            [
                f"Memory head: {m['empty_answers']:.1%} of answers empty ({m['empty_targets']:.1%} of targets are); "
                f"on the rows whose target is an item, {m['nonempty_targets_answered_item']:.1%} answered an item, "
                f"{m['nonempty_targets_same_key']:.1%} with the target's key.",
                "",
            ]
            if (m := results.get("memory"))
            else []
        ),
    ]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines), encoding="utf-8")
    print(json.dumps({"timings": timings, "results": results}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
