"""`TopicEncoder`: the memory encoder named `topic` — a text read as a distribution over
the memory keys it was trained on, embedded so that cosines reproduce the key-pair scores.

A SPEC §4 score depends on the two *keys* only (equal keys 1.0, else the teacher's
rescaled cosine of the key strings). So the encoder's job splits in two, and this one
solves each part directly instead of asking a transformer to find both in ~100 lines:

1. *Which key is this text about?* A multinomial logistic regression over three views
   of the text — character 1-3-grams (spelling: 티어, 떡볶이), Kiwi morpheme forms with the
   pairs of adjacent content morphemes (떨렸어 and 떨려 share 떨리; `내일 떨리` is not 떨리), and
   the mean of its Kiwi content-morpheme vectors (meaning: 노래 ≈ 곡, ohlora/memory/morphemes.py)
   — gives p(key | text); a fourth, how well a prompt's morphemes match each key string's
   (`KEY_MATCH`), is off. Its training texts are every line's prompt *and* its `[key: value]`
   memory, and their targets are soft: mostly the line's key, partly the keys it scores close
   to (`soft_targets`), so mistaking a key for a near one costs less than for a far one — as
   in the pair scores themselves. A line's prompt counts its weight (`Lines.weights`, 1 by default).
2. *How similar are two keys?* Each key gets a unit vector, a row of a table E that
   starts from the key-pair score matrix (its eigenvectors, so that the rows have those
   cosines). The embedding is `[p @ E, s·memory, s·prompt]` with s = √(1 − |p @ E|²)
   (`embed`): unit length, and a memory's (`[key: value]`) cosine with a prompt is
   exactly pₘᵀ E Eᵀ pₚ — the key-pair score expected under both texts' posteriors.
   E and a posterior temperature are then fitted so that this matches the scores *when
   the posteriors are as unsure as on unseen text*: the posteriors it is fitted on come
   from classifiers that did not see those lines (5-fold out-of-fold), the way a new
   prompt will look.

A memory whose key was never trained (`[마우스 소개: …]`) gets a posterior over the trained
keys its words resemble (키보드 소개); with `NEW_KEYS` its vector comes from its key string
instead (ohlora/memory/key_rows.py: the key's predicted row of scores against the trained
keys). Prompts are always read over the trained keys — closed-set by construction: mix it
with an open-vocabulary encoder (`kiwi`) for keys outside the training data
(ohlora/memory/mix_encoder.py). Fitting takes seconds on CPU; there are no epochs.

    $ ohlora memory train pairs.csv --base topic --out models/topic

    >>> from ohlora.memory.train import train                                   # doctest: +SKIP
    >>> model = train("pairs.csv", "models/topic", base="topic").model          # doctest: +SKIP
    >>> model.encode(["[좋아하는 가수: 아이유]", "노래 추천해 줘"]).shape        # doctest: +SKIP
    (2, 35)                                                          # 33 keys + 2

Saved with `model.save(dir)`: `topic_config.json` (keys, sizes, Kiwi version),
`topic_vocab.json` (n-gram and morpheme vocabularies with their idf), `basis.safetensors`
(the Kiwi vector basis) and `model.safetensors` (classifier and key table).
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sentence_transformers.base.modules.input_module import InputModule
from torch import nn

from ohlora.errors import OhloraError
from ohlora.formats import normalize, parse_memory
from ohlora.memory.key_rows import KeyRows, row_vectors
from ohlora.memory.lines import Lines
from ohlora.memory.morphemes import Basis, MorphemeVectors
from ohlora.memory.morphemes import kiwi_version as installed_kiwi

# Chosen by 5-fold cross-validation over the reference's 80 *train* lines (docs/memory.md):
# char 1-3-grams + morpheme forms + Kiwi mean vectors beat each view alone and char
# 1-4-grams; 10 folds = 5.
CHAR_NGRAMS = 3
# A text's target is (1 - α)·its key + α·its key's row of the score table, normalised: calling a
# 내일 일정 prompt 오늘 일정 (score 0.89) then costs little and 먹고 있는 음식 (0.08) much — the
# ordering the pair MSE and correlation reward. Line CV (mean corr, fold shuffles 0 / 1), at
# C = 10: α = 0 0.685 / 0.689, 0.6 0.700 / 0.703; on shuffle 0 also 0.5 0.701, 0.7 0.702, 0.9
# 0.698. Key CV (whole keys held out; docs/memory_experiments.md): α = 0 0.387, 0.3 0.369, 0.6 0.366.
# Weighted as the test pairs are (72 % among seen keys, 28 % with an unseen one): 0.603 vs 0.608.
SOFT_TARGETS = 0.6
# Inverse L2 strength. Hard targets: 10 beat 3 and 30 (0.661 vs 0.650 / 0.657). With soft targets
# the line CV rises with C (3 0.681, 10 0.700, 30 0.708, 100 0.709 on shuffle 0) and the key CV
# falls (10 0.366, 30 0.349: less L2 memorises the known keys' wording); weighted, a tie
# (0.6076 / 0.6076, benchmarks/results/memory_topic_cv.md), so the more regularised 10 stays.
# With the morpheme pairs (MORPH_NGRAMS) the same: C = 20 line CV up, key CV down, weighted
# 0.6255 vs 0.6217 (+0.004, under the +0.005 set beforehand as worth a change); C = 5 0.6158.
C = 10.0
# Scale of the key-match view (`_match_keys`; 0 = off): per trained key, how well a prompt's
# content morphemes cover the key string's (노래 → 좋아하는 가수, 빵 → 먹고 싶은 음식) — a way to
# a key that does not go through the training prompts' wording. Off: both CVs favour it
# (memory_topic_cv, α 0.6, C 10, line / key / weighted: off 0.7015 / 0.366 / 0.6076, 1 0.7060 /
# 0.378 / 0.6143, 3 0.7051 / 0.386 / 0.6158), but at 3, chosen on them, the reference test pairs
# fell (topic 0.701 → 0.688) and the fit was slower (135 s vs 29 s, under ~1.6x the load): the
# third change the CVs liked and the test did not (docs/memory_experiments.md). Kept as a setting for data with many new, rare keys.
KEY_MATCH = 0.0
# Runs of up to this many adjacent content morphemes (particles and endings skipped) join the
# morpheme bag: a bag of single morphemes cannot tell `내일 … 떨려` (an exam tomorrow) from `떨려`
# (the state), nor `안 오` from `오`. memory_topic_cv (α 0.6, C 10; line CV / key CV / weighted):
# 1 (none) 0.7015 / 0.366 / 0.6076, **2 0.7112 / 0.392 / 0.6217**; runs of every form (particles
# too) 2 0.7100 / 0.387 / 0.6196, 3 0.7028 / 0.398 / 0.6173; content runs of 3 0.7097 / 0.399 /
# 0.6228 (+0.001: not worth the larger vocabulary; docs/memory.md).
MORPH_NGRAMS = 2
# Word dropout (data augmentation, session 9; 0 = off): every training prompt of >= 3 words is
# also a classifier row this many times with one random word dropped (`word_drop`), so that no
# single word (떨려, 내일) decides a key alone. The copies only train the classifiers: each joins
# its own line's side of every out-of-fold split (never scored); the key table is fitted on the
# original lines. memory_topic_cv (line CV / key CV / weighted): 0 0.7112 / 0.392 / 0.6217,
# 1 0.7191 / 0.390 / 0.6268, 2 0.7294 / 0.378 / 0.6310. Off: at 2, chosen on the CVs, the
# reference test pairs fell on all three figures (topic alone corr 0.728 → 0.697, MSE 0.0368 →
# 0.0406; paired bootstrap 95 % [-0.083, +0.009], benchmarks/results/memory_topic_paired_word_drop.md)
# — the fourth change the CVs liked and the test did not, and like C = 30 its key CV fell (docs/memory_experiments.md).
# Kept as a setting for data whose new prompts are like its training prompts.
WORD_DROP = 0
# Memories of keys the encoder never trained on (session 11): their vector from the key string
# (ohlora/memory/key_rows.py: the key's predicted row of scores against the trained keys) instead
# of the classifier's posterior over the keys their words resemble. Memories of trained keys and
# every prompt are read as before. memory_topic_cv (line / key / weighted): off 0.7112 / 0.392 /
# 0.6217, on 0.7110 / 0.507 / 0.6539 (the key CV's memory side 0.502 → 0.740; the line CV moves only
# where a held-out line's key has no other line). Adopted by the rule written before the one test
# read (docs/memory.md): topic alone 0.0368 / 0.1364 / 0.7282 → 0.0355 / 0.1318 / 0.7405
# (benchmarks/results/memory_topic_paired_new_keys.md). False = the encoder as before it (folders
# saved before it load so).
NEW_KEYS = True
# Posterior temperature × this after the key table's fit (session 12; 1 = as fitted). The fit
# chooses the temperature on out-of-fold posteriors of the training lines, ~96 % of them ours; the
# idea: held-out reference lines and prompts of untrained keys are read wrong more often than that.
# ×1.5 raised both CVs (memory folds weighted 0.6245 → 0.6319, line folds 0.6539 → 0.6606) but the
# one test read fell on all three (0.0355 / 0.1318 / 0.7405 → 0.0388 / 0.1454 / 0.7212,
# benchmarks/results/memory_topic_paired_temperature.md): not adopted by the rule written before
# it. The CVs' held-out reference prompts are harder than the test's (read right 25-50 % vs 53 %),
# so they reward hedging the test does not (docs/memory_experiments.md).
TEMPERATURE_SCALE = 1.0
# Label shift toward equal keys (session 13; 0 = off, 1 = the Bayes correction). The classifier's
# posteriors carry the training mix's key frequencies — our files give 오늘 날씨 or 내일 일정 ~130
# lines and a 상태 value ~40 — but a prompt to come is no likelier to be about 오늘 날씨 because we
# wrote more lines for it. With a uniform prior for what comes, p(k|x) ∝ p_train(k|x) / π_train(k)
# (Saerens et al. 2002, "Adjusting the outputs of a classifier to new a priori probabilities"), so
# the logits lose this × log π_train(k), π_train being each key's share of the (weighted) training
# lines. Applied after the key table's fit, which calibrates on the training mix; memories read
# their key surely and move by nothing measurable (the same CV figures with prompts alone shifted).
# At 1 both CVs rose (memory folds weighted 0.6245 → 0.6313, line folds 0.6539 → 0.6580) and the one
# test read fell on all three (0.0355 / 0.1318 / 0.7405 → 0.0386 / 0.1370 / 0.7204,
# benchmarks/results/memory_topic_paired_prior_shift.md): not adopted by the rule written before it.
# Our files give the keys the reference asks about most the most lines, so the training mix was
# already close to what the test brings (docs/memory_experiments.md). For data whose prompts are spread evenly.
PRIOR_SHIFT = 0.0
OOF_FOLDS = 5  # out-of-fold posteriors for fitting the key table
TABLE_STEPS = 300  # Adam steps fitting E (the loss is flat by ~200)
TABLE_LR = 0.01
TABLE_BLOCK = 512  # lines a step when there are more: memory × prompt cells stay ≤ 512²


def char_grams(text: str, n_max: int = CHAR_NGRAMS) -> list[str]:
    """Character 1..n-grams of each space-separated word padded with spaces (' 롤 ', ' 롤', …)."""
    out = []
    for word in normalize(text).lower().split():
        w = f" {word} "
        for n in range(1, n_max + 1):
            out += [w[i : i + n] for i in range(len(w) - n + 1)]
    return out


def morph_runs(forms: list[str], n_max: int = MORPH_NGRAMS) -> list[str]:
    """Every run of 2..n_max adjacent forms, joined by a space (a Kiwi form holds none, so a
    run never equals a form in the same bag)."""
    out: list[str] = []
    for n in range(2, n_max + 1):
        out += [" ".join(forms[i : i + n]) for i in range(len(forms) - n + 1)]
    return out


def word_drop(prompt: str, rng: random.Random) -> str | None:
    """The prompt with one space-separated word, chosen by `rng`, left out; None for prompts of
    fewer than 3 words (one word left would stand for the whole line).

    >>> word_drop("로라야 나 내일 시험이라 떨려", random.Random(0))
    '로라야 나 내일 떨려'
    """
    words = prompt.split()
    if len(words) < 3:
        return None
    i = rng.randrange(len(words))
    return " ".join(words[:i] + words[i + 1 :])


def augment(prompts: list[str], copies: int, seed: int) -> tuple[list[str], np.ndarray]:
    """`copies` rounds of `word_drop` over `prompts`: (new texts, index of the prompt each came from)."""
    rng = random.Random(seed)
    texts, source = [], []
    for _ in range(copies):
        for i, prompt in enumerate(prompts):
            text = word_drop(prompt, rng)
            if text is not None:
                texts.append(text)
                source.append(i)
    return texts, np.array(source, dtype=np.int64)


class _Bag:
    """A tf-idf bag over a fixed vocabulary: sublinear tf (1 + ln tf), smoothed idf, unit norm."""

    def __init__(self, vocab: list[str], idf: list[float]):
        self.vocab = vocab
        self.index = {g: i for i, g in enumerate(vocab)}
        self.idf = np.asarray(idf, dtype=np.float32)

    @classmethod
    def fit(cls, docs: list[list[str]]) -> _Bag:
        df = Counter(g for d in docs for g in set(d))
        vocab = sorted(df)
        n = len(docs)
        return cls(vocab, [math.log((1 + n) / (1 + df[g])) + 1.0 for g in vocab])

    def rows(self, docs: list[list[str]]):
        """A sparse (len(docs), len(vocab)) CSR matrix: a few dozen grams per text out of
        tens of thousands, so the fit never holds a dense texts × vocabulary array."""
        from scipy.sparse import csr_matrix

        data, cols, ptr = [], [], [0]
        for d in docs:
            counts = Counter(self.index[g] for g in d if g in self.index)
            vals = np.array([(1.0 + math.log(tf)) * self.idf[i] for i, tf in counts.items()], dtype=np.float32)
            data.append(vals / max(float(np.linalg.norm(vals)), 1e-12) if len(vals) else vals)
            cols.extend(counts)
            ptr.append(len(cols))
        values = np.concatenate(data) if data else np.zeros(0, dtype=np.float32)
        return csr_matrix((values, np.array(cols, dtype=np.int64), np.array(ptr, dtype=np.int64)), shape=(len(docs), len(self.vocab)))


class TopicEncoder(InputModule):
    config_file_name = "topic_config.json"
    config_keys = ["keys", "max_seq_length", "kiwi_version", "key_match", "morph_ngrams", "new_keys"]
    vocab_file_name = "topic_vocab.json"

    def __init__(self, keys: list[str] | None = None, max_seq_length: int = 64, kiwi_version: str = "", key_match: float = 0.0,
                 morph_ngrams: int = 1, new_keys: bool = False, basis: Basis | None = None, vocab: dict | None = None):
        super().__init__()
        self.vectors = MorphemeVectors(basis)
        self.keys = list(keys or [])
        # 0 for folders saved before the key-match view existed (their classifier has no such columns)
        self.key_match = float(key_match)
        # 1 for folders saved before runs of content morphemes existed (their vocabulary has none)
        self.morph_ngrams = int(morph_ngrams)
        self._key_vectors: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # _match_keys' cache, per `keys`
        self.max_seq_length = max_seq_length
        self.kiwi_version = kiwi_version or installed_kiwi()
        self._set_vocab(vocab or {"char": [[], []], "morph": [[], []]})
        k = max(len(self.keys), 1)
        self.classifier = nn.Linear(self.n_features, k)
        self.table = nn.Parameter(torch.eye(k))  # E: one row per key
        self.log_temperature = nn.Parameter(torch.zeros(()))  # posteriors are softmax(logits / e^this)
        # False for folders saved before unseen keys were read from their string (no such weights)
        self.new_keys = bool(new_keys)
        self.key_rows = KeyRows(k).attach(self.keys, self.vectors) if self.new_keys else None

    def _set_vocab(self, vocab: dict) -> None:
        self.char = _Bag(*vocab["char"])
        self.morph = _Bag(*vocab["morph"])
        self.n_features = len(self.char.vocab) + len(self.morph.vocab) + self.vectors.dim + (len(self.keys) if self.key_match else 0)

    # --- text -> features -> embedding ------------------------------------------------------------
    def _analyse(self, texts: list[str]) -> list[tuple[list[str], np.ndarray]]:
        """Per text, from one Kiwi tokenisation: its morpheme forms (lower-cased) followed by the
        runs of its content morphemes (`morph_runs`), and those content morphemes' vectors, (n, dim)."""
        out = []
        for text in texts:
            forms, toks = self.vectors.analyse(text)
            toks = toks[: self.max_seq_length]
            vecs = self.vectors.vectors([t.id for t in toks])
            runs = morph_runs([t.form.lower() for t in toks], self.morph_ngrams)
            out.append(([f.lower() for f in forms][: self.max_seq_length] + runs, vecs))
        return out

    def featurize(self, texts: list[str], analysed: list | None = None):
        """Sparse CSR (len(texts), n_features): char n-gram bag | morpheme (run) bag | mean Kiwi vector
        | key match (when `key_match`). `analysed`: `_analyse(texts)` when the caller has it."""
        from scipy.sparse import csr_matrix, hstack

        analysed = analysed if analysed is not None else self._analyse(texts)
        chars = self.char.rows([char_grams(t) for t in texts])
        morphs = self.morph.rows([forms for forms, _ in analysed])
        means = np.zeros((len(texts), self.vectors.dim), dtype=np.float32)
        for i, (_, vecs) in enumerate(analysed):
            if len(vecs):
                means[i] = vecs.mean(0)
        views = [chars, morphs, csr_matrix(means)]
        if self.key_match:
            views.append(csr_matrix(self.key_match * self._match_keys(texts, analysed)))
        return hstack(views, format="csr", dtype=np.float32)

    def _match_keys(self, texts: list[str], analysed: list) -> np.ndarray:
        """(len(texts), K): per key, the mean over the key string's content morphemes of the
        best cosine with one of the text's — 1 when the text holds every morpheme of the key.
        0 for memories (`[key: value]`): their key is written in them, and a column that is
        exactly 1 there would teach the classifier to trust it far more than a prompt's."""
        if self._key_vectors is None:
            toks = [self.vectors.tokens(k) for k in self.keys]  # content morphemes (all, if none)
            count = np.array([len(ts) for ts in toks])
            self._key_vectors = (self.vectors.vectors([t.id for ts in toks for t in ts]), np.repeat(np.arange(len(self.keys)), count), count)
        key_vecs, owner, count = self._key_vectors
        out = np.zeros((len(texts), len(self.keys)), dtype=np.float32)
        for i, (text, (_, vecs)) in enumerate(zip(texts, analysed)):
            if len(vecs) and len(key_vecs) and parse_memory(text) is None:
                best = (vecs @ key_vecs.T).max(0)  # each key morpheme's best match in the text
                out[i] = np.bincount(owner, weights=best, minlength=len(self.keys)) / np.maximum(count, 1)
        return out

    def _dense(self, texts: list[str]) -> torch.Tensor:
        return torch.from_numpy(self.featurize(texts).toarray())  # one batch: small

    def preprocess(self, inputs: list[str], prompt: str | None = None, **kwargs) -> dict[str, torch.Tensor]:
        if not self.keys:
            raise OhloraError("the topic encoder is untrained; train it with `ohlora memory train PAIRS --base topic`")
        if prompt:
            inputs = self._prepend_prompt(inputs, prompt)
        items = [parse_memory(t) for t in inputs]  # parsed once: memory or not, and its key
        memory = torch.tensor([it is not None for it in items], dtype=torch.float32)
        features = {"topic_features": self._dense(list(inputs)), "is_memory": memory}
        if self.key_rows is not None:  # memories of untrained keys: their predicted score rows
            keys = [it.canonical_key() if it is not None else None for it in items]
            new = [k is not None and k not in self.key_rows.known for k in keys]
            if any(new):  # a prompt, or a batch of trained-key memories, needs neither (embed reads None)
                rows = np.zeros((len(inputs), len(self.keys)), dtype=np.float32)
                rows[np.flatnonzero(new)] = self.key_rows.rows([k for k, n in zip(keys, new) if n])
                features["new_key"] = torch.tensor(new, dtype=torch.bool)
                features["new_key_rows"] = torch.from_numpy(rows)
        return features

    def posterior(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.classifier(features) / self.log_temperature.exp(), dim=-1)

    def forward(self, features: dict[str, torch.Tensor], **kwargs) -> dict[str, torch.Tensor]:
        x = features["topic_features"].to(self.table.device)
        features["sentence_embedding"] = embed(self.posterior(x), self.table, features["is_memory"].to(x.device),
                                               features.get("new_key"), features.get("new_key_rows"))
        return features

    def predict_keys(self, texts: list[str]) -> list[tuple[str, float]]:
        """The most likely key of each text and its probability (for inspection)."""
        with torch.no_grad():
            p = self.posterior(self._dense(texts))
        best = p.max(dim=-1)
        return [(self.keys[int(i)], float(v)) for v, i in zip(best.values, best.indices)]

    # --- fitting ------------------------------------------------------------------------------------
    def fit_lines(self, data: Lines, seed: int = 0) -> dict[str, float]:
        """Fit keys, vocabularies, classifier and key table from training lines
        (ohlora/memory/lines.py: from five-column pair rows or from combination files).
        Returns {'loss': final key-table loss}."""
        from scipy.sparse import vstack

        lines = data.lines
        line_keys = [_key_of(m) for m, _ in lines]
        keys = sorted(set(line_keys))
        if len(keys) < 2:
            raise OhloraError(f"the topic encoder needs lines with at least 2 different keys; the lines have {len(keys)}")
        key_index = {k: i for i, k in enumerate(keys)}
        y_line = np.array([key_index[k] for k in line_keys])
        texts = [t for m, p in lines for t in (p, m)]  # every line's prompt and memory, both labelled with its key
        y = np.repeat(y_line, 2)

        extra, extra_line = augment([p for _, p in lines], WORD_DROP, seed)  # word-dropped prompts: classifier rows only
        y_extra = y_line[extra_line]
        # Row weights (`Lines.weights`): a line's prompt and its word-dropped copies count its weight;
        # memories count 1 — they name their key outright (read right out of fold every time), and the
        # weights were chosen on the CVs with prompts alone weighted.
        w_line = np.ones(len(lines)) if data.weights is None else np.asarray(data.weights, dtype=np.float64)  # checked by Lines
        w = np.stack([w_line, np.ones(len(lines))], axis=1).reshape(-1)  # texts: prompt, memory per line
        w_extra = w_line[extra_line]

        self.keys = keys
        self.key_match = KEY_MATCH
        self.morph_ngrams = MORPH_NGRAMS
        self.new_keys = NEW_KEYS
        self._key_vectors = None  # new keys
        every = texts + extra
        analysed = self._analyse(every)  # Kiwi once per text, for the vocabulary and the features
        self._set_vocab({"char": _fit_bag([char_grams(t) for t in every]), "morph": _fit_bag([forms for forms, _ in analysed])})
        x_all = self.featurize(every, analysed)
        x, x_extra = x_all[: len(texts)], x_all[len(texts) :]
        labels = data.matrix()  # both orders of a pair; a line's memory and prompt share its key (1.0)
        key_scores, labelled = _key_scores(labels, y_line, len(keys))
        self.key_rows = KeyRows(len(keys)).fit(keys, key_scores, self.vectors, seed, labelled) if self.new_keys else None
        coef, intercept = _logistic(x_all, soft_targets(np.concatenate([y, y_extra]), key_scores, SOFT_TARGETS), np.concatenate([w, w_extra]))
        self.classifier = nn.Linear(self.n_features, len(keys))
        with torch.no_grad():
            self.classifier.weight.copy_(torch.from_numpy(coef))
            self.classifier.bias.copy_(torch.from_numpy(intercept))

        # Out-of-fold posteriors: a line's texts scored by a classifier fitted without that line.
        rng = random.Random(seed)
        order = list(range(len(lines)))
        rng.shuffle(order)
        folds = min(OOF_FOLDS, len(lines))
        q_mem = np.zeros((len(lines), len(keys)), dtype=np.float32)  # out-of-fold logits
        p_prm = np.zeros((len(lines), len(keys)), dtype=np.float32)
        for f in range(folds):
            held = sorted(order[f::folds])
            fit_lines = np.setdiff1d(np.arange(len(lines)), held)
            fit_rows = np.stack([2 * fit_lines, 2 * fit_lines + 1], axis=1).reshape(-1)
            kept = ~np.isin(extra_line, held)  # a held line's word-dropped copies are held too
            c, b = _logistic(vstack([x[fit_rows], x_extra[kept]], format="csr"),
                             soft_targets(np.concatenate([y[fit_rows], y_extra[kept]]), key_scores, SOFT_TARGETS),
                             np.concatenate([w[fit_rows], w_extra[kept]]))
            q_mem[held] = x[[2 * i + 1 for i in held]] @ c.T + b
            p_prm[held] = x[[2 * i for i in held]] @ c.T + b  # sparse @ dense: a dense array

        start = _table_start(key_scores)
        loss = self._fit_table(start, q_mem, p_prm, labels, seed)
        with torch.no_grad():  # saved as the temperature itself: folders need no new config key
            self.log_temperature += math.log(TEMPERATURE_SCALE)
            if PRIOR_SHIFT:  # in logit units: the classifier's logits are divided by the temperature
                share = np.bincount(y_line, weights=w_line, minlength=len(keys)) / w_line.sum()
                shift = PRIOR_SHIFT * np.log(np.maximum(share, 1e-12)) * float(self.log_temperature.exp())
                self.classifier.bias -= torch.from_numpy(shift).to(self.classifier.bias.dtype)
        return {"loss": loss}

    def _fit_table(self, start: np.ndarray, q_mem: np.ndarray, p_prm: np.ndarray, labels: np.ndarray, seed: int) -> float:
        """E and the temperature minimising the MSE between the memory-prompt cosine of
        line i's memory and line j's prompt and their score, over known cells, from
        out-of-fold logits."""
        gen = torch.Generator().manual_seed(seed)
        table = nn.Parameter(torch.from_numpy(start.astype(np.float32)))
        log_t = nn.Parameter(torch.zeros(()))
        opt = torch.optim.Adam([table, log_t], lr=TABLE_LR)
        q, p, lab = torch.from_numpy(q_mem), torch.from_numpy(p_prm), torch.from_numpy(labels)
        n = len(q)
        loss = torch.tensor(float("nan"))
        for _ in range(TABLE_STEPS):
            if n > TABLE_BLOCK:
                a, b = torch.randperm(n, generator=gen)[:TABLE_BLOCK], torch.randperm(n, generator=gen)[:TABLE_BLOCK]
            else:
                a = b = torch.arange(n)
            cell = lab[a][:, b]
            known = ~torch.isnan(cell)
            e = F.normalize(table, dim=-1)
            cos = (torch.softmax(q[a] / log_t.exp(), -1) @ e) @ (torch.softmax(p[b] / log_t.exp(), -1) @ e).T
            loss = ((cos - torch.nan_to_num(cell)) ** 2)[known].mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            self.table = nn.Parameter(table.detach().clone())
            self.log_temperature = nn.Parameter(log_t.detach().clone())
        return float(loss.detach())

    # --- saving ---------------------------------------------------------------------------------------
    def identity(self) -> str:
        """What the vectors depend on besides the weights (retrieval.encoder_id hashes it)."""
        return self.vectors.basis.identity(self.kiwi_version, json.dumps([self.keys, self.char.vocab, self.morph.vocab], ensure_ascii=False))

    def get_embedding_dimension(self) -> int:
        return max(len(self.keys), 1) + 2  # embed(): key coordinates, then the memory and prompt slack

    def get_sentence_embedding_dimension(self) -> int:
        return self.get_embedding_dimension()

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)
        vocab = {"char": [self.char.vocab, self.char.idf.tolist()], "morph": [self.morph.vocab, self.morph.idf.tolist()]}
        Path(output_path, self.vocab_file_name).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        self.vectors.basis.save(output_path)
        self.save_torch_weights(output_path, safe_serialization=True)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs) -> TopicEncoder:
        folder = Path(model_name_or_path, subfolder)
        config = cls.load_config(str(folder))
        vocab = json.loads((folder / cls.vocab_file_name).read_text(encoding="utf-8"))
        module = cls(**config, basis=Basis.load(folder), vocab=vocab)
        cls.load_torch_weights(str(folder), model=module)
        return module


