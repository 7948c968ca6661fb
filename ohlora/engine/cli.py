"""`ohlora chat` and `ohlora demo` (argparse only here; models load in the handlers)."""

from __future__ import annotations

import argparse
import sys

from ohlora.engine.config import EngineConfig

_CFG = EngineConfig()


def _add_engine_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models",
        default=None,
        help="MODELS_DIR holding base/, adapters/<head>/, memory_encoder/ (docs/engine.md; "
        "default: $OHLORA_MODELS, else the demo cache ~/.cache/ohlora/demo)",
    )
    p.add_argument("--threshold", type=float, default=_CFG.retrieval_threshold,
                   help=f"cosine a memory needs to be used (SPEC §1.2; default {_CFG.retrieval_threshold})")
    p.add_argument("--seed", type=int, default=_CFG.seed, help="sampling seed, for reproducible answers (default: random)")
    p.add_argument("--pipeline", choices=("batched", "reference"), default=_CFG.pipeline,
                   help="batched: 2 generate calls a turn, constrained heads (default); reference: SPEC §2's four sequential heads with retries")


def register(subparsers) -> None:
    """Add `chat` and `demo` to the `ohlora` parser."""
    c = subparsers.add_parser(
        "chat",
        help="chat with 오로라 in the terminal (or pipe prompts in, one per line)",
        description="A terminal chat with 오로라: answer, memory used/saved and expression per turn. "
        "Commands: /memory, /forget KEY, /summary, /reset, /quit. With stdin not a terminal, "
        "reads one prompt per line and prints one line per answer.",
    )
    c.add_argument("--user", default=None, help="whose memory and summary to use (default: your login name)")
    _add_engine_flags(c)
    c.add_argument("--store", default=None, help="memory store file (default: MODELS_DIR/memory.sqlite)")
    c.add_argument("--json", action="store_true", help="piped mode: one JSON object (the whole turn) per line")
    c.set_defaults(func=_chat)

    d = subparsers.add_parser(
        "demo",
        help="build the offline stand-in models (cached) and run a scripted conversation",
        description="Builds, or reuses from the cache, a tiny base model, the four LoRA heads and a memory "
        "encoder from this repository's data, then runs a scripted conversation showing each turn's "
        "answer, memory, summary and expression. The cache is a MODELS_DIR that `ohlora chat --models` "
        "and `ohlora serve --models` accept.",
    )
    d.add_argument("--cache", default=None, help="folder to build into / reuse (default: ~/.cache/ohlora/demo)")
    d.add_argument("--rebuild", action="store_true", help="rebuild every part even if cached")
    d.add_argument("--data", default=None, help="repository data/ folder (default: the one beside the installed package)")
    d.add_argument("--seed", type=int, default=0, help="seed for building and for the conversation (default: 0)")
    d.add_argument("--threshold", type=float, default=None,
                   help="chat retrieval threshold for the scripted conversation (default: the demo's, printed)")
    d.set_defaults(func=_demo)


def _login_name() -> str:
    import getpass

    try:
        return getpass.getuser() or "user"
    except Exception:
        return "user"


def _quiet() -> None:
    """Library deprecation warnings would break the chat's one-line-per-answer output."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")


def _chat(args) -> int:
    from ohlora.engine.chat import run_piped, run_terminal

    _quiet()
    from ohlora.engine.engine import Engine

    cfg = EngineConfig(retrieval_threshold=args.threshold, seed=args.seed, pipeline=args.pipeline)
    engine = Engine(args.models, cfg, store=args.store)
    user = args.user or _login_name()
    try:
        if sys.stdin.isatty() and not args.json:
            return run_terminal(engine, user)
        return run_piped(engine, user, sys.stdin, sys.stdout, as_json=args.json)
    finally:
        engine.close()


def _demo(args) -> int:
    from ohlora.engine.demo import DemoConfig, run_demo

    _quiet()
    cfg = DemoConfig(rebuild=args.rebuild, seed=args.seed)
    if args.cache:
        cfg.cache = args.cache
    if args.data:
        cfg.data = args.data
    if args.threshold is not None:
        cfg.threshold = args.threshold
    return run_demo(cfg)
