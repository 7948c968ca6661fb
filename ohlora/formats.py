"""Every string a model sees or writes, defined once (SPEC §1-§3).

Training and inference both build their text here, so they can never drift apart;
golden tests in tests/test_formats.py pin each string. Parsing and validation of the
structured outputs (`[key: value]`, `(눈 E, 입 M, 고개 돌림 P)`) live here too.
No torch, no models: this module is pure text.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass

from ohlora import config

# --- markers (SPEC §2 training text, §1 step 3 final input) --------------------------
ANSWER_START = "(답변 시작)"
ANSWER_HEADER = "### 답변:"
ANSWER_END = "(답변 종료)"
EOS = "<|endoftext|>"  # polyglot-ko's end-of-text token; the tiny base uses the same
SUMMARY_TAG = "(오로라 답변 요약)"
QUESTION_TAG = "(사용자 질문)"
ANSWER_TAG = "(오로라 답변)"

# Markers that must never appear in a head's output, nor be taken verbatim from a user.
MARKERS: tuple[str, ...] = (ANSWER_START, ANSWER_HEADER, ANSWER_END, SUMMARY_TAG, QUESTION_TAG, ANSWER_TAG, EOS)

# Zero-width and BOM characters: invisible, so they must not make two texts differ.
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFC, zero-width characters removed, runs of white space folded, stripped.

    Korean typed on different systems arrives as composed (NFC) or decomposed (NFD)
    syllables; comparing or storing without this makes '날씨' != '날씨'.
    """
    text = unicodedata.normalize("NFC", text).translate(_ZERO_WIDTH)
    return _SPACES.sub(" ", text).strip()


def compact(text: str) -> str:
    """`normalize` with every space removed: the identity used for memory dedupe (SPEC §1.5)."""
    return _SPACES.sub("", normalize(text))


# --- memory items ----------------------------------------------------------------------
# One `[key: value]`; neither part may hold brackets, the key no colon. The value may
# hold a colon ("7:30"), so we split on the first one; but not a colon followed by white
# space, the key/value separator itself: `[상태: 일정: 날씨]` is a second item squeezed
# into the value (the demo's memory head wrote it), not one fact. The value group keeps
# its trailing spaces so `[키: 값: ]` counts too, as in the memory head's decoding
# grammar (heads/constraints.py masks ':' + white space anywhere in the value).
_MEMORY_RE = re.compile(r"^\[\s*([^\[\]:]+?)\s*:\s*([^\[\]]+)\]$")
_VALUE_SEPARATOR = re.compile(r":\s")
_COMBINATION_RE = re.compile(r"^(\[[^\[\]]*\])\s*(.*)$")


@dataclass(frozen=True)
class MemoryItem:
    key: str
    value: str

    @property
    def text(self) -> str:
        return f"[{self.key}: {self.value}]"

    def canonical_key(self) -> str:
        """The key used to compare facts: aliases applied, 상태 replaced by its value (SPEC §4)."""
        key = config.KEY_ALIASES.get(self.key, self.key)
        return self.value if key == config.STATE_KEY else key

    def __str__(self) -> str:
        return self.text


def parse_memory(text: str) -> MemoryItem | None:
    """Parse exactly one `[key: value]` (normalized); None if the text is anything else,
    including a value that holds `: ` (a colon then white space; `7:30` is fine)."""
    m = _MEMORY_RE.match(normalize(text))
    if not m:
        return None
    key, value = m.group(1).strip(), m.group(2).strip()
    if not key or not value or _VALUE_SEPARATOR.search(m.group(2)):
        return None
    return MemoryItem(key, value)


def parse_memory_output(text: str) -> tuple[bool, MemoryItem | None]:
    """A memory head's output: (valid, item). Empty output is valid and means 'nothing'."""
    text = normalize(text)
    if not text:
        return True, None
    item = parse_memory(text)
    return item is not None, item


class CombinationLineError(ValueError):
    """A combinations line that is not `[key: value] prompt`."""


def parse_combination_line(line: str) -> tuple[MemoryItem, str]:
    """`[key: value] user prompt` -> (item, prompt). Applies the key alias of SPEC §4."""
    text = normalize(line)
    m = _COMBINATION_RE.match(text)
    if not m:
        raise CombinationLineError("expected '[key: value] prompt' (missing '[' or ']')")
    item = parse_memory(m.group(1))
    if item is None:
        raise CombinationLineError(f"memory {m.group(1)!r} must be '[key: value]' with a non-empty key and value")
    prompt = m.group(2).strip()
    if not prompt:
        raise CombinationLineError("the prompt after the memory is empty")
    return MemoryItem(config.KEY_ALIASES.get(item.key, item.key), item.value), prompt


# --- expression --------------------------------------------------------------------------
EYES_LABELS: tuple[str, ...] = tuple(config.EYES_SCORES)
MOUTH_LABELS: tuple[str, ...] = tuple(config.MOUTH_SCORES)
POSE_LABELS: tuple[str, ...] = tuple(config.POSE_SCORES)
_EXPRESSION_RE = re.compile(r"^\(\s*눈\s+(.+?)\s*,\s*입\s+(.+?)\s*,\s*고개 돌림\s+(.+?)\s*\)$")


