#!/usr/bin/env bash
# Set up a virtual environment (.venv) and run the main job: start the embedded development
# mail server, render a templated message and send it through the full stack (MIME, STARTTLS,
# AUTH, DATA), then print the structured result and the message the server captured.
# With SMTPKIT_DSN (and SMTPKIT_DEMO_TO) set, it sends through that server instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${SMTPKIT_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[devserver]'
exec "$VENV/bin/python" examples/demo.py "$@"
