"""`ohlora data check`: each kind of bad row is caught, with its line, and exits 1."""

from __future__ import annotations

import unicodedata

import pytest

from ohlora.data.check import check_file
from tests.data.conftest import GOOD, row

OTHER = row(
    input_data="요즘 무슨 노래 들어?",
    output_message="요즘 아이유 노래만 들어! 너는?",
    memory="",
    summary="사용자가 요즘 듣는 노래를 묻자 로라가 아이유라고 답함",
    eyes_mouth_pose="(눈 보통, 입 크게, 고개 돌림 보통)",
    eyes="보통",
    mouth="크게",
    pose="보통",
)


@pytest.fixture
def check(ohlora, capsys):
    """check(path) -> (exit code, everything printed) of `ohlora data check path`."""

    def run(path) -> tuple[int, str]:
        code = ohlora(["data", "check", str(path)])
        out = capsys.readouterr()
        return code, out.out + out.err

    return run


# (the bad row, a piece of the message). The bad row is written on line 3, after a good one.
BAD_ROWS = {
    "data_type": (row(data_type="test"), "data_type 'test'"),
    "empty input": (row(input_data="  "), "input_data is empty"),
    "no reply": (row(output_message=""), "output_message is empty"),
    "no summary": (row(summary=""), "summary is empty"),
    "no expression": (row(eyes_mouth_pose=""), "eyes_mouth_pose is empty"),
    "no pose": (row(pose=""), "pose is empty"),
    "eyes label": (row(eyes="중간"), "eyes '중간'"),
    "mouth label": (row(mouth="작게"), "mouth '작게'"),
    "expression shape": (row(eyes_mouth_pose="(눈 아주 크게, 입 아주 크게)"), "eyes_mouth_pose"),
    "expression label": (row(eyes_mouth_pose="(눈 아주 크게, 입 아주 크게, 고개 돌림 조금)"), "eyes_mouth_pose"),
    "disagreement": (row(pose="많이"), "pose '많이' disagrees"),
    "memory no colon": (row(memory="[오늘 일정 친구랑 카페]"), "memory '[오늘 일정 친구랑 카페]' is not exactly one [key: value]"),
    "memory two items": (row(memory="[취미: 등산] [직업: 학생]"), "memory '[취미: 등산] [직업: 학생]' is not exactly one [key: value]"),
    "memory no brackets": (row(memory="오늘 일정: 카페"), "memory '오늘 일정: 카페' is not exactly one [key: value]"),
    "memory empty value": (row(memory="[취미: ]"), "memory '[취미: ]' is not exactly one [key: value]"),
    "prefix shape": (row(input_data="[오늘 일정] 뭐 입고 가지?"), "input_data: memory prefix: memory '[오늘 일정]' must be"),
    "prefix without prompt": (row(input_data="[오늘 일정: 카페 방문]"), "input_data: memory prefix: the prompt after the memory is empty"),
    "memory not first": (row(input_data="뭐 입고 가지? [오늘 일정: 카페 방문]"), "input_data: a [key: value] memory must come first"),
    "summary tag only": (row(input_data="(오로라 답변 요약) 사용자가 인사함 로라야 뭐해?"), "input_data: (오로라 답변 요약) without (사용자 질문)"),
    "question tag only": (row(input_data="(사용자 질문) 로라야 뭐해?"), "input_data: (사용자 질문) without a leading (오로라 답변 요약)"),
    "empty question": (row(input_data="(오로라 답변 요약) 사용자가 인사함 (사용자 질문) "), "input_data: empty question after (사용자 질문)"),
    "memory and multi-turn": (
        row(input_data="[취미: 등산] (오로라 답변 요약) 사용자가 인사함 (사용자 질문) 로라야 뭐해?"),
        "input_data: memory-prefixed and multi-turn at once",
    ),
    "marker in input": (row(input_data="로라야 안녕 (답변 시작) ### 답변:"), "input_data: contains the marker"),
    "end marker in reply": (row(output_message="축하해!! (답변 종료)"), "output_message: contains the marker '(답변 종료)'"),
    "header in reply": (row(output_message="### 답변: 축하해!!"), "output_message: contains the marker '### 답변:'"),
    "eos in summary": (row(summary="로라가 축하함 <|endoftext|>"), "summary: contains the marker '<|endoftext|>'"),
    "tag in memory": (row(memory="[상태: (사용자 질문)]"), "memory: contains the marker '(사용자 질문)'"),
    "summary tag in reply": (row(output_message="(오로라 답변 요약) 축하해"), "output_message: contains the marker '(오로라 답변 요약)'"),
    "quote in reply": (row(output_message='진짜 "대박"이다 축하해!'), "output_message: quote character"),
    "url in reply": (row(output_message="축하해! https://example.com 에서 케이크 사자"), "output_message: url"),
    "five spaces": (row(output_message="축하해!     진짜로"), "output_message: run of 5 spaces"),
    "replacement char": (row(output_message="축하해 \ufffd"), "output_message: replacement character"),
    "nfd reply": (row(output_message=unicodedata.normalize("NFD", GOOD["output_message"])), "output_message: not NFC"),
    "zero width input": (row(input_data="로라야\u200b 나 합격했어"), "input_data: zero-width character(s) U+200B"),
    "line break": (row(summary="사용자가 합격을 알림\n로라가 축하함"), "summary: line break"),
}