def embed(posterior: torch.Tensor, table: torch.Tensor, is_memory: torch.Tensor, new_key: torch.Tensor | None = None,
          new_key_rows: torch.Tensor | None = None) -> torch.Tensor:
    """[p @ Ê, s·memory, s·prompt] with Ê the unit-row key table and s = √(1 - |p @ Ê|²).

    Every vector has norm 1, and the cosine of a memory's and a prompt's vectors is
    exactly pₘᵀ Ê Êᵀ pₚ: the score the key table predicts, averaged over both texts'
    key posteriors. (The two last coordinates never meet across the two sides; without
    them the cosine would divide by |p @ Ê|, which shrinks as a posterior gets unsure,
    and an unsure text would look close to everything.) Where `new_key` is set (a memory of
    an untrained key) p @ Ê is replaced by the v with Ê v closest to its `new_key_rows` row
    (key_rows.row_vectors): its cosine with a prompt is then that row averaged over the prompt's posterior."""
    e = F.normalize(table, dim=-1)
    v = posterior @ e
    if new_key is not None and bool(new_key.any()):
        rows = new_key_rows[new_key].detach().cpu().numpy()
        v = v.clone()
        v[new_key] = torch.from_numpy(row_vectors(rows, e.detach().cpu().numpy())).to(v.device, v.dtype)
    s = (1.0 - (v * v).sum(-1, keepdim=True)).clamp_min(0.0).sqrt()
    m = is_memory.reshape(-1, 1).to(v.dtype)
    return torch.cat([v, s * m, s * (1.0 - m)], dim=-1)


