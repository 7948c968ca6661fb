#!/usr/bin/env bash
# Set up (idempotent) and run the fast test suite. Slow tests: add `-m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The browser tests (tests/app, marker `browser`) drive Debian's chromium through
# Playwright; nothing is downloaded by Playwright itself. Install it when missing and
# we are root (CI); otherwise those tests skip, saying why.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } </dev/null >/dev/null 2>&1 \
    || echo "scripts/test.sh: could not install chromium; browser tests will be skipped" >&2
fi
exec .venv/bin/python -m pytest -q "$@"
