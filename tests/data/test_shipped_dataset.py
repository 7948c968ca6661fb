"""The shipped persona dataset passes `ohlora data check` and meets issue 3's figures.

The shares are counted here with the csv module alone, not with `ohlora data stats`,
so a bug in the statistics cannot hide a dataset that misses a requirement.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

DATASET = Path(__file__).resolve().parents[2] / "data" / "persona" / "ohlora.csv"


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with open(DATASET, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_shipped_dataset_passes_data_check(ohlora, capsys):
    code = ohlora(["data", "check", "-q", str(DATASET)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.strip().splitlines()[-1].startswith(f"{DATASET}: OK:")


def test_sizes_and_input_shares(rows):
    train = [r for r in rows if r["data_type"] == "train"]
    valid = [r for r in rows if r["data_type"] == "valid"]
    assert len(train) >= 500 and len(valid) >= 80
    assert len(train) + len(valid) == len(rows)
    multi = [r for r in rows if r["input_data"].startswith("(오로라 답변 요약) ")]
    prefixed = [r for r in rows if re.match(r"^\[[^\[\]:]+: [^\[\]]+\] \S", r["input_data"])]
    assert len(multi) >= 0.20 * len(rows)
    assert len(prefixed) >= 0.10 * len(rows)
    # the same mix holds in each split, so valid measures what train teaches
    for split in (train, valid):
        assert sum(r in multi for r in split) >= 0.20 * len(split)
        assert sum(r in prefixed for r in split) >= 0.10 * len(split)


def test_memory_outputs_and_labels(rows):
    train = [r for r in rows if r["data_type"] == "train"]
    with_memory = [r for r in train if r["memory"].strip()]
    assert len(with_memory) >= 0.30 * len(train)
    assert len(train) - len(with_memory) >= 50  # 'nothing to remember' is taught too
    assert {r["eyes"] for r in train} == {"작게", "보통", "크게", "아주 크게"}
    assert {r["mouth"] for r in train} == {"보통", "크게", "아주 크게"}
    assert {r["pose"] for r in train} == {"없음", "보통", "많이"}
    assert {r["data_type"] for r in rows} == {"train", "valid"}
    assert all(r["summary"].strip() for r in rows)  # valid rows are written in full too


@pytest.mark.parametrize(
    "topic, prompt_pattern",
    [
        ("asking her on a date", r"데이트|사귀"),
        ("asking for her phone number", r"전화번호|번호 (뭐|알려)"),
        ("asking for an address", r"주소"),
        ("a rude message", r"멍청|닥쳐|꺼져|바보"),
    ],
)
def test_boundary_rows_in_both_splits(rows, topic, prompt_pattern):
    for split in ("train", "valid"):
        hits = [r for r in rows if r["data_type"] == split and re.search(prompt_pattern, r["input_data"])]
        assert hits, f"no {split} row {topic}"
