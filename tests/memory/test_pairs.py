"""Pair generation (SPEC §4) with a fake teacher whose cosines the test chooses."""

from __future__ import annotations

import csv
import math

import pytest

from ohlora.errors import DataError
from ohlora.memory.pairs import PAIR_COLUMNS, make_pairs, read_combinations, read_pairs, rescale, write_pairs

# cos(오늘 날씨, 좋아하는 가수) = 0.9  -> 2.6*0.9 - 1.6 = 0.74
# cos(피곤함, 배고픔) = X            -> 2.6*X - 1.6 = 0.123456 -> 0.1235 (4 decimals)
# cos(오늘 날씨, 피곤함) = 0          -> -1.6 -> clipped to 0.0
X = (1.6 + 0.123456) / 2.6
VECS = {
    "오늘 날씨": [1, 0, 0, 0],
    "좋아하는 가수": [0.9, math.sqrt(1 - 0.81), 0, 0],
    "피곤함": [0, 0, 1, 0],
    "배고픔": [0, 0, X, math.sqrt(1 - X * X)],
}
COMBS = """[오늘 날씨: 비] 우산 챙길까?
[좋아하는 아이돌: 뉴진스] 신곡 들었어?

[상태: 피곤함] 오늘 너무 힘들었어 😫
[상태: 배고픔] 배에서 꼬르륵 소리 나
[오늘 날씨: 맑음] 산책 갈까
"""


@pytest.fixture
def combs(tmp_path):
    p = tmp_path / "combs.txt"
    p.write_text(COMBS, encoding="utf-8")
    return p


def test_rescale_rule():
    assert rescale(1.0) == 1.0
    assert rescale(0.9) == pytest.approx(0.74)
    assert rescale(0.5) == 0.0  # 2.6*0.5-1.6 = -0.3 -> clipped
    assert rescale(0.61538) == 0.0  # just under the zero point 1.6/2.6
    assert rescale(X) == 0.1235


def test_read_combinations_applies_alias_and_skips_blank_lines(combs):
    c = read_combinations(combs)
    assert [x.line for x in c] == [1, 2, 4, 5, 6]
    assert c[1].item.text == "[좋아하는 가수: 뉴진스]" and c[1].pair_key == "좋아하는 가수"
    assert c[2].pair_key == "피곤함"  # 상태 -> its value
    assert c[2].prompt == "오늘 너무 힘들었어 😫"


def test_pair_scores_follow_spec(combs, fake_encoder):
    teacher = fake_encoder(VECS)
    rows = make_pairs(read_combinations(combs), teacher)
    assert len(rows) == 25
    score = {(r[0], r[3]): r[4] for r in rows}
    assert score["[오늘 날씨: 비]", "신곡 들었어?"] == 0.74
    assert score["[좋아하는 가수: 뉴진스]", "우산 챙길까?"] == 0.74
    assert score["[오늘 날씨: 비]", "산책 갈까"] == 1.0  # equal keys, different values
    assert score["[상태: 피곤함]", "배에서 꼬르륵 소리 나"] == 0.1235  # 상태 compared by value, rounded
    assert score["[상태: 피곤함]", "오늘 너무 힘들었어 😫"] == 1.0
    assert score["[오늘 날씨: 비]", "오늘 너무 힘들었어 😫"] == 0.0  # clipped
    # reference row order: memory_0 outer, memory_1 inner; prompt_0 belongs to memory_0
    assert rows[1] == ("[오늘 날씨: 비]", "우산 챙길까?", "[좋아하는 가수: 뉴진스]", "신곡 들었어?", 0.74)


def test_teacher_encodes_each_distinct_key_once(combs, fake_encoder):
    teacher = fake_encoder(VECS)
    make_pairs(read_combinations(combs), teacher)
    assert len(teacher.calls) == 1
    assert sorted(teacher.calls[0]) == sorted(VECS)  # never '상태', never '좋아하는 아이돌'


def test_write_and_read_pairs_round_trip(combs, fake_encoder, tmp_path):
    rows = make_pairs(read_combinations(combs), fake_encoder(VECS))
    out = tmp_path / "pairs.csv"
    write_pairs(rows, out)
    with open(out, encoding="utf-8", newline="") as f:
        table = list(csv.reader(f))
    assert tuple(table[0]) == PAIR_COLUMNS
    assert table[2] == ["[오늘 날씨: 비]", "우산 챙길까?", "[좋아하는 가수: 뉴진스]", "신곡 들었어?", "0.74"]
    pairs = read_pairs(out)
    assert len(pairs) == 25 and pairs[1].memory == "[오늘 날씨: 비]" and pairs[1].prompt == "신곡 들었어?"
    assert pairs[1].score == 0.74 and pairs[1].line == 3


@pytest.mark.parametrize(
    "content, line, words",
    [
        ("[오늘 날씨: 비] 우산\n[오늘 날씨: 비 우산 챙길까\n", 2, "]"),
        ("[: 비] 우산 챙길까\n", 1, "non-empty key"),
        ("[오늘 날씨 비] 우산 챙길까\n", 1, "[key: value]"),
        ("[오늘 날씨: 비] 우산\n\n[오늘 날씨: ] 우산 챙길까\n", 3, "non-empty"),
        ("[오늘 날씨: 비]\n", 1, "prompt"),
    ],
)
def test_bad_combination_lines(tmp_path, content, line, words):
    p = tmp_path / "bad.txt"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_combinations(p)
    assert e.value.line == line and words in str(e.value)


