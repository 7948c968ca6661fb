"""`ohlora finetune` and `ohlora tiny-base`. Flags come from `FinetuneConfig`'s fields, so
their defaults and help are the code's (SPEC §2); heavy imports wait for the handler."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing


def _flag_type(tp):
    """int | None -> int; bool stays bool (made a store_true switch)."""
    if isinstance(tp, str):  # postponed annotations
        tp = eval(tp, {"None": type(None)})  # noqa: S307 - our own dataclass's annotations only
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return args[0]
    return tp


def add_dataclass_flags(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """One `--name` flag per dataclass field, with the field's default and help."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        tp = _flag_type(f.type)
        help_ = f.metadata.get("help", "")
        if tp is bool:
            if f.default:
                parser.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false", help=f"do not: {help_}")
            else:
                parser.add_argument(flag, dest=f.name, action="store_true", help=help_)
        else:
            if "default" not in help_:
                help_ = f"{help_} (default: {f.default})"
            parser.add_argument(flag, dest=f.name, type=tp, default=f.default, choices=f.metadata.get("choices"), help=help_)


def register(subparsers) -> None:
    """Add `finetune` and `tiny-base` to the `ohlora` parser."""
    from ohlora import config
    from ohlora.heads.finetune import FinetuneConfig
    from ohlora.heads.tinybase import SIZES

    p = subparsers.add_parser(
        "finetune",
        help="train the LoRA adapters of the four heads (SPEC §2)",
        description="Fine-tune one head or all four on a base causal LM; adapters go to OUT/<head>/ in peft format.",
    )
    p.add_argument("head", choices=("all", *config.HEADS), help="which head to train")
    p.add_argument("--data", required=True, help="dataset CSV (SPEC §3)")
    p.add_argument("--out", required=True, help="output folder; each head goes to OUT/<head>/")
    p.add_argument("--demo", action="store_true", help="the fast demo settings (DEMO_PRESET) as defaults")
    add_dataclass_flags(p, FinetuneConfig, skip=("head", "data", "out"))
    p.set_defaults(func=_finetune)

    t = subparsers.add_parser(
        "tiny-base",
        help="build the offline stand-in base model (a small GPT-NeoX) from the dataset",
        description="Train a byte-level BPE tokenizer and a small GPT-NeoX on the dataset's text; "
        "a stand-in for EleutherAI/polyglot-ko-1.3b that builds in minutes on a CPU.",
    )
    t.add_argument("--data", required=True, help="dataset CSV (SPEC §3)")
    t.add_argument("--out", required=True, help="folder to save the model and tokenizer in")
    t.add_argument("--size", default="small", choices=tuple(SIZES), help="model size (default: small; test is for tests)")
    t.add_argument("--steps", type=int, default=None, help="pre-training steps (default: the size's)")
    t.add_argument("--seed", type=int, default=0, help="random seed")
    t.set_defaults(func=_tiny_base)


def _finetune(args) -> int:
    from ohlora.heads.finetune import DEMO_PRESET, FinetuneConfig, finetune

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(FinetuneConfig)}
    if args.demo:  # the preset replaces defaults only, never a flag the user typed
        defaults = {f.name: f.default for f in dataclasses.fields(FinetuneConfig)}
        values.update({k: v for k, v in DEMO_PRESET.items() if values[k] == defaults[k]})
    for head, folder in finetune(FinetuneConfig(**values)).items():
        print(f"{head}: {folder}")
    return 0


def _tiny_base(args) -> int:
    from ohlora.heads.tinybase import build_tiny_base

    print(build_tiny_base(args.data, args.out, size=args.size, steps=args.steps, seed=args.seed))
    return 0