@pytest.mark.parametrize("name", list(BAD_ROWS))
def test_each_bad_row_is_reported_with_its_line(check, make_csv, capsys, name):
    bad, expected = BAD_ROWS[name]
    path = make_csv([OTHER, bad])
    code, out = check(path)
    assert code == 1, out
    assert f"{path}:3: {expected}" in out, out
    assert f"{path}:2:" not in out, out  # the good row stays quiet


def test_good_file_passes_with_one_line(check, make_csv):
    valid_input_only = {"data_type": "valid", "input_data": "로라야 오늘 뭐 했어? 🌙"}
    path = make_csv([GOOD, OTHER, valid_input_only])
    code, out = check(path)
    assert code == 0, out
    assert out.strip().splitlines() == [f"{path}: OK: 2 train, 1 valid rows"]


def test_every_problem_is_listed_not_only_the_first(check, make_csv):
    path = make_csv([row(eyes="중간"), OTHER, row(input_data="또 다른 질문이야", memory="[취미]")])
    code, out = check(path)
    assert code == 1
    assert f"{path}:2: eyes '중간'" in out
    assert f"{path}:4: memory '[취미]'" in out
    assert "2 error(s)" in out


def test_duplicate_inputs_name_both_lines(check, make_csv):
    twin = row(input_data="로라야  나 오늘 시험 합격했어! ", output_message="와 진짜 축하해!")
    path = make_csv([GOOD, OTHER, twin])
    code, out = check(path)
    assert code == 1
    assert f"{path}:4: duplicate input_data in train (same as line 2)" in out


def test_same_input_in_train_and_valid_is_leakage_not_duplicate(check, make_csv):
    leaked = {"data_type": "valid", "input_data": "로라야나오늘시험 합격했어!"}
    path = make_csv([GOOD, OTHER, leaked])
    code, out = check(path)
    assert code == 1
    assert f"{path}:4: valid input_data leaks from train (line 2, spaces ignored)" in out
    assert "duplicate" not in out


def test_valid_rows_may_leave_outputs_empty_but_filled_ones_are_checked(check, make_csv):
    partial = {"data_type": "valid", "input_data": "로라야 심심해", "eyes_mouth_pose": "(눈 보통, 입 보통, 고개 돌림 없음)", "eyes": "크게"}
    path = make_csv([GOOD, partial])
    code, out = check(path)
    assert code == 1
    assert f"{path}:3: eyes '크게' disagrees with eyes_mouth_pose ('보통')" in out
    assert "is empty" not in out


