"""Golden strings and parsing rules of ohlora.formats (SPEC §1-§3).

Expected strings are written out by hand, from the SPEC, never computed by the code.
"""

import random
import unicodedata

import pytest

from ohlora import formats
from ohlora.formats import Expression, MemoryItem


# --- golden strings ---------------------------------------------------------------------
def test_training_text_is_spec_2_verbatim():
    assert (
        formats.training_text("로라야 안녕", "안녕! 반가워 ㅎㅎ")
        == "로라야 안녕 (답변 시작) ### 답변: 안녕! 반가워 ㅎㅎ (답변 종료) <|endoftext|>"
    )


def test_prompt_plus_completion_is_the_training_text_and_prompt_ends_at_header():
    prompt = formats.training_prompt("오늘 비 와")
    assert prompt == "오늘 비 와 (답변 시작) ### 답변:"
    assert prompt + formats.training_completion("우산 챙겨!") == formats.training_text("오늘 비 와", "우산 챙겨!")


def test_empty_memory_output_training_text():
    assert formats.training_text("안녕", "") == "안녕 (답변 시작) ### 답변:  (답변 종료) <|endoftext|>"


def test_inference_prompt_ends_with_the_answer_header():
    assert formats.inference_prompt("[좋아하는 음식: 떡볶이] 뭐 먹지?") == "[좋아하는 음식: 떡볶이] 뭐 먹지? (답변 시작) ### 답변:"


@pytest.mark.parametrize(
    "head, expected",
    [
        ("output_message", "시험 끝났어!"),
        ("memory", "시험 끝났어!"),
        ("summary", "시험 끝났어! (오로라 답변) 수고했어!"),
        ("eyes_mouth_pose", "수고했어!"),
    ],
)
def test_head_inputs_follow_the_spec_table(head, expected):
    assert formats.head_input(head, "시험 끝났어!", "수고했어!") == expected


def test_unknown_head_is_rejected():
    with pytest.raises(ValueError, match="unknown head"):
        formats.head_input("reply", "x")


def test_final_input_rules_memory_beats_summary():
    assert formats.final_input("뭐 먹지?", "[좋아하는 음식: 떡볶이]", "요약") == "[좋아하는 음식: 떡볶이] 뭐 먹지?"
    assert (
        formats.final_input("뭐 먹지?", None, "사용자가 배고프다고 함")
        == "(오로라 답변 요약) 사용자가 배고프다고 함 (사용자 질문) 뭐 먹지?"
    )
    assert formats.final_input("뭐 먹지?") == "뭐 먹지?"


def test_parse_generated_handles_reference_and_our_continuations():
    assert formats.parse_generated(" ### 답변: 좋아! (답변 종료) <|endoftext|>") == "좋아!"
    assert formats.parse_generated(" 좋아! (답변 종료) 쓰레기") == "좋아!"
    assert formats.parse_generated(" 좋아!<|endoftext|>") == "좋아!"


# --- normalisation ------------------------------------------------------------------------
def test_normalize_nfc_zero_width_and_spaces():
    nfd = unicodedata.normalize("NFD", "날씨")
    assert nfd != "날씨"
    assert formats.normalize(f"  오늘\u200b {nfd}\n 어때  ") == "오늘 날씨 어때"
    assert formats.compact("[오늘 일정 : 카페 방문]") == "[오늘일정:카페방문]"


# --- memory items ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, key, value",
    [
        ("[오늘 일정: 친구랑 카페 방문]", "오늘 일정", "친구랑 카페 방문"),
        ("[ 알람 시간 :  7:30 ]", "알람 시간", "7:30"),
        ("[좋아하는 가수: 아이유 💜]", "좋아하는 가수", "아이유 💜"),
        ("[내일 일정: 7:30 기상]", "내일 일정", "7:30 기상"),  # a colon without a space is text
        ("[메모: 비율 16:9로 찍기]", "메모", "비율 16:9로 찍기"),
        ("[메모: 끝이 콜론:]", "메모", "끝이 콜론:"),
    ],
)
def test_parse_memory_valid(text, key, value):
    assert formats.parse_memory(text) == MemoryItem(key, value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "오늘 일정: 카페",
        "[오늘 일정 카페]",
        "[: 카페]",
        "[오늘 일정: ]",
        "[a: b] [c: d]",
        "[a: b] 뒤에 글",
        # ': ' in the value is a second key/value separator, not one fact
        "[상태: 일정: 날씨]",
        "[상태: 일정:\t날씨]",
        "[상태: 일정:\u202f날씨]",  # any white space, not only ' '
        "[키:: 값]",
        "[키: 값: ]",
    ],
)
def test_parse_memory_rejects(text):
    assert formats.parse_memory(text) is None


