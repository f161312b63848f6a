#!/usr/bin/env bash
# What only a GPU can show (scripts/gpu_check.py): set up .venv if needed, then run the checks and print one table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec "${SRDIFF_VENV:-.venv}/bin/python" scripts/gpu_check.py "$@"