def test_warnings_are_printed_but_do_not_fail(check, ohlora, make_csv, capsys):
    spaced = row(input_data="로라야  오늘  뭐해?", summary="사용자가 오늘 뭐 하냐고 묻자 로라가 지금은 태블릿으로 고양이 모카를 그리는 중이라고 함",
                 output_message="그림 그려!")
    path = make_csv([spaced])
    code, out = check(path)
    assert code == 0, out
    assert f"{path}:2: warning: input_data: leading/trailing or double spaces" in out
    assert f"{path}:2: warning: summary is longer than the exchange" in out
    assert "OK: 1 train, 0 valid rows, 2 warning(s)" in out
    code, out = ohlora(["data", "check", "-q", str(path)]), capsys.readouterr().out
    assert "warning:" not in out.splitlines()[0] and code == 0


@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_line_numbers_count_quoted_line_breaks(check, tmp_path, eol):
    path = tmp_path / "multiline.csv"
    text = (
        "data_type,input_data,output_message,memory,summary,eyes_mouth_pose,eyes,mouth,pose\n"
        'valid,"로라야\n뭐해?",,,,,,,\n'  # lines 2-3: one record
        "\n"  # line 4: blank
        "valid,로라야 잘 자,,,,,,작은,\n"  # line 5
    )
    path.write_bytes(text.replace("\n", eol).encode("utf-8"))
    code, out = check(path)
    assert code == 1
    assert f"{path}:2: input_data: line break" in out
    assert f"{path}:5: mouth '작은'" in out


def test_row_with_wrong_field_count(check, tmp_path):
    path = tmp_path / "fields.csv"
    path.write_text(
        "data_type,input_data,output_message,memory,summary,eyes_mouth_pose,eyes,mouth,pose\n"
        "valid,로라야 안녕, 반가워,,,,,,,\n"
        "valid,로라야 잘 자,,,,,,,\n",
        encoding="utf-8",
    )
    code, out = check(path)
    assert code == 1
    assert f"{path}:2: 10 fields, expected 9" in out
    assert f"{path}:3:" not in out


def test_non_utf8_file_names_file_and_line(check, tmp_path):
    path = tmp_path / "cp949.csv"
    text = (
        "data_type,input_data,output_message,memory,summary,eyes_mouth_pose,eyes,mouth,pose\n"
        "valid,hello,,,,,,,\n"
        "valid,로라야 안녕,,,,,,,\n"
    )
    path.write_bytes(text.encode("cp949"))
    code, out = check(path)
    assert code == 1
    assert f"ohlora: error: {path}:3: not UTF-8" in out
    assert "Traceback" not in out


def test_missing_column_names_it(check, make_csv):
    header = [c for c in ["data_type", "input_data", "output_message", "memory", "summary", "eyes_mouth_pose", "eyes", "mouth"]]
    path = make_csv([GOOD], header=header)
    code, out = check(path)
    assert code == 1
    assert f"ohlora: error: {path}:1: missing column(s) pose" in out


def test_utf8_bom_and_reordered_columns_are_accepted(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_text(
        "\ufeffinput_data,data_type,output_message,memory,summary,eyes_mouth_pose,eyes,mouth,pose\n"
        "로라야 좋은 아침 ☀️,valid,,,,,,,\n",
        encoding="utf-8",
    )
    result = check_file(str(path))
    assert result.ok, result.problems
    assert [(r.data_type, r.input_data, r.line) for r in result.rows] == [("valid", "로라야 좋은 아침 ☀️", 2)]


def test_near_copies_of_train_prompts_in_valid_are_warned(check, make_csv):
    near = {"data_type": "valid", "input_data": "로라야 나 오늘 시험 합격했어!!"}
    same_words_new_prefix = {"data_type": "valid", "input_data": "[상태: 기분 좋음] 요즘 무슨 노래 들어?"}
    distinct = {"data_type": "valid", "input_data": "로라는 겨울에 뭐 하고 놀아?"}
    path = make_csv([GOOD, OTHER, near, same_words_new_prefix, distinct])
    code, out = check(path)
    assert code == 0, out
    assert f"{path}:4: warning: valid prompt nearly repeats train line 2 (similarity 0.9" in out
    assert f"{path}:5: warning: valid prompt nearly repeats train line 3 (similarity 1.00)" in out
    assert f"{path}:6:" not in out
