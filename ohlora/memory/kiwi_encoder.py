"""`KiwiEncoder`: a Sentence-Transformers input module that embeds Korean with Kiwi's
morpheme vectors (ohlora/memory/morphemes.py), the memory encoder named `kiwi`.

A text becomes its content morphemes; their frozen, centred Kiwi vectors are pooled
with learned attention (a weight from each morpheme's POS tag and part of the text —
prompt, `[key` or `value]` — plus a small function of its vector, so unseen morphemes
get weights too), then one learned linear map. Only the ~74k pooling and projection
weights train; the Korean knowledge stays in Kiwi's vectors, which is what lets ~100
training lines generalise to prompts with words never seen in training (노래 -> 곡).

On the reference test pairs it matches the bundled MiniLM fine-tuned the same way (corr
0.52 vs 0.50) in ~1/150 of the training time, beats it on held-out train lines, and mixed
with it (mix_encoder.py) beats both: benchmarks/results/memory_quality.md, memory_mix.md.

    >>> from ohlora.models import load_sentence_encoder                 # doctest: +SKIP
    >>> model = load_sentence_encoder("kiwi")                             # untrained: identity projection
    >>> model.encode(["[좋아하는 가수: 아이유]", "노래 추천해 줘"]).shape  # doctest: +SKIP
    (2, 256)

Saved with `model.save(dir)`: modules.json names this class, `kiwi_config.json` the
sizes and the Kiwi version, `basis.safetensors` the vector basis, `model.safetensors`
the trained weights. `ohlora.models.load_sentence_encoder(dir)` loads it back without
`trust_remote_code` (it only builds classes of this package).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sentence_transformers.base.modules.input_module import InputModule
from torch import nn

from ohlora.memory.morphemes import TAGS, Basis, MorphemeVectors
from ohlora.memory.morphemes import kiwi_version as installed_kiwi

PARTS = 3  # PROMPT, KEY, VALUE


class KiwiEncoder(InputModule):
    config_file_name = "kiwi_config.json"
    config_keys = ["dim", "attention_dim", "max_seq_length", "kiwi_version"]

    def __init__(self, dim: int = 256, attention_dim: int = 32, max_seq_length: int = 64, kiwi_version: str = "", basis: Basis | None = None):
        super().__init__()
        self.vectors = MorphemeVectors(basis)
        self.dim = dim
        self.attention_dim = attention_dim
        self.max_seq_length = max_seq_length
        self.kiwi_version = kiwi_version or installed_kiwi()
        d = self.vectors.dim
        # Attention score of a morpheme: tag_part[tag, part] + u·tanh(V e). Both start at 0:
        # an untrained model mean-pools the content morphemes.
        self.tag_part = nn.Embedding(len(TAGS) * PARTS, 1)
        nn.init.zeros_(self.tag_part.weight)
        self.score_in = nn.Linear(d, attention_dim)
        self.score_out = nn.Linear(attention_dim, 1)
        nn.init.zeros_(self.score_out.weight)
        nn.init.zeros_(self.score_out.bias)
        self.proj = nn.Linear(d, dim, bias=False)
        with torch.no_grad():
            if dim == d:  # identity: untrained cosines are Kiwi's own
                self.proj.weight.copy_(torch.eye(d))
            else:
                nn.init.orthogonal_(self.proj.weight)

    # Used by the training loop when no learning rate is given: the frozen vectors leave
    # only a small head to fit, which wants a far larger step than a transformer. Chosen by
    # 5-fold cross-validation over the reference *train* lines (docs/memory.md).
    train_defaults = {"lr": 3e-3}

    def preprocess(self, inputs: list[str], prompt: str | None = None, **kwargs) -> dict[str, torch.Tensor]:
        if prompt:
            inputs = self._prepend_prompt(inputs, prompt)
        toks = [self.vectors.tokens(t)[: self.max_seq_length] for t in inputs]
        width = max([len(t) for t in toks] + [1])
        vecs = np.zeros((len(toks), width, self.vectors.dim), dtype=np.float32)
        tag_part = np.zeros((len(toks), width), dtype=np.int64)
        mask = np.zeros((len(toks), width), dtype=bool)
        for r, ts in enumerate(toks):
            if ts:
                vecs[r, : len(ts)] = self.vectors.vectors([t.id for t in ts])
                tag_part[r, : len(ts)] = [t.tag * PARTS + t.part for t in ts]
                mask[r, : len(ts)] = True
        return {
            "token_vectors": torch.from_numpy(vecs),
            "tag_part": torch.from_numpy(tag_part),
            "attention_mask": torch.from_numpy(mask),
        }

    def forward(self, features: dict[str, torch.Tensor], **kwargs) -> dict[str, torch.Tensor]:
        e = features["token_vectors"].to(self.proj.weight.device)
        mask = features["attention_mask"].to(e.device)
        score = self.tag_part(features["tag_part"].to(e.device)).squeeze(-1)
        score = score + self.score_out(torch.tanh(self.score_in(e))).squeeze(-1)
        weight = torch.softmax(score.masked_fill(~mask, -1e9), dim=-1) * mask  # a text without morphemes pools to 0
        pooled = (weight.unsqueeze(-1) * e).sum(1)
        features["sentence_embedding"] = self.proj(pooled)
        return features

    def identity(self) -> str:
        """What the vectors depend on besides the weights (retrieval.encoder_id hashes it):
        the Kiwi version and the basis."""
        return self.vectors.basis.identity(self.kiwi_version)

    def get_embedding_dimension(self) -> int:
        return self.dim

    def get_sentence_embedding_dimension(self) -> int:
        return self.dim

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)
        self.vectors.basis.save(output_path)
        self.save_torch_weights(output_path, safe_serialization=True)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs) -> KiwiEncoder:
        folder = Path(model_name_or_path, subfolder)
        config = cls.load_config(str(folder))
        module = cls(**config, basis=Basis.load(folder))
        cls.load_torch_weights(str(folder), model=module)
        return module