def _key_of(memory: str) -> str:
    """The class of a line: its memory's canonical key (SPEC §4: the score compares keys)."""
    item = parse_memory(memory)
    return item.canonical_key() if item is not None else normalize(memory)


def _fit_bag(docs: list[list[str]]) -> list:
    bag = _Bag.fit(docs)
    return [bag.vocab, bag.idf.tolist()]


def soft_targets(y: np.ndarray, key_scores: np.ndarray, alpha: float) -> np.ndarray:
    """(len(y), K) training targets: (1 - alpha)·one-hot(y) + alpha·key_scores[y] normalised to
    sum 1, over the keys present in y only (a fold may miss a rare key; it gets no mass)."""
    k = len(key_scores)
    present = np.zeros(k, dtype=bool)
    present[np.unique(y)] = True
    rows = np.clip(key_scores[y], 0.0, None) * present
    rows = rows / rows.sum(1, keepdims=True)  # never 0: a key's own score is 1
    return ((1.0 - alpha) * np.eye(k)[y] + alpha * rows).astype(np.float32)


def _logistic(x, targets: np.ndarray, weights: np.ndarray | None = None, max_iter: int = 3000,
              gtol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression on soft targets: (coef (K, D), intercept (K,)) minimising
    C·Σᵢ wᵢ·cross-entropy(targetsᵢ, softmax(xᵢ W + b)) + ½‖W‖² (intercept unpenalised; w = 1
    when `weights` is None, and a weight k is k copies of the row). That is scikit-learn's
    objective with `sample_weight`, solved the way it does (L-BFGS-B on the loss scaled by 1/n,
    gtol 1e-4), but scikit-learn takes only hard labels — soft ones as weighted copies of every
    text cost K times the data. A class without target mass (a rare key missing from a fold) gets
    coefficients 0 and intercept -1e4: ~0 probability."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    q = np.asarray(targets, dtype=np.float64)
    n, k = q.shape
    d = x.shape[1]
    present = q.sum(0) > 0
    qp, kp = q[:, present], int(present.sum())
    sw = np.ones((n, 1)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(n, 1)

    def loss_grad(theta):
        w, b = theta[: d * kp].reshape(d, kp), theta[d * kp :]
        logp = log_softmax(x @ w + b, axis=1)
        r = sw * (np.exp(logp) - qp)  # ∂ weighted cross-entropy / ∂ logits
        loss = -(sw * qp * logp).sum() / n + (w * w).sum() / (2 * C * n)
        return loss, np.concatenate([((x.T @ r) / n + w / (C * n)).ravel(), r.sum(0) / n])

    theta = minimize(loss_grad, np.zeros(d * kp + kp), jac=True, method="L-BFGS-B",
                     options={"maxiter": max_iter, "gtol": gtol, "ftol": 64 * np.finfo(float).eps}).x
    coef = np.zeros((k, d), dtype=np.float32)
    intercept = np.full(k, -1e4, dtype=np.float32)
    coef[present] = theta[: d * kp].reshape(d, kp).T
    intercept[present] = theta[d * kp :]
    return coef, intercept


def _key_scores(labels: np.ndarray, y_line: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(K, K) mean score of each key pair over the labelled line pairs, symmetric, diagonal 1;
    pairs never labelled take the mean of the known off-diagonal scores. Also (K, K) bool: which
    pairs were labelled (either order). (Counted with bincount: the labels are n × n, 4.2 M cells
    for our 2,060 lines.)"""
    ii, jj = np.nonzero(~np.isnan(labels))
    values = labels[ii, jj].astype(np.float64)
    cell = y_line[ii] * k + y_line[jj]
    total = np.bincount(cell, weights=values, minlength=k * k).reshape(k, k)
    count = np.bincount(cell, minlength=k * k).reshape(k, k)
    off = y_line[ii] != y_line[jj]
    fill = float(values[off].mean()) if off.any() else 0.0
    s = np.where(count > 0, total / np.maximum(count, 1), fill)
    s = (s + s.T) / 2
    np.fill_diagonal(s, 1.0)
    return s, (count + count.T) > 0


def _table_start(key_scores: np.ndarray) -> np.ndarray:
    """Rows whose Gram matrix is closest (PSD part) to the key-pair score matrix."""
    w, u = np.linalg.eigh(key_scores)
    return u * np.sqrt(np.clip(w, 0.0, None))
