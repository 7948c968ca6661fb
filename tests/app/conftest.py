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
