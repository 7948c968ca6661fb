"""The memory combinations we ship in data/memory/ (docs/memory.md 'Data we wrote')."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ohlora.formats import compact
from ohlora.memory.pairs import read_combinations

DATA = Path(__file__).resolve().parents[2] / "data" / "memory"

# The non-상태 keys of the reference train pairs' memory_0 column (SPEC §4; 좋아하는 아이돌
# already read as 좋아하는 가수), and the 상태 values it has: only these have key-pair scores
# in the reference, which is what the ref_keys_*.txt files are for.
REF_KEYS = {
    "오늘 날씨", "내일 날씨", "오늘 일정", "내일 일정", "롤 티어", "좋아하는 가수", "좋아하는 꽃",
    "좋아하는 과목", "좋아하는 음식", "지금 있는 곳", "가고 싶은 곳", "먹고 싶은 음식",
    "먹고 있는 음식", "좋아하는 커피", "오늘 기분 상태", "오늘 요리",
}
REF_STATES = {
    "키보드 소개", "오로라 만나고 싶음", "힘듦", "쉬고 싶음", "케이크 주문", "짜증", "떨림", "책 구매",
    "공연 보고 싶음", "가수 공연 보고 싶음", "드라이브", "일에 너무 집중", "아무것도 안하고 싶음",
    "자격증 시험 걱정", "빙수 상상", "걱정", "뭐 먹을지 고민",
}
MIN_LINES_PER_KEY = 18  # so each key is learnt from many phrasings, not the reference's 1-12


REF_KEY_FILES = ["ref_keys_combs.txt", "ref_keys_more.txt", "ref_keys_indirect.txt"]


@pytest.mark.parametrize("name", REF_KEY_FILES)
def test_ref_keys_files_cover_exactly_the_reference_keys(name):
    combos = read_combinations(DATA / name)  # raises DataError on a bad line
    keys = Counter(c.item.key for c in combos if c.item.key != "상태")
    states = {c.item.value for c in combos if c.item.key == "상태"}
    assert set(keys) == REF_KEYS
    assert {k: n for k, n in keys.items() if n < MIN_LINES_PER_KEY} == {}
    assert states <= REF_STATES


def test_ref_keys_prompts_are_unique_across_files_and_held_out_from_test_combs():
    prompts = [compact(c.prompt) for name in REF_KEY_FILES for c in read_combinations(DATA / name)]
    assert [p for p, n in Counter(prompts).items() if n > 1] == []
    held_out = {compact(c.prompt) for c in read_combinations(DATA / "test_combs.txt")}
    assert set(prompts) & held_out == set()


def test_the_events_file_kept_for_its_read_parses_and_repeats_no_prompt():
    """ref_keys_events.txt is not trained on (docs/memory.md), but its one test read can be
    rerun from it, so it must stay a valid file of its two keys, new to every other prompt."""
    combos = read_combinations(DATA / "ref_keys_events.txt")
    assert Counter(c.item.key for c in combos) == {"오늘 일정": 130, "내일 일정": 130}
    prompts = [compact(c.prompt) for c in combos]
    others = {compact(c.prompt) for name in [*REF_KEY_FILES, "test_combs.txt", "train_combs.txt"] for c in read_combinations(DATA / name)}
    assert len(set(prompts)) == len(prompts) and set(prompts) & others == set()
