"""`ohlora memory make-pairs | train | eval | mix | pick` (SPEC §4, §1.2).

Argparse only here (no torch import), so `ohlora --help` stays instant; each handler
imports its module when it runs. Flag defaults come from the same dataclasses the code
uses (`config.MemoryTrainConfig`, `train.TrainArgs`).
"""

from __future__ import annotations

import math
import sys
from dataclasses import fields

from ohlora import config
from ohlora.errors import OhloraError


def _help(cls, name: str) -> str:
    for f in fields(cls):
        if f.name == name:
            return f"{f.metadata.get('help', '')} (default: {f.default})"
    raise KeyError(name)


def register(subparsers) -> None:
    """Add `ohlora memory ...` to the `ohlora` parser."""
    from ohlora.memory.train import TrainArgs  # light: dataclass only, no torch at import

    memory = subparsers.add_parser("memory", help="the memory encoder (Sentence-BERT): pairs, training, eval, pick")
    sub = memory.add_subparsers(dest="memory_command", metavar="SUBCOMMAND")
    memory.set_defaults(func=lambda args: (memory.print_help(), 2)[1])

    p = sub.add_parser("make-pairs", help="n×n pair CSV from a combinations file (SPEC §4)")
    p.add_argument("combs", metavar="COMBS", help="combinations file: one '[key: value] prompt' per line")
    p.add_argument("--out", required=True, metavar="PAIRS.csv", help="pair CSV to write")
    p.add_argument(
        "--teacher",
        default=None,
        help=f"encoder scoring key pairs: hub id, folder, 'bundled' or 'kiwi' (default: {config.DEFAULT_MEMORY_ENCODER}, SPEC §4; "
        "with --scores-from, only key pairs the table lacks are scored, and only when --teacher is given)",
    )
    p.add_argument(
        "--scores-from",
        action="append",
        default=None,
        metavar="PAIRS.csv",
        help="take the score of each key pair found in this pair CSV (SPEC §4 columns; repeatable) instead of "
        "a teacher: labels new prompts for known keys exactly as that CSV's teacher did; rows of key pairs "
        "it lacks are dropped unless --teacher is given",
    )
    p.set_defaults(func=_make_pairs)

    d = TrainArgs()
    p = sub.add_parser("train", help="fine-tune the memory encoder on a pair CSV (SPEC §4), or on combination files (--combs)")
    p.add_argument("pairs", metavar="PAIRS.csv", nargs="+", help="one or more pair CSVs (with --combs: combinations files), trained on together")
    p.add_argument(
        "--combs",
        action="store_true",
        help="the inputs are combinations files ('[key: value] prompt' lines): train on the lines and a score per "
        "distinct key pair (--scores-from and/or --teacher, as make-pairs labels them) without building the n² pair "
        "rows; the lines view or the topic encoder, validated on held-out lines",
    )
    p.add_argument("--teacher", default=None, help="with --combs: encoder scoring key pairs (as make-pairs --teacher)")
    p.add_argument("--scores-from", action="append", default=None, metavar="PAIRS.csv",
                   help="with --combs: take the score of each key pair found in this pair CSV (as make-pairs; repeatable)")
    p.add_argument("--line-weights", default=None, metavar="W,W,...",
                   help="with --combs and --base topic: one positive weight per input file, how much its lines' prompts count "
                   "in the key classifier (default 1 each), e.g. 4,1 so that a small file of your own lines, in the style of the "
                   "prompts to come, counts beside a large generic one (docs/memory_experiments.md: what it did on the reference pairs)")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="folder to save the Sentence-Transformer in")
    p.add_argument("--base", default=config.DEFAULT_MEMORY_ENCODER, help=f"encoder to start from: hub id, folder, 'bundled' (MiniLM), 'kiwi' (Korean morpheme vectors; reads Korean offline) or 'topic' (a key classifier fitted in seconds; needs SPEC §4's five columns, or --combs) (default: {config.DEFAULT_MEMORY_ENCODER})")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: 10, SPEC §4)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=_help(TrainArgs, "batch_size"))
    p.add_argument("--seed", type=int, default=d.seed, help=_help(TrainArgs, "seed"))
    p.add_argument("--mode", choices=("block", "reference"), default=d.mode, help=_help(TrainArgs, "mode"))
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 2e-5, the sentence-transformers fit() default the reference trained with)")
    p.add_argument("--views", choices=("auto", "pair", "lines"), default=d.views, help=_help(TrainArgs, "views"))
    p.add_argument("--epoch", choices=("pairs", "lines"), default=d.epoch, help=_help(TrainArgs, "epoch"))
    p.add_argument("--fill-jamo", action="store_true", help=_help(TrainArgs, "fill_jamo"))
    p.add_argument("--device", default=None, help="cpu / cuda (default: cuda when available)")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="MSE / MAE / Pearson of a memory encoder on a pair CSV (SPEC §4)")
    p.add_argument("model", metavar="MODEL_DIR")
    p.add_argument("pairs", metavar="PAIRS.csv")
    p.add_argument("--out", default=None, metavar="DIR", help="write metrics.json, test_result.csv, scatter.png here")
    p.set_defaults(func=_eval)

    p = sub.add_parser("mix", help="several trained encoders as one: cosine = weighted mean of theirs")
    p.add_argument("models", metavar="MODEL_DIR", nargs="+", help="trained encoder folders (two or more)")
    p.add_argument("--weights", required=True, metavar="W,W,...", help="one positive weight per model, normalised to sum 1 (e.g. 0.7,0.3)")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="folder to save the mixed encoder in")
    p.set_defaults(func=_mix)

    p = sub.add_parser("pick", help="the memory item that fits a prompt (SPEC §1.2)")
    p.add_argument("model", metavar="MODEL_DIR")
    p.add_argument("prompt", metavar="PROMPT")
    p.add_argument("--memory-file", required=True, metavar="FILE", help="one memory item per line (blank lines ignored)")
    p.add_argument("--threshold", type=float, default=config.PICK_THRESHOLD, help=f"cosine needed (default: {config.PICK_THRESHOLD}, SPEC §1.2)")
    p.add_argument("--verbose", action="store_true", help="also list every item's score")
    p.set_defaults(func=_pick)


