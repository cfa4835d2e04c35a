"""examples/outbox_worker.py runs against the embedded server and reports success."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "outbox_worker.py"


def test_outbox_example_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "outbox example: OK" in done.stdout
    assert "550 5.1.1 No such user" in done.stdout
