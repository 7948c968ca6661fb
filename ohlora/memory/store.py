"""Per-user memory items and cached item embeddings, in one SQLite file.

The reference kept one global text file and rewrote it whole on every save (SPEC §5).
Here every user's items live in a table scoped by user id, each write is one SQLite
transaction (a crash mid-save leaves the previous committed state intact, never a
half-written file), a changed fact replaces the old one but keeps it as history, and
item embeddings are cached beside the items so a prompt needs one encoder pass.

    >>> from ohlora.memory.store import MemoryStore
    >>> with MemoryStore(":memory:") as store:
    ...     store.add("alice", "[오늘 일정: 친구랑 카페 방문]").saved is not None
    ...     store.add("alice", "[오늘일정: 친구랑카페 방문]").duplicate   # spaces ignored
    ...     [r.text for r in store.items("alice")]
    True
    True
    ['[오늘 일정: 친구랑 카페 방문]']

Durability choices (why): journal_mode=WAL lets the web app read while the chat writes
and makes a commit one append to the log; synchronous=FULL fsyncs the log on every
commit, so a committed memory survives power loss too (NORMAL would survive only a
process crash). Writes are rare (at most one memory per chat turn), so the fsync
costs nothing a user could notice.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ohlora import config
from ohlora.errors import DataError
from ohlora.formats import MemoryItem, compact, normalize, parse_memory
from ohlora.files import atomic_write_text, read_lines
from ohlora.memory.record import MemoryRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS memory (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user        TEXT    NOT NULL,
    key         TEXT    NOT NULL,   -- as written (normalized)
    value       TEXT    NOT NULL,
    text        TEXT    NOT NULL,   -- "[key: value]"
    compact     TEXT    NOT NULL,   -- text without spaces: the dedupe identity (SPEC §1.5)
    fact_key    TEXT    NOT NULL,   -- key with aliases applied: what `replace` and `forget` match
    created_at  REAL    NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS memory_user ON memory (user, active);
CREATE TABLE IF NOT EXISTS embedding (
    model_id    TEXT    NOT NULL,
    text        TEXT    NOT NULL,   -- normalized text
    dim         INTEGER NOT NULL,
    vec         BLOB    NOT NULL,   -- float32, little-endian
    PRIMARY KEY (model_id, text)
);
"""


@dataclass
class AddResult:
    """What `MemoryStore.add` did: the saved record (None for a duplicate), and the
    active records of the same fact it deactivated (only with replace=True)."""

    saved: MemoryRecord | None
    duplicate: bool = False
    replaced: list[MemoryRecord] = field(default_factory=list)


def fact_key(key: str) -> str:
    """The key two facts are compared by for replacement: aliases applied (SPEC §4).

    Unlike pair generation, 상태 is *not* replaced by its value here: a new 상태 fact
    (피곤함 -> 배고픔) supersedes the old one, which is what the chat needs.
    """
    key = normalize(key)
    return config.KEY_ALIASES.get(key, key)


def _to_item(item: MemoryItem | str) -> MemoryItem:
    if isinstance(item, MemoryItem):
        parsed = parse_memory(item.text)
    else:
        parsed = parse_memory(item)
    if parsed is None:
        raise ValueError(f"not a memory item '[key: value]' with a non-empty key and value: {str(item)!r}")
    return parsed


def _embedding_key(text: str) -> str:
    # The exact normalized text, not its compact form: '[오늘 일정: 카페]' and
    # '[오늘일정:카페]' tokenize differently, so they may embed differently.
    return normalize(text)


