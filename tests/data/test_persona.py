"""Loading the dataset for fine-tuning: rows, lines, splits, atomic writes."""

from __future__ import annotations

import pytest

from ohlora.data.persona import Row, load_rows, read_csv, split, write_rows
from ohlora.errors import DataError
from tests.data.conftest import GOOD, row


def test_load_rows_and_split_keep_file_order_and_lines(make_csv):
    valid = {"data_type": "valid", "input_data": "[취미: 그림] 로라야 뭐 그려? ✏️"}
    path = make_csv([GOOD, valid, row(input_data="(오로라 답변 요약) 사용자가 인사함 (사용자 질문) 로라는 뭐해?")])
    rows = load_rows(path)
    train, valid_rows = split(rows)
    assert [r.line for r in train] == [2, 4]
    assert [r.line for r in valid_rows] == [3]
    assert train[0].output_message == GOOD["output_message"]
    assert [r.kind for r in rows] == ["plain", "memory", "multi_turn"]


def test_load_rows_raises_the_first_error_with_file_and_line(make_csv):
    path = make_csv([GOOD, row(input_data="다른 질문", eyes="중간"), row(input_data="또 다른 질문", memory="[x]")])
    with pytest.raises(DataError) as e:
        load_rows(path)
    assert e.value.path == str(path) and e.value.line == 3
    assert str(e.value).startswith(f"{path}:3: eyes '중간'")
    assert "and 1 more" in str(e.value)
    assert len(load_rows(path, check=False)) == 3  # unchecked loading still reads them


def test_head_inputs_and_targets_follow_spec_table():
    r = Row("train", "로라야 안녕", "안녕! ㅎㅎ", "", "인사를 나눔", "(눈 보통, 입 크게, 고개 돌림 없음)", "보통", "크게", "없음")
    assert r.head_input("output_message") == "로라야 안녕"
    assert r.head_input("summary") == "로라야 안녕 (오로라 답변) 안녕! ㅎㅎ"
    assert r.head_input("eyes_mouth_pose") == "안녕! ㅎㅎ"
    assert r.target("memory") == ""
    assert r.target("eyes_mouth_pose") == "(눈 보통, 입 크게, 고개 돌림 없음)"
    with pytest.raises(ValueError):
        r.target("eyes")


def test_write_rows_round_trips_korean_emoji_commas_and_quotes(tmp_path):
    rows = [
        Row("valid", '로라야, "안녕" 😀 ㅋㅋ', line=2),
        Row("train", "여러 줄\n입력", "응, 좋아!", "[오늘 일정: 7:30 기상]", "요약", line=3),
    ]
    path = tmp_path / "out" / "d.csv"
    write_rows(path, rows)
    back, problems = read_csv(path)
    assert problems == []
    assert back[0] == rows[0]
    assert back[1].values() == rows[1].values() and back[1].line == 3
    assert [p.name for p in path.parent.iterdir()] == ["d.csv"]  # no temp file left


def test_empty_and_headerless_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty file"):
        read_csv(empty)
    extra = tmp_path / "extra.csv"
    extra.write_text("data_type,input_data,output_message,memory,summary,eyes_mouth_pose,eyes,mouth,pose,note\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"extra.csv:1: unknown column\(s\) 'note'"):
        read_csv(extra)
    with pytest.raises(DataError, match="cannot read"):
        read_csv(tmp_path / "missing.csv")
