"""Training both ways on the tiny klue-shaped RoBERTa; the block objective equals the row objective."""

from __future__ import annotations

import random

import pytest

from ohlora.memory.pairs import Pair
from ohlora.memory.train import TrainArgs, _blocks, label_table, split_rows, train

MEMS = ["[오늘 날씨: 비]", "[좋아하는 가수: 아이유]", "[상태: 피곤함]", "[롤 티어: 골드]", "[취미: 등산]", "[반려동물: 고양이]"]
PROMPTS = ["우산 챙길까?", "노래 추천해줘", "너무 힘들어", "승급전 이겼다!", "주말에 산에 가", "츄르 줬어 😺"]


def product_pairs() -> list[Pair]:
    # the i-th memory belongs with the i-th prompt: 1.0 on the diagonal, 0.0 elsewhere
    return [Pair(m, p, 1.0 if i == j else 0.0) for i, m in enumerate(MEMS) for j, p in enumerate(PROMPTS)]


def test_resolved_defaults():
    assert TrainArgs(mode="reference").resolved().epochs == 10  # SPEC §4
    assert TrainArgs(mode="reference").resolved().lr == 2e-5
    assert TrainArgs(mode="reference").batch_size == 16  # SPEC §4
    b = TrainArgs().resolved()
    assert b.mode == "block" and b.epochs == TrainArgs.block_epochs and b.lr == TrainArgs.block_lr
    assert TrainArgs(mode="block", epochs=3, lr=0.5).resolved().epochs == 3


def test_split_rows_is_90_10_random_and_disjoint():
    pairs = [Pair(f"[k: {i}]", "p", 0.0) for i in range(100)]
    train_rows, valid = split_rows(pairs, 0.1, seed=1)
    assert len(valid) == 10 and len(train_rows) == 90
    assert {p.memory for p in train_rows}.isdisjoint(p.memory for p in valid)
    assert split_rows(pairs, 0.1, seed=1) == (train_rows, valid)  # seeded
    assert split_rows(pairs, 0.1, seed=2)[1] != valid


def test_label_table_averages_repeats_and_counts_them():
    rows = [Pair("m1", "p1", 1.0), Pair("m1", "p1", 0.5), Pair("m1", "p2", 0.2), Pair("m2", "p1", 0.0)]
    mems, prompts, table = label_table(rows)
    assert mems == ["m1", "m2"] and prompts == ["p1", "p2"]
    assert table == {(0, 0): (0.75, 2), (0, 1): (0.2, 1), (1, 0): (0.0, 1)}


def test_blocks_cover_every_pair_once_per_epoch():
    blocks = _blocks(7, 5, 3, random.Random(0))
    seen = [(m, p) for ms, ps in blocks for m in ms for p in ps]
    assert sorted(seen) == [(m, p) for m in range(7) for p in range(5)]
    assert all(len(ms) <= 3 and len(ps) <= 3 for ms, ps in blocks)


def test_block_objective_equals_row_mse(tiny_encoder_dir):
    """Row-weighted block loss == mean over rows of (cos - label)², the reference loss,
    up to a constant: the spread of the labels of a repeated pair (so equal gradients)."""
    import torch
    import torch.nn.functional as F

    from ohlora.memory.train import _embed
    from ohlora.models import load_sentence_encoder

    model = load_sentence_encoder(tiny_encoder_dir)
    model.eval()
    rows = product_pairs() + [Pair(MEMS[0], PROMPTS[1], 0.3)]  # one repeated pair with another label
    with torch.no_grad():
        mems, prompts, table = label_table(rows)
        emb = F.normalize(_embed(model, mems + prompts), dim=-1)
        cos = emb[: len(mems)] @ emb[len(mems) :].T
        w = sum(n for _, n in table.values())
        block = sum(n * (cos[i, j] - lab) ** 2 for (i, j), (lab, n) in table.items()) / w
        a = F.normalize(_embed(model, [r.memory for r in rows]), dim=-1)
        b = F.normalize(_embed(model, [r.prompt for r in rows]), dim=-1)
        ref = (((a * b).sum(-1) - torch.tensor([r.score for r in rows])) ** 2).mean()
    # (MEMS[0], PROMPTS[1]) has labels 0.0 and 0.3 -> mean 0.15
    constant = ((0.0 - 0.15) ** 2 + (0.3 - 0.15) ** 2) / len(rows)
    assert float(block) + constant == pytest.approx(float(ref), rel=1e-5)


