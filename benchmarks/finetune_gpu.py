"""Fine-tuning a head at polyglot-ko-1.3b's shapes on a GPU: peak memory and speed, MEASURED.

docs/finetune.md ("What a real run needs") estimated them from the shapes: about 5 GB of GPU
memory at batch 4, rank 128, 128 tokens (6.5 GB at 256). This measures them, through
ohlora's own fine-tuning code, on a model of the real config with random weights (the
weights cannot be fetched here; their values change neither memory nor compute):

1. `finetune` itself (ohlora.heads.finetune, the `ohlora finetune` command) trains one head
   (`--head`, 2 epochs, SPEC §2 LoRA: rank 128, alpha 16, batch 4) on
   data/persona/ohlora.csv from a base folder of the config. A byte-level BPE trained on the
   data stands in for polyglot-ko's tokenizer; its tokens per text are reported, since
   activations grow with them.
2. A step sweep: the same training step (the same peft config from ohlora.heads.lora,
   AdamW, gradient clipping) on random batches of 4 and 16 texts × 64, 128 and 256 tokens,
   beside the estimate (batch 4). Batch 16 asks whether a step is bound by arithmetic (its
   time grows with the tokens) or by kernel launches and Python (it does not).

Peak memory is torch's peak allocation (tensors) and reservation (what its allocator held);
the CUDA context (outside torch's allocator) is measured once and reported apart.

    python benchmarks/finetune_gpu.py                                  # on a GPU, ~2 min
    .venv/bin/python benchmarks/finetune_gpu.py --config tiny --device cpu --out-dir /tmp/ftg   # a CPU smoke run

Results: benchmarks/results/finetune_gpu.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import engine_memory as em  # noqa: E402  (CONFIGS: polyglot-ko-1.3b's exact config)

GB = 1024**3
# docs/finetune.md's estimate (GB) at batch 4, rank 128: weights 2.7 + LoRA state 0.4 + activations
# (1.0 at 128 tokens, 2.2 at 256) + logits 0.2 (×2 at 256), context and slack 0.5-1 on top.
ESTIMATE = {128: 2.7 + 0.4 + 1.0 + 0.2, 256: 2.7 + 0.4 + 2.2 + 0.4}


def data_texts(data: str) -> list[str]:
    from ohlora import config
    from ohlora.heads.dataset import head_examples, load_rows

    rows = load_rows(data)
    return [t for h in config.HEADS for e in head_examples(rows, h, "train") for t in (e["prompt"], e["completion"])]


def build_base(folder: Path, name: str, data: str, device: str, vocab: int) -> dict:
    """A base folder: the config's GPT-NeoX with random weights (engine_memory.build, made on
    `device` in the config's dtype: no host copy) and a byte-level BPE trained on the data,
    its vocabulary capped at the config's (the tiny config has 600)."""
    import torch

    from ohlora.tiny import train_bpe_tokenizer

    tok = train_bpe_tokenizer(data_texts(data), vocab_size=min(vocab, em.CONFIGS[name]["vocab_size"]))
    with torch.device(device):
        model = em.build(name, adapters=0)
    model.config.bos_token_id = model.config.eos_token_id = model.config.pad_token_id = tok.eos_token_id
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return {"params": sum(p.numel() for p in model.parameters()), "tokenizer_vocab": len(tok), "model_vocab": model.config.vocab_size}


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peaks(device: str) -> dict:
    import torch

    if not device.startswith("cuda"):
        return {}
    sync(device)
    return {"peak_allocated_gb": torch.cuda.max_memory_allocated() / GB, "peak_reserved_gb": torch.cuda.max_memory_reserved() / GB}


