"""Korean morpheme vectors from Kiwi, the one Korean language model that installs from PyPI.

No Korean sentence encoder installs here (the hub is unreachable; `bundled` MiniLM reads
Hangul as loose jamo). But `kiwipiepy_model`, the morphological analyser's own model,
ships a CoNg language model whose 256-d morpheme embeddings carry real Korean semantics:
its nearest neighbours of 노래 are 음악, 곡, 멜로디; of 날씨 기온, 햇살, 폭염.

Kiwi exposes only cosines between morphemes (`Kiwi.morpheme_similarity`), not the
vectors. Cosines are enough: with a fixed set of anchor morphemes A whose Gram matrix
G = A·Aᵀ has rank d, every morpheme m's cosines to the anchors f(m) = A·e(m) determine
e(m) up to one rotation shared by all morphemes: e(m) = P·f(m), P = pinv(U√Λ) from
G = UΛUᵀ. Recovered cosines match Kiwi's to ~3e-4 (fp16 storage); tests check this.

The `Basis` (anchor ids, P, and the centring below) is saved beside a trained model, so
its vectors are the same on any machine with the same Kiwi model: an eigen-solver's sign
choices never meet a trained projection from another machine.

Centring: the raw vectors share one dominant direction (mean cosine ~0.74 between random
morphemes), which drowns pooled sentence vectors; removing the mean and the top 3
principal directions ("all-but-the-top", Mu & Viswanath 2018) before normalising raised
held-out correlation in our cross-validation (docs/memory.md).

    >>> mv = MorphemeVectors()                                   # doctest: +SKIP
    >>> [t.form for t in mv.tokens("로라야 노래 추천해 줘")]       # doctest: +SKIP
    ['로라', '노래', '추천', '하', '주']
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from ohlora.errors import ModelLoadError
from ohlora.formats import normalize

MODEL_TYPE = "cong"  # Kiwi's model with embeddings (the default 'sbg' has none)
N_ANCHORS = 384  # > the 256 dims, so the anchor Gram matrix has full rank
N_TOP = 3  # principal directions removed (all-but-the-top)
N_SAMPLE = 4096  # morphemes sampled to estimate the mean and top directions

# Kiwi's POS tags (kiwipiepy docs); an irregular-verb suffix ("VV-R") is dropped. Index 0
# holds anything unlisted, so a new Kiwi tag never shifts the others.
TAGS = (
    "UN NNG NNP NNB NR NP VV VA VX VCP VCN MM MAG MAJ IC JKS JKC JKG JKO JKB JKV JKQ JX JC "
    "EP EF EC ETN ETM XPN XSN XSV XSA XSM XR SF SP SS SSO SSC SE SO SW SL SH SN SB "
    "W_URL W_EMAIL W_HASHTAG W_MENTION W_SERIAL W_EMOJI Z_CODA Z_SIOT"
).split()
TAG_INDEX = {t: i for i, t in enumerate(TAGS)}
# Content morphemes: nouns (not bound nouns), verb/adjective stems, roots, adverbs,
# foreign words, numbers, emoji. Particles and endings ("는", "어", "요") are the same in
# every sentence; pooling them in pulled unrelated sentences together (docs/memory.md).
CONTENT = frozenset("NNG NNP NR NP VV VA XR MAG MM SL SH SN W_EMOJI W_HASHTAG".split())
# Which part of the text a morpheme is in: a prompt, or a `[key: value]` item's key or value.
# The key decides the score (SPEC §4), so the pooling may weigh the parts differently.
PROMPT, KEY, VALUE = 0, 1, 2


@dataclass(frozen=True)
class Token:
    id: int  # Kiwi morpheme id
    form: str
    tag: int  # index into TAGS
    part: int  # PROMPT, KEY or VALUE


@dataclass
class Basis:
    """How cosines to the anchors become centred, unit morpheme vectors."""

    anchors: np.ndarray  # (n_anchors,) int64 Kiwi morpheme ids
    proj: np.ndarray  # (dim, n_anchors) float32: e = proj @ f
    mean: np.ndarray  # (dim,) removed before the top directions
    top: np.ndarray  # (N_TOP, dim) principal directions removed
    n_vocab: int  # morpheme ids 0..n_vocab-1 have vectors

    def arrays(self) -> dict[str, np.ndarray]:
        return {"anchors": self.anchors, "proj": self.proj, "mean": self.mean, "top": self.top, "n_vocab": np.array([self.n_vocab])}

    # A trained encoder over these vectors keeps its basis beside its weights, so it means
    # the same on any machine (kiwi_encoder.py, topic_encoder.py).
    file_name = "basis.safetensors"

    def save(self, folder) -> None:
        from safetensors.numpy import save_file

        save_file(self.arrays(), os.path.join(folder, self.file_name))

    @classmethod
    def load(cls, folder) -> Basis:
        from safetensors.numpy import load_file

        return cls.from_arrays(load_file(os.path.join(folder, cls.file_name)))

    def identity(self, kiwi_version: str, *extra: str) -> str:
        """A short hash of what vectors over this basis depend on besides trained weights
        (retrieval.encoder_id uses it): the Kiwi version, the basis, and `extra`."""
        import hashlib

        h = hashlib.sha256(kiwi_version.encode())
        for e in extra:
            h.update(e.encode())
        for a in self.arrays().values():
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    @classmethod
    def from_arrays(cls, a: dict) -> Basis:
        return cls(
            np.asarray(a["anchors"], dtype=np.int64),
            np.asarray(a["proj"], dtype=np.float32),
            np.asarray(a["mean"], dtype=np.float32),
            np.asarray(a["top"], dtype=np.float32),
            int(np.asarray(a["n_vocab"]).reshape(-1)[0]),
        )


@functools.cache
def load_kiwi():
    """One Kiwi analyser (CoNg model) per process: ~1 s and ~0.5 GB to load."""
    try:
        from kiwipiepy import Kiwi
    except ImportError as e:
        raise ModelLoadError("the 'kiwi' encoder needs the package kiwipiepy (pip install kiwipiepy)") from e
    try:
        return Kiwi(model_type=MODEL_TYPE)
    except Exception as e:  # a kiwipiepy without the CoNg model
        raise ModelLoadError(f"cannot load Kiwi's '{MODEL_TYPE}' model ({e}); pip install -U kiwipiepy kiwipiepy_model") from e


def kiwi_version() -> str:
    try:
        from importlib.metadata import version

        return f"kiwipiepy {version('kiwipiepy')}, kiwipiepy_model {version('kiwipiepy_model')}"
    except Exception:
        return "unknown"


def _vocab_size(kiwi) -> int:
    """Ids with a vector are 0..n-1; a cosine with an id past them is NaN."""
    lo, hi = 0, 1 << 22
    while lo < hi:
        mid = (lo + hi) // 2
        s = kiwi.morpheme_similarity(mid, mid)
        if s == s:  # not NaN
            lo = mid + 1
        else:
            hi = mid
    return lo


def build_basis(kiwi, seed: int = 0) -> Basis:
    """Recover the morpheme vectors' coordinates from cosines (module docstring)."""
    n_vocab = _vocab_size(kiwi)
    rng = np.random.default_rng(seed)
    anchors = np.sort(rng.choice(n_vocab, size=N_ANCHORS, replace=False)).astype(np.int64)
    a = [int(x) for x in anchors]
    sim = kiwi.morpheme_similarity
    gram = np.array([[sim(i, j) for j in a] for i in a], dtype=np.float64)
    w, u = np.linalg.eigh(gram)
    keep = w > w.max() * 1e-5  # the embedding's rank (256 for kiwipiepy_model 0.24)
    coords = u[:, keep] * np.sqrt(w[keep])  # anchors as rows, in d dims
    proj = np.linalg.pinv(coords)  # (d, n_anchors)
    sample = rng.choice(n_vocab, size=min(N_SAMPLE, n_vocab), replace=False)
    raw = np.array([[sim(int(m), j) for j in a] for m in sample]) @ proj.T
    mean = raw.mean(0)
    _, _, vt = np.linalg.svd(raw - mean, full_matrices=False)
    return Basis(anchors, proj.astype(np.float32), mean.astype(np.float32), vt[:N_TOP].astype(np.float32), n_vocab)


