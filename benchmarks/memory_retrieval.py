"""Memory retrieval cost: stored item embeddings vs re-encoding every item, one run.

For 10 / 100 / 1,000 / 2,000 / 10,000 stored items, the latency of scoring one prompt:
- reference way: encode every item and the prompt for each prompt (SPEC §5);
- stored, new process: a fresh `Retriever` reading item vectors from the SQLite store
  (what `ohlora memory pick` pays on its second run) + one pass for the prompt;
- stored, warm: the same `Retriever` again (what the chat pays on each turn).
Also encoder calls and texts encoded per prompt, and peak memory (tracemalloc: Python
and numpy allocations; torch's own buffers are not traced, so ru_maxrss is given too).

    .venv/bin/python benchmarks/memory_retrieval.py [--sizes 10,100,1000,2000,10000]

Results: benchmarks/results/memory_retrieval.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
RESULTS = ROOT / "benchmarks" / "results"

KEYS = ["오늘 일정", "내일 일정", "주말 일정", "좋아하는 음식", "좋아하는 가수", "롤 티어", "좋아하는 게임", "사는 곳", "반려동물", "취미", "시험 일정", "상태"]
VALUES = ["친구랑 카페", "치과 예약", "떡볶이", "아이유", "골드", "마인크래프트", "부산", "고양이", "기타 연주", "기말고사", "피곤함", "캠핑"]
PROMPTS = ["로라야 오늘 뭐 하고 놀까?", "배고픈데 뭐 먹지", "요즘 무슨 노래 들어?", "랭겜 또 졌어 ㅠㅠ", "주말에 비 온대"]


def make_items(n: int) -> list[str]:
    """n distinct, realistic-length memory items."""
    return [f"[{KEYS[i % len(KEYS)]}: {VALUES[(i // len(KEYS)) % len(VALUES)]} {i}]" for i in range(n)]


class Counting:
    """Wraps an encoder to count the texts it encodes."""

    def __init__(self, encoder):
        self.encoder, self.texts = encoder, 0

    def encode(self, texts, **kw):
        self.texts += len(texts)
        return self.encoder.encode(texts, **kw)

    def __getitem__(self, i):
        return self.encoder[i]

    def parameters(self):
        return self.encoder.parameters()


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def traced_peak(fn) -> int:
    """Peak traced bytes of a second run; tracing slows every Python allocation, so it
    is never on while timing."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000,2000,10000")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: on a shared, oversubscribed CPU, 2 threads spin-waiting on each other ran 4x slower for training and 30x slower for one prompt)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    import numpy as np
    import torch

    from ohlora.memory.retrieval import Retriever
    from ohlora.memory.store import MemoryStore
    from ohlora.models import load_sentence_encoder

    enc = Counting(load_sentence_encoder("bundled"))
    enc.encode(["warm-up"], convert_to_numpy=True)  # first call pays one-off setup
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(s) for s in a.sizes.split(",")]:
            items = make_items(n)
            db = Path(tmp) / f"store{n}.sqlite"

            # reference way: everything re-encoded for one prompt
            def reference():
                e = enc.encode(items + [PROMPTS[0]], batch_size=64, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
                return e[:-1] @ e[-1]

            enc.texts = 0
            ref_scores, ref_s = timed(reference)
            ref_texts = enc.texts
            ref_peak = traced_peak(reference) if n <= 2000 else None  # a second 10k re-encode costs minutes

            # first prompt with a store: fills the cache (one-off per item)
            with MemoryStore(db) as store:
                r = Retriever(enc, store, model_id="bundled-bench")
                enc.texts = 0
                _, fill_s = timed(lambda: r.score(items, PROMPTS[0]))
            with MemoryStore(db) as store:
                fresh = Retriever(enc, store, model_id="bundled-bench")
                enc.texts = 0
                scores, new_s = timed(lambda: fresh.score(items, PROMPTS[0]))
                new_calls, new_texts = fresh.encode_calls, enc.texts
                warm = []
                for p in PROMPTS:
                    enc.texts = 0
                    before = fresh.encode_calls
                    _, dt = timed(lambda: fresh.score(items, p))
                    warm.append(dt)
                    assert fresh.encode_calls - before == 1 and enc.texts == 1
                warm_peak = traced_peak(lambda: fresh.score(items, PROMPTS[1]))
                new_peak = traced_peak(lambda: Retriever(enc, store, model_id="bundled-bench").score(items, PROMPTS[0]))
            np.testing.assert_allclose(scores, ref_scores, atol=1e-4)  # same answers both ways
            warm_s = statistics.median(warm)
            row = {
                "items": n,
                "reference_s": round(ref_s, 4),
                "reference_texts_encoded": ref_texts,
                "first_fill_s": round(fill_s, 4),
                "stored_new_process_s": round(new_s, 4),
                "stored_new_process_encoder_calls": new_calls,
                "stored_new_process_texts_encoded": new_texts,
                "stored_warm_s": round(warm_s, 4),
                "speedup_new_process": round(ref_s / new_s, 1),
                "speedup_warm": round(ref_s / warm_s, 1),
                "peak_tracemalloc_mb": {"reference": round(ref_peak / 2**20, 2) if ref_peak is not None else None, "stored_new_process": round(new_peak / 2**20, 2), "stored_warm": round(warm_peak / 2**20, 2)},
            }
            rows.append(row)
            print(json.dumps(row, ensure_ascii=False), flush=True)
    res = {
        "machine": {"cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_avg_at_end": os.getloadavg()},
        "encoder": "bundled (all-MiniLM-L6-v2), CPU",
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "memory_retrieval.json").write_text(json.dumps(res, indent=1, ensure_ascii=False))
    md = [
        "# memory_retrieval: stored item embeddings vs re-encoding every item",
        "",
        f"Encoder: {res['encoder']}; {res['machine']['cores']} shared cores (load average at end {res['machine']['load_avg_at_end'][0]:.1f}); "
        f"process peak RSS {res['ru_maxrss_mb']} MB.",
        "",
        "| items | re-encode all (reference) | texts encoded | stored, new process | stored, warm | encoder passes (stored) | speed-up new process | speed-up warm | peak traced MB ref / stored |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['items']:,} | {r['reference_s'] * 1000:.0f} ms | {r['reference_texts_encoded']:,} | {r['stored_new_process_s'] * 1000:.1f} ms | "
            f"{r['stored_warm_s'] * 1000:.1f} ms | {r['stored_new_process_encoder_calls']} ({r['stored_new_process_texts_encoded']} text) | "
            f"{r['speedup_new_process']}x | {r['speedup_warm']}x | {r['peak_tracemalloc_mb']['reference'] if r['peak_tracemalloc_mb']['reference'] is not None else 'not re-run'} / {r['peak_tracemalloc_mb']['stored_new_process']} |"
        )
    (RESULTS / "memory_retrieval.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
