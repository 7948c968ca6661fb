"""The persona dataset (SPEC §3): one UTF-8 CSV, one row per dialogue turn.

Reading is strict about the file and lenient about the rows: a file that is not UTF-8
or lacks a column stops with a `DataError` naming file and line; a row with the wrong
number of fields becomes a `Problem`, so `ohlora data check` can list every problem at
once. Every row keeps the physical line it starts on (quoted fields may hold newlines),
so messages point at the line an editor shows.

    >>> from ohlora.data.persona import load_rows, split
    >>> rows = load_rows("data/persona/ohlora.csv")        # doctest: +SKIP
    >>> train, valid = split(rows)                          # doctest: +SKIP
    >>> train[0].input_data                                 # doctest: +SKIP
    '로라야 안녕!'
"""

from __future__ import annotations

import csv
import io
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from ohlora import formats
from ohlora.errors import DataError
from ohlora.files import atomic_write_csv, read_text

# SPEC §3, in the reference's order; files may order them differently.
COLUMNS: tuple[str, ...] = (
    "data_type",
    "input_data",
    "output_message",
    "memory",
    "summary",
    "eyes_mouth_pose",
    "eyes",
    "mouth",
    "pose",
)
DATA_TYPES: tuple[str, ...] = ("train", "valid")  # SPEC §3
# Columns a train row must fill (memory may be empty: "nothing to remember" is a target).
TRAIN_REQUIRED: tuple[str, ...] = ("output_message", "summary", "eyes_mouth_pose", "eyes", "mouth", "pose")


@dataclass(frozen=True)
class Row:
    """One dataset row; `line` is the physical CSV line it starts on (0 if built in code)."""

    data_type: str
    input_data: str
    output_message: str = ""
    memory: str = ""
    summary: str = ""
    eyes_mouth_pose: str = ""
    eyes: str = ""
    mouth: str = ""
    pose: str = ""
    line: int = 0

    @property
    def kind(self) -> str:
        """`multi_turn`, `memory` (memory-prefixed) or `plain`: the shape of input_data (SPEC §3)."""
        text = formats.normalize(self.input_data)
        if text.startswith(formats.SUMMARY_TAG):
            return "multi_turn"
        if text.startswith("["):
            return "memory"
        return "plain"

    def target(self, head: str) -> str:
        """The output a head learns from this row (SPEC §2 table)."""
        if head not in COLUMNS[2:6]:
            raise ValueError(f"unknown head {head!r}")
        return getattr(self, head)

    def head_input(self, head: str) -> str:
        """The input a head reads for this row (SPEC §2 table)."""
        return formats.head_input(head, self.input_data, self.output_message)

    def values(self) -> tuple[str, ...]:
        """The nine column values in `COLUMNS` order (for writing the row back)."""
        return astuple(self)[: len(COLUMNS)]


assert tuple(f.name for f in fields(Row))[: len(COLUMNS)] == COLUMNS


@dataclass(frozen=True)
class Problem:
    """One finding of `ohlora data check`; printed as `file:line: message`."""

    path: str
    line: int | None
    message: str
    severity: str = "error"  # or "warning": printed, but the exit code stays 0

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        tag = "warning: " if self.severity == "warning" else ""
        return f"{where}: {tag}{self.message}"


def read_csv(path: str | Path) -> tuple[list[Row], list[Problem]]:
    """Rows and row-shape problems; raises `DataError` for a file that cannot be a dataset."""
    path = Path(path)
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise DataError(path, 1, f"bad CSV header: {e}") from None
    if not header or not any(h.strip() for h in header):
        raise DataError(path, 1, f"empty file; expected the header {','.join(COLUMNS)}")
    names = [h.strip() for h in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise DataError(path, 1, f"missing column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}")
    extra = [n for n in names if n not in COLUMNS]
    if extra:
        raise DataError(path, 1, f"unknown column(s) {', '.join(map(repr, extra))}; expected {','.join(COLUMNS)}")
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise DataError(path, 1, f"column(s) {', '.join(doubled)} appear twice")
    index = [names.index(c) for c in COLUMNS]

    rows: list[Row] = []
    problems: list[Problem] = []
    start = reader.line_num + 1  # a record starts on the line after the previous one ended
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as e:  # e.g. a quote never closed: the rest of the file is one field
            problems.append(Problem(str(path), start, f"CSV syntax: {e}"))
            break
        line, start = start, reader.line_num + 1
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # blank line
        if len(record) != len(names):
            problems.append(Problem(str(path), line, f"{len(record)} fields, expected {len(names)} (an unquoted comma?)"))
            continue
        rows.append(Row(*(record[i] for i in index), line=line))
    return rows, problems


def load_rows(path: str | Path, *, check: bool = True) -> list[Row]:
    """The rows of a dataset CSV; with `check`, the first error of `ohlora data check` is raised.

    Fine-tuning calls this, so a bad row stops training with `file:line: message`
    before any model is loaded.
    """
    rows, problems = read_csv(path)
    if check:
        from ohlora.data.check import check_rows  # check imports this module

        problems = problems + check_rows(rows, str(path))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more; run `ohlora data check {path}`)" if len(errors) > 1 else ""
        raise DataError(first.path, first.line, first.message + more)
    return rows


def split(rows: list[Row]) -> tuple[list[Row], list[Row]]:
    """(train rows, valid rows), each in file order."""
    return [r for r in rows if r.data_type == "train"], [r for r in rows if r.data_type == "valid"]


def write_rows(path: str | Path, rows: list[Row]) -> None:
    """Write rows with the SPEC §3 header, atomically (temp file, then `os.replace`)."""
    atomic_write_csv(path, COLUMNS, (r.values() for r in rows))
