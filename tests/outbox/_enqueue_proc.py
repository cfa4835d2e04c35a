"""Enqueue messages one by one and report each id once ``enqueue`` returned.

Usage: ``python _enqueue_proc.py DB START``. Prints ``<n> <id>`` (flushed) after the enqueue of
message ``n`` returned, for ``n`` = START, START+1, ... until killed. The crash test kills it
with SIGKILL and checks that every reported id is stored, complete.
"""

from __future__ import annotations

import sys

from smtpkit import Message
from smtpkit.outbox import Outbox


def main() -> None:
    db, start = sys.argv[1], int(sys.argv[2])
    # A body of some size, so that a kill can land in the middle of writing a record.
    body = "line of text for the crash test\n" * 200
    with Outbox(db) as outbox:
        n = start
        while True:
            message = Message(
                sender="app@example.com",
                to=[f"user{n}@example.com"],
                subject=f"n{n}",
                text=body,
            )
            row_id = outbox.enqueue(message, idempotency_key=f"k{n}")
            sys.stdout.write(f"{n} {row_id}\n")
            sys.stdout.flush()
            n += 1


if __name__ == "__main__":
    main()
