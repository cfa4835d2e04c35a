#!/usr/bin/env bash
# Set up a virtual environment (.venv) and run every check: lint, format, types, tests + coverage.
# Usage: bash scripts/test.sh [extra pytest arguments]
#
# Some tests need programs from Debian packages: Chromium (the web inbox in a real browser),
# Redis (the Celery broker), and Postfix + Dovecot (the real-MTA tier, run as root). Run as root
# with apt-get available, this script installs the missing ones; elsewhere those tests skip with
# the reason. SMTPKIT_NO_APT=1 turns the install off.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "${#missing[@]}" -gt 0 ] && [ -z "${SMTPKIT_NO_APT:-}" ] && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null 2>&1; then
  echo "== apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >/dev/null
fi
bash scripts/install-postfix.sh
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
