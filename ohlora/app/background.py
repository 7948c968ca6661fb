"""Run the app with uvicorn on a free loopback port in a background thread.

Tests and the load benchmark talk to it over real HTTP, as a browser would:

    >>> from ohlora.app.background import serve_in_background
    >>> with serve_in_background(create_app(engine)) as url:   # doctest: +SKIP
    ...     httpx.get(url + "/healthz").json()
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextmanager
def serve_in_background(app, host: str = LOOPBACK, port: int | None = None, timeout: float = 30.0) -> Iterator[str]:
    """Start uvicorn serving `app`; yield its base URL; stop it on exit."""
    import uvicorn

    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="ohlora-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"uvicorn did not start on {host}:{port} within {timeout:.0f} s")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
