"""Atomic writes: a failure leaves the old file or folder as it was, and no temp files."""

from __future__ import annotations

import pytest

from ohlora.errors import DataError
from ohlora.files import atomic_dir, atomic_write_text, read_lines


def test_atomic_dir_replaces_whole_folder(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.bin").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "new.bin").write_text("new")
        assert (target / "old.bin").exists()  # untouched until the block succeeds
    assert sorted(p.name for p in target.iterdir()) == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_dir_failure_keeps_old_folder(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.bin").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "half.bin").write_text("half")
            raise RuntimeError("crash while saving")
    assert sorted(p.name for p in target.iterdir()) == ["old.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_write_text_failure_keeps_old_file(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("old", encoding="utf-8")
    with pytest.raises(TypeError):
        atomic_write_text(f, 123)  # not text: fails while writing
    assert f.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_read_lines_accepts_bom_and_crlf(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes("\ufeff[오늘 날씨: 비]\r\n[취미: 등산]\r\n".encode("utf-8"))
    assert read_lines(f) == ["[오늘 날씨: 비]", "[취미: 등산]"]


def test_read_lines_folder_and_missing(tmp_path):
    with pytest.raises(DataError, match="folder"):
        read_lines(tmp_path)
    with pytest.raises(DataError, match="not found"):
        read_lines(tmp_path / "none.txt")