def _labels(args) -> tuple[dict, object]:
    """(key-pair table from --scores-from, teacher or None) for make-pairs and train --combs:
    with a table and no --teacher, key pairs the table lacks stay unscored."""
    from ohlora.memory.pairs import score_table
    from ohlora.models import load_sentence_encoder

    table = {}
    for path in args.scores_from or []:
        table.update(score_table(path))
    teacher = None
    if args.teacher or not args.scores_from:
        name = args.teacher or config.DEFAULT_MEMORY_ENCODER
        teacher = load_sentence_encoder(name, flag="--teacher", max_seq_length=config.MemoryTrainConfig.max_seq_length)
    return table, teacher


def _make_pairs(args) -> int:
    from ohlora.memory.pairs import make_pairs, read_combinations, write_pairs

    combos = read_combinations(args.combs)  # fail on bad data before loading a model
    table, teacher = _labels(args)
    rows = make_pairs(combos, teacher, table=table)
    if not rows:
        raise OhloraError(f"no pairs: no key pair of {args.combs} is in --scores-from; add --teacher to score them")
    write_pairs(rows, args.out)
    dropped = len(combos) ** 2 - len(rows)
    note = f"; {dropped} rows of key pairs missing from --scores-from left out" if dropped else ""
    print(f"wrote {len(rows)} pairs ({len(combos)} lines, {len({c.pair_key for c in combos})} distinct keys) to {args.out}{note}")
    return 0


def _combination_lines(args):
    """`Lines` of the combination files, labelled as `_make_pairs` labels rows."""
    from ohlora.memory.lines import Lines
    from ohlora.memory.pairs import read_combinations

    per_file = [read_combinations(path) for path in args.pairs]  # fail on bad data before loading a model
    combos = [c for file in per_file for c in file]
    weights = None
    if args.line_weights is not None:
        file_weights = _line_weights(args.line_weights, len(args.pairs))
        weights = [w for w, file in zip(file_weights, per_file) for _ in file]
    table, teacher = _labels(args)
    lines = Lines.from_combinations(combos, teacher, table=table, weights=weights)
    if len(set(lines.keys)) > 1 and all(a == b for a, b in lines.key_scores):  # only equal keys scored
        raise OhloraError(f"no key pair of {', '.join(args.pairs)} is in --scores-from; add --teacher to score them")
    return lines


def _line_weights(text: str, n_files: int) -> list[float]:
    """`--line-weights`: one positive number per input file."""
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise OhloraError(f"--line-weights must be numbers separated by commas, got {text!r}") from None
    if len(weights) != n_files:
        raise OhloraError(f"--line-weights has {len(weights)} weights for {n_files} input files; give one per file")
    if not all(w > 0 and math.isfinite(w) for w in weights):
        raise OhloraError(f"--line-weights must be positive, got {text!r}")
    return weights


