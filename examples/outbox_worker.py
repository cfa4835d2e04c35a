"""The outbox, end to end: a "web request" enqueues, a worker sends, the outbox tells what happened.

Run it with ``python examples/outbox_worker.py`` (smtpkit[devserver] installed). It starts the
embedded development server on loopback, enqueues three messages into a fresh outbox file (one
of them twice under the same idempotency key, and one to an address the server refuses), runs a
worker until nothing is due, and prints the outbox's status and each message's state.

In production the two halves live in different processes::

    # in the web app: durable before the response goes out
    Outbox("/var/lib/app/outbox.db").enqueue(message, idempotency_key=f"receipt-{order.id}")

    # in a worker process (systemd unit, container, ...)
    smtpkit outbox work --db /var/lib/app/outbox.db --dsn "$SMTPKIT_DSN"
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from smtpkit import Message
from smtpkit.outbox import Outbox, Status


def main() -> int:
    from smtpkit.devserver import DevServer, Respond

    refuse = Respond("RCPT", 550, "5.1.1 No such user", match="nobody@example.com")
    with tempfile.TemporaryDirectory() as tmp, DevServer(tls="none", faults=[refuse]) as server:
        path = Path(tmp) / "outbox.db"
        with Outbox(path) as outbox:
            # What a web request does: enqueue and return. The id is on disk already.
            receipt = Message(
                sender="Shop <orders@shop.example.com>",
                to=["ann@example.com"],
                subject="Your receipt for order 42",
                text="Thank you for your order.",
            )
            first = outbox.enqueue(receipt, idempotency_key="receipt-42")
            again = outbox.enqueue(receipt, idempotency_key="receipt-42")  # a retried request
            outbox.enqueue(
                Message(
                    sender="Shop <orders@shop.example.com>",
                    to=["bob@example.com"],
                    subject="Welcome",
                    text="Hello Bob",
                )
            )
            outbox.enqueue(
                Message(
                    sender="Shop <orders@shop.example.com>",
                    to=["nobody@example.com"],
                    subject="Welcome",
                    text="Hello?",
                )
            )
            print(f"enqueued: receipt id {first} (again: {again}), 3 messages in the outbox")

            # What the worker process does (here until idle; normally until stopped).
            stats = outbox.run(server.config(), concurrency=4, stop_when_idle=True)
            print(f"worker: {stats.to_dict()}")

            status = outbox.status()
            print("status:", {s.value: n for s, n in status.counts.items() if n})
            for entry in outbox.list():
                reply = f"  ({entry.last_reply})" if entry.last_reply else ""
                print(f"  #{entry.id} {entry.status.value:<7} {entry.pending or ''}{reply}")
            ok = (
                first == again
                and status.counts[Status.SENT] == 2
                and status.counts[Status.FAILED] == 1
                and len(server.messages) == 2
            )
    print("outbox example:", "OK" if ok else "UNEXPECTED RESULT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
