"""`ohlora chat` from a pipe, its commands, and the demo's pieces that need no training."""

from __future__ import annotations

import io
import json

import pytest

from ohlora.cli import main
from ohlora.engine.chat import command, details, run_piped
from tests.engine.conftest import FACTS, REPLY, SUMMARY


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def _chat(monkeypatch, capsys, models, store, lines: str, *extra: str) -> tuple[int, list[str], str]:
    monkeypatch.setattr("sys.stdin", _Pipe(lines))
    code = main(["chat", "--models", models, "--user", "민지", "--store", str(store), "--seed", "0", "--threshold", "1.01", *extra])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_piped_chat_prints_one_line_per_prompt(taught_models_dir, tmp_path, monkeypatch, capsys):
    lines = "로라야 안녕\n\n나 떡볶이 좋아해\n오늘 기분 최고야 😆\n/memory\n/summary\n"
    code, out, _ = _chat(monkeypatch, capsys, taught_models_dir, tmp_path / "m.sqlite", lines)
    assert code == 0
    assert len(out) == 6  # 4 prompts (one blank) + 2 commands
    assert out[0] == REPLY
    assert out[1] and out[1] != REPLY  # the blank-prompt refusal, still one line
    assert out[2] == REPLY
    assert out[4].startswith(f"• {FACTS['나 떡볶이 좋아해']}")  # the memory list, on one line
    assert out[5] == SUMMARY


def test_piped_chat_json_is_one_turn_object_per_line_and_quit_stops(taught_models_dir, tmp_path, monkeypatch, capsys):
    code, out, _ = _chat(monkeypatch, capsys, taught_models_dir, tmp_path / "m.sqlite", "나 오늘 카페 가\n/quit\n로라야 안녕\n", "--json")
    assert code == 0 and len(out) == 1
    turn = json.loads(out[0])
    assert turn["memory_saved"] == FACTS["나 오늘 카페 가"] and turn["generate_calls"] == 2


def test_chat_with_a_missing_models_folder_is_one_error_line(tmp_path, monkeypatch, capsys):
    code, out, err = _chat(monkeypatch, capsys, str(tmp_path / "none"), tmp_path / "m.sqlite", "안녕\n")
    assert code == 2 and out == []
    assert err.count("\n") == 1 and "--models" in err


class _FakeEngine:
    def __init__(self):
        self.forgotten = []

    def memories(self, user, include_history=False):
        from ohlora.memory.record import MemoryRecord

        return [MemoryRecord("a", "b", "[a: b]", 0.0, True), MemoryRecord("a", "c", "[a: c]", 0.0, False)][: 2 if include_history else 1]

    def forget(self, user, key):
        self.forgotten.append(key)
        return 1

    def summary(self, user):
        return ""

    def reset(self, user):
        self.forgotten.append("<reset>")


@pytest.mark.parametrize(
    "line, shown, quits",
    [
        ("/memory", "• [a: b]\n× [a: c]", False),
        ("/forget 오늘 일정", "'오늘 일정' 기억 1개를 지웠어", False),
        ("/summary", "(요약 없음)", False),
        ("/quit", "", True),
        ("그냥 말", None, False),
    ],
)
def test_commands(line, shown, quits):
    text, q = command(_FakeEngine(), "u", line)
    assert (text, q) == (shown, quits)


def test_forget_without_a_key_explains_itself():
    engine = _FakeEngine()
    text, _ = command(engine, "u", "/forget   ")
    assert "사용법" in text and engine.forgotten == []


def test_piped_answers_with_newlines_stay_one_line():
    from ohlora.engine.result import TurnResult

    class Echo(_FakeEngine):
        def turn(self, user, prompt):
            return TurnResult(user=user, prompt=prompt, answer="줄\n바꿈\r\n답")

    out = io.StringIO()
    run_piped(Echo(), "u", io.StringIO("a\nb\n"), out)
    assert out.getvalue().splitlines() == ["줄 바꿈 답", "줄 바꿈 답"]


def test_details_line_shows_memory_and_expression():
    from ohlora.engine.result import TurnResult

    r = TurnResult(user="u", prompt="p", answer="a", memory_used="[a: b]", memory_score=0.97, memory_saved="[c: d]",
                   memory_replaced="[c: e]", expression={"eyes": "크게", "mouth": "보통", "pose": "없음"}, generate_calls=2,
                   timings={"total": 0.5})
    line = details(r)
    assert "[a: b] (0.97)" in line and "[c: d] (이전 [c: e])" in line and "눈 크게, 입 보통, 고개 돌림 없음" in line and "2 calls" in line
