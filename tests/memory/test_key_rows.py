"""`KeyRows` (ohlora/memory/key_rows.py): an unseen key's predicted row of scores against the
trained keys, read from the key string, and `row_vectors`, which places a memory so that its
cosine with a prompt is that row averaged over the prompt's posterior."""

from __future__ import annotations

import numpy as np
import pytest

from ohlora.memory.key_rows import KeyRows, row_vectors

KEYS = ["먹고 싶은 음식", "좋아하는 음식", "오늘 날씨", "내일 날씨", "좋아하는 가수", "공연 보고 싶음"]
# made-up scores (SPEC §4 would take them from a teacher): food keys close, weather keys close
SCORES = np.array([
    [1.0, 0.7, 0.1, 0.1, 0.3, 0.4],
    [0.7, 1.0, 0.1, 0.1, 0.5, 0.2],
    [0.1, 0.1, 1.0, 0.9, 0.1, 0.1],
    [0.1, 0.1, 0.9, 1.0, 0.1, 0.2],
    [0.3, 0.5, 0.1, 0.1, 1.0, 0.7],
    [0.4, 0.2, 0.1, 0.2, 0.7, 1.0],
])


@pytest.fixture(scope="module")
def rows():
    from ohlora.memory.morphemes import MorphemeVectors

    return KeyRows(len(KEYS)).fit(KEYS, SCORES, MorphemeVectors())


def test_an_unseen_key_is_closest_to_the_trained_keys_its_string_resembles(rows):
    got = rows.rows(["모레 날씨", "먹고 싶은 빵", "좋아하는 아이돌 가수"])
    assert got.shape == (3, len(KEYS))
    weather, food = [KEYS.index("오늘 날씨"), KEYS.index("내일 날씨")], [KEYS.index("먹고 싶은 음식"), KEYS.index("좋아하는 음식")]
    assert int(np.argmax(got[0])) in weather
    assert int(np.argmax(got[1])) in food
    assert int(np.argmax(got[2])) == KEYS.index("좋아하는 가수")
    assert got[0, weather].min() > got[0, food].max() + 0.2  # bread is far from the weather, and the other way round
    assert got[1, food].min() > got[1, weather].max() + 0.2


def test_features_ignore_spaces_and_are_symmetric(rows):
    a, b = rows.features("오늘 날씨", "내일날씨"), rows.features("내일날씨", "오늘 날씨")
    assert a[:5] == pytest.approx(b[:5], abs=1e-6)
    assert rows.features("오늘 날씨", "오늘날씨")[0] == pytest.approx(1.0)  # same characters once spaces go


def test_the_fit_is_deterministic_and_saves_with_the_state_dict(rows):
    from ohlora.memory.morphemes import MorphemeVectors

    again = KeyRows(len(KEYS)).fit(KEYS, SCORES, MorphemeVectors())
    assert np.allclose(again.rows(["모레 날씨"]), rows.rows(["모레 날씨"]), atol=1e-6)
    loaded = KeyRows(len(KEYS)).attach(KEYS, MorphemeVectors())
    loaded.load_state_dict(rows.state_dict())
    assert np.allclose(loaded.rows(["먹고 싶은 빵"]), rows.rows(["먹고 싶은 빵"]), atol=1e-6)


def test_row_vectors_reproduce_a_row_the_table_can_hold():
    gen = np.random.default_rng(0)
    table = gen.normal(size=(5, 5))
    table /= np.linalg.norm(table, axis=1, keepdims=True)
    v_true = gen.normal(size=5)
    v_true *= 0.8 / np.linalg.norm(v_true)
    v = row_vectors((table @ v_true)[None], table)[0]
    assert np.allclose(table @ v, table @ v_true, atol=1e-5)


def test_row_vectors_stay_inside_the_unit_ball():
    """A row no unit vector can give (every score 5) is met as closely as |v| ≤ 1 allows."""
    table = np.eye(3)
    v = row_vectors(np.array([[5.0, 5.0, 5.0], [0.2, 0.0, 0.1]]), table)
    assert np.linalg.norm(v[0]) == pytest.approx(1.0, abs=1e-4)
    assert np.allclose(v[0], np.ones(3) / np.sqrt(3), atol=1e-3)  # the closest point of the ball
    assert np.allclose(v[1], [0.2, 0.0, 0.1], atol=1e-6)  # inside already: exact


def test_the_regressor_learns_only_from_labelled_key_pairs():
    """A table fills the pairs it never saw; the pair regressor must not learn from that fill:
    whatever stands in an unlabelled cell, the fitted regressor is the same."""
    from ohlora.memory.morphemes import MorphemeVectors

    labelled = np.ones_like(SCORES, dtype=bool)
    labelled[0, 2] = labelled[2, 0] = False
    fits = []
    for fill in (0.0, 0.95):
        scores = SCORES.copy()
        scores[0, 2] = scores[2, 0] = fill
        fits.append(KeyRows(len(KEYS)).fit(KEYS, scores, MorphemeVectors(), labelled=labelled))
    a, b = (dict(f.net.state_dict()) for f in fits)
    assert all(np.allclose(a[n].numpy(), b[n].numpy()) for n in a)
    unmasked = [KeyRows(len(KEYS)).fit(KEYS, s, MorphemeVectors()) for s in (SCORES, np.where(labelled, SCORES, 0.95))]
    assert not np.allclose(unmasked[0].net[0].weight.detach().numpy(), unmasked[1].net[0].weight.detach().numpy())


def test_the_string_cache_is_bounded_and_eviction_changes_no_row(rows, monkeypatch):
    """A long-running server meets new keys for ever: the per-key string features are kept for
    at most INFO_CACHE keys (least recently used go), and a key computed again gives the same row."""
    import ohlora.memory.key_rows as kr

    new = ["먹고 싶은 빵", "모레 날씨", "좋아하는 밴드", "보고 싶은 영화", "좋아하는 색깔 🎨", "여행 가고 싶음"]
    before = rows.rows(new)
    monkeypatch.setattr(kr, "INFO_CACHE", 4)
    small = KeyRows(len(KEYS)).attach(KEYS, rows.vectors)
    small.load_state_dict(rows.state_dict())
    after = small.rows(new)
    assert len(small._info) <= 4
    assert np.allclose(after, before, atol=1e-6)
    assert np.allclose(small.rows(new[:1]), before[:1], atol=1e-6)  # evicted long ago, computed again
