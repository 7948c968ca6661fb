"""What one chat turn returns, and the interface every front end codes against.

The terminal chat (`ohlora chat`), the web app (`ohlora serve`) and the HTTP API all
talk to an object with the `ChatEngine` shape and render `TurnResult`s; none of them
touches a model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol

from ohlora.memory.record import MemoryRecord

__all__ = ["ChatEngine", "MemoryRecord", "TurnResult"]


@dataclass
class TurnResult:
    """One SPEC §1 turn, structured (SPEC §5: the reference returned bare strings)."""

    user: str
    prompt: str
    answer: str
    refused: bool = False  # True when the prompt was blank or over the token limit (SPEC §1.1)
    final_input: str = ""  # what the reply and memory heads read (SPEC §1.3)
    memory_used: str | None = None  # the retrieved `[key: value]`, if one passed the threshold
    memory_score: float | None = None  # its cosine
    memory_saved: str | None = None  # the item the memory head wrote and the store kept
    memory_replaced: str | None = None  # the older value of the same key it replaced
    summary: str = ""  # carried into the next turn (SPEC §1.6)
    expression: dict[str, str] = field(default_factory=dict)  # {"eyes","mouth","pose"} labels
    scores: dict[str, float] = field(default_factory=dict)  # {"eyes","mouth","pose"} (SPEC §1.7)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, and "total"
    generate_calls: int = 0  # batched `generate` calls this turn
    decode_steps: int = 0  # forward passes of those calls (the longest row of each): latency on a GPU tracks it

    def to_dict(self) -> dict:
        return asdict(self)


class ChatEngine(Protocol):
    """The engine as front ends see it. Turns of one user must be serialised by the
    engine itself; different users may call concurrently."""

    def turn(self, user: str, prompt: str) -> TurnResult: ...

    def memories(self, user: str, include_history: bool = False) -> list[MemoryRecord]: ...

    def forget(self, user: str, key: str) -> int:
        """Deactivate the user's items with this key (after the alias table); how many."""
        ...

    def summary(self, user: str) -> str: ...

    def reset(self, user: str) -> None:
        """Forget the session summary (not the memory)."""
        ...
