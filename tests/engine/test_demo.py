"""`ohlora demo`: the cache (build once, reuse, rebuild what changed, never half a part)
and the scripted conversation. Training itself is the heads' and memory's tests' job;
here the builders are stand-ins that write a file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ohlora.engine import demo
from ohlora.errors import DataError


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    (d / "persona").mkdir(parents=True)
    (d / "memory").mkdir()
    (d / "persona" / "ohlora.csv").write_text("data_type,input_data\n", encoding="utf-8")
    (d / "memory" / "train_combs.txt").write_text("[오늘 일정: 카페] 뭐 마실까?\n", encoding="utf-8")
    return d


@pytest.fixture
def fake_builders(monkeypatch):
    calls = []

    def base(persona, out, size, seed):
        calls.append("base")
        Path(out, "config.json").write_text("{}")

    def finetune(cfg):
        calls.append("adapters")
        Path(cfg.out, "output_message").mkdir()

    def encoder(combos, out, cfg):
        calls.append("encoder")
        Path(out, "modules.json").write_text("[]")

    monkeypatch.setattr("ohlora.heads.tinybase.build_tiny_base", base)
    monkeypatch.setattr("ohlora.heads.finetune.finetune", finetune)
    monkeypatch.setattr(demo, "_train_encoder", encoder)
    return calls


def _build(cache, data_dir, **kw):
    return demo.build_standins(demo.DemoConfig(cache=str(cache), data=str(data_dir), **kw), say=lambda s: None)


def test_parts_are_built_once_then_reused(tmp_path, data_dir, fake_builders):
    cache = tmp_path / "cache"
    assert _build(cache, data_dir) == cache
    assert fake_builders == ["base", "adapters", "encoder"]
    assert (cache / "base" / "config.json").exists() and (cache / "memory_encoder" / "modules.json").exists()
    _build(cache, data_dir)
    assert fake_builders == ["base", "adapters", "encoder"]  # nothing rebuilt


def test_a_changed_input_rebuilds_only_what_depends_on_it(tmp_path, data_dir, fake_builders):
    cache = tmp_path / "cache"
    _build(cache, data_dir)
    (data_dir / "memory" / "train_combs.txt").write_text("[오늘 일정: 치과] 아플까?\n", encoding="utf-8")
    _build(cache, data_dir)
    assert fake_builders[3:] == ["encoder"]
    (data_dir / "persona" / "ohlora.csv").write_text("data_type,input_data\nvalid,안녕\n", encoding="utf-8")
    _build(cache, data_dir)
    assert fake_builders[4:] == ["base", "adapters"]
    _build(cache, data_dir, rebuild=True)
    assert fake_builders[6:] == ["base", "adapters", "encoder"]


def test_a_failed_build_leaves_no_part_and_no_temp_folder(tmp_path, data_dir, fake_builders, monkeypatch):
    def broken(combos, out, cfg):
        Path(out, "half").write_text("x")
        raise RuntimeError("killed")

    monkeypatch.setattr(demo, "_train_encoder", broken)
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError):
        _build(cache, data_dir)
    assert sorted(p.name for p in cache.iterdir()) == ["adapters", "base"]


def test_a_temp_folder_left_by_a_killed_build_is_cleared(tmp_path, data_dir, fake_builders):
    cache = tmp_path / "cache"
    (cache / ".memory_encoder.abc123").mkdir(parents=True)
    (cache / ".memory_encoder.abc123" / "half").write_text("x")
    _build(cache, data_dir)
    assert sorted(p.name for p in cache.iterdir()) == ["adapters", "base", "memory_encoder"]


def test_missing_data_is_one_error_naming_the_file(tmp_path, data_dir, fake_builders):
    (data_dir / "memory" / "train_combs.txt").unlink()
    with pytest.raises(DataError, match="train_combs.txt"):
        _build(tmp_path / "cache", data_dir)
    assert fake_builders == []


def test_the_repo_data_folder_is_found_beside_the_package():
    assert (demo.repo_data_dir() / "persona" / "ohlora.csv").exists()


def test_a_wheel_install_finds_the_data_under_its_prefix(tmp_path, monkeypatch):
    """Not in a checkout (no data/ beside the package): <prefix>/share/ohlora/data, where
    pyproject's data-files put it, is used; $OHLORA_DATA still wins."""
    site = tmp_path / "site-packages" / "ohlora" / "engine"
    site.mkdir(parents=True)
    monkeypatch.setattr(demo, "__file__", str(site / "demo.py"))
    monkeypatch.delenv("OHLORA_DATA", raising=False)
    prefix = tmp_path / "venv"
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.setattr(sys, "base_prefix", str(tmp_path / "base"))
    assert demo.repo_data_dir() == tmp_path / "site-packages" / "data"  # nothing anywhere: the checkout path, for the error
    shared = prefix / "share" / "ohlora" / "data"
    (shared / "persona").mkdir(parents=True)
    assert demo.repo_data_dir() == shared
    monkeypatch.setenv("OHLORA_DATA", str(tmp_path / "mine"))
    assert demo.repo_data_dir() == tmp_path / "mine"


def test_the_wheel_carries_the_demo_data(tmp_path):
    """Build the wheel from a copy of the sources (no build/ left in the checkout) and
    check every data file the demo reads is inside, under the data-files prefix."""
    import shutil
    import subprocess
    import zipfile

    root = Path(demo.__file__).resolve().parents[2]
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    for folder in ("ohlora", "data"):
        shutil.copytree(root / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True, cwd=src)
    (wheel,) = (tmp_path / "dist").glob("ohlora-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = sorted(p.relative_to(root / "data").as_posix() for p in (root / "data").rglob("*") if p.is_file())
    assert data  # persona CSV and the memory combination files
    for rel in data:
        assert any(n.endswith(f".data/data/share/ohlora/data/{rel}") for n in names), rel
    assert "ohlora/app/static/index.html" in names


def test_the_scripted_conversation_shows_every_turn(taught_models_dir):
    from rich.console import Console

    console = Console(record=True, width=160)
    results = demo.run_conversation(Path(taught_models_dir), demo.DemoConfig(threshold=-1.01), console)
    assert len(results) == len(demo.SCRIPT) == 5
    refused = [r.refused for r in results]
    assert refused == [False, False, False, True, False]  # only the over-48-token prompt
    text = console.export_text()
    for label in ("memory used", "memory saved", "summary", "expression", "scores", "generate"):
        assert label in text
    assert all(r.generate_calls >= 2 for r in results if not r.refused)
