"""One stored memory item of a user, as the store returns it and front ends list it."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class MemoryRecord:
    key: str
    value: str
    text: str  # "[key: value]"
    created_at: float  # unix seconds
    active: bool = True  # False once replaced by a newer value of the same key, or forgotten

    def to_dict(self) -> dict:
        return asdict(self)
