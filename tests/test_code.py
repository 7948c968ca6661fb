"""The code itself: no undefined name, unused import or other pyflakes error anywhere —
benchmarks included, which the test suite never runs, so a name error there would only show
when someone sits down to measure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pyflakes_rules_pass_on_package_benchmarks_and_tests():
    # ruff is a test dependency (pyproject [test]); missing, this fails rather than skips
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "F", "--no-cache", "--output-format", "concise",
         "ohlora", "benchmarks", "tests"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
