"""A deterministic stand-in for the chat Engine, with the `ChatEngine` shape.

It answers from rules, so API tests know what to expect without a model:

- blank prompt -> refused (like SPEC §1.1's friendly refusal);
- `기억해 KEY=VALUE` -> saves `[KEY: VALUE]` (replacing an older value of KEY);
- otherwise the answer echoes the prompt; expression scores come from the prompt's
  length, so two different prompts move the avatar differently.

It is deliberately NOT thread-safe per user (a read-modify-write with a pause in the
middle), so only the API's per-user lock keeps concurrent turns of one user from losing
items; and it counts how many turns of a user, and of all users, run at once.
"""

from __future__ import annotations

import re
import threading
import time

from ohlora import config
from ohlora.engine.result import TurnResult
from ohlora.formats import normalize, parse_memory
from ohlora.memory.record import MemoryRecord

_REMEMBER = re.compile(r"기억해\s+(.+?)\s*=\s*(.+)")
EYES = ["작게", "보통", "크게", "아주 크게"]
MOUTHS = ["보통", "크게", "아주 크게"]
POSES = ["없음", "보통", "많이"]


class FakeEngine:
    def __init__(self, pause: float = 0.0):
        self.pause = pause  # seconds inside the racy read-modify-write
        self._items: dict[str, list[MemoryRecord]] = {}
        self._summaries: dict[str, str] = {}
        self._count_lock = threading.Lock()
        self.active: dict[str, int] = {}
        self.max_per_user = 0
        self.max_total = 0
        self.turns = 0
        self.rendezvous: threading.Barrier | None = None  # set by a test: turns wait for each other
        self.gated: set[str] = set()  # users whose turns wait for `gate` (set by a test)
        self.gate = threading.Event()

    def _enter(self, user: str) -> None:
        with self._count_lock:
            self.active[user] = self.active.get(user, 0) + 1
            self.max_per_user = max(self.max_per_user, self.active[user])
            self.max_total = max(self.max_total, sum(self.active.values()))

    def _leave(self, user: str) -> None:
        with self._count_lock:
            self.active[user] -= 1
            self.turns += 1

    def turn(self, user: str, prompt: str) -> TurnResult:
        self._enter(user)
        try:
            if self.rendezvous is not None:
                self.rendezvous.wait(timeout=10)  # BrokenBarrierError if users were serialised
            if user in self.gated:
                self.gate.wait(timeout=30)
            return self._turn(user, prompt)
        finally:
            self._leave(user)

    def _turn(self, user: str, prompt: str) -> TurnResult:
        text = normalize(prompt)
        if not text:
            return TurnResult(user=user, prompt=prompt, answer="응? 뭐라고 했어? 다시 말해줘!", refused=True)
        saved = replaced = None
        m = _REMEMBER.search(text)
        if m:
            item = parse_memory(f"[{m.group(1)}: {m.group(2)}]")
            if item is not None:
                items = list(self._items.get(user, []))  # read ...
                time.sleep(self.pause)  # ... (another thread of this user would interleave here) ...
                for r in items:
                    if r.active and r.key == item.key:
                        r.active, replaced = False, r.text
                items.append(MemoryRecord(item.key, item.value, item.text, time.time()))
                self._items[user] = items  # ... write
                saved = item.text
        answer = f"{text[:40]}? 그렇구나! 😀"
        n = len(text)
        expression = {"eyes": EYES[n % 4], "mouth": MOUTHS[n % 3], "pose": POSES[(n // 3) % 3]}
        scores = {
            "eyes": config.EYES_SCORES[expression["eyes"]][1],
            "mouth": config.MOUTH_SCORES[expression["mouth"]][1],
            "pose": config.POSE_SCORES[expression["pose"]][1],
        }
        summary = f"사용자가 {text[:20]} 라고 함"
        self._summaries[user] = summary
        return TurnResult(
            user=user,
            prompt=prompt,
            answer=answer,
            final_input=text,
            memory_saved=saved,
            memory_replaced=replaced,
            summary=summary,
            expression=expression,
            scores=scores,
            timings={"total": 0.0},
            generate_calls=2,
        )

    def memories(self, user: str, include_history: bool = False) -> list[MemoryRecord]:
        return [r for r in self._items.get(user, []) if include_history or r.active]

    def forget(self, user: str, key: str) -> int:
        n = 0
        for r in self._items.get(user, []):
            if r.active and r.key == normalize(key):
                r.active, n = False, n + 1
        return n

    def summary(self, user: str) -> str:
        return self._summaries.get(user, "")

    def reset(self, user: str) -> None:
        self._summaries.pop(user, None)


# A short, hand-written conversation (what a trained 오로라 would say), for the README
# screenshot: the tiny random test models write gibberish, and the real model needs a GPU.
SCRIPT: dict[str, tuple[str, str | None, str | None, str, tuple[str, str, str]]] = {
    # prompt: (answer, memory used, memory saved, summary, (eyes, mouth, pose))
    "로라야 안녕! 나 오늘 시험 끝났어 😆": (
        "와 진짜 수고 많았어! 🎉 시험 끝난 기념으로 뭐 할 거야?", None, None,
        "사용자가 오늘 시험이 끝났다고 함", ("크게", "크게", "보통")),
    "나 아이유 진짜 좋아해. 콘서트 가고 싶다": (
        "나도 아이유 노래 좋아해! 콘서트 가면 진짜 행복하겠다 ㅎㅎ", None, "[좋아하는 가수: 아이유]",
        "사용자가 아이유를 좋아하고 콘서트에 가고 싶어 함", ("보통", "크게", "없음")),
    "내일은 친구랑 카페 가기로 했어": (
        "오 좋다! 어느 카페 가? 맛있는 디저트 먹고 와 ☕", None, "[내일 일정: 친구랑 카페 방문]",
        "사용자가 내일 친구와 카페에 간다고 함", ("보통", "보통", "없음")),
    "요즘 무슨 노래 들어?": (
        "아이유 신곡 계속 듣고 있어! 너도 들어 봤어? 완전 좋아 💜", "[좋아하는 가수: 아이유]", None,
        "사용자가 요즘 듣는 노래를 물어봄", ("아주 크게", "아주 크게", "많이")),
}


class ScriptedEngine(FakeEngine):
    """Answers the SCRIPT prompts as written; anything else as FakeEngine does."""

    def _turn(self, user: str, prompt: str) -> TurnResult:
        if prompt not in SCRIPT:
            return super()._turn(user, prompt)
        answer, used, saved, summary, (eyes, mouth, pose) = SCRIPT[prompt]
        replaced = None
        if saved:
            item = parse_memory(saved)
            self._items.setdefault(user, []).append(MemoryRecord(item.key, item.value, item.text, time.time()))
        self._summaries[user] = summary
        lo_hi = (config.EYES_SCORES[eyes], config.MOUTH_SCORES[mouth], config.POSE_SCORES[pose])
        scores = dict(zip(("eyes", "mouth", "pose"), ((lo + hi) / 2 for lo, hi in lo_hi)))
        return TurnResult(
            user=user, prompt=prompt, answer=answer, final_input=f"{used} {prompt}" if used else prompt,
            memory_used=used, memory_score=0.97 if used else None, memory_saved=saved, memory_replaced=replaced,
            summary=summary, expression={"eyes": eyes, "mouth": mouth, "pose": pose}, scores=scores,
            timings={"total": 0.0}, generate_calls=2,
        )


class ForcedMemory:
    """A real Engine whose memory head is overruled by a rule, for tests that must see a
    saved memory: the tiny random models' memory head saves something on about a third
    of turns, never on cue. A prompt `기억해 KEY=VALUE` whose turn saved nothing gets
    `[KEY: VALUE]` added through the engine's own store (so listing and forgetting run
    the real code); everything else is the engine's own turn."""

    def __init__(self, engine):
        self.engine = engine

    def turn(self, user: str, prompt: str) -> TurnResult:
        result = self.engine.turn(user, prompt)
        m = _REMEMBER.search(normalize(prompt))
        item = parse_memory(f"[{m.group(1)}: {m.group(2)}]") if m else None
        if item is not None and not result.memory_saved:
            added = self.engine.store.add(result.user, item, replace=True)
            if added.saved is not None:
                result.memory_saved = added.saved.text
                result.memory_replaced = added.replaced[-1].text if added.replaced else None
        return result

    def __getattr__(self, name):  # memories, forget, summary, reset: the engine's own
        return getattr(self.engine, name)
