"""`ohlora data stats`: counts checked against numbers worked out by hand."""

from __future__ import annotations

import json

import pytest

from ohlora.data.persona import read_csv
from ohlora.data.stats import dataset_stats, percentile

E = {  # expression columns by (eyes, mouth, pose)
    ("보통", "보통", "없음"): ("(눈 보통, 입 보통, 고개 돌림 없음)", "보통", "보통", "없음"),
    ("크게", "크게", "보통"): ("(눈 크게, 입 크게, 고개 돌림 보통)", "크게", "크게", "보통"),
    ("아주 크게", "아주 크게", "많이"): ("(눈 아주 크게, 입 아주 크게, 고개 돌림 많이)", "아주 크게", "아주 크게", "많이"),
    ("작게", "보통", "많이"): ("(눈 작게, 입 보통, 고개 돌림 많이)", "작게", "보통", "많이"),
}
ROWS = [
    ("train", "로라야 나 너무 피곤해", "응 좋아", "[상태: 피곤함]", "피곤하다는 말에 로라가 쉬라고 함", *E["보통", "보통", "없음"]),
    ("train", "[좋아하는 음식: 떡볶이] 오늘 뭐 먹지?", "그래!", "", "로라가 떡볶이를 추천함", *E["크게", "크게", "보통"]),
    ("train", "(오로라 답변 요약) 사용자가 인사함 (사용자 질문) 나 내일 친구랑 영화 봐", "와 대박", "[내일 일정: 친구랑 영화]", "영화 약속에 로라가 부러워함", *E["아주 크게", "아주 크게", "많이"]),
    ("train", "로라는 데이트 해봤어?", "음 글쎄", "", "데이트 질문에 로라가 얼버무림", *E["작게", "보통", "많이"]),
    ("valid", "나 요즘 그림 배워 🎨", "나도 그림 좋아해", "[취미: 그림]", "그림을 배운다는 말에 로라가 반가워함", *E["보통", "보통", "없음"]),
    ("valid", "로라야 잘 자", "", "", "", "", "", "", ""),
]


@pytest.fixture
def stats_csv(make_csv):
    from tests.data.conftest import HEADER

    return make_csv([dict(zip(HEADER, r)) for r in ROWS])


def test_counts_per_head_kinds_and_labels(stats_csv):
    rows, problems = read_csv(stats_csv)
    assert problems == []
    s = dataset_stats(rows)
    assert s["rows"] == {"train": 4, "valid": 2, "total": 6}
    assert s["heads"]["output_message"] == {"train": 4, "valid": 1, "total": 5}
    assert s["heads"]["memory"] == {"train": 2, "valid": 1, "total": 3}
    # the input-only valid row gives the memory head no target, so it is not 'empty'
    assert s["heads"]["memory_empty"] == {"train": 2, "valid": 0, "total": 2}
    assert s["heads"]["summary"] == {"train": 4, "valid": 1, "total": 5}
    assert s["heads"]["eyes_mouth_pose"] == {"train": 4, "valid": 1, "total": 5}
    assert s["memory_output_share"]["train"] == 0.5
    assert s["input_kinds"]["plain"] == {"train": 2, "valid": 2, "total": 4}
    assert s["input_kinds"]["memory"] == {"train": 1, "valid": 0, "total": 1}
    assert s["input_kinds"]["multi_turn"] == {"train": 1, "valid": 0, "total": 1}
    assert s["input_kind_share"]["multi_turn"]["train"] == 0.25
    assert s["input_kind_share"]["plain"]["total"] == round(4 / 6, 4)
    assert s["labels"]["eyes"]["보통"] == {"train": 1, "valid": 1, "total": 2}
    assert s["labels"]["eyes"]["작게"]["train"] == 1
    assert s["labels"]["mouth"]["보통"] == {"train": 2, "valid": 1, "total": 3}
    assert s["labels"]["pose"]["많이"] == {"train": 2, "valid": 0, "total": 2}
    assert s["memory_keys"] == {"상태": 1, "내일 일정": 1, "취미": 1}


def test_length_percentiles_in_chars_and_tokens(stats_csv):
    rows, _ = read_csv(stats_csv)
    # replies: 응 좋아 (4), 그래! (3), 와 대박 (4), 음 글쎄 (4), 나도 그림 좋아해 (9)
    s = dataset_stats(rows, tokenizer=lambda text, add_special_tokens: {"input_ids": text.split()})
    assert s["lengths_chars"]["output_message"] == {"n": 5, "p50": 4, "p90": 9, "max": 9}
    # memories: [상태: 피곤함] (9), [내일 일정: 친구랑 영화] (15), [취미: 그림] (8)
    assert s["lengths_chars"]["memory"] == {"n": 3, "p50": 9, "p90": 15, "max": 15}
    # 'tokens' = words here: 2, 1, 2, 2, 3
    assert s["lengths_tokens"]["output_message"] == {"n": 5, "p50": 2, "p90": 3, "max": 3}
    # the expression head's text '{reply} (답변 시작) ### 답변: {expression} (답변 종료) <|endoftext|>'
    # in words: reply + 2 + 2 + 7 (9 for '아주 크게' twice) + 2 + 1 -> 16, 15, 18, 16, 17
    assert s["lengths_tokens"]["train_text:eyes_mouth_pose"] == {"n": 5, "p50": 16, "p90": 18, "max": 18}


def test_percentile_is_nearest_rank():
    values = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5]
    assert percentile(values, 50) == 5
    assert percentile(values, 90) == 9
    assert percentile(values, 100) == 10
    assert percentile([7], 50) == 7
    assert percentile([], 50) is None


def test_cli_json_and_tables(ohlora, stats_csv, capsys):
    assert ohlora(["data", "stats", str(stats_csv), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["heads"]["output_message"]["train"] == 4
    assert "lengths_tokens" not in data
    assert ohlora(["data", "stats", str(stats_csv)]) == 0
    out = capsys.readouterr().out
    assert "4 train, 2 valid rows" in out
    assert "memory (empty)" in out and "아주 크게" in out


def test_cli_tokenizer_folder(ohlora, stats_csv, tiny_lm_dir, capsys):
    assert ohlora(["data", "stats", str(stats_csv), "--json", "--tokenizer", tiny_lm_dir]) == 0
    tokens = json.loads(capsys.readouterr().out)["lengths_tokens"]
    assert tokens["output_message"]["n"] == 5
    assert tokens["train_text:summary"]["n"] == 5
    # a training text holds its input and output, so it is longer than the reply alone
    assert tokens["train_text:output_message"]["max"] > tokens["output_message"]["max"]


def test_cli_missing_tokenizer_is_one_line(ohlora, stats_csv, tmp_path, capsys):
    code = ohlora(["data", "stats", str(stats_csv), "--tokenizer", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("ohlora: error:") and "--tokenizer" in err and len(err.strip().splitlines()) == 1
