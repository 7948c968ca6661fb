"""Dataset rows -> per-head prompt/completion pairs -> token ids with a completion-only mask.

Every string comes from `ohlora.formats` (`head_input`, `training_prompt`,
`training_completion`), so training and inference can never drift apart.

Empty outputs. A memory-head row whose `memory` is empty is a real target ("nothing to
remember"); it is kept and rendered by `formats.training_completion("")`, i.e. the
completion is `"  (답변 종료) <|endoftext|>"` (two spaces: the separator after
`### 답변:` and the one before `(답변 종료)`), so the head learns to close at once.
Every other head skips a row with an empty target (nothing to learn from).

    >>> from ohlora.heads.dataset import head_examples
    >>> row = dict(data_type="train", input_data="로라야 안녕!", output_message="안녕! 반가워 ㅎㅎ",
    ...            memory="", summary="사용자가 인사하자 로라가 반가워함",
    ...            eyes_mouth_pose="(눈 크게, 입 크게, 고개 돌림 없음)")
    >>> head_examples([row], "memory")[0]["completion"]
    '  (답변 종료) <|endoftext|>'
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ohlora import config, formats
from ohlora.errors import DataError

IGNORE_INDEX = -100  # the label value torch's cross-entropy skips


def _get(row: Any, name: str) -> str:
    """A column of a row given as a mapping (csv.DictReader, tests) or an object (persona.Row)."""
    value = row.get(name, "") if isinstance(row, Mapping) else getattr(row, name, "")
    return (value or "").strip()


def _check_head(head: str) -> None:
    if head not in config.HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {', '.join(config.HEADS)}")


def _input_of(row: Any, head: str) -> str | None:
    """What `head` reads for this row, or None when the row lacks a needed column."""
    input_data = _get(row, "input_data")
    output_message = _get(row, "output_message")
    if not input_data:
        return None
    if head in ("summary", "eyes_mouth_pose") and not output_message:
        return None  # these heads read the reply (SPEC §2 table); valid rows may lack it
    return formats.head_input(head, input_data, output_message)


def _target_of(row: Any, head: str) -> str | None:
    """The output `head` learns from this row; None when the row holds no target for it.

    An empty memory is a target (the head must learn to write nothing) as long as the
    row is labelled at all, which we read from its reply being present.
    """
    target = _get(row, head)
    if target:
        return target
    if head == "memory" and _get(row, "output_message"):
        return ""
    return None


def head_examples(rows: Iterable[Any], head: str, split: str = "train") -> list[dict[str, str]]:
    """`[{prompt, completion}]` for one head from the rows of one split (`train`/`valid`).

    Rows lacking this head's target (or its input) are skipped; see the module docstring
    for the memory head's empty target.
    """
    _check_head(head)
    examples = []
    for row in rows:
        if _get(row, "data_type") != split:
            continue
        text, target = _input_of(row, head), _target_of(row, head)
        if text is None or target is None:
            continue
        examples.append(
            {"prompt": formats.training_prompt(text), "completion": formats.training_completion(target)}
        )
    return examples


def head_inputs(rows: Iterable[Any], head: str, split: str = "valid") -> list[str]:
    """The inputs `head` reads for every row of a split that has them (targets not needed):
    the prompts whose generations are logged each epoch."""
    _check_head(head)
    return [t for row in rows if _get(row, "data_type") == split and (t := _input_of(row, head)) is not None]


def tokenize_example(tokenizer, prompt: str, completion: str, max_length: int) -> dict[str, list[int]]:
    """`{input_ids, attention_mask, labels}` for `prompt + completion`, with labels -100
    exactly on the prompt's tokens (up to and including the last token of `### 답변:`).

    The prompt and the whole text are tokenized separately; the prompt's ids must be a
    prefix of the whole's. If a tokenizer merges a token across the boundary (so they are
    not), we use `prompt ids + completion ids` instead: that is also what the model sees
    at inference, where the prompt is tokenized alone and the answer is generated after it.
    The text is cut to `max_length` tokens from the right.
    """
    prompt_ids = tokenizer(prompt)["input_ids"]
    full_ids = tokenizer(prompt + completion)["input_ids"]
    if full_ids[: len(prompt_ids)] != prompt_ids:
        full_ids = prompt_ids + tokenizer(completion, add_special_tokens=False)["input_ids"]
    full_ids = full_ids[:max_length]
    n_prompt = min(len(prompt_ids), len(full_ids))
    labels = [IGNORE_INDEX] * n_prompt + full_ids[n_prompt:]
    return {"input_ids": full_ids, "attention_mask": [1] * len(full_ids), "labels": labels}


# --- reading the CSV ------------------------------------------------------------------------------
def load_rows(path: str | Path) -> list[Any]:
    """The dataset's rows, validated by `ohlora.data.persona.load_rows` (the `data check`
    rules) when that module is present, else read as plain dicts with a header check."""
    try:
        from ohlora.data.persona import load_rows as persona_load_rows
    except ImportError:
        return _read_rows(path)
    return persona_load_rows(path)


_REQUIRED_COLUMNS = ("data_type", "input_data", "output_message", "memory", "summary", "eyes_mouth_pose")


def _read_rows(path: str | Path) -> list[dict[str, str]]:
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in _REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(path, 1, f"missing column(s) {', '.join(missing)}")
            rows = []
            for row in reader:
                if None in row or any(v is None for v in row.values()):
                    raise DataError(path, reader.line_num, "wrong number of fields (an unquoted comma?)")
                if row["data_type"].strip() not in ("train", "valid"):
                    raise DataError(path, reader.line_num, f"data_type {row['data_type']!r} is not train or valid")
                rows.append(row)
    except OSError as e:
        raise DataError(path, None, f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise DataError(path, None, "not UTF-8; save the file as UTF-8") from None
    return rows
