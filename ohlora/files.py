"""Reading user files strictly and writing ours atomically (shared by memory and data tools).

Every reader turns a problem into `DataError(path, line, message)`; every writer goes
through a temp file in the target folder and `os.replace`, so a crash or a bad input
never leaves half a file behind.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

from ohlora.errors import DataError


def read_text(path: str | Path) -> str:
    """A whole file as text, strictly UTF-8 (a BOM is allowed); DataError otherwise."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, None, "cannot read: file not found") from None
    except IsADirectoryError:
        raise DataError(path, None, "is a folder, expected a text file") from None
    except OSError as e:
        raise DataError(path, None, f"cannot read: {e.strerror or e}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(path, line, f"not UTF-8 (byte 0x{raw[e.start]:02x}); save the file as UTF-8") from None


def read_lines(path: str | Path) -> list[str]:
    """A text file's lines (see `read_text`)."""
    return read_text(path).splitlines()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a UTF-8 file via a temp file in the same folder and os.replace: readers see
    the old file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_csv(path: str | Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row; DataError for a missing column, a short
    row or an empty file."""
    text = read_text(path)
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(path, None, "empty file; expected a CSV header and rows") from None
    except csv.Error as e:
        raise DataError(path, 1, f"bad CSV ({e})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(path, 1, f"missing column(s) {', '.join(missing)}; header is {', '.join(header)}")
    out = []
    try:
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise DataError(path, reader.line_num, f"expected {len(header)} fields, got {len(row)}")
            out.append((reader.line_num, dict(zip(header, row))))
    except csv.Error as e:
        raise DataError(path, reader.line_num, f"bad CSV ({e})") from None
    if not out:
        raise DataError(path, None, "no data rows after the header")
    return out


@contextmanager
def atomic_dir(path: str | Path):
    """Yield a temp folder beside `path`; on success it replaces `path` whole (an
    existing folder is swapped out and removed), on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