@dataclass(frozen=True)
class Expression:
    eyes: str
    mouth: str
    pose: str

    @property
    def text(self) -> str:
        return f"(눈 {self.eyes}, 입 {self.mouth}, 고개 돌림 {self.pose})"

    def scores(self, rng: random.Random | None = None) -> dict[str, float]:
        """Draw each score uniformly from its label's range (SPEC §1.7), each from its own field."""
        rng = rng or random.Random()
        return {
            "eyes": rng.uniform(*config.EYES_SCORES[self.eyes]),
            "mouth": rng.uniform(*config.MOUTH_SCORES[self.mouth]),
            "pose": rng.uniform(*config.POSE_SCORES[self.pose]),
        }

    def __str__(self) -> str:
        return self.text


DEFAULT_EXPRESSION = Expression(*config.EXPRESSION_FALLBACK)


def parse_expression(text: str) -> Expression | None:
    """`(눈 E, 입 M, 고개 돌림 P)` with labels from SPEC §1.7; None otherwise."""
    m = _EXPRESSION_RE.match(normalize(text))
    if not m:
        return None
    eyes, mouth, pose = (_SPACES.sub(" ", g) for g in m.groups())
    if eyes not in config.EYES_SCORES or mouth not in config.MOUTH_SCORES or pose not in config.POSE_SCORES:
        return None
    return Expression(eyes, mouth, pose)


# --- prompts (SPEC §2) -----------------------------------------------------------------------
def head_input(head: str, input_data: str, output_message: str = "") -> str:
    """What a head reads, from a dataset row or a turn (SPEC §2 table)."""
    if head in ("output_message", "memory"):
        return input_data
    if head == "summary":
        return f"{input_data} {ANSWER_TAG} {output_message}"
    if head == "eyes_mouth_pose":
        return output_message
    raise ValueError(f"unknown head {head!r}; expected one of {', '.join(config.HEADS)}")


def training_prompt(input_text: str) -> str:
    """The part of the training text the loss ignores: up to and including `### 답변:`."""
    return f"{input_text} {ANSWER_START} {ANSWER_HEADER}"


def training_completion(output: str) -> str:
    """The part the loss is computed on. An empty output (memory head) stays one space."""
    return f" {output} {ANSWER_END} {EOS}"


def training_text(input_text: str, output: str) -> str:
    """SPEC §2: `{input} (답변 시작) ### 답변: {output} (답변 종료) <|endoftext|>`."""
    return training_prompt(input_text) + training_completion(output)


def inference_prompt(input_text: str) -> str:
    """What generation starts from.

    The reference fed `{input} (답변 시작)` and let the model write `### 답변:` itself;
    we feed the header too (it is fixed text), so the model starts on the answer, the
    prompt ends exactly where the training loss mask ends, and no tokens are spent.
    `parse_generated` accepts both, so reference-style continuations still parse.
    """
    return training_prompt(input_text)


def parse_generated(text: str) -> str:
    """The answer in a head's continuation: after `### 답변:` if present, before `(답변 종료)`."""
    if ANSWER_HEADER in text:
        text = text.split(ANSWER_HEADER, 1)[1]
    text = text.split(ANSWER_END, 1)[0].split(EOS, 1)[0]
    return text.strip()


def final_input(prompt: str, memory: str | None = None, summary: str | None = None) -> str:
    """SPEC §1.3: memory first, else the previous turn's summary, else the prompt alone."""
    if memory:
        return f"{memory} {prompt}"
    if summary:
        return f"{SUMMARY_TAG} {summary} {QUESTION_TAG} {prompt}"
    return prompt


def strip_markers(text: str) -> str:
    """Remove our control markers from user text, so a prompt cannot impersonate them."""
    for marker in MARKERS:
        text = text.replace(marker, " ")
    return normalize(text)


# --- reply checks (SPEC §2 'Checks') ------------------------------------------------------------
_URL = re.compile(r"https?://|www\.", re.IGNORECASE)
_LEAKS = ("답변 종료", "(사용자", "요약)", "답변 시작", ANSWER_HEADER)
_QUOTES = "\"'“”‘’`"


def reply_problem(text: str) -> str | None:
    """Why a generated reply fails the reference checks, or None if it passes."""
    if not text.strip():
        return "empty"
    if any(leak in text for leak in _LEAKS):
        return "leaked marker"
    if _URL.search(text):
        return "url"
    if "\ufffd" in text:
        return "replacement character"
    if " " * 5 in text:
        return "run of 5 spaces"
    if any(q in text for q in _QUOTES):
        return "quote character"
    return None


def summary_problem(text: str) -> str | None:
    """Summary checks: as the reply's, but quotes are allowed."""
    problem = reply_problem(text)
    return None if problem == "quote character" else problem