@pytest.mark.parametrize("mode, epochs, lr", [("block", 12, 3e-3), ("reference", 3, 3e-3)])
def test_training_lowers_the_loss_and_saves_a_loadable_model(tiny_encoder_dir, tmp_path, mode, epochs, lr):
    from ohlora.models import load_sentence_encoder

    pairs = product_pairs() * 2
    seen = []
    args = TrainArgs(mode=mode, epochs=epochs, lr=lr, batch_size=8, valid_ratio=0.1, seed=0)
    out = tmp_path / "model"
    result = train(None, out, base=tiny_encoder_dir, args=args, pairs=pairs, on_epoch=lambda e, m, row: seen.append(e), progress=False)
    losses = [row["loss"] for row in result.history]
    assert len(losses) == epochs and seen == list(range(1, epochs + 1))
    assert losses[-1] < losses[0]
    assert all("pearson" in row for row in result.history)
    reloaded = load_sentence_encoder(str(out))
    import numpy as np

    a = reloaded.encode(MEMS[:2], convert_to_numpy=True)
    b = result.model.encode(MEMS[:2], convert_to_numpy=True)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_block_mode_takes_fewer_steps_than_rows(tiny_encoder_dir):
    pairs = product_pairs()
    args = TrainArgs(mode="block", epochs=1, lr=1e-3, batch_size=4, valid_ratio=0.0)
    result = train(None, None, base=tiny_encoder_dir, args=args, pairs=pairs, progress=False)
    assert result.steps == 4  # 6 memories x 6 prompts in blocks of 4: 2 x 2 blocks (36 rows = 9 row batches)


# --- block mode over lines (views="lines") ----------------------------------------------------
def line_pairs() -> list[Pair]:
    """Five-column rows of the n×n product of lines (MEMS[i], PROMPTS[i]): 1.0 for the same
    line, 0.0 otherwise, as make-pairs would write them."""
    return [
        Pair(m, PROMPTS[j], 1.0 if i == j else 0.0, prompt_0=PROMPTS[i], memory_1=MEMS[j])
        for i, m in enumerate(MEMS)
        for j in range(len(MEMS))
    ]


def test_lines_view_trains_and_pulls_each_prompt_to_its_own_memory(tiny_encoder_dir):
    import numpy as np

    args = TrainArgs(mode="block", views="lines", epochs=15, lr=3e-3, batch_size=4, valid_ratio=0.0, seed=0)
    result = train(None, None, base=tiny_encoder_dir, args=args, pairs=line_pairs(), progress=False)
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < losses[0]
    m = result.model.encode(MEMS, convert_to_numpy=True, normalize_embeddings=True)
    p = result.model.encode(PROMPTS, convert_to_numpy=True, normalize_embeddings=True)
    cos = m @ p.T
    own, other = np.diag(cos).mean(), cos[~np.eye(len(MEMS), dtype=bool)].mean()
    assert own > other + 0.2


def test_lines_view_needs_five_columns_and_block_mode(tiny_encoder_dir):
    from ohlora.errors import OhloraError

    with pytest.raises(OhloraError, match="five columns"):
        train(None, None, base=tiny_encoder_dir, args=TrainArgs(views="lines", epochs=1, valid_ratio=0.0), pairs=product_pairs(), progress=False)
    with pytest.raises(OhloraError, match="block-mode"):
        train(None, None, base=tiny_encoder_dir, args=TrainArgs(mode="reference", views="lines"), pairs=line_pairs(), progress=False)


def test_auto_views_picks_lines_only_when_the_csv_has_five_columns(tiny_encoder_dir, tmp_path):
    import json

    for pairs, expected in ((line_pairs(), "lines"), (product_pairs(), "pair")):
        out = tmp_path / expected
        train(None, out, base=tiny_encoder_dir, args=TrainArgs(epochs=1, valid_ratio=0.0), pairs=pairs, progress=False)
        assert json.loads((out / "train_args.json").read_text(encoding="utf-8"))["views"] == expected


def test_line_epoch_puts_every_line_in_exactly_one_block():
    from ohlora.memory.train import _line_blocks

    blocks = _line_blocks(70, 16, random.Random(3))
    assert len(blocks) == 3  # ceil(70 / 32): linear in lines, not (70/16)^2 = 25
    seen = [i for a, b in blocks for i in a + b]
    assert sorted(seen) == list(range(70))
    assert [len(a) + len(b) for a, b in blocks] == [32, 32, 6] and all(a for a, _ in blocks)


def test_line_epoch_trains_in_fewer_steps_and_needs_the_lines_view(tiny_encoder_dir):
    from ohlora.errors import OhloraError

    pairs = line_pairs()
    base = dict(mode="block", views="lines", epochs=2, lr=3e-3, batch_size=2, valid_ratio=0.0, seed=0)
    per_pair = train(None, None, base=tiny_encoder_dir, args=TrainArgs(**base), pairs=pairs, progress=False)
    per_line = train(None, None, base=tiny_encoder_dir, args=TrainArgs(**base, epoch="lines"), pairs=pairs, progress=False)
    n = len(MEMS)
    assert per_line.steps == 2 * -(-n // 4)
    assert per_pair.steps > per_line.steps
    with pytest.raises(OhloraError, match="lines view"):
        train(None, None, base=tiny_encoder_dir, args=TrainArgs(views="pair", epoch="lines", epochs=1, valid_ratio=0.0), pairs=pairs, progress=False)
