"""The one `ohlora` command. Each concept registers its own subcommands from its own
`cli` module (argparse only, no heavy imports), so `ohlora --help` is instant and each
parser lives beside the code it drives.

    ohlora memory make-pairs|train|eval|pick   (ohlora/memory/cli.py)
    ohlora data check|stats                    (ohlora/data/cli.py)
    ohlora finetune | tiny-base                (ohlora/heads/cli.py)
    ohlora chat | demo                         (ohlora/engine/cli.py)
    ohlora serve                               (ohlora/app/cli.py)
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ohlora.errors import OhloraError

# Modules that each expose `register(subparsers)`; a subcommand's handler is stored as
# `func` on its parser and receives the parsed args.
COMMAND_MODULES = (
    "ohlora.memory.cli",
    "ohlora.data.cli",
    "ohlora.heads.cli",
    "ohlora.engine.cli",
    "ohlora.app.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ohlora",
        description="Oh-LoRA (오로라): a Korean companion chatbot that remembers its users.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if not name.startswith(e.name or "?"):  # a real import bug inside the module
                raise
            continue
        module.register(sub)
    return parser


def _quiet_libraries() -> None:
    """Library progress bars and warnings would drown our own one-line messages."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as tlog

        tlog.disable_progress_bar()
        tlog.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _quiet_libraries()
    try:
        return int(args.func(args) or 0)
    except OhloraError as e:
        print(f"ohlora: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
