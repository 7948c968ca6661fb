"""`ohlora chat`: the terminal front end over any `ChatEngine`.

On a terminal: a rich chat showing 오로라's answer with the memory used/saved and the
expression in one dim line, and the commands /memory, /forget KEY, /summary, /reset,
/quit. From a pipe: one prompt per input line, ONE plain line per answer (or one JSON
object per line with --json), so it can be scripted:

    $ printf '로라야 안녕\\n나 떡볶이 좋아해\\n' | ohlora chat --user 민지
"""

from __future__ import annotations

import json
from typing import TextIO

from ohlora.engine.result import ChatEngine, TurnResult

HELP = "/memory: 기억 목록 · /forget KEY: 기억 지우기 · /summary: 대화 요약 · /reset: 요약 비우기 · /quit: 끝내기"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def expression_text(r: TurnResult) -> str:
    e = r.expression
    if not e:
        return ""
    return f"눈 {e['eyes']}, 입 {e['mouth']}, 고개 돌림 {e['pose']}"


def details(r: TurnResult) -> str:
    """The compact line under an answer: memory used/saved, expression, calls, time."""
    parts = []
    if r.memory_used:
        parts.append(f"기억 사용 {r.memory_used} ({r.memory_score:.2f})")
    if r.memory_saved:
        parts.append(f"기억 저장 {r.memory_saved}" + (f" (이전 {r.memory_replaced})" if r.memory_replaced else ""))
    if r.expression:
        parts.append(expression_text(r))
    if not r.refused:
        parts.append(f"{r.generate_calls} calls, {r.timings.get('total', 0.0):.1f}s")
    return " · ".join(parts)


def command(engine: ChatEngine, user: str, line: str) -> tuple[str | None, bool]:
    """Run a /command; (text to show or None if not a command, quit?)."""
    name, _, arg = line.strip().partition(" ")
    if not name.startswith("/"):
        return None, False
    name = name.lower()
    if name in ("/quit", "/exit", "/q"):
        return "", True
    if name == "/memory":
        items = engine.memories(user, include_history=True)
        if not items:
            return "(저장된 기억 없음)", False
        return "\n".join(f"{'•' if r.active else '×'} {r.text}" for r in items), False
    if name == "/forget":
        if not arg.strip():
            return "사용법: /forget KEY  (예: /forget 오늘 일정)", False
        n = engine.forget(user, arg.strip())
        return f"'{arg.strip()}' 기억 {n}개를 지웠어", False
    if name == "/summary":
        return engine.summary(user) or "(요약 없음)", False
    if name == "/reset":
        engine.reset(user)
        return "요약을 비웠어 (기억은 그대로)", False
    if name == "/help":
        return HELP, False
    return f"모르는 명령이야: {name} ({HELP})", False


def run_piped(engine: ChatEngine, user: str, lines: TextIO, out: TextIO, as_json: bool = False) -> int:
    """One prompt per line in, one line per answer out. Blank lines get the blank-prompt
    refusal like any other prompt, so input and output lines stay paired."""
    for raw in lines:
        line = raw.rstrip("\r\n")
        text, quit_ = command(engine, user, line)
        if quit_:
            break
        if text is not None:
            print(json.dumps({"command": line.strip(), "output": text}, ensure_ascii=False) if as_json else _one_line(text), file=out)
        else:
            r = engine.turn(user, line)
            print(json.dumps(r.to_dict(), ensure_ascii=False) if as_json else _one_line(r.answer), file=out)
        out.flush()
    return 0


def run_terminal(engine: ChatEngine, user: str, console=None) -> int:
    """The interactive chat (rich)."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console()
    console.print(f"[bold magenta]오로라[/]와 대화 중 ([cyan]{escape(user)}[/]). {HELP}", highlight=False)
    while True:
        try:
            line = console.input("[bold cyan]나[/] › ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return 0
        text, quit_ = command(engine, user, line)
        if quit_:
            return 0
        if text is not None:
            console.print(escape(text), style="yellow", highlight=False)
            continue
        with console.status("오로라가 생각 중…", spinner="dots"):
            r = engine.turn(user, line)
        style = "yellow" if r.refused else "bold magenta"
        console.print(f"[{style}]오로라[/] › {escape(r.answer)}", highlight=False)
        extra = details(r)
        if extra:
            console.print(escape(extra), style="dim", highlight=False)
