"""Load test of the web app on loopback: 8 users x 10 turns at once vs one at a time.

`ohlora serve`'s app (uvicorn, real HTTP on 127.0.0.1) over the real Engine on the tiny
random models. Two ways, same turns, one run:

    concurrent  8 users, each sending its 10 turns one after another, all 8 at once
    serial      the same 8 x 10 turns, one request at a time

For each: turns/s, client-side latency p50/p95, and afterwards, per user, every memory
the engine reported saved is in that user's list (history included) and the list holds
nothing the user did not save (no loss, no cross-user item). Peak RSS of the process.

    .venv/bin/python benchmarks/app_load.py                 # tiny models, built in ~10 s
    .venv/bin/python benchmarks/app_load.py --models DIR    # any MODELS_DIR

Writes benchmarks/results/app_load.json and .md. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


# Ten turns of a user (Korean chat lines, some with facts to remember).
PROMPTS = [
    "로라야 안녕! 오늘 뭐 했어?",
    "나 아이유 진짜 좋아해",
    "내일 친구랑 카페 가기로 했어",
    "요즘 시험 때문에 너무 피곤해 😭",
    "떡볶이 먹고 싶다 ㅋㅋ",
    "나 강아지 키워, 이름은 초코야",
    "주말에 부산 여행 가!",
    "롤 티어 골드 찍었다",
    "오늘 비 와서 우산 챙겼어 ☔",
    "고마워 로라야, 내일 또 얘기하자",
]


def build_tiny_models(folder: Path) -> Path:
    from ohlora.engine.models_dir import build_random_models_dir
    from ohlora.tiny import save_tiny_causal_lm, save_tiny_roberta
    from tests.conftest import KOREAN_TEXTS as TEXTS  # the test suite's tiny models, same text

    lm = save_tiny_causal_lm(folder / "lm", TEXTS, vocab_size=600, hidden_size=32, num_layers=2, num_heads=2)
    encoder = save_tiny_roberta(folder / "encoder", TEXTS, vocab_size=300)
    return build_random_models_dir(folder / "models", lm, encoder, rank=4)


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def run_way(url: str, users: list[str], turns: int, concurrent: bool) -> dict:
    latencies: list[float] = []
    server_totals: list[float] = []
    saved: dict[str, list[str]] = {u: [] for u in users}
    errors: list[str] = []
    lock = threading.Lock()

    def one_user(user: str, client: httpx.Client, t: int) -> None:
        t0 = time.perf_counter()
        r = client.post("/api/chat", json={"user": user, "message": PROMPTS[t % len(PROMPTS)]})
        dt = time.perf_counter() - t0
        with lock:
            if r.status_code != 200:
                errors.append(f"{user} turn {t}: HTTP {r.status_code} {r.text[:200]}")
                return
            out = r.json()
            latencies.append(dt)
            server_totals.append(out["timings"].get("total", float("nan")))
            if out["memory_saved"]:
                saved[user].append(out["memory_saved"])

    start = time.perf_counter()
    if concurrent:
        def user_loop(user):
            with httpx.Client(base_url=url, timeout=600) as client:
                for t in range(turns):
                    one_user(user, client, t)

        threads = [threading.Thread(target=user_loop, args=(u,)) for u in users]  # bounded: one request per user in flight
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    else:
        with httpx.Client(base_url=url, timeout=600) as client:
            for t in range(turns):
                for u in users:
                    one_user(u, client, t)
    wall = time.perf_counter() - start

    # Afterwards: every saved memory present, nothing foreign.
    missing, foreign, listed_total = [], [], 0
    with httpx.Client(base_url=url, timeout=60) as client:
        for u in users:
            listed = [i["text"] for i in client.get(f"/api/memory/{u}", params={"history": "true"}).json()["items"]]
            listed_total += len(listed)
            missing += [f"{u}: {s}" for s in saved[u] if s not in listed]
            foreign += [f"{u}: {s}" for s in listed if s not in saved[u]]
    n = len(latencies)
    return {
        "users": len(users),
        "turns_per_user": turns,
        "turns_ok": n,
        "errors": errors,
        "wall_s": round(wall, 3),
        "turns_per_s": round(n / wall, 3) if wall else None,
        "latency_p50_s": round(percentile(latencies, 0.5), 3) if n else None,
        "latency_p95_s": round(percentile(latencies, 0.95), 3) if n else None,
        "latency_mean_s": round(statistics.fmean(latencies), 3) if n else None,
        "engine_total_p50_s": round(percentile(server_totals, 0.5), 3) if n else None,
        "memories_saved": sum(len(v) for v in saved.values()),
        "memories_listed": listed_total,
        "missing": missing,
        "foreign": foreign,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=None, help="MODELS_DIR (default: tiny random models built into a temp folder)")
    ap.add_argument("--users", type=int, default=8, help="concurrent users (default: 8)")
    ap.add_argument("--turns", type=int, default=10, help="turns per user (default: 10)")
    ap.add_argument("--out", default=str(RESULTS / "app_load"), help="results path without extension")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no progress bars between our figures
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    from ohlora.app.background import serve_in_background
    from ohlora.app.server import create_app
    from ohlora.engine.config import EngineConfig
    from ohlora.engine.engine import Engine

    tmp = Path(tempfile.mkdtemp(prefix="ohlora-app-load-"))
    t0 = time.perf_counter()
    models = Path(args.models) if args.models else build_tiny_models(tmp)
    # reply_candidates=15: the untrained reply head fails the reference checks every
    # time; one batched call of 15 candidates replaces 15 sequential retries (same
    # outcome). The store is a real SQLite file (WAL, fsync per commit), as in serve.
    cfg = EngineConfig(seed=0, reply_candidates=15)
    engine = Engine(models, cfg, store=tmp / "memory.sqlite")
    setup_s = time.perf_counter() - t0
    load_before = os.getloadavg()[0]

    results = {}
    with serve_in_background(create_app(engine)) as url:
        assert url.startswith("http://127.0.0.1:")
        for way, concurrent in (("concurrent", True), ("serial", False)):
            users = [f"{way}-user{i}" for i in range(args.users)]
            print(f"{way}: {args.users} users x {args.turns} turns ...", flush=True)
            results[way] = run_way(url, users, args.turns, concurrent)
            r = results[way]
            print(f"  {r['turns_per_s']} turns/s, p50 {r['latency_p50_s']} s, p95 {r['latency_p95_s']} s, "
                  f"saved {r['memories_saved']}, missing {len(r['missing'])}, foreign {len(r['foreign'])}", flush=True)
    engine.close()

    c, s = results["concurrent"], results["serial"]
    report = {
        "benchmark": "app_load",
        "what": f"{args.users} users x {args.turns} turns through POST /api/chat on 127.0.0.1, "
                "concurrent (all users at once) vs serial (one request at a time)",
        "models": str(args.models or "tiny random (hidden 32, 2 layers, rank-4 random LoRA heads, tiny BERT encoder)"),
        "engine_config": {"seed": cfg.seed, "reply_candidates": cfg.reply_candidates, "pipeline": cfg.pipeline},
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "loadavg_1min_at_start": round(load_before, 2),
        },
        "setup_s": round(setup_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "concurrent": c,
        "serial": s,
        "throughput_ratio_concurrent_over_serial": round(c["turns_per_s"] / s["turns_per_s"], 3),
        "all_memories_present": not c["missing"] and not s["missing"],
        "no_cross_user_items": not c["foreign"] and not s["foreign"],
        "no_errors": not c["errors"] and not s["errors"],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    md = [
        "# app_load: the web app under load (loopback)",
        "",
        f"{report['what']}. Models: {report['models']}; engine {report['engine_config']}.",
        f"Machine: {report['machine']['platform']}, {report['machine']['cpus']} CPUs shared with other jobs "
        f"(1-min load average at start {report['machine']['loadavg_1min_at_start']}), torch {report['machine']['torch']}; "
        "timings are noisy, the ratio is the figure to read.",
        "",
        "| way | turns | turns/s | p50 latency (s) | p95 latency (s) | engine turn p50 (s) | memories saved | missing | cross-user |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for way, r in (("concurrent (8 at once)", c), ("serial (1 at a time)", s)):
        md.append(f"| {way} | {r['turns_ok']} | {r['turns_per_s']} | {r['latency_p50_s']} | {r['latency_p95_s']} | "
                  f"{r['engine_total_p50_s']} | {r['memories_saved']} | {len(r['missing'])} | {len(r['foreign'])} |")
    md += [
        "",
        f"Throughput ratio concurrent / serial: **{report['throughput_ratio_concurrent_over_serial']}**. "
        f"Peak RSS {report['peak_rss_mb']} MB (server and client in one process). "
        f"All saved memories present: **{report['all_memories_present']}**; no cross-user item: "
        f"**{report['no_cross_user_items']}**; no errors: **{report['no_errors']}**.",
        "",
        "The engine shares one model under one lock (peft's mixed-batch adapters hook the shared layers "
        "during a `generate`), so concurrent users overlap only outside generation (HTTP, tokenising, "
        "retrieval, the store); latency under concurrency is mostly waiting for the model.",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(md), encoding="utf-8")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    ok = report["all_memories_present"] and report["no_cross_user_items"] and report["no_errors"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
