"""Picking the memory item that fits a prompt (SPEC §1 step 2), one encoder pass a prompt.

The reference re-encoded every saved item for every prompt (SPEC §5). Here item
embeddings are cached — in process and, given a `MemoryStore`, in its SQLite file keyed
by (model id, text) — so once items are cached a prompt costs exactly one encoder pass
(the prompt), whatever the number of items.

    >>> from ohlora.models import load_sentence_encoder       # doctest: +SKIP
    >>> r = Retriever(load_sentence_encoder("bundled"))        # doctest: +SKIP
    >>> r.best(["[오늘 날씨: 비]", "[롤 티어: 골드]"], "오늘 비 와?", threshold=0.6)  # doctest: +SKIP
    ('[오늘 날씨: 비]', 0.71...)
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ohlora import config
from ohlora.formats import compact, normalize

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def encoder_id(encoder) -> str:
    """A stable id of an encoder's weights, for keying cached embeddings.

    `<name_or_path>@<digest>` where the digest hashes (a) the size and mtime of the
    weight file when the encoder was loaded from a folder — re-training into the same
    folder changes it — and (b) a small sample of the weights in memory (first and last
    parameter tensors), so an encoder changed in this process (training) never reuses
    another's vectors, and (c) what its first module's `identity()` names, if it has one
    (the kiwi encoder: its morpheme basis and Kiwi version). Cost: microseconds, no full
    hash of hundreds of MB.
    """
    name = "encoder"
    h = hashlib.sha256()
    first = None
    try:
        first = encoder[0]
        auto = getattr(first, "auto_model", None) or getattr(first, "model", None)
        name = str(getattr(getattr(auto, "config", None), "_name_or_path", "") or name)
    except Exception:
        pass
    folder = Path(name)
    if folder.is_dir():
        name = str(folder.resolve())
        for f in _WEIGHT_FILES:
            p = folder / f
            if p.exists():
                st = p.stat()
                h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    # Parts of an encoder that are not parameters (the kiwi encoder's morpheme basis and Kiwi
    # version): a module may name them, so vectors from another basis are never reused.
    identity = getattr(first, "identity", None)
    if callable(identity):
        h.update(identity().encode())
    try:
        params = [p for p in encoder.parameters()]
        for p in (params[0], params[-1]) if params else ():
            h.update(p.detach().reshape(-1)[:4096].float().cpu().numpy().tobytes())
    except Exception:
        pass
    h.update(type(encoder).__name__.encode())
    return f"{name}@{h.hexdigest()[:16]}"


class Retriever:
    """Scores memory items against a prompt with a Sentence-Transformer (cosine).

    encoder: a SentenceTransformer. store: a `MemoryStore` whose embedding table caches
    item vectors across runs (None: cache in this process only). model_id: the cache
    key of this encoder (default: `encoder_id(encoder)`).

    `encode_calls` counts encoder passes, so callers can check "one pass per prompt".
    """

    def __init__(self, encoder, store=None, model_id: str | None = None, batch_size: int = 64):
        self.encoder = encoder
        self.store = store
        self.model_id = model_id or encoder_id(encoder)
        self.batch_size = batch_size
        self.encode_calls = 0
        self._cache: dict[str, np.ndarray] = {}
        self._last: tuple[tuple[str, ...], np.ndarray] | None = None  # the last item list and its matrix

    def _encode(self, texts: list[str]) -> np.ndarray:
        self.encode_calls += 1
        vecs = self.encoder.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vecs, dtype=np.float32)

    def embed_items(self, items: list[str]) -> np.ndarray:
        """Unit vectors of `items` (normalized text), encoding only those not cached.

        The chat scores the same item list turn after turn: that list's matrix is kept,
        so a repeated call is one tuple comparison."""
        signature = tuple(items)
        if self._last is not None and self._last[0] == signature:
            return self._last[1]
        keys = [normalize(t) for t in items]
        missing = [k for k in dict.fromkeys(keys) if k not in self._cache]
        if missing and self.store is not None:
            found = self.store.get_embeddings(self.model_id, missing)
            if found:
                names = list(found)
                mat = np.stack([found[k] for k in names]).astype(np.float32)
                mat /= np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
                self._cache.update(zip(names, mat))
            missing = [k for k in missing if k not in found]
        if missing:
            vecs = self._encode(missing)
            new = dict(zip(missing, vecs))
            self._cache.update(new)
            if self.store is not None:
                self.store.put_embeddings(self.model_id, new)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        mat = np.stack([self._cache[k] for k in keys])
        self._last = (signature, mat)
        return mat

    def score(self, items: list[str], prompt: str) -> list[float]:
        """Cosine similarity of each item with the prompt (one pass for the prompt)."""
        if not items:
            return []
        mat = self.embed_items(items)
        q = self._encode([normalize(prompt)])[0]
        return [float(x) for x in mat @ q]

    def best(
        self, items: list[str], prompt: str, threshold: float, min_chars: int = config.ChatConfig.min_memory_chars
    ) -> tuple[str, float] | None:
        """SPEC §1.2: the best item with cosine >= threshold; items shorter than
        `min_chars` with spaces removed are never picked. None when none passes."""
        eligible = [t for t in items if len(compact(t)) >= min_chars]
        if not eligible:
            return None
        scores = self.score(eligible, prompt)
        i = int(np.argmax(scores))  # first of equal bests: the oldest item
        return (eligible[i], scores[i]) if scores[i] >= threshold else None

    def best_for_user(
        self, user: str, prompt: str, threshold: float = config.ChatConfig.retrieval_threshold, min_chars: int = config.ChatConfig.min_memory_chars
    ) -> tuple[str, float] | None:
        """`best` over the user's active items in the store."""
        if self.store is None:
            raise ValueError("best_for_user needs a Retriever built with a MemoryStore")
        return self.best([r.text for r in self.store.items(user)], prompt, threshold, min_chars)


def default_cache_path() -> Path:
    """Where `ohlora memory pick` keeps item embeddings: $OHLORA_CACHE (a file path),
    else ~/.cache/ohlora/embeddings.sqlite."""
    env = os.environ.get("OHLORA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ohlora" / "embeddings.sqlite"
