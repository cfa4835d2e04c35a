#!/usr/bin/env bash
# Set up a virtual environment (.venv) and run every check: lint, format, types, tests + coverage.
# Usage: bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${SMTPKIT_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[dev]'

echo "== ruff check";         "$VENV/bin/ruff" check .
echo "== ruff format --check"; "$VENV/bin/ruff" format --check .
echo "== mypy --strict";      "$VENV/bin/mypy" --strict smtpkit tests/typing
echo "== pytest"
"$VENV/bin/python" -m pytest --cov=smtpkit --cov-branch --cov-report=term "$@"
