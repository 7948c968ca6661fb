"""Fixtures of the memory tests: a fake encoder whose vectors the test chooses."""

from __future__ import annotations

import numpy as np
import pytest


class FakeEncoder:
    """Stands in for a SentenceTransformer: `vectors` maps a text to its embedding;
    unknown texts get a fixed unit vector on the last axis. Records every encode call."""

    def __init__(self, vectors: dict[str, list[float]], dim: int = 4):
        self.vectors = {k: np.asarray(v, dtype=np.float32) for k, v in vectors.items()}
        self.dim = dim
        self.calls: list[list[str]] = []

    def encode(self, texts, normalize_embeddings=False, **kw):
        self.calls.append(list(texts))
        out = []
        for t in texts:
            v = self.vectors.get(t)
            if v is None:
                v = np.eye(self.dim, dtype=np.float32)[-1]
            if normalize_embeddings:
                v = v / np.linalg.norm(v)
            out.append(v)
        return np.stack(out)


@pytest.fixture
def fake_encoder():
    return FakeEncoder


@pytest.fixture(autouse=True)
def one_torch_thread():
    """On a shared CPU, two intra-op threads spin-waiting on each other made these
    tiny models several times slower; one thread for the memory tests, restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
