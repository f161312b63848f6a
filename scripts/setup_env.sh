#!/usr/bin/env bash
# Creates (or refreshes) the virtual environment .venv with everything the project needs.
# Idempotent: returns at once when requirements*.txt and the packaging files are unchanged since the last run.
#
# Order matters: basicsr 1.4.2's sdist names torch in setup_requires, so an isolated build would
# download a second torch into its build environment. Installing the pinned torch/torchvision pair
# first and building basicsr without isolation avoids that (and a torch/torchvision mismatch).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SRDIFF_VENV:-.venv}
PYTHON=${PYTHON:-python3}
want=$(cat requirements.txt requirements-dev.txt pyproject.toml hatch_build.py | sha1sum | cut -d' ' -f1)
stamp="$VENV/.srdiff-setup"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setting up $VENV (first run: a few minutes, mostly torch) ..."
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip="$VENV/bin/python -m pip"
$pip install -q --upgrade pip setuptools wheel
$pip install -q cython numpy $(grep -E '^(torch|torchvision)==' requirements.txt | cut -d' ' -f1)
$pip install -q --no-build-isolation $(grep -E '^basicsr==' requirements.txt | cut -d' ' -f1)
$pip install -q -r requirements.txt -r requirements-dev.txt
$pip install -q --no-build-isolation -e .  # hatchling from requirements-dev.txt
echo "$want" > "$stamp"
echo "environment ready: $VENV"