def _train(args) -> int:
    from ohlora.memory.train import TrainArgs, train

    targs = TrainArgs(
        mode=args.mode, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, fill_jamo=args.fill_jamo,
        views=args.views, epoch=args.epoch,
    )  # None epochs/lr: train() fills the mode's defaults, or the encoder's own (kiwi: lr 3e-3)
    from ohlora.memory.pairs import read_pairs
    from ohlora.memory.train import is_fitted

    if args.line_weights is not None and not (args.combs and args.base == "topic"):
        raise OhloraError("--line-weights weights the topic encoder's key classifier: use it with --combs and --base topic")
    if args.combs:
        lines = _combination_lines(args)
        result = train(", ".join(args.pairs), args.out, base=args.base, args=targs, device=args.device, lines=lines)
    else:
        if args.teacher or args.scores_from:
            raise OhloraError("--teacher and --scores-from label combination files: add --combs, or give pair CSVs alone")
        pairs = [p for path in args.pairs for p in read_pairs(path)]  # every file checked before a model loads
        result = train(", ".join(args.pairs), args.out, base=args.base, args=targs, device=args.device, pairs=pairs)
    v = result.history[-1] if result.history else {}
    enc = result.model[0]
    how = (
        f"fitted topic encoder, {len(enc.keys)} keys"  # no epochs or lr: fitted in closed form
        if is_fitted(result.model)
        else f"{args.mode} mode, {result.args.epochs} epochs, lr {result.args.lr:g}"
    )
    if args.combs:
        how += f", {len(lines)} lines"
    print(
        f"saved {args.out} ({how}, {result.seconds:.1f} s); "
        f"valid pearson {v.get('pearson', float('nan')):.4f} spearman {v.get('spearman', float('nan')):.4f}"
    )
    return 0


def _eval(args) -> int:
    from ohlora.memory.evaluate import evaluate_pairs, write_report
    from ohlora.memory.pairs import read_pairs
    from ohlora.models import load_sentence_encoder

    pairs = read_pairs(args.pairs)
    model = load_sentence_encoder(args.model, flag="MODEL_DIR")
    result = evaluate_pairs(model, pairs)
    m = result.metrics
    print(f"MSE {m['mse']:.4f}  MAE {m['mae']:.4f}  corr {m['corr']:.4f}  (n={m['n']})")
    if args.out:
        write_report(result, args.out)
        print(f"wrote {args.out}/metrics.json, test_result.csv, scatter.png")
    return 0


def _mix(args) -> int:
    from ohlora.files import atomic_dir
    from ohlora.memory.mix_encoder import check_weights, mix_models
    from ohlora.models import load_sentence_encoder

    if len(args.models) < 2:
        raise OhloraError("mix needs two or more MODEL_DIRs")
    try:
        weights = [float(w) for w in args.weights.split(",")]
    except ValueError:
        raise OhloraError(f"--weights must be numbers separated by commas, got {args.weights!r}") from None
    weights = check_weights(weights, len(args.models))
    model = mix_models([load_sentence_encoder(m, flag="MODEL_DIR") for m in args.models], weights)
    with atomic_dir(args.out) as tmp:
        model.save(str(tmp))
    print(f"wrote {args.out}: " + " + ".join(f"{w:.3g} x {m}" for w, m in zip(weights, args.models)))
    return 0


def _pick(args) -> int:
    from ohlora.formats import compact, normalize
    from ohlora.files import read_lines
    from ohlora.memory.retrieval import Retriever, default_cache_path
    from ohlora.memory.store import MemoryStore
    from ohlora.models import load_sentence_encoder

    items = [normalize(line) for line in read_lines(args.memory_file) if normalize(line)]
    model = load_sentence_encoder(args.model, flag="MODEL_DIR")
    min_chars = config.ChatConfig.min_memory_chars
    with MemoryStore(default_cache_path()) as cache:
        retriever = Retriever(model, cache)
        if args.verbose:
            for item, score in zip(items, retriever.score(items, args.prompt)):
                note = "  (too short, never picked)" if len(compact(item)) < min_chars else ""
                print(f"{score:.4f}\t{item}{note}", file=sys.stderr)
        best = retriever.best(items, args.prompt, threshold=args.threshold, min_chars=min_chars)
    if best is not None:
        print(best[0])
    return 0

