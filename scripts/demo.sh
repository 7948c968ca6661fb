#!/usr/bin/env bash
# The README's main command: set up (idempotent), then build or reuse the offline
# stand-in models (cached in ~/.cache/ohlora/demo) and run a scripted conversation.
# Arguments go to `ohlora demo` (e.g. --rebuild, --cache DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ohlora demo "$@"
