"""`ohlora serve`: flags, one-line errors, and a real server process on the tiny models."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from ohlora.app.background import free_port
from ohlora.app.cli import ServeConfig
from ohlora.cli import build_parser, main
from ohlora.engine.config import EngineConfig


def test_serve_flags_default_from_the_dataclass():
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port) == (ServeConfig.host, ServeConfig.port) == ("127.0.0.1", 7860)
    cfg = EngineConfig()  # the engine flags are `ohlora chat`'s, with the engine's defaults
    assert (args.models, args.seed, args.threshold, args.pipeline, args.store) == (
        None, cfg.seed, cfg.retrieval_threshold, cfg.pipeline, None)
    args = build_parser().parse_args(["serve", "--models", "m", "--host", "0.0.0.0", "--port", "8000"])
    assert (args.models, args.host, args.port) == ("m", "0.0.0.0", 8000)


def test_port_in_use_is_one_line(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--port", str(port), "--models", "nowhere"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ohlora: error: cannot listen on 127.0.0.1:") and "--port" in err
    assert "\n" not in err


@pytest.mark.parametrize("port", ["0", "70000"])
def test_bad_port_is_one_line(capsys, port):
    assert main(["serve", "--port", port]) == 1
    assert "--port must be 1-65535" in capsys.readouterr().err


def test_missing_models_folder_is_one_line(capsys, tmp_path):
    assert main(["serve", "--port", str(free_port()), "--models", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope" in err and "--models" in err and "\n" not in err


@pytest.mark.slow  # a fresh interpreter imports torch/transformers/peft: 20-60 s on 2 busy cores
def test_serve_process_on_tiny_models(tiny_models_dir, tmp_path):
    """`python -m ohlora serve` really serves the page and a turn, and stops on SIGINT."""
    port = free_port()
    env = {**os.environ, "OHLORA_MODELS": "", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ohlora", "serve", "--models", tiny_models_dir, "--port", str(port), "--seed", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up in 120 s"
            time.sleep(0.3)
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok", "engine": "Engine"}
        assert "오로라" in httpx.get(url).text
        out = httpx.post(f"{url}/api/chat", json={"user": "민수", "message": "로라야 안녕!"}, timeout=120).json()
        assert out["user"] == "민수" and out["answer"] and set(out["scores"]) == {"eyes", "mouth", "pose"}
        assert httpx.get(f"{url}/api/summary/민수").json()["summary"] == out["summary"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stdout.read()
    assert f"http://127.0.0.1:{port}/" in proc.stdout.read()
