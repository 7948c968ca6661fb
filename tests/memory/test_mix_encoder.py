"""`ohlora memory mix`: cosine of the mixed encoder = weighted mean of the parts' cosines."""

from __future__ import annotations

import numpy as np
import pytest

from ohlora.cli import main
from ohlora.errors import OhloraError

TEXTS = ["[좋아하는 가수: 아이유]", "로라야 노래 추천해 줘 🎵", "[오늘 날씨: 비]", "우산\u200b 챙겨야 하나?"]


@pytest.fixture(scope="module")
def two_models(tmp_path_factory, tiny_encoder_dir):
    """A saved kiwi encoder and a saved tiny RoBERTa encoder (mean pooling)."""
    from ohlora.models import load_sentence_encoder

    root = tmp_path_factory.mktemp("mix")
    load_sentence_encoder("kiwi").save(str(root / "kiwi"))
    load_sentence_encoder(tiny_encoder_dir).save(str(root / "bert"))
    return root / "kiwi", root / "bert"


def _cos(model, texts):
    z = model.encode(texts, normalize_embeddings=True)
    return z @ z.T


def test_mixed_cosine_is_the_weighted_mean_and_survives_save_and_load(two_models, tmp_path):
    from ohlora.models import load_sentence_encoder

    kiwi_dir, bert_dir = two_models
    out = tmp_path / "mixed"
    assert main(["memory", "mix", str(kiwi_dir), str(bert_dir), "--weights", "3,1", "--out", str(out)]) == 0
    mixed = load_sentence_encoder(str(out), flag="MODEL_DIR")
    expected = 0.75 * _cos(load_sentence_encoder(str(kiwi_dir)), TEXTS) + 0.25 * _cos(load_sentence_encoder(str(bert_dir)), TEXTS)
    assert np.allclose(_cos(mixed, TEXTS), expected, atol=1e-5)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--weights", "0.7"], "one weight per model"),
        (["--weights", "1,-1"], "positive"),
        (["--weights", "a,b"], "numbers"),
    ],
)
def test_bad_weights_are_one_clear_error_and_write_nothing(two_models, tmp_path, argv, message):
    from ohlora.memory.cli import _mix

    kiwi_dir, bert_dir = two_models
    out = tmp_path / "mixed"
    import argparse

    args = argparse.Namespace(models=[str(kiwi_dir), str(bert_dir)], weights=argv[1], out=str(out))
    with pytest.raises(OhloraError, match=message):
        _mix(args)
    assert not out.exists()
