#!/usr/bin/env bash
# The test suite: set up .venv if needed, then run pytest on every core (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# one worker per core, each test file on one worker (module fixtures are built once); conftest.py splits torch's
# threads between the workers
exec "${SRDIFF_VENV:-.venv}/bin/python" -m pytest tests -n auto --dist loadfile "$@"
