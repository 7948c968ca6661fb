"""Headless Debian Chromium driven by Playwright (no `playwright install`: nothing can be
downloaded, the system browser is used)."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Debian chromium is not installed at {CHROMIUM} (scripts/test.sh installs it: apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("python package playwright is not installed (pip install -e '.[test]')")


@contextmanager
def chromium_page(width: int = 1280, height: int = 800, scale: float = 1.0, timeout: float = 20.0,
                  expected_console: tuple[str, ...] = ()):
    """A fresh page in a fresh headless Chromium; script and console errors fail the test,
    but for console errors containing one of `expected_console` (a test that makes a
    request fail on purpose expects Chromium's 'Failed to load resource' line)."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=scale)
            page.on("pageerror", lambda e: errors.append(str(e)))
            # console errors include CSP violations and failed loads (a missing file)
            page.on("console", lambda m: errors.append(m.text)
                    if m.type == "error" and not any(e in m.text for e in expected_console) else None)
            page.set_default_timeout(timeout * 1000)
            yield page
        finally:
            browser.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def wait_js(page, expression: str, timeout: float = 20.0, every: float = 0.05):
    """Poll a JavaScript expression until it is truthy; return its value.

    Playwright's own `wait_for_function` evaluates through `new Function`, which the
    page's Content-Security-Policy (script-src 'self', no 'unsafe-eval') forbids; plain
    `evaluate` goes through the debugger protocol, so the test keeps the real policy on.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for: {expression}")
        time.sleep(every)
