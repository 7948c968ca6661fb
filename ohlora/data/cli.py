"""`ohlora data check CSV` and `ohlora data stats CSV [--tokenizer DIR] [--json]`.

Argparse only here; the checks and statistics are imported when a command runs.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add `data check` and `data stats` to the `ohlora` parser."""
    data = subparsers.add_parser("data", help="check and describe the persona dataset (SPEC §3)")
    sub = data.add_subparsers(dest="data_command", metavar="COMMAND")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])

    check = sub.add_parser(
        "check",
        help="validate a dataset CSV; every problem as file:line: message, exit 1 on any error",
        description="Validate schema and content of a persona dataset CSV (SPEC §3). "
        "Errors exit 1; warnings are printed and leave the exit code 0.",
    )
    check.add_argument("csv", metavar="CSV", help="dataset file (UTF-8, SPEC §3 columns)")
    check.add_argument("--quiet", "-q", action="store_true", help="print errors only, no warnings")
    check.set_defaults(func=_check)

    stats = sub.add_parser(
        "stats",
        help="counts per head, input shapes, label distributions, length percentiles",
        description="Describe a persona dataset CSV: what each of the four heads would learn from it.",
    )
    stats.add_argument("csv", metavar="CSV", help="dataset file (UTF-8, SPEC §3 columns)")
    stats.add_argument("--tokenizer", metavar="DIR", help="also count tokens with this tokenizer (folder or hub id)")
    stats.add_argument("--json", action="store_true", help="print machine-readable JSON instead of tables")
    stats.set_defaults(func=_stats)


def _check(args: argparse.Namespace) -> int:
    from ohlora.data.check import check_file

    result = check_file(args.csv)
    for problem in result.problems:
        if problem.severity == "error" or not args.quiet:
            print(problem)
    print(result.summary_line())
    return 0 if result.ok else 1


def _stats(args: argparse.Namespace) -> int:
    import json

    from ohlora.data.persona import read_csv
    from ohlora.data.stats import dataset_stats, render

    rows, _ = read_csv(args.csv)  # stats describe what is there; `data check` judges it
    tokenizer = None
    if args.tokenizer:
        from ohlora.models import load_tokenizer

        tokenizer = load_tokenizer(args.tokenizer, "--tokenizer")
    stats = dataset_stats(rows, tokenizer)
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
    else:
        render(stats, args.csv)
    return 0
