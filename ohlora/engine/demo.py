"""`ohlora demo`: build (or reuse) the offline stand-ins, then a scripted conversation.

The stand-ins go into one cached MODELS_DIR (default ~/.cache/ohlora/demo) that
`ohlora chat --models` and `ohlora serve --models` accept as is:

    base/             a small GPT-NeoX pre-trained on data/persona/ohlora.csv (ohlora tiny-base)
    adapters/<head>/  the four LoRA heads fine-tuned with DEMO_PRESET (ohlora finetune --demo)
    memory_encoder/   the `kiwi` encoder (Kiwi's Korean morpheme vectors, docs/memory.md)
                      trained on pairs made from data/memory/train_combs.txt, kiwi as teacher

Each part is built into a temporary folder and moved into place when complete, with a
stamp of what it was built from; a part whose stamp matches is reused, so a second run
only loads models and chats (under a minute). --rebuild builds everything again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ohlora import config
from ohlora.engine.config import DEMO_CACHE
from ohlora.errors import DataError, OhloraError

STAMP = ".ohlora-demo.json"
DEMO_USER = "민지"


def repo_data_dir() -> Path:
    """The data/ folder: $OHLORA_DATA if set; else the repository's, beside the package
    (a checkout or an editable install); else the copy a wheel install puts in
    <prefix>/share/ohlora/data (pyproject's data-files)."""
    env = os.environ.get("OHLORA_DATA")
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parents[2] / "data"
    if (checkout / "persona").is_dir():
        return checkout
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        shared = Path(prefix) / "share" / "ohlora" / "data"
        if (shared / "persona").is_dir():
            return shared
    return checkout  # missing: the demo's own check names it and the --data flag


@dataclass
class DemoConfig:
    cache: str = field(default=str(DEMO_CACHE), metadata={"help": "MODELS_DIR to build into / reuse"})
    data: str = field(default="", metadata={"help": "data/ folder (default: $OHLORA_DATA, else the checkout's beside the package, else a wheel install's <prefix>/share/ohlora/data)"})
    rebuild: bool = field(default=False, metadata={"help": "rebuild every part"})
    seed: int = field(default=0, metadata={"help": "build and conversation seed"})
    # SPEC §1.2 gives 0.95 for chat and 0.6 for the stand-alone retrieval tool. The demo's
    # kiwi encoder, trained for ~10 s on 126 combination lines, gives the script's matching
    # memories 0.95-0.98 and unrelated ones at most ~0.2, but SPEC's 0.95 would sit on the
    # edge of that; the demo chats at the tool's 0.6 and says so. (The MiniLM it replaced
    # gave a matching item ~0.4 and needed 0.35.)
    threshold: float = field(default=0.6, metadata={"help": "chat retrieval threshold in the demo"})
    base_size: str = field(default="small", metadata={"help": "tiny-base size (ohlora.heads.tinybase.SIZES)"})
    encoder_epochs: int = field(default=10, metadata={"help": "memory-encoder epochs (block mode; SPEC §4: 10)"})

    def data_dir(self) -> Path:
        return Path(self.data).expanduser() if self.data else repo_data_dir()


# The scripted conversation: what each turn shows.
# What 민지 told 오로라 in an earlier session (loaded into the demo's fresh store), and
# the scripted turns. The prompts follow the persona and combination data the stand-ins
# were trained on, so the small models have a fair chance to show each step.
EARLIER: tuple[str, ...] = ("[좋아하는 음식: 치킨]", "[오늘 일정: 친구랑 카페]")
# The fact comes first: the memory head reads the final input, and after a turn the
# stand-in's summary (word salad) precedes the prompt, which it reads poorly (20 of 20
# samples empty for this prompt after turn 1's summary, vs [상태: 피곤함] 15 of 20 alone).
SCRIPT: tuple[tuple[str, str], ...] = (
    ("사용자에 대한 사실 (기억 저장)", "오늘 너무 피곤하다"),
    ("이어지는 질문 (지난 턴 요약 사용)", "너는 뭐 좋아해?"),
    ("예전에 저장된 기억 검색", "오늘 치킨 시켜 먹을까?"),
    ("48토큰 넘는 입력 (거절)", "로라야 " + "내가 오늘 있었던 일을 처음부터 끝까지 아주 자세하게 말해줄게 " * 4),
    ("이모지", "오늘 기분 최고야 😆🎉"),
)


# --- building ---------------------------------------------------------------------------------
def _digest(*paths: Path, extra: dict | None = None) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    h.update(json.dumps(extra or {}, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def _code(*modules: str) -> dict[str, str]:
    """Digests of the builder modules' source: a part is rebuilt when its recipe changes,
    not only its data (e.g. a new DEMO_PRESET or tiny-base pre-training)."""
    import importlib

    out = {}
    for name in modules:
        path = Path(importlib.import_module(name).__file__)
        out[name] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return out


def _fresh(folder: Path, digest: str) -> bool:
    try:
        return json.loads((folder / STAMP).read_text(encoding="utf-8")).get("digest") == digest
    except (OSError, ValueError):
        return False


def _build_part(folder: Path, digest: str, build, say) -> None:
    """Build into a temp folder beside `folder`, stamp it, then swap it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".{folder.name}.*"):  # left by a build that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        t = time.perf_counter()
        build(tmp)
        (tmp / STAMP).write_text(json.dumps({"digest": digest, "built_at": time.time()}), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        say(f"  ✓ {folder.name} ({time.perf_counter() - t:.0f}s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_standins(cfg: DemoConfig, say=print) -> Path:
    """Build (or reuse) base/, adapters/ and memory_encoder/ in cfg.cache; returns the folder."""
    cache = Path(cfg.cache).expanduser()
    data = cfg.data_dir()
    persona = data / "persona" / "ohlora.csv"
    combos = data / "memory" / "train_combs.txt"
    for need in (persona, combos):
        if not need.exists():
            raise DataError(need, None, "missing; pass the repository's data/ folder with --data")
    cache.mkdir(parents=True, exist_ok=True)

    base_digest = _digest(persona, extra={"size": cfg.base_size, "seed": cfg.seed,
                                          "code": _code("ohlora.heads.tinybase", "ohlora.tiny", "ohlora.formats")})
    base = cache / "base"
    if cfg.rebuild or not _fresh(base, base_digest):
        from ohlora.heads.tinybase import build_tiny_base

        say(f"[1/3] tiny base model from {persona} (size {cfg.base_size}) …")
        _build_part(base, base_digest, lambda out: build_tiny_base(persona, out, size=cfg.base_size, seed=cfg.seed), say)
    else:
        say("[1/3] tiny base model: cached")

    from ohlora.heads.finetune import DEMO_PRESET, FinetuneConfig, finetune

    adapters_digest = _digest(persona, extra={"base": base_digest, "preset": DEMO_PRESET, "seed": cfg.seed,
                                              "code": _code("ohlora.heads.finetune", "ohlora.heads.dataset", "ohlora.heads.lora")})
    adapters = cache / "adapters"
    if cfg.rebuild or not _fresh(adapters, adapters_digest):
        say(f"[2/3] four LoRA heads ({', '.join(config.HEADS)}) with DEMO_PRESET {DEMO_PRESET} …")

        def build_adapters(out: Path) -> None:
            ft = FinetuneConfig(head="all", data=str(persona), out=str(out), base=str(base), seed=cfg.seed, **DEMO_PRESET)
            finetune(ft)

        _build_part(adapters, adapters_digest, build_adapters, say)
    else:
        say("[2/3] LoRA heads: cached")

    enc_digest = _digest(combos, extra={"epochs": cfg.encoder_epochs, "seed": cfg.seed, "base": config.KIWI,
                                        "code": _code("ohlora.memory.train", "ohlora.memory.pairs",
                                                      "ohlora.memory.kiwi_encoder", "ohlora.memory.morphemes")})
    encoder = cache / "memory_encoder"
    if cfg.rebuild or not _fresh(encoder, enc_digest):
        say(f"[3/3] memory encoder: kiwi (Korean morpheme vectors) on pairs from {combos} ({cfg.encoder_epochs} epochs, block mode) …")
        _build_part(encoder, enc_digest, lambda out: _train_encoder(combos, out, cfg), say)
    else:
        say("[3/3] memory encoder: cached")
    return cache


def _train_encoder(combos_path: Path, out: Path, cfg: DemoConfig) -> None:
    from ohlora.memory.pairs import Pair, make_pairs, read_combinations
    from ohlora.memory.train import TrainArgs, train
    from ohlora.models import load_sentence_encoder

    combos = read_combinations(combos_path)
    # The untrained kiwi encoder scores the key pairs (the reference's teacher, klue/roberta-base,
    # needs the hub); all five columns kept, so training uses the lines view.
    teacher = load_sentence_encoder(config.KIWI, flag="--teacher")
    rows = make_pairs(combos, teacher)
    pairs = [Pair(m0, p1, float(s), 0, p0, m1) for m0, p0, m1, p1, s in rows]
    args = TrainArgs(mode="block", epochs=cfg.encoder_epochs, seed=cfg.seed)
    # train() saves atomically into its own folder; the part's temp folder is ours.
    train(None, out / "model", base=config.KIWI, args=args, pairs=pairs, progress=True)
    for p in (out / "model").iterdir():
        os.replace(p, out / p.name)
    (out / "model").rmdir()


# --- the conversation ---------------------------------------------------------------------------
def run_conversation(models_dir: Path, cfg: DemoConfig, console=None) -> list:
    """Run SCRIPT on a fresh store; print each turn; return the TurnResults."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ohlora.engine.config import EngineConfig
    from ohlora.engine.engine import Engine

    console = console or Console()
    store = Path(tempfile.mkdtemp(prefix="ohlora-demo-")) / "memory.sqlite"
    engine = Engine(models_dir, EngineConfig(seed=cfg.seed, retrieval_threshold=cfg.threshold), store=str(store))
    console.print(
        f"\n[bold]대화 데모[/] (user {DEMO_USER}; retrieval threshold {cfg.threshold} instead of SPEC §1.2's "
        f"{config.ChatConfig.retrieval_threshold}: the stand-in encoder, trained for seconds, gives a matching memory "
        "0.95-0.98 and 0.95 would sit on that edge; the demo uses `ohlora memory pick`'s 0.6; --threshold changes it)",
        highlight=False,
    )
    for item in EARLIER:
        engine.store.add(DEMO_USER, item)
    console.print(f"{DEMO_USER}'s memory from an earlier session: {', '.join(EARLIER)}\n", highlight=False)
    results = []
    try:
        for i, (what, prompt) in enumerate(SCRIPT, start=1):
            r = engine.turn(DEMO_USER, prompt)
            results.append(r)
            t = Table(show_header=False, box=None, pad_edge=False)
            t.add_column(style="dim", no_wrap=True)
            t.add_column()
            t.add_row("민지", escape(r.prompt if len(r.prompt) < 80 else r.prompt[:77] + "…"))
            t.add_row("오로라", f"[bold magenta]{escape(r.answer)}[/]")
            if r.refused:
                t.add_row("", "[yellow]거절됨 (SPEC §1.1) — 이번 턴은 여기서 끝[/]")
            else:
                used = f"{r.memory_used} (cos {r.memory_score:.2f})" if r.memory_used else "—"
                saved = r.memory_saved or "—"
                if r.memory_replaced:
                    saved += f" (replaced {r.memory_replaced})"
                e = r.expression
                t.add_row("memory used", escape(used))
                t.add_row("memory saved", escape(saved))
                t.add_row("summary", escape(r.summary or "—"))
                t.add_row("expression", escape(f"(눈 {e['eyes']}, 입 {e['mouth']}, 고개 돌림 {e['pose']})"))
                t.add_row("scores", ", ".join(f"{k} {v:+.2f}" for k, v in r.scores.items()))
                t.add_row("generate", f"{r.generate_calls} calls, {r.timings.get('total', 0):.2f}s")
            console.rule(f"[bold]{i}. {what}", align="left")
            console.print(t)
        items = engine.memories(DEMO_USER, include_history=True)
        console.rule("[bold]민지's memory", align="left")
        for rec in items:
            console.print(("• " if rec.active else "× ") + escape(rec.text), highlight=False)
        if not items:
            console.print("(nothing saved)")
    finally:
        engine.close()
        shutil.rmtree(store.parent, ignore_errors=True)
    return results


def run_demo(cfg: DemoConfig) -> int:
    from rich.console import Console

    import torch

    console = Console()
    if not torch.cuda.is_available():
        # The stand-ins are small: one intra-op thread is the fastest on a shared CPU
        # (a second one spins, 1.7-3.4x slower a step; benchmarks/results/finetune_*)
        # and close to two on an idle one.
        torch.set_num_threads(1)
    t = time.perf_counter()
    try:
        models = build_standins(cfg, say=lambda s: console.print(s, highlight=False))
    except OhloraError:
        raise
    built = time.perf_counter() - t
    run_conversation(models, cfg, console)
    console.print(
        f"\nmodels: [bold]{models}[/] (built/checked in {built:.0f}s, total {time.perf_counter() - t:.0f}s)\n"
        f"chat with them: [bold]ohlora chat --models {models}[/]   web: [bold]ohlora serve --models {models}[/]",
        highlight=False,
    )
    return 0


__all__ = ["EARLIER", "DemoConfig", "SCRIPT", "build_standins", "run_conversation", "run_demo"]
