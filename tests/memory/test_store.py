"""MemoryStore: dedupe, users, history, import/export, durability."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from ohlora.errors import DataError
from ohlora.formats import MemoryItem
from ohlora.memory.store import MemoryStore


@pytest.fixture
def store(tmp_path):
    with MemoryStore(tmp_path / "m.sqlite") as s:
        yield s


def texts(records):
    return [r.text for r in records]


def test_add_and_list_oldest_first(store):
    store.add("u", "[오늘 일정: 친구랑 카페 방문]")
    store.add("u", MemoryItem("좋아하는 음식", "떡볶이 😋"))
    assert texts(store.items("u")) == ["[오늘 일정: 친구랑 카페 방문]", "[좋아하는 음식: 떡볶이 😋]"]
    assert all(r.active for r in store.items("u"))


@pytest.mark.parametrize(
    "variant",
    [
        "[오늘일정:친구랑카페방문]",  # spaces removed
        "  [오늘  일정 :  친구랑 카페   방문]  ",  # extra spaces
        "[\u110b\u1169\u1102\u1173\u11af 일정: 친구랑 카페 방문]",  # 오늘 decomposed (NFD)
        "[오늘\u200b 일정: 친구랑\u200d 카페 방문]",  # zero-width characters
    ],
)
def test_dedupe_ignores_spaces_nfd_and_zero_width(store, variant):
    first = store.add("u", "[오늘 일정: 친구랑 카페 방문]")
    assert first.saved is not None and not first.duplicate
    again = store.add("u", variant)
    assert again.duplicate and again.saved is None and again.replaced == []
    assert len(store.items("u", include_history=True)) == 1


def test_stored_text_is_nfc(store):
    nfd = "[\u110b\u1169\u1102\u1173\u11af 날씨: 비]"
    rec = store.add("u", nfd).saved
    assert rec.text == "[오늘 날씨: 비]" and rec.key == "오늘 날씨"


def test_users_are_isolated(store):
    store.add("alice", "[좋아하는 가수: 아이유]")
    assert store.add("bob", "[좋아하는 가수: 아이유]").saved is not None  # same text, other user: not a duplicate
    store.add("bob", "[롤 티어: 골드]")
    assert texts(store.items("alice")) == ["[좋아하는 가수: 아이유]"]
    assert texts(store.items("bob")) == ["[좋아하는 가수: 아이유]", "[롤 티어: 골드]"]
    assert store.forget("alice", "좋아하는 가수") == 1
    assert store.items("alice") == [] and len(store.items("bob")) == 2
    assert store.users() == ["alice", "bob"]


def test_user_ids_are_opaque(store):
    weird = "a'; DROP TABLE memory; --"
    store.add(weird, "[취미: 등산]")
    assert texts(store.items(weird)) == ["[취미: 등산]"]
    assert store.items("a") == []


def test_replace_keeps_history_and_uses_alias(store):
    store.add("u", "[좋아하는 아이돌: 뉴진스]")
    store.add("u", "[오늘 날씨: 비]")
    r = store.add("u", "[좋아하는 가수: 아이유]", replace=True)
    assert texts(r.replaced) == ["[좋아하는 아이돌: 뉴진스]"] and not r.replaced[0].active
    assert texts(store.items("u")) == ["[오늘 날씨: 비]", "[좋아하는 가수: 아이유]"]
    hist = store.items("u", include_history=True)
    assert [(h.text, h.active) for h in hist] == [
        ("[좋아하는 아이돌: 뉴진스]", False),
        ("[오늘 날씨: 비]", True),
        ("[좋아하는 가수: 아이유]", True),
    ]


def test_state_facts_replace_each_other(store):
    store.add("u", "[상태: 피곤함]")
    r = store.add("u", "[상태: 배고픔]", replace=True)
    assert texts(r.replaced) == ["[상태: 피곤함]"]
    assert texts(store.items("u")) == ["[상태: 배고픔]"]


def test_without_replace_both_values_stay(store):
    store.add("u", "[상태: 피곤함]")
    r = store.add("u", "[상태: 배고픔]")
    assert r.replaced == [] and len(store.items("u")) == 2


def test_duplicate_with_replace_changes_nothing(store):
    store.add("u", "[롤 티어: 골드]")
    r = store.add("u", "[롤티어: 골드]", replace=True)
    assert r.duplicate and r.replaced == [] and texts(store.items("u")) == ["[롤 티어: 골드]"]


def test_forgotten_item_can_be_added_again(store):
    store.add("u", "[취미: 등산]")
    assert store.forget("u", "취미") == 1
    assert store.forget("u", "취미") == 0
    assert store.add("u", "[취미: 등산]").saved is not None


@pytest.mark.parametrize("bad", ["", "그냥 문장", "[키만]", "[: 값]", "[키: ]", "[a: b] 뒤에 글"])
def test_invalid_item_raises_value_error(store, bad):
    with pytest.raises(ValueError):
        store.add("u", bad)
    assert store.items("u", include_history=True) == []


def test_reload_after_close(tmp_path):
    path = tmp_path / "m.sqlite"
    with MemoryStore(path) as s:
        s.add("u", "[사는 곳: 부산]")
        s.add("u", "[상태: 피곤함]")
        s.add("u", "[상태: 졸림]", replace=True)
        s.put_embeddings("m1", {"[사는 곳: 부산]": np.array([1.0, 2.0, 3.0])})
    with MemoryStore(path) as s:
        assert texts(s.items("u")) == ["[사는 곳: 부산]", "[상태: 졸림]"]
        assert len(s.items("u", include_history=True)) == 3
        got = s.get_embeddings("m1", ["[사는 곳: 부산]", "[없는: 것]"])
        assert list(got) == ["[사는 곳: 부산]"]
        np.testing.assert_array_equal(got["[사는 곳: 부산]"], np.array([1, 2, 3], dtype=np.float32))
        assert s.get_embeddings("m2", ["[사는 곳: 부산]"]) == {}  # keyed by model


def test_wal_mode(tmp_path):
    with MemoryStore(tmp_path / "m.sqlite"):
        pass
    con = sqlite3.connect(tmp_path / "m.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_embedding_cache_normalizes_text(store):
    store.put_embeddings("m", {"[오늘 날씨: 비]": np.ones(4)})
    nfd = "[\u110b\u1169\u1102\u1173\u11af 날씨: 비]\u200b"
    got = store.get_embeddings("m", [nfd])
    assert list(got) == [nfd] and got[nfd].shape == (4,)


def test_import_and_export_round_trip(store, tmp_path):
    src = tmp_path / "mem.txt"
    src.write_text("[오늘 일정: 친구랑 카페 방문]\n\n  \n[좋아하는 아이돌: 아이브]\n[오늘일정: 친구랑 카페방문]\n", encoding="utf-8")
    assert store.import_text("u", src) == 2  # third line is a duplicate
    out = tmp_path / "sub" / "out.txt"
    store.export_text("u", out)
    assert out.read_text(encoding="utf-8") == "[오늘 일정: 친구랑 카페 방문]\n[좋아하는 아이돌: 아이브]\n"
    assert [p.name for p in out.parent.iterdir()] == ["out.txt"]  # no temp file left


@pytest.mark.parametrize(
    "content, line",
    [
        ("[오늘 날씨: 비]\n[취미 등산\n", 2),
        ("[오늘 날씨: 비]\n\n[: 등산]\n", 3),
        ("[키: ]\n", 1),
        ("[오늘 날씨: 비] 프롬프트\n", 1),
    ],
)
def test_import_bad_line_names_file_and_line_and_imports_nothing(store, tmp_path, content, line):
    src = tmp_path / "bad.txt"
    src.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as e:
        store.import_text("u", src)
    assert e.value.line == line and e.value.path == str(src)
    assert f"bad.txt:{line}:" in str(e.value)
    assert store.items("u", include_history=True) == []


def test_import_non_utf8(store, tmp_path):
    src = tmp_path / "cp949.txt"
    src.write_bytes("[오늘 날씨: 비]\n".encode("utf-8") + "[취미: 등산]\n".encode("cp949"))
    with pytest.raises(DataError) as e:
        store.import_text("u", src)
    assert e.value.line == 2 and "UTF-8" in str(e.value)
    assert store.items("u") == []


def test_threads_share_one_store(store):
    errors = []

    def work(n):
        try:
            for i in range(20):
                store.add(f"user{n}", f"[항목{i}: 값{n}]")
                store.items(f"user{n}")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [len(store.items(f"user{n}")) for n in range(4)] == [20] * 4


_WRITER = textwrap.dedent(
    """
    import sys
    from ohlora.memory.store import MemoryStore
    store = MemoryStore(sys.argv[1])
    i = 0
    while True:
        store.add("u", f"[항목{i}: 값 {i} 입니다]", replace=(i % 3 == 0))
        store.put_embeddings("m", {f"[항목{i}: 값 {i} 입니다]": [float(i)] * 64})
        print(i, flush=True)   # printed only after the commit returned
        i += 1
    """
)


def test_sigkill_mid_save_loses_nothing_committed(tmp_path):
    path = tmp_path / "crash.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    committed = -1
    deadline = time.time() + 60
    try:
        while committed < 40 and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            committed = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # in the middle of some later write
        proc.wait()
    assert committed >= 40, "writer did not get going"
    with MemoryStore(path) as s:
        stored = {r.text for r in s.items("u", include_history=True)}
        for i in range(committed + 1):
            assert f"[항목{i}: 값 {i} 입니다]" in stored
        assert len(stored) in (committed + 1, committed + 2)  # at most the one in flight, whole
        ok = sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0]
        assert ok == "ok"