def test_empty_and_non_utf8_combination_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DataError, match="no combination lines"):
        read_combinations(empty)
    cp = tmp_path / "cp949.txt"
    cp.write_bytes("[오늘 날씨: 비] 우산 챙길까\n".encode("cp949"))
    with pytest.raises(DataError) as e:
        read_combinations(cp)
    assert e.value.line == 1 and "UTF-8" in str(e.value)


@pytest.mark.parametrize(
    "content, line, words",
    [
        ("memory_0,user_prompt_0,memory_1,similarity_score\n[a: b],x,[a: b],1.0\n", 1, "user_prompt_1"),
        ("memory_0,user_prompt_1,similarity_score\n[a: b],안녕,1.0\n[a: b],안녕,높음\n", 3, "not a number"),
        ("memory_0,user_prompt_1,similarity_score\n[a: b],안녕\n", 2, "fields"),
        ("memory_0,user_prompt_1,similarity_score\n", None, "no data rows"),
        ("", None, "empty file"),
    ],
)
def test_bad_pair_csv(tmp_path, content, line, words):
    p = tmp_path / "pairs.csv"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_pairs(p)
    assert e.value.line == line and words in str(e.value)


# --- a pair CSV as a table of key-pair scores (make-pairs --scores-from) ---------------------
def _table_csv(tmp_path, rows, name="ref.csv"):
    p = tmp_path / name
    with open(p, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(PAIR_COLUMNS)
        w.writerows(rows)
    return p


def test_score_table_reads_key_pairs_with_alias_and_state(tmp_path):
    from ohlora.memory.pairs import score_table

    ref = _table_csv(tmp_path, [
        ["[오늘 날씨: 눈]", "눈 온다", "[좋아하는 아이돌: 아이브]", "노래 추천", "0.61"],
        ["[상태: 피곤함]", "졸려", "[오늘 날씨: 비]", "비 와", "0.2"],
        ["[오늘 날씨: 비]", "비 와", "[좋아하는 가수: 아이유]", "노래 틀어줘", "0.61"],  # same keys, same score
    ])
    assert score_table(ref) == {("오늘 날씨", "좋아하는 가수"): 0.61, ("피곤함", "오늘 날씨"): 0.2}


def test_make_pairs_from_table_labels_known_keys_and_drops_the_rest(combs, tmp_path):
    from ohlora.memory.pairs import score_table

    ref = _table_csv(tmp_path, [["[좋아하는 가수: 아이유]", "노래", "[오늘 날씨: 흐림]", "흐리다", "0.55"]])
    rows = make_pairs(read_combinations(combs), None, table=score_table(ref))
    score = {(r[0], r[3]): r[4] for r in rows}
    assert score["[오늘 날씨: 비]", "신곡 들었어?"] == 0.55  # table read in either order
    assert score["[좋아하는 가수: 뉴진스]", "우산 챙길까?"] == 0.55
    assert score["[오늘 날씨: 비]", "산책 갈까"] == 1.0  # equal keys need no table
    assert score["[상태: 피곤함]", "오늘 너무 힘들었어 😫"] == 1.0
    assert ("[상태: 피곤함]", "배에서 꼬르륵 소리 나") not in score  # unknown key pair: left out
    # 2 weather lines + 1 singer line -> 3x3 known; each 상태 line only with itself
    assert len(rows) == 9 + 2


def test_make_pairs_table_first_then_teacher_for_the_rest(combs, tmp_path, fake_encoder):
    from ohlora.memory.pairs import score_table

    ref = _table_csv(tmp_path, [["[좋아하는 가수: 아이유]", "노래", "[오늘 날씨: 흐림]", "흐리다", "0.55"]])
    rows = make_pairs(read_combinations(combs), fake_encoder(VECS), table=score_table(ref))
    score = {(r[0], r[3]): r[4] for r in rows}
    assert len(rows) == 25
    assert score["[오늘 날씨: 비]", "신곡 들었어?"] == 0.55  # the table wins over the teacher's 0.74
    assert score["[상태: 피곤함]", "배에서 꼬르륵 소리 나"] == 0.1235  # the teacher fills the gap


@pytest.mark.parametrize(
    "rows, line, words",
    [
        ([["[오늘 날씨: 비]", "a", "[롤 티어: 골드]", "b", "0.3"], ["[오늘 날씨: 눈]", "c", "[롤 티어: 실버]", "d", "0.4"]], 3, "line 2"),
        ([["오늘 날씨 비", "a", "[롤 티어: 골드]", "b", "0.3"]], 2, "memory_0"),
        ([["[오늘 날씨: 비]", "a", "[롤 티어: 골드]", "b", "높음"]], 2, "not a number"),
    ],
)
def test_score_table_bad_rows_name_the_line(tmp_path, rows, line, words):
    from ohlora.memory.pairs import score_table

    with pytest.raises(DataError) as e:
        score_table(_table_csv(tmp_path, rows))
    assert e.value.line == line and words in str(e.value)


def test_read_pairs_keeps_the_other_halves_when_present(combs, fake_encoder, tmp_path):
    out = tmp_path / "pairs.csv"
    write_pairs(make_pairs(read_combinations(combs), fake_encoder(VECS)), out)
    p = read_pairs(out)[1]
    assert (p.memory, p.prompt_0, p.memory_1, p.prompt) == ("[오늘 날씨: 비]", "우산 챙길까?", "[좋아하는 가수: 뉴진스]", "신곡 들었어?")
