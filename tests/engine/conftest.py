"""Engine fixtures: a MODELS_DIR whose tiny heads have memorised a few answers (so a
turn's reply and summary pass their checks and the memory head writes known items),
loaded once a session; each test gets a fresh engine and memory store over it."""

from __future__ import annotations

import shutil

import pytest

REPLY = "응 좋아! 나도 그래"
SUMMARY = "사용자가 말을 걸었음"
EXPRESSION = "(눈 크게, 입 보통, 고개 돌림 없음)"
SUMMARY_PREFIX = f"(오로라 답변 요약) {SUMMARY} (사용자 질문) "
FACTS = {  # prompt -> the item the memory head learned to write
    "나 떡볶이 좋아해": "[좋아하는 음식: 떡볶이]",
    "나 라면 좋아해": "[좋아하는 음식: 라면]",
    "나 오늘 카페 가": "[오늘 일정: 카페 방문]",
}
SMALL_TALK = ["로라야 안녕", "오늘 날씨 어때?", "뭐해?"]


def examples() -> dict[str, list[tuple[str, str]]]:
    prompts = [*FACTS, *SMALL_TALK, "[좋아하는 음식: 떡볶이] 뭐 먹을까", SUMMARY_PREFIX + "뭐해?"]
    memory = [(p, FACTS.get(p, "")) for p in [*FACTS, *SMALL_TALK]]
    return {
        "output_message": [(p, REPLY) for p in prompts],
        "memory": memory + [(SUMMARY_PREFIX + p, o) for p, o in memory],
        "summary": [(f"{p} (오로라 답변) {REPLY}", SUMMARY) for p in [*FACTS, *SMALL_TALK]],
        "eyes_mouth_pose": [(REPLY, EXPRESSION)],
    }


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # Tiny models on a shared 2-core machine: one intra-op thread is ~10x faster than
    # two threads spinning against other processes.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def taught_models_dir(tmp_path_factory, tiny_models_dir) -> str:
    from ohlora.engine.models_dir import teach_models_dir

    folder = tmp_path_factory.mktemp("taught_models") / "models"
    shutil.copytree(tiny_models_dir, folder)
    (folder / "memory.sqlite").unlink(missing_ok=True)
    teach_models_dir(folder, examples())
    return str(folder)


@pytest.fixture(scope="session")
def loaded(taught_models_dir, model_device):
    """(model, tokenizer, encoder) of the taught models, loaded once."""
    from ohlora.engine.config import ModelPaths
    from ohlora.heads.generation import load_heads
    from ohlora.models import load_sentence_encoder

    paths = ModelPaths.from_dir(taught_models_dir)
    model, tok = load_heads(paths.base, paths.adapters, device=model_device)
    return model, tok, load_sentence_encoder(paths.memory_encoder, device=model_device)


@pytest.fixture
def make_engine(loaded, tmp_path):
    """make_engine(**EngineConfig fields) -> an Engine over the shared models with its own store."""
    from ohlora.engine.config import EngineConfig
    from ohlora.engine.engine import Engine
    from ohlora.memory.retrieval import Retriever
    from ohlora.memory.store import MemoryStore

    engines = []

    def make(store_path=None, **cfg):
        model, tok, encoder = loaded
        store = MemoryStore(store_path or tmp_path / f"memory{len(engines)}.sqlite")
        cfg.setdefault("seed", 0)
        engine = Engine.from_parts(model, tok, Retriever(encoder, store), store, EngineConfig(**cfg))
        engines.append(engine)
        return engine

    yield make
    for e in engines:
        e.close()
