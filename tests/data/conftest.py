"""Helpers for the dataset tests: small CSVs written by hand, in real Korean."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

HEADER = ["data_type", "input_data", "output_message", "memory", "summary", "eyes_mouth_pose", "eyes", "mouth", "pose"]

# A train row that passes every check; tests change one field to make one problem.
GOOD = {
    "data_type": "train",
    "input_data": "로라야 나 오늘 시험 합격했어!",
    "output_message": "우와 축하해!! 오늘은 맛있는 거 먹자 ㅎㅎ",
    "memory": "[상태: 기분 좋음]",
    "summary": "사용자가 시험 합격을 알리자 로라가 축하함",
    "eyes_mouth_pose": "(눈 아주 크게, 입 아주 크게, 고개 돌림 없음)",
    "eyes": "아주 크게",
    "mouth": "아주 크게",
    "pose": "없음",
}


def row(**changes) -> dict:
    out = dict(GOOD)
    out.update(changes)
    return out


def write_csv(path: Path, rows: list[dict], header: list[str] = HEADER) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for r in rows:
            writer.writerow([r.get(c, "") for c in header])
    return path


@pytest.fixture
def make_csv(tmp_path):
    """make_csv(rows) -> path of a CSV holding a header and these rows (line 2 onwards)."""
    counter = iter(range(1000))

    def make(rows: list[dict], header: list[str] = HEADER) -> Path:
        return write_csv(tmp_path / f"data{next(counter)}.csv", rows, header)

    return make


@pytest.fixture
def ohlora(monkeypatch):
    """`ohlora.cli.main` with only the data commands registered, so these tests do not
    depend on the other concepts' modules (which may be mid-change)."""
    import ohlora.cli

    monkeypatch.setattr(ohlora.cli, "COMMAND_MODULES", ("ohlora.data.cli",))
    return ohlora.cli.main
