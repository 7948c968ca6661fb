"""`MixEncoder`: several trained memory encoders read as one, their cosines averaged.

Each part's embedding is normalised and scaled by √wᵢ, and the parts are concatenated,
so for two texts cos(mix(a), mix(b)) = Σ wᵢ·cosᵢ(a, b) exactly (weights sum to 1). The
result is still one vector per text, so everything built on one encoder — the store's
embedding cache, `pick`, `eval`, the chat — works unchanged.

Why: the `kiwi` encoder knows Korean words (노래 ≈ 곡) but ignores spelling and word
order; the bundled MiniLM, fine-tuned, matches spelling (it reads jamo). Their errors
differ, and a weighted mean beat each alone on held-out reference train lines
(docs/memory.md).

    $ ohlora memory mix models/kiwi models/minilm --weights 0.7,0.3 --out models/mix

    >>> from ohlora.memory.mix_encoder import mix_models                     # doctest: +SKIP
    >>> model = mix_models([kiwi_model, minilm_model], [0.7, 0.3])           # a SentenceTransformer
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from sentence_transformers.base.modules.input_module import InputModule
from torch import nn

from ohlora.errors import OhloraError


def check_weights(weights: list[float], n: int) -> list[float]:
    if len(weights) != n:
        raise OhloraError(f"--weights has {len(weights)} values for {n} models; give one weight per model")
    if any(w <= 0 or not math.isfinite(w) for w in weights):
        raise OhloraError("--weights must all be positive")
    total = sum(weights)
    return [w / total for w in weights]


class MixEncoder(InputModule):
    config_file_name = "mix_config.json"
    config_keys = ["weights"]

    def __init__(self, parts: list, weights: list[float]):
        super().__init__()
        self.parts = nn.ModuleList(parts)
        self.weights = check_weights(list(weights), len(parts))

    def preprocess(self, inputs: list[str], prompt: str | None = None, **kwargs) -> dict[str, torch.Tensor]:
        # One flat dict (Sentence-Transformers moves its tensors to the device), keys prefixed by part.
        out = {}
        for i, part in enumerate(self.parts):
            for k, v in part.preprocess(inputs, prompt=prompt).items():
                out[f"{i}.{k}"] = v
        return out

    def forward(self, features: dict[str, torch.Tensor], **kwargs) -> dict[str, torch.Tensor]:
        embs = []
        for i, (part, w) in enumerate(zip(self.parts, self.weights)):
            own = {k.split(".", 1)[1]: v for k, v in features.items() if k.startswith(f"{i}.")}
            embs.append(F.normalize(part(own)["sentence_embedding"], dim=-1) * math.sqrt(w))
        features["sentence_embedding"] = torch.cat(embs, dim=-1)
        return features

    def identity(self) -> str:
        """The weights and the parts' own identities (retrieval.encoder_id hashes it)."""
        from ohlora.memory.retrieval import encoder_id

        return f"{self.weights}|" + "|".join(encoder_id(p) for p in self.parts)

    @property
    def max_seq_length(self) -> int:
        return max(p.max_seq_length for p in self.parts)

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        for p in self.parts:
            p.max_seq_length = value

    def get_embedding_dimension(self) -> int:
        return sum(p.get_embedding_dimension() for p in self.parts)

    def get_sentence_embedding_dimension(self) -> int:
        return self.get_embedding_dimension()

    def save(self, output_path: str, *args, **kwargs) -> None:
        self.save_config(output_path)
        for i, part in enumerate(self.parts):
            part.save(os.path.join(output_path, f"part{i}"))

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs) -> MixEncoder:
        from ohlora.models import load_sentence_encoder

        folder = Path(model_name_or_path, subfolder)
        weights = cls.load_config(str(folder))["weights"]
        parts = [load_sentence_encoder(str(folder / f"part{i}"), flag="MODEL_DIR") for i in range(len(weights))]
        return cls(parts, weights)


def mix_models(models: list, weights: list[float], device: str | None = None):
    """One SentenceTransformer whose cosine is the weighted mean of the models' cosines."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(modules=[MixEncoder(models, weights)], device=device or "cpu")
