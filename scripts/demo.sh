#!/usr/bin/env bash
# The demo: set up .venv if needed, then train and test SRDiff on the embedded photographs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec "${SRDIFF_VENV:-.venv}/bin/python" scripts/demo.py "$@"
