"""`ohlora data check`: every problem of a persona dataset, each as `file:line: message`.

Errors are what would train a head on something it must never write, or make a row
mean something else than intended (labels outside SPEC §1.7, a memory output that is
not one `[key: value]`, markers in an output, a reply the SPEC §2 checks would reject,
duplicates, valid rows leaked from train). Warnings are style (stray spaces, a summary
longer than what it summarises) and never change the exit code.

Invisible text is an error, not a warning: a non-NFC syllable or a zero-width
character makes two equal-looking prompts differ (so duplicates and leakage hide), and
teaches a head text the engine never produces (it normalises what users type).

    >>> from ohlora.data.persona import Row
    >>> from ohlora.data.check import check_rows
    >>> row = Row("train", "로라야 안녕", "안녕! 반가워 ㅎㅎ", "", "사용자가 인사하자 로라도 반갑게 인사함",
    ...           "(눈 보통, 입 크게, 고개 돌림 없음)", "보통", "크게", "없음", line=2)
    >>> check_rows([row], "x.csv")
    []
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from ohlora import formats
from ohlora.data.persona import DATA_TYPES, TRAIN_REQUIRED, Problem, Row, read_csv

TEXT_COLUMNS: tuple[str, ...] = ("input_data", "output_message", "memory", "summary")
OUTPUT_COLUMNS: tuple[str, ...] = ("output_message", "memory", "summary")
LABELS: dict[str, tuple[str, ...]] = {
    "eyes": formats.EYES_LABELS,
    "mouth": formats.MOUTH_LABELS,
    "pose": formats.POSE_LABELS,
}
# A summary may exceed a short exchange by its frame (사용자가 ... 로라가 ... 함) before
# it stops summarising; longer ones are flagged.
SUMMARY_FRAME_CHARS = 10
# A valid prompt this similar (difflib ratio, spaces ignored) to a train prompt is a
# near-copy: it measures recall, not generalisation. Typos and ㅋㅋ differ by ~0.1.
NEAR_LEAK_RATIO = 0.9
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"  # the set formats.normalize removes
_INNER_MEMORY = re.compile(r"\[[^\[\]:]+:[^\[\]]+\]")  # a `[key: value]` somewhere in the text
# Markers that may appear in input_data only in their multi-turn place.
_INPUT_FORBIDDEN = tuple(m for m in formats.MARKERS if m not in (formats.SUMMARY_TAG, formats.QUESTION_TAG))


@dataclass
class CheckResult:
    path: str
    rows: list[Row]
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary_line(self) -> str:
        n_train = sum(r.data_type == "train" for r in self.rows)
        n_valid = sum(r.data_type == "valid" for r in self.rows)
        counts = f"{n_train} train, {n_valid} valid rows"
        warn = f", {len(self.warnings)} warning(s)" if self.warnings else ""
        if self.ok:
            return f"{self.path}: OK: {counts}{warn}"
        return f"{self.path}: {len(self.errors)} error(s){warn} in {counts}"


def check_file(path: str) -> CheckResult:
    """Check a dataset file; raises `DataError` only when it cannot be read as one."""
    rows, problems = read_csv(path)
    problems = problems + check_rows(rows, str(path))
    problems.sort(key=lambda p: (p.line or 0, p.severity != "error"))
    return CheckResult(str(path), rows, problems)


def check_rows(rows: Iterable[Row], path: str) -> list[Problem]:
    """Every problem of these rows: each row alone, then across rows."""
    rows = list(rows)
    problems: list[Problem] = []
    for row in rows:
        for severity, message in _row_problems(row):
            problems.append(Problem(path, row.line, message, severity))
    for line, message in _duplicates(rows):
        problems.append(Problem(path, line, message))
    for line, message in _leaks(rows):
        problems.append(Problem(path, line, message))
    for line, message in _near_leaks(rows):
        problems.append(Problem(path, line, message, "warning"))
    return problems


def _text_problems(column: str, text: str) -> Iterable[tuple[str, str]]:
    if unicodedata.normalize("NFC", text) != text:
        yield "error", f"{column}: not NFC-normalised (decomposed Hangul?); save it composed"
    zw = sorted({f"U+{ord(c):04X}" for c in text if c in _ZERO_WIDTH})
    if zw:
        yield "error", f"{column}: zero-width character(s) {', '.join(zw)}"
    if "\n" in text or "\r" in text or "\t" in text:
        yield "error", f"{column}: line break or tab inside the text"
    elif text != text.strip() or "  " in text:
        yield "warning", f"{column}: leading/trailing or double spaces"


def _input_problems(text: str) -> Iterable[str]:
    text = formats.normalize(text)
    for marker in _INPUT_FORBIDDEN:
        if marker in text:
            yield f"input_data: contains the marker {marker!r}"
    has_summary, has_question = formats.SUMMARY_TAG in text, formats.QUESTION_TAG in text
    if text.startswith("["):
        try:
            _, prompt = formats.parse_combination_line(text)
        except formats.CombinationLineError as e:
            yield f"input_data: memory prefix: {e}"
            return
        if has_summary or has_question:
            yield "input_data: memory-prefixed and multi-turn at once (SPEC §1.3 uses one or the other)"
    elif has_summary or has_question:
        if not has_summary:
            yield f"input_data: {formats.QUESTION_TAG} without a leading {formats.SUMMARY_TAG}"
            return
        if not text.startswith(formats.SUMMARY_TAG):
            yield f"input_data: multi-turn input must start with {formats.SUMMARY_TAG}"
            return
        if not has_question:
            yield f"input_data: {formats.SUMMARY_TAG} without {formats.QUESTION_TAG} (expected '{formats.SUMMARY_TAG} summary {formats.QUESTION_TAG} prompt')"
            return
        summary, prompt = text[len(formats.SUMMARY_TAG) :].split(formats.QUESTION_TAG, 1)
        if formats.SUMMARY_TAG in prompt or formats.QUESTION_TAG in prompt:
            yield "input_data: more than one multi-turn tag"
        if not summary.strip():
            yield "input_data: empty previous summary"
        if not prompt.strip():
            yield "input_data: empty question after " + formats.QUESTION_TAG
    elif _INNER_MEMORY.search(text):
        yield "input_data: a [key: value] memory must come first"


def _row_problems(row: Row) -> Iterable[tuple[str, str]]:
    if row.data_type not in DATA_TYPES:
        yield "error", f"data_type {row.data_type!r} is not one of {', '.join(DATA_TYPES)}"
    if not row.input_data.strip():
        yield "error", "input_data is empty"
    else:
        for message in _input_problems(row.input_data):
            yield "error", message
    if row.data_type == "train":
        for column in TRAIN_REQUIRED:
            if not getattr(row, column).strip():
                yield "error", f"{column} is empty (train rows need it)"

    for column in TEXT_COLUMNS:
        yield from _text_problems(column, getattr(row, column))

    marked: set[str] = set()
    for column in OUTPUT_COLUMNS:
        text = getattr(row, column)
        for marker in formats.MARKERS:
            if marker in text:
                marked.add(column)
                yield "error", f"{column}: contains the marker {marker!r}"

    reply = row.output_message
    if reply.strip() and "output_message" not in marked:
        problem = formats.reply_problem(reply)
        if problem:
            yield "error", f"output_message: {problem} (SPEC §2 reply checks)"
    if row.summary.strip() and "summary" not in marked:
        problem = formats.summary_problem(row.summary)
        if problem:
            yield "error", f"summary: {problem} (SPEC §2 checks)"
        elif reply.strip():
            summary, exchange = formats.normalize(row.summary), formats.normalize(row.input_data) + formats.normalize(reply)
            if summary in (formats.normalize(reply), formats.normalize(row.input_data)):
                yield "warning", "summary copies the input or the answer instead of summarising"
            elif len(summary) > len(exchange) + SUMMARY_FRAME_CHARS:
                yield "warning", "summary is longer than the exchange it summarises"
    if row.memory.strip() and "memory" not in marked:
        valid, _ = formats.parse_memory_output(row.memory)
        if not valid:
            yield "error", f"memory {row.memory!r} is not exactly one [key: value]"

    yield from _expression_problems(row)


def _expression_problems(row: Row) -> Iterable[tuple[str, str]]:
    for column, labels in LABELS.items():
        value = getattr(row, column)
        if value and value not in labels:
            yield "error", f"{column} {value!r} is not one of {', '.join(labels)}"
    if not row.eyes_mouth_pose.strip():
        return
    expression = formats.parse_expression(row.eyes_mouth_pose)
    if expression is None:
        yield "error", f"eyes_mouth_pose {row.eyes_mouth_pose!r} is not '(눈 E, 입 M, 고개 돌림 P)' with SPEC §1.7 labels"
        return
    for column in LABELS:
        value, said = getattr(row, column), getattr(expression, column)
        if value and value in LABELS[column] and value != said:
            yield "error", f"{column} {value!r} disagrees with eyes_mouth_pose ({said!r})"


def _duplicates(rows: list[Row]) -> Iterable[tuple[int, str]]:
    seen: dict[tuple[str, str], Row] = {}
    for row in rows:
        key = (row.data_type, formats.normalize(row.input_data))
        if not key[1]:
            continue
        first = seen.setdefault(key, row)
        if first is not row:
            yield row.line, f"duplicate input_data in {row.data_type} (same as line {first.line})"


def _leaks(rows: list[Row]) -> Iterable[tuple[int, str]]:
    train = {}
    for row in rows:
        if row.data_type == "train":
            train.setdefault(formats.compact(row.input_data), row)
    for row in rows:
        if row.data_type == "valid":
            twin = train.get(formats.compact(row.input_data))
            if twin is not None and formats.compact(row.input_data):
                yield row.line, f"valid input_data leaks from train (line {twin.line}, spaces ignored)"


def _bare_prompt(input_data: str) -> str:
    """The user's own words: input_data without its memory or multi-turn prefix."""
    text = formats.normalize(input_data)
    if formats.QUESTION_TAG in text:
        return text.split(formats.QUESTION_TAG, 1)[1]
    if text.startswith("[") and "]" in text:
        return text.split("]", 1)[1]
    return text


def _near_leaks(rows: list[Row]) -> Iterable[tuple[int, str]]:
    train = [(formats.compact(_bare_prompt(r.input_data)), r) for r in rows if r.data_type == "train"]
    exact = {formats.compact(r.input_data) for r in rows if r.data_type == "train"}
    for row in rows:
        if row.data_type != "valid" or formats.compact(row.input_data) in exact:
            continue  # an exact leak is already an error
        prompt = formats.compact(_bare_prompt(row.input_data))
        if not prompt:
            continue
        matcher = difflib.SequenceMatcher(None, "", prompt)  # b is cached: the valid prompt
        best, best_row = 0.0, None
        for text, twin in train:
            matcher.set_seq1(text)
            # cheap upper bounds first: most pairs are rejected without the full ratio
            if matcher.real_quick_ratio() < NEAR_LEAK_RATIO or matcher.quick_ratio() < NEAR_LEAK_RATIO:
                continue
            ratio = matcher.ratio()
            if ratio > best:
                best, best_row = ratio, twin
        if best_row is not None and best >= NEAR_LEAK_RATIO:
            yield row.line, f"valid prompt nearly repeats train line {best_row.line} (similarity {best:.2f})"
