"""A durable outbox: enqueue now, send from a worker, lose nothing.

Web requests should not talk SMTP. :class:`Outbox` (blocking) and :class:`AsyncOutbox` store
each message in a SQLite file and return once it is on disk; a worker (:meth:`Outbox.run`,
:meth:`AsyncOutbox.run` or ``smtpkit outbox work``) sends due messages through an
:class:`~smtpkit.AsyncMailer`, retries transient failures on an RFC 5321-style
:class:`Schedule`, and records every outcome. Several workers may share one file.

>>> from smtpkit.outbox import Outbox
>>> with Outbox("outbox.db") as outbox:                                      # doctest: +SKIP
...     outbox.enqueue(message, idempotency_key="signup-42")
1

See ``docs/background.md`` for the states, the guarantees and the command line.
"""

from smtpkit.outbox._outbox import AsyncOutbox, MailerSource, Outbox
from smtpkit.outbox._records import (
    OutboxEntry,
    OutboxStats,
    RecipientState,
    Status,
    WorkerStats,
)
from smtpkit.outbox._schedule import DEFAULT_DELAYS, Schedule

__all__ = [
    "DEFAULT_DELAYS",
    "AsyncOutbox",
    "MailerSource",
    "Outbox",
    "OutboxEntry",
    "OutboxStats",
    "RecipientState",
    "Schedule",
    "Status",
    "WorkerStats",
]
