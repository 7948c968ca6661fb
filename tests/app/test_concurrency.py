"""Concurrent requests over real HTTP (uvicorn on loopback): one user's turns are
serialised, different users' turns overlap, and no memory is lost or mixed."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app_fakes import FakeEngine
from ohlora.app.background import serve_in_background
from ohlora.app.server import create_app


@pytest.fixture
def racy():
    """A fake whose memory write is a slow read-modify-write: without the API's per-user
    lock, concurrent turns of one user would overwrite each other's items."""
    engine = FakeEngine(pause=0.02)
    with serve_in_background(create_app(engine)) as url:
        yield engine, url


def _post(url, user, message):
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/api/chat", json={"user": user, "message": message})
        r.raise_for_status()
        return r.json()


def test_one_users_turns_are_serialised_and_none_lost(racy):
    engine, url = racy
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda i: _post(url, "민수", f"기억해 항목{i}=값{i}"), range(8)))
    assert all(o["memory_saved"] == f"[항목{i}: 값{i}]" for i, o in enumerate(outs))
    assert engine.max_per_user == 1
    items = httpx.get(f"{url}/api/memory/민수").json()["items"]
    assert sorted(i["text"] for i in items) == sorted(f"[항목{i}: 값{i}]" for i in range(8))


def test_different_users_run_at_once(racy):
    engine, url = racy
    engine.rendezvous = threading.Barrier(4)  # each turn waits until 4 turns are inside the engine
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda u: _post(url, u, "안녕"), ["u1", "u2", "u3", "u4"]))
    assert [o["user"] for o in outs] == ["u1", "u2", "u3", "u4"]
    assert not engine.rendezvous.broken  # had the API serialised users, the barrier would have timed out
    assert engine.max_total == 4


def test_many_users_many_turns_no_loss_no_mixing(racy):
    engine, url = racy
    users = [f"user{u}" for u in range(6)] + ["지은", "민수"]
    jobs = [(u, t) for t in range(5) for u in users]

    def run(job):
        u, t = job
        return _post(url, u, f"기억해 {u}의 기억{t}={u}-{t}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(run, jobs))
    assert engine.max_per_user == 1
    for u in users:
        items = httpx.get(f"{url}/api/memory/{u}").json()["items"]
        assert sorted(i["value"] for i in items) == sorted(f"{u}-{t}" for t in range(5)), u


def test_a_user_flooding_gets_429_and_others_are_still_served():
    engine = FakeEngine()
    engine.gated.add("flood")  # flood's turns park in the engine until the gate opens
    app = create_app(engine, max_pending_per_user=3)
    with serve_in_background(app) as url, ThreadPoolExecutor(3) as pool:
        parked = [pool.submit(_post, url, "flood", f"안녕 {i}") for i in range(3)]
        deadline = time.monotonic() + 20
        while app.state.user_locks.pending("flood") < 3:  # one in the engine, two waiting
            assert time.monotonic() < deadline
            time.sleep(0.01)
        r = httpx.post(f"{url}/api/chat", json={"user": "flood", "message": "하나 더"}, timeout=10)
        assert r.status_code == 429 and "flood" in r.json()["detail"] and r.headers["retry-after"] == "1"
        # another user is served meanwhile
        assert _post(url, "calm", "안녕")["user"] == "calm"
        engine.gate.set()
        assert [f.result()["user"] for f in parked] == ["flood"] * 3
        assert app.state.user_locks.pending("flood") == 0
    assert engine.max_per_user == 1