def test_memory_output_empty_is_valid_nothing():
    assert formats.parse_memory_output("   ") == (True, None)
    assert formats.parse_memory_output("[x: y]") == (True, MemoryItem("x", "y"))
    assert formats.parse_memory_output("[x y]") == (False, None)
    # the unconstrained pipeline's format check: this answer is rejected (and retried)
    assert formats.parse_memory_output("[상태: 일정: 날씨]") == (False, None)
    assert formats.parse_memory_output("[알람: 7:30]") == (True, MemoryItem("알람", "7:30"))


def test_canonical_key_alias_and_state():
    assert MemoryItem("좋아하는 아이돌", "뉴진스").canonical_key() == "좋아하는 가수"
    assert MemoryItem("상태", "피곤함").canonical_key() == "피곤함"
    assert MemoryItem("오늘 날씨", "비").canonical_key() == "오늘 날씨"


def test_combination_line_parses_and_aliases():
    item, prompt = formats.parse_combination_line("[좋아하는 아이돌: 아이브] 로라야 노래 추천해줘")
    assert item == MemoryItem("좋아하는 가수", "아이브")
    assert prompt == "로라야 노래 추천해줘"


@pytest.mark.parametrize(
    "line", ["[오늘 날씨: 비 우산 챙겨야지", "[: 비] 우산", "[오늘 날씨: ] 우산", "[오늘 날씨: 비]", "[상태: 일정: 날씨] 오늘 뭐해?"]
)
def test_combination_line_errors(line):
    with pytest.raises(formats.CombinationLineError):
        formats.parse_combination_line(line)


# --- expression -------------------------------------------------------------------------------
def test_expression_round_trip_and_labels():
    e = formats.parse_expression("(눈 아주 크게, 입 크게, 고개 돌림 많이)")
    assert e == Expression("아주 크게", "크게", "많이")
    assert e.text == "(눈 아주 크게, 입 크게, 고개 돌림 많이)"


@pytest.mark.parametrize(
    "text", ["(눈 작게, 입 작게, 고개 돌림 없음)", "(눈 크게, 입 보통)", "눈 크게, 입 보통, 고개 돌림 없음", "(눈 엄청, 입 보통, 고개 돌림 없음)"]
)
def test_expression_rejects(text):
    assert formats.parse_expression(text) is None


def test_scores_drawn_from_each_labels_own_range():
    # pose 보통 must map from the pose field (the reference tested the mouth label here).
    e = Expression(eyes="작게", mouth="아주 크게", pose="보통")
    for seed in range(50):
        s = e.scores(random.Random(seed))
        assert -0.2 <= s["eyes"] <= 0.1
        assert 1.4 <= s["mouth"] <= 1.6
        assert 0.8 <= s["pose"] <= 1.5


# --- checks ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "reply, problem",
    [
        ("", "empty"),
        ("좋아 (답변 종료)", "leaked marker"),
        ("(사용자 질문) 뭐?", "leaked marker"),
        ("여기 봐 https://x.y", "url"),
        ("깨진 글자 \ufffd", "replacement character"),
        ("공백     다섯", "run of 5 spaces"),
        ("그건 \"비밀\"이야", "quote character"),
        ("응! 나도 떡볶이 좋아해 😋", None),
    ],
)
def test_reply_problems(reply, problem):
    assert formats.reply_problem(reply) == problem


def test_strip_markers_removes_control_strings_only():
    assert formats.strip_markers("안녕 (답변 종료) ### 답변: 로라야") == "안녕 로라야"
