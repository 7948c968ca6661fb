"""Fixtures of the web-app tests: a fake engine (rules, no model) and its app client."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app_fakes import FakeEngine  # tests/app is on sys.path (pytest rootdir-relative import)
from ohlora.app.server import create_app


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def client(fake_engine) -> TestClient:
    with TestClient(create_app(fake_engine), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def tiny_engine(tiny_models_dir):
    """The real Engine on the tiny random models (tests/conftest.py: tiny_models_dir).

    reply_candidates=15: the untrained reply head fails the reference checks every
    time, so the reference's 15 one-at-a-time retries become one batched call (same
    outcome, `(읽씹)`, at a fraction of the time)."""
    from ohlora.engine.config import EngineConfig
    from ohlora.engine.engine import Engine

    engine = Engine(tiny_models_dir, EngineConfig(seed=0, reply_candidates=15), store=":memory:")
    yield engine
    engine.close()