class MorphemeVectors:
    """Kiwi tokens and their centred unit vectors, memoised per morpheme id."""

    def __init__(self, basis: Basis | None = None):
        self.kiwi = load_kiwi()
        self.basis = basis if basis is not None else _default_basis()
        self.dim = self.basis.proj.shape[0]
        self._anchors = [int(x) for x in self.basis.anchors]
        self._memo: dict[int, np.ndarray] = {}

    def tokens(self, text: str, content_only: bool = True) -> list[Token]:
        """Kiwi morphemes of `text` (NFC, zero-width removed first) that have a vector;
        content morphemes only unless none is left."""
        return self.analyse(text, content_only)[1]

    def analyse(self, text: str, content_only: bool = True) -> tuple[list[str], list[Token]]:
        """Every Kiwi morpheme form of `text`, and its `tokens()`, from one tokenisation."""
        text = normalize(text)
        colon = text.find(":") if text.startswith("[") else -1
        out = []
        kiwi_tokens = self.kiwi.tokenize(text)
        forms = [t.form for t in kiwi_tokens]
        for t in kiwi_tokens:
            if t.id >= self.basis.n_vocab:
                continue
            part = PROMPT if colon < 0 else (KEY if t.start < colon else VALUE)
            tag = t.tag.split("-")[0]
            out.append((Token(t.id, t.form, TAG_INDEX.get(tag, 0), part), tag in CONTENT))
        content = [tok for tok, c in out if c]
        return forms, (content if (content or not content_only) else [tok for tok, _ in out])

    def vectors(self, ids: list[int]) -> np.ndarray:
        """(len(ids), dim) centred unit vectors."""
        missing = [i for i in dict.fromkeys(ids) if i not in self._memo]
        if missing:
            sim = self.kiwi.morpheme_similarity
            f = np.array([[sim(i, a) for a in self._anchors] for i in missing], dtype=np.float32)
            v = f @ self.basis.proj.T - self.basis.mean
            v -= (v @ self.basis.top.T) @ self.basis.top
            v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-8)
            self._memo.update(zip(missing, v))
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._memo[i] for i in ids])


@functools.cache
def _default_basis() -> Basis:
    return build_basis(load_kiwi())
