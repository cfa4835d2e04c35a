"""Values the Celery fixtures (conftest.py) and tests share (``from celery_support import``:
this directory is on ``sys.path`` under pytest's default import mode)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The worker's SMTP password; the tests check it never shows in a result or an error.
PASSWORD = "celery-s3cret-pw"


@dataclass(frozen=True)
class Worker:
    """A running worker: its queue, and its log for failure messages."""

    queue: str
    log: Path
    process: subprocess.Popen[Any]

    def log_text(self) -> str:
        """Everything the worker printed so far."""
        return self.log.read_text(errors="replace")
