"""Run ``smtpkit outbox ...`` from the click group itself (the crash tests' worker process).

The tests start this script rather than ``python -m smtpkit`` so that they do not depend on how
the top-level command is assembled; the group, its options and the worker are the real ones.
"""

from __future__ import annotations

from smtpkit.cli._outbox import outbox

if __name__ == "__main__":
    outbox(prog_name="smtpkit outbox")
