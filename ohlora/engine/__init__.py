"""The chat engine: one turn (SPEC §1) on one base model with four LoRA heads.

`Engine` loads lazily-imported heavy parts; importing this package stays cheap.
"""

from __future__ import annotations

from ohlora.engine.result import ChatEngine, MemoryRecord, TurnResult

__all__ = ["ChatEngine", "Engine", "EngineConfig", "MemoryRecord", "TurnResult"]


def __getattr__(name: str):
    if name == "Engine":
        from ohlora.engine.engine import Engine

        return Engine
    if name == "EngineConfig":
        from ohlora.engine.config import EngineConfig

        return EngineConfig
    raise AttributeError(name)