class MemoryStore:
    """Per-user memory items and an embedding cache in one SQLite database.

    Thread-safe: one connection shared under a lock (the web app serves requests on
    several threads; SQLite serialises writers anyway).

        >>> store = MemoryStore(":memory:")
        >>> store.add("bob", "[상태: 피곤함]").saved.value
        '피곤함'
        >>> r = store.add("bob", "[상태: 배고픔]", replace=True)
        >>> [x.value for x in r.replaced], [x.value for x in store.items("bob")]
        (['피곤함'], ['배고픔'])
        >>> len(store.items("bob", include_history=True))
        2
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.path = str(Path(self.path).expanduser())
        self._lock = threading.RLock()
        # isolation_level=None: we open every transaction ourselves with BEGIN IMMEDIATE,
        # so a write takes the lock up front instead of failing half-way on upgrade.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=30000")
        with self._transaction() as db:  # executescript would COMMIT on its own; run each statement
            for statement in _split(_SCHEMA):
                db.execute(statement)

    # --- plumbing --------------------------------------------------------------------
    class _Tx:
        def __init__(self, store: MemoryStore):
            self.store = store

        def __enter__(self):
            self.store._lock.acquire()
            try:
                self.store._db.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.store._lock.release()
                raise
            return self.store._db

        def __exit__(self, exc_type, exc, tb):
            try:
                self.store._db.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.store._lock.release()
            return False

    def _transaction(self) -> MemoryStore._Tx:
        return MemoryStore._Tx(self)

    def _query(self, sql: str, params: Iterable = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- memory items --------------------------------------------------------------------
    @staticmethod
    def _record(row: tuple) -> MemoryRecord:
        key, value, text, created_at, active = row
        return MemoryRecord(key=key, value=value, text=text, created_at=created_at, active=bool(active))

    _COLS = "key, value, text, created_at, active"

    def _add(self, db: sqlite3.Connection, user: str, item: MemoryItem, replace: bool) -> AddResult:
        text = item.text
        dup = db.execute(
            "SELECT 1 FROM memory WHERE user = ? AND active = 1 AND compact = ? LIMIT 1", (user, compact(text))
        ).fetchone()
        if dup:
            return AddResult(saved=None, duplicate=True)
        replaced: list[MemoryRecord] = []
        fkey = fact_key(item.key)
        if replace:
            rows = db.execute(
                f"SELECT id, {self._COLS} FROM memory WHERE user = ? AND active = 1 AND fact_key = ? ORDER BY id",
                (user, fkey),
            ).fetchall()
            for row in rows:
                db.execute("UPDATE memory SET active = 0 WHERE id = ?", (row[0],))
                rec = self._record(row[1:])
                rec.active = False
                replaced.append(rec)
        now = time.time()
        db.execute(
            "INSERT INTO memory (user, key, value, text, compact, fact_key, created_at, active) VALUES (?,?,?,?,?,?,?,1)",
            (user, item.key, item.value, text, compact(text), fkey, now),
        )
        return AddResult(saved=MemoryRecord(item.key, item.value, text, now, True), replaced=replaced)

    def add(self, user: str, item: MemoryItem | str, replace: bool = False) -> AddResult:
        """Save one item for `user` unless an active equal one (spaces ignored) exists.

        replace=True deactivates (keeps as history) the user's active items of the same
        fact key (aliases applied), so a changed fact does not contradict the old one.
        Raises ValueError for text that is not one `[key: value]`.
        """
        parsed = _to_item(item)
        with self._transaction() as db:
            return self._add(db, str(user), parsed, replace)

    def items(self, user: str, include_history: bool = False) -> list[MemoryRecord]:
        """The user's items, oldest first; with history, deactivated ones too."""
        where = "" if include_history else " AND active = 1"
        rows = self._query(f"SELECT {self._COLS} FROM memory WHERE user = ?{where} ORDER BY created_at, id", (str(user),))
        return [self._record(r) for r in rows]

    def forget(self, user: str, key: str) -> int:
        """Deactivate the user's active items whose key (aliases applied) is `key`."""
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE memory SET active = 0 WHERE user = ? AND active = 1 AND fact_key = ?", (str(user), fact_key(key))
            )
            return cur.rowcount

    def users(self) -> list[str]:
        return [r[0] for r in self._query("SELECT DISTINCT user FROM memory ORDER BY user")]

    # --- reference text format -------------------------------------------------------------
    def import_text(self, user: str, path: str | Path) -> int:
        """Import a reference memory file (one `[key: value]` per line, blank lines
        ignored). Any bad line -> DataError naming file and line, nothing imported.
        Returns how many items were new (duplicates are skipped)."""
        items = read_memory_file(path)
        with self._transaction() as db:
            return sum(self._add(db, str(user), item, replace=False).saved is not None for item in items)

    def export_text(self, user: str, path: str | Path) -> None:
        """Write the user's active items in the reference format, atomically."""
        lines = "".join(r.text + "\n" for r in self.items(user))
        atomic_write_text(path, lines)

    # --- embedding cache ---------------------------------------------------------------------
    def get_embeddings(self, model_id: str, texts: Iterable[str]) -> dict[str, np.ndarray]:
        """Cached vectors of `texts` under `model_id`; texts not cached are absent."""
        wanted: dict[str, list[str]] = {}
        for t in texts:
            wanted.setdefault(_embedding_key(t), []).append(t)
        found: dict[str, np.ndarray] = {}

        def take(rows):
            for text, dim, blob in rows:
                originals = wanted.get(text)
                if originals:
                    vec = np.frombuffer(blob, dtype="<f4", count=dim)
                    for original in originals:
                        found[original] = vec

        keys = list(wanted)
        with self._lock:
            if len(keys) > 2000:  # one scan of this model's rows beats many IN (...) look-ups
                take(self._db.execute("SELECT text, dim, vec FROM embedding WHERE model_id = ?", (model_id,)))
            else:
                for i in range(0, len(keys), 500):  # stay under SQLite's variable limit
                    chunk = keys[i : i + 500]
                    marks = ",".join("?" * len(chunk))
                    take(self._db.execute(
                        f"SELECT text, dim, vec FROM embedding WHERE model_id = ? AND text IN ({marks})", (model_id, *chunk)
                    ))
        return found

    def put_embeddings(self, model_id: str, vectors: Mapping[str, np.ndarray]) -> None:
        """Cache vectors (one transaction for the whole batch)."""
        rows = []
        for text, vec in vectors.items():
            arr = np.ascontiguousarray(np.asarray(vec, dtype="<f4").reshape(-1))
            rows.append((model_id, _embedding_key(text), int(arr.shape[0]), arr.tobytes()))
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO embedding (model_id, text, dim, vec) VALUES (?,?,?,?)", rows)


def _split(schema: str) -> list[str]:
    return [s.strip() for s in schema.split(";") if s.strip()]


def read_memory_file(path: str | Path) -> list[MemoryItem]:
    """Parse a reference memory file: one `[key: value]` per line, blank lines ignored."""
    items = []
    for n, line in enumerate(read_lines(path), start=1):
        if not normalize(line):
            continue
        item = parse_memory(line)
        if item is None:
            raise DataError(path, n, f"expected one '[key: value]' with a non-empty key and value, got {line.strip()[:60]!r}")
        items.append(item)
    return items
