"""Request and response shapes of the HTTP API (they make the OpenAPI schema).

The response models mirror `TurnResult` and `MemoryRecord` field for field, so a
client generated from `/openapi.json` reads exactly what the engine returns.
"""

from __future__ import annotations

import re
import unicodedata

from pydantic import BaseModel, ConfigDict, Field, field_validator

# A user id is a name a person types into the page: Latin letters, digits, complete
# Hangul syllables and `_ . -`, 1-32 characters, starting with a letter, digit or
# syllable (so `.`, `..` and `-rf` are never ids). It is NFC-normalised first: Korean
# typed on macOS arrives decomposed (NFD) and must name the same user.
USER_ID_PATTERN = r"^[A-Za-z0-9가-힣][A-Za-z0-9가-힣_.\-]{0,31}$"
USER_ID_RE = re.compile(USER_ID_PATTERN)
MAX_MESSAGE_CHARS = 500  # ~10x what the reply head accepts (SPEC §1.1: 48 tokens); longer is surely not chat
MAX_KEY_CHARS = 64  # memory keys are short phrases (`좋아하는 가수`); longer cannot exist
# Control characters other than tab and newlines have no place in a chat message; NUL
# in particular would be cut or rejected by tokenizers and terminals downstream.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_user_id(user: str) -> str:
    """The NFC form of a valid user id; ValueError with a clear message otherwise."""
    user = unicodedata.normalize("NFC", user)
    if not USER_ID_RE.match(user):
        raise ValueError(
            "user id must be 1-32 characters: letters, digits, Hangul syllables, '_', '.', '-', "
            "starting with a letter, digit or syllable"
        )
    return user


def check_key(key: str) -> str:
    key = unicodedata.normalize("NFC", key).strip()
    if not key:
        raise ValueError("memory key must not be empty")
    if len(key) > MAX_KEY_CHARS:
        raise ValueError(f"memory key must be at most {MAX_KEY_CHARS} characters (got {len(key)})")
    if _CONTROL_RE.search(key):
        raise ValueError("memory key must not contain control characters")
    return key


class ChatRequest(BaseModel):
    """One user message. A blank message is accepted: the engine answers it with its
    friendly refusal (`refused: true`), as the terminal chat does."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"user": "민수", "message": "로라야 안녕!"}]})

    user: str = Field(description="user id (see USER_ID_PATTERN)", pattern=USER_ID_PATTERN, max_length=32)
    message: str = Field(description=f"what the user says, at most {MAX_MESSAGE_CHARS} characters", max_length=MAX_MESSAGE_CHARS)

    @field_validator("user", mode="before")
    @classmethod
    def _nfc_user(cls, v):
        return unicodedata.normalize("NFC", v) if isinstance(v, str) else v

    @field_validator("message")
    @classmethod
    def _no_controls(cls, v: str) -> str:
        if _CONTROL_RE.search(v):
            raise ValueError("message must not contain control characters (NUL, escape, ...)")
        return v


class Expression(BaseModel):
    eyes: str = Field(description="작게 | 보통 | 크게 | 아주 크게")
    mouth: str = Field(description="보통 | 크게 | 아주 크게")
    pose: str = Field(description="없음 | 보통 | 많이")


class Scores(BaseModel):
    eyes: float = Field(description="eye opening, about -0.2..1.2 (SPEC §1.7)")
    mouth: float = Field(description="mouth opening, about 0.4..1.6")
    pose: float = Field(description="head turn, about -0.6..1.8")


class TurnResponse(BaseModel):
    """`TurnResult.to_dict()`: one SPEC §1 turn, structured."""

    user: str
    prompt: str
    answer: str
    refused: bool = False
    final_input: str = ""
    memory_used: str | None = None
    memory_score: float | None = None
    memory_saved: str | None = None
    memory_replaced: str | None = None
    summary: str = ""
    expression: Expression | None = None
    scores: Scores | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    generate_calls: int = 0

    @field_validator("expression", "scores", mode="before")
    @classmethod
    def _empty_is_none(cls, v):
        return v or None  # a refused turn has no expression: {} -> null


class MemoryItemOut(BaseModel):
    key: str
    value: str
    text: str = Field(description="'[key: value]'")
    created_at: float = Field(description="unix seconds")
    active: bool = True


class MemoryList(BaseModel):
    user: str
    items: list[MemoryItemOut]


class Forgotten(BaseModel):
    user: str
    key: str
    forgotten: int = Field(description="how many active items were deactivated (>= 1)")


class Summary(BaseModel):
    user: str
    summary: str = Field(description="carried into the user's next turn (SPEC §1.6); '' when none")


class AvatarSettings(BaseModel):
    """What the page's avatar needs from the server (`GET /api/avatar`)."""

    idle: Scores = Field(description="the idle (base) scores she rests at between answers: config.IDLE_SCORES (SPEC §1 step 7)")


class Health(BaseModel):
    status: str = "ok"
    engine: str = Field(description="class name of the engine serving the API")


class ErrorOut(BaseModel):
    detail: str = Field(description="one line saying what was wrong")
    errors: list[dict] = Field(default_factory=list, description="each problem: loc, msg, type")