def reset(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def run_finetune(base: Path, data: str, head: str, device: str, out: Path) -> dict:
    """`finetune` as the command runs it: one head, 2 epochs, SPEC §2 defaults."""
    from ohlora.heads.dataset import head_examples, load_rows, tokenize_example
    from ohlora.heads.finetune import FinetuneConfig, finetune
    from ohlora.models import load_tokenizer

    cfg = FinetuneConfig(head=head, data=data, out=str(out), base=str(base), epochs=2, generate_valid=False, device=device)
    reset(device)
    start = time.perf_counter()
    finetune(cfg)
    seconds = time.perf_counter() - start
    memory = peaks(device)
    with open(out / head / "train_log.csv", encoding="utf-8", newline="") as f:
        log = list(csv.DictReader(f))
    tok = load_tokenizer(str(base))
    lengths = [len(tokenize_example(tok, e["prompt"], e["completion"], cfg.max_length)["input_ids"])
               for e in head_examples(load_rows(data), head, "train")]
    epoch_s = float(log[-1]["time"])  # the second epoch: no first-step set-up in it
    return {"head": head, "batch_size": cfg.batch_size, "rank": cfg.rank, "texts": len(lengths),
            "tokens_mean": statistics.mean(lengths), "tokens_max": max(lengths), "epoch_seconds": [float(r["time"]) for r in log],
            "tokens_per_s": sum(lengths) / epoch_s, "wall_s": seconds, "final_loss": float(log[-1]["loss"]), **memory}


def step_sweep(base: Path, device: str, lengths: list[int], batches: list[int], steps: int) -> tuple[list[dict], int]:
    """The training step finetune runs, on random batches of fixed size and length."""
    import torch
    from peft import get_peft_model

    from ohlora.heads.finetune import FinetuneConfig
    from ohlora.heads.lora import lora_config
    from ohlora.models import load_causal_lm

    reset(device)
    model, tok = load_causal_lm(str(base), device=device)
    cfg = FinetuneConfig()
    peft_model = get_peft_model(model, lora_config(model, cfg.lora()))
    peft_model.train()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator(device="cpu").manual_seed(0)
    rows = []
    for batch, s in ((b, s) for b in batches for s in lengths):
        reset(device)

        def step():
            ids = torch.randint(0, len(tok), (batch, s), generator=gen).to(device)
            out = peft_model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        for _ in range(2):  # warm-up: kernels chosen, optimizer state made
            step()
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        ms = 1000 * (time.perf_counter() - start) / steps
        rows.append({"batch": batch, "tokens": s, "ms_per_step": ms, "tokens_per_s": batch * s / ms * 1000,
                     "estimate_gb": ESTIMATE.get(s) if batch == 4 else None, **peaks(device)})
    return rows, sum(p.numel() for p in params)  # the model goes with this frame


def context_gb(device: str) -> float | None:
    """GPU memory in use that torch's allocator does not hold (the CUDA context, cuBLAS workspaces)."""
    import torch

    if not device.startswith("cuda"):
        return None
    free, total = torch.cuda.mem_get_info()
    return (total - free - torch.cuda.memory_reserved()) / GB


def write_md(res: dict, folder: Path) -> None:
    ft, lines = res["finetune"], []
    gpu = ft.get("peak_allocated_gb") is not None
    lines += [f"# finetune_gpu: one head fine-tuned at {res['config']}'s shapes, measured", "",
              f"Machine: {res['machine']}, torch {res['torch']} (transformers {res['transformers']}, peft {res['peft']}). "
              f"Model: {res['config']}'s config, random weights ({res['base']['params'] / 1e9:.2f} B parameters), {res['dtype']}; "
              f"LoRA rank {ft['rank']} on `query_key_value` ({res['trainable'] / 1e6:.1f} M trainable), AdamW, batch {ft['batch_size']}. "
              f"Runtime {res['runtime_s']:.0f} s.", "",
              "## `finetune`, as the command runs it", "",
              "| head | texts | tokens / text (mean, max) | epoch 1, 2 (s) | tokens / s | peak allocated (GB) | peak reserved (GB) |",
              "|---|---|---|---|---|---|---|",
              f"| {ft['head']} | {ft['texts']} | {ft['tokens_mean']:.0f}, {ft['tokens_max']} | "
              f"{', '.join(f'{x:.1f}' for x in ft['epoch_seconds'])} | {ft['tokens_per_s']:,.0f} | "
              + (f"{ft['peak_allocated_gb']:.2f} | {ft['peak_reserved_gb']:.2f} |" if gpu else "– | – |"), "",
              f"Tokens are the stand-in tokenizer's (byte-level BPE trained on the data, {res['base']['tokenizer_vocab']} tokens); "
              "polyglot-ko's own may cut the same texts into more or fewer.", "",
              "## The training step at fixed lengths, beside docs/finetune.md's estimate", "",
              "| batch × tokens | ms / step | tokens / s | peak allocated (GB) | peak reserved (GB) | estimate, without context (GB) |",
              "|---|---|---|---|---|---|"]
    for r in res["sweep"]:
        mem = f"{r['peak_allocated_gb']:.2f} | {r['peak_reserved_gb']:.2f}" if gpu else "– | –"
        est = f"{r['estimate_gb']:.1f}" if r["estimate_gb"] else "–"
        lines.append(f"| {r['batch']} × {r['tokens']} | {r['ms_per_step']:.0f} | {r['tokens_per_s']:,.0f} | {mem} | {est} |")
    if res["context_gb"] is not None:
        lines += ["", f"CUDA context and workspaces outside torch's allocator: {res['context_gb']:.2f} GB (add it to a peak for the whole process)."]
    (folder / "finetune_gpu.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="polyglot-ko-1.3b", choices=sorted(em.CONFIGS))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--data", default=str(ROOT / "data" / "persona" / "ohlora.csv"))
    ap.add_argument("--head", default="output_message", help="the head `finetune` trains (the reply head has the longest texts)")
    ap.add_argument("--vocab", type=int, default=8000, help="stand-in tokenizer's BPE vocabulary")
    ap.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--batches", type=int, nargs="+", default=[4, 16],
                    help="sweep batch sizes: 4 is SPEC §2's; a larger one shows whether a step is bound by arithmetic or by launches")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per length in the sweep")
    ap.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    a = ap.parse_args()
    import peft
    import torch
    import transformers

    t0 = time.perf_counter()
    out_dir = Path(a.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        info = build_base(base, a.config, a.data, a.device, a.vocab)
        reset(a.device)
        ft = run_finetune(base, a.data, a.head, a.device, Path(tmp) / "heads")
        sweep, trainable = step_sweep(base, a.device, a.lengths, a.batches, a.steps)
        reset(a.device)
        ctx = context_gb(a.device)
    machine = torch.cuda.get_device_name(0) if a.device.startswith("cuda") else f"{platform.machine()} CPU"
    res = {"config": a.config, "dtype": em.CONFIGS[a.config]["dtype"] if a.device.startswith("cuda") else "float32",
           "machine": machine, "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
           "base": info, "trainable": trainable, "finetune": ft, "sweep": sweep, "context_gb": ctx, "runtime_s": time.perf_counter() - t0}
    (out_dir / "finetune_gpu.json").write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_md(res, out_dir)
    print((out_dir / "finetune_gpu.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
