"""Faults: concurrent users, a process killed mid-save, broken model folders."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from ohlora.errors import ModelLoadError
from tests.engine.conftest import FACTS

NO_RETRIEVAL = 1.01


def test_two_users_at_once_never_see_each_others_memory(make_engine):
    engine = make_engine(retrieval_threshold=NO_RETRIEVAL)
    prompts = {"민지": "나 떡볶이 좋아해", "Jun": "나 라면 좋아해"}
    errors, results = [], {u: [] for u in prompts}
    start = threading.Barrier(len(prompts))

    def chat(user: str) -> None:
        try:
            start.wait()
            for _ in range(4):
                engine.reset(user)
                results[user].append(engine.turn(user, prompts[user]))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=chat, args=(u,)) for u in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    for user, prompt in prompts.items():
        assert len(results[user]) == 4
        assert all(r.user == user and r.prompt == prompt for r in results[user])
        assert [m.text for m in engine.memories(user, include_history=True)] == [FACTS[prompt]]
        assert all(r.generate_calls == 2 for r in results[user])  # calls counted per turn, not across users


def test_one_users_turns_are_serialised(make_engine):
    engine = make_engine(retrieval_threshold=NO_RETRIEVAL)
    inside, most = 0, 0
    lock = threading.Lock()
    original = engine._turn

    def counting(user, prompt):
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        try:
            time.sleep(0.02)
            return original(user, prompt)
        finally:
            with lock:
                inside -= 1

    engine._turn = counting
    threads = [threading.Thread(target=engine.turn, args=("same", "로라야 안녕")) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert most == 1
    assert engine._turns["same"] == 4


_CHILD = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    from ohlora.engine import Engine, EngineConfig
    engine = Engine(sys.argv[1], EngineConfig(seed=0, retrieval_threshold=1.01), store=sys.argv[2])
    prompts = ["나 떡볶이 좋아해", "나 오늘 카페 가", "나 라면 좋아해"]
    i = 0
    while True:
        engine.reset("u")
        r = engine.turn("u", prompts[i % 3])
        i += 1
        print(r.memory_saved or "-", flush=True)
    """
)


def test_killed_during_saves_the_store_opens_with_everything_saved_before(taught_models_dir, tmp_path):
    from ohlora.memory.store import MemoryStore

    store = tmp_path / "memory.sqlite"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, taught_models_dir, str(store)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    saved = []
    try:
        deadline = time.time() + 90
        while len(saved) < 6 and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            saved.append(line.strip())
        # It keeps saving (each turn replaces 좋아하는 음식 or re-adds a history item): kill it mid-stream.
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(saved) >= 6, f"child reported only {saved}"
    with MemoryStore(store) as reopened:
        texts = {m.text for m in reopened.items("u", include_history=True)}
        active = reopened.items("u")
    reported = {s for s in saved if s != "-"}
    assert reported <= texts  # nothing reported as saved was lost
    assert reported  # the check above is not vacuous
    keys = [m.key for m in active]
    assert len(keys) == len(set(keys))  # never two active values of one key


@pytest.fixture
def broken_models(tiny_models_dir, tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(tiny_models_dir, folder)
    return folder


def _engine(folder):
    from ohlora.engine import Engine

    return Engine(folder, store=str(folder / "memory.sqlite"))


def test_a_missing_adapter_is_one_line_naming_it(broken_models):
    shutil.rmtree(broken_models / "adapters" / "summary")
    with pytest.raises(ModelLoadError) as e:
        _engine(broken_models)
    msg = str(e.value)
    assert "'summary'" in msg and str(broken_models / "adapters" / "summary") in msg and "\n" not in msg


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: (d / "adapter_config.json").write_text("{not json", encoding="utf-8"),
        lambda d: (d / "adapter_model.safetensors").write_bytes(b"\x00garbage" * 10),
        lambda d: (d / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": "x"}), encoding="utf-8"),
        lambda d: (d / "adapter_model.safetensors").unlink(),
    ],
    ids=["config-not-json", "weights-garbage", "config-nonsense", "weights-missing"],
)
def test_a_corrupt_adapter_is_one_line_naming_it(broken_models, damage):
    damage(broken_models / "adapters" / "eyes_mouth_pose")
    with pytest.raises(ModelLoadError) as e:
        _engine(broken_models)
    msg = str(e.value)
    assert "'eyes_mouth_pose'" in msg and "\n" not in msg


def test_a_models_folder_without_an_encoder_names_models(broken_models):
    shutil.rmtree(broken_models / "memory_encoder")
    with pytest.raises(ModelLoadError, match="--models"):
        _engine(broken_models)


def test_a_missing_models_folder_names_models(tmp_path):
    with pytest.raises(ModelLoadError, match="--models"):
        _engine(tmp_path / "nowhere")
