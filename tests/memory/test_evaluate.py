"""Metrics by hand, and the report files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ohlora.memory.evaluate import EvalResult, evaluate_pairs, metrics, write_report
from ohlora.memory.pairs import Pair


def test_metrics_by_hand():
    m = metrics([0.5, 1.0, 0.0], [0.0, 1.0, 0.5])
    assert m["mse"] == pytest.approx((0.25 + 0 + 0.25) / 3)
    assert m["mae"] == pytest.approx(1 / 3)
    assert m["corr"] == pytest.approx(0.5)  # centred (0, .5, -.5)·(-.5, .5, 0) = .25; norms² .5 and .5
    assert m["n"] == 3
    assert math.isnan(metrics([0.3, 0.3], [0.0, 1.0])["corr"])


def test_evaluate_matches_per_row_cosines(tiny_encoder_dir):
    from ohlora.models import load_sentence_encoder

    model = load_sentence_encoder(tiny_encoder_dir)
    pairs = [Pair("[오늘 날씨: 비]", "우산 챙길까?", 1.0), Pair("[오늘 날씨: 비]", "노래 추천해줘", 0.2), Pair("[취미: 등산]", "우산 챙길까?", 0.0)]
    res = evaluate_pairs(model, pairs)
    want = []
    for p in pairs:  # one row at a time, the reference way
        a, b = model.encode([p.memory, p.prompt], convert_to_numpy=True)
        want.append(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
    np.testing.assert_allclose(res.predicted, want, atol=1e-5)
    assert res.metrics["mse"] == pytest.approx(np.mean((np.array(want) - [1.0, 0.2, 0.0]) ** 2), abs=1e-6)


def test_report_files(tmp_path):
    pairs = [Pair("[a: b]", "안녕 😀", 1.0), Pair("[c: d]", "잘 가", 0.0)]
    res = EvalResult(pairs, np.array([0.81234, 0.1]), metrics([0.81234, 0.1], [1.0, 0.0]))
    write_report(res, tmp_path / "r")
    text = (tmp_path / "r" / "test_result.csv").read_text(encoding="utf-8").splitlines()
    assert text == [
        "memory,user_prompt,predicted_score,ground_truth_score,absolute_error",
        "[a: b],안녕 😀,0.8123,1.0,0.1877",
        "[c: d],잘 가,0.1,0.0,0.1",
    ]
    assert (tmp_path / "r" / "scatter.png").stat().st_size > 1000
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["metrics.json", "scatter.png", "test_result.csv"]
