"""``Outbox`` and ``AsyncOutbox``: the durable outbox's two faces over one store and one worker.

The store (:mod:`smtpkit.outbox._store`) is synchronous sqlite3 code, written once. The blocking
:class:`Outbox` calls it directly; :class:`AsyncOutbox` runs the same methods on one dedicated
database thread so that the event loop never waits on a disk write. The worker is asynchronous
(it sends through an :class:`~smtpkit.AsyncMailer`); ``Outbox.run`` runs it on an event loop of
its own.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from smtpkit._config import SMTPConfig
from smtpkit._dsn import TransportGroup
from smtpkit._envelope import Envelope
from smtpkit._mailer import AsyncMailer
from smtpkit._message import Message
from smtpkit._transports.base import AsyncTransport
from smtpkit.outbox._records import OutboxEntry, OutboxStats, Status, WorkerStats
from smtpkit.outbox._schedule import Schedule
from smtpkit.outbox._store import NewMessage, Store
from smtpkit.outbox._worker import Worker

__all__ = ["AsyncOutbox", "MailerSource", "Outbox"]

T = TypeVar("T")

#: What a worker can send through: a mailer, or what to build one from (a DSN, a config, a
#: transport group or any transport).
MailerSource = AsyncMailer | SMTPConfig | TransportGroup | AsyncTransport | str

_MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class _Options:
    schedule: Schedule
    lease: float


def _due(send_after: datetime | timedelta | None, now: float) -> float | None:
    if send_after is None:
        return None
    if isinstance(send_after, timedelta):
        return now + send_after.total_seconds()
    if isinstance(send_after, datetime):
        if send_after.tzinfo is None:
            # A naive time is ambiguous between servers in different zones: refuse it.
            raise ValueError("send_after must be timezone-aware (e.g. datetime.now(UTC))")
        return send_after.timestamp()
    raise TypeError(f"send_after must be a datetime or timedelta, not {type(send_after).__name__}")


def _prepare(
    message: Message,
    *,
    idempotency_key: str | None,
    send_after: datetime | timedelta | None,
    envelope: Envelope | None,
    now: float,
) -> NewMessage:
    """Serialise a message for storage: the one place enqueue's arguments are checked."""
    if not isinstance(message, Message):
        raise TypeError(f"expected a Message, not {type(message).__name__}")
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str)
        or not idempotency_key
        or len(idempotency_key) > _MAX_KEY_LENGTH
    ):
        raise ValueError(f"idempotency_key must be a non-empty str of at most {_MAX_KEY_LENGTH}")
    return NewMessage(
        data=message.to_bytes(),
        envelope=envelope if envelope is not None else Envelope.from_message(message),
        message_id=message.message_id,
        idempotency_key=idempotency_key,
        due_at=_due(send_after, now),
    )


def _purge_before(sent_before: datetime) -> float:
    if not isinstance(sent_before, datetime) or sent_before.tzinfo is None:
        raise ValueError("sent_before must be a timezone-aware datetime")
    return sent_before.timestamp()


def _mailer_from(source: MailerSource) -> tuple[AsyncMailer, bool]:
    """The mailer to send through, and whether we made it (and so must close it)."""
    if isinstance(source, AsyncMailer):
        return source, False
    if isinstance(source, str):
        return AsyncMailer.from_dsn(source), True
    return AsyncMailer(source), True


class AsyncOutbox:
    """A durable outbox in a SQLite file, for asyncio code; :class:`Outbox` is the blocking twin.

    ``enqueue`` returns once the message is on disk. A worker (:meth:`run`, or
    ``smtpkit outbox work``) sends due messages through an :class:`~smtpkit.AsyncMailer` and
    records each outcome: ``sent``, ``deferred`` (retried on the :class:`Schedule`), ``failed``
    or ``unknown`` (the connection dropped after the end of data: retried with the same
    Message-ID, and flagged). Several workers, in one process or many, can share one file.

    Args:
        path: the SQLite file; created if missing.
        schedule: retry delays, give-up time and whether unknown outcomes are retried.
        lease: seconds a worker's claim on a message lasts without renewal; a crashed worker's
            messages come back this long after it died (a live worker renews its leases).
        clock: the time source in Unix seconds (for tests).

    >>> async with AsyncOutbox("outbox.db") as outbox:                    # doctest: +SKIP
    ...     await outbox.enqueue(message, idempotency_key=f"welcome-{user.id}")
    ...     await outbox.run(AsyncMailer.from_env(), stop_when_idle=True)
    """

    def __init__(
        self,
        path: str | Path,
        *,
        schedule: Schedule | None = None,
        lease: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lease <= 0:
            raise ValueError("lease must be a positive number of seconds")
        # Opening is a quick local file operation; every later call runs on the database thread.
        self._store = Store(path, clock=clock)
        self._options = _Options(schedule if schedule is not None else Schedule(), lease)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smtpkit-outbox")
        # Events bind to a loop only when first awaited, so they can be made here.
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._runs = 0
        self._closed = False

    @property
    def path(self) -> Path:
        """The database file."""
        return self._store.path

    def __repr__(self) -> str:
        return f"<AsyncOutbox {str(self.path)!r}>"

    async def _call(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self._closed:
            raise RuntimeError("this outbox is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(function, *args, **kwargs)
        )

    async def enqueue(
        self,
        message: Message,
        /,
        *,
        idempotency_key: str | None = None,
        send_after: datetime | timedelta | None = None,
        envelope: Envelope | None = None,
    ) -> int:
        """Store ``message`` durably and return its outbox id.

        The message is serialised now (its Message-ID is fixed from here on) and committed
        with an fsync before this returns. With an ``idempotency_key`` already in the outbox,
        nothing is stored and the existing message's id is returned. ``send_after`` (an aware
        datetime, or a delay) holds it back until then.

        ``before_send`` hooks do not run for outbox messages (the worker sends stored bytes);
        apply them before enqueueing.
        """
        new = _prepare(
            message,
            idempotency_key=idempotency_key,
            send_after=send_after,
            envelope=envelope,
            now=self._store.now(),
        )
        ids = await self._call(self._store.enqueue, [new])
        self._poke()
        return ids[0]

    async def enqueue_many(self, messages: Iterable[Message], /) -> list[int]:
        """Store several messages in one transaction (one fsync); their ids, in order."""
        now = self._store.now()
        batch = [
            _prepare(m, idempotency_key=None, send_after=None, envelope=None, now=now)
            for m in messages
        ]
        ids = await self._call(self._store.enqueue, batch)
        self._poke()
        return ids

    async def status(self) -> OutboxStats:
        """How many messages are in each state."""
        return await self._call(self._store.stats)

    async def list(
        self,
        status: Status | str | None = None,
        *,
        flagged: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[OutboxEntry]:
        """Messages (without their bytes), oldest first, optionally of one state or flag."""
        chosen = Status(status) if status is not None else None
        return await self._call(
            self._store.list, status=chosen, flagged=flagged, limit=limit, offset=offset
        )

    async def get(self, id: int, /) -> OutboxEntry | None:
        """One message's entry, or ``None``."""
        return await self._call(self._store.get, id)

    async def message_bytes(self, id: int, /) -> bytes | None:
        """The stored message bytes exactly as they are sent, or ``None``."""
        return await self._call(self._store.data, id)

    async def retry(self, id: int, /) -> OutboxEntry:
        """Make a deferred, unknown or failed message due now (refused recipients included).

        Raises:
            KeyError: no such message.
            ValueError: it is being sent, already sent, or corrupt.
        """
        entry = await self._call(self._store.retry, id)
        self._poke()
        return entry

    async def purge(self, *, sent_before: datetime, include_failed: bool = False) -> int:
        """Delete messages sent (and failed, if asked) before ``sent_before``; how many."""
        before = _purge_before(sent_before)
        return await self._call(self._store.purge, before=before, include_failed=include_failed)

    async def run(
        self,
        mailer: MailerSource,
        /,
        *,
        concurrency: int = 4,
        stop_when_idle: bool = False,
        poll_interval: float = 1.0,
    ) -> WorkerStats:
        """Send due messages until :meth:`stop` is called (or, with ``stop_when_idle``, until
        nothing is due and nothing is being sent by any worker).

        Args:
            mailer: the :class:`~smtpkit.AsyncMailer` to send through (left open), or a DSN,
                config or transport to build one from (closed at the end).
            concurrency: messages in flight at once; match the mailer's pool size.
            stop_when_idle: return once the outbox has nothing due (messages deferred to later
                do not keep it running).
            poll_interval: seconds between looks for due messages while idle.

        Returns the number of outcomes recorded, by state. On :meth:`stop` the messages in
        flight are finished and recorded first; claimed messages not yet started are put back.
        """
        sender, owned = _mailer_from(mailer)
        if self._runs == 0:
            self._stop.clear()  # a stop() of an earlier run does not end this one
        self._runs += 1
        worker = Worker(
            self._store,
            self._call,
            sender,
            concurrency=concurrency,
            lease=self._options.lease,
            schedule=self._options.schedule,
            poll_interval=poll_interval,
            stop_when_idle=stop_when_idle,
            stop=self._stop,
            wake=self._wake,
        )
        try:
            return await worker.run()
        finally:
            self._runs -= 1
            if owned:
                await sender.aclose()

    def stop(self) -> None:
        """Ask running workers to finish what is in flight and return (call from the loop)."""
        if self._runs:
            self._stop.set()

    def _poke(self) -> None:
        # A worker in this process waiting for work looks again at once.
        self._wake.set()

    async def aclose(self) -> None:
        """Close the database. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._store.close)
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class Outbox:
    """A durable outbox in a SQLite file, blocking: for web requests, scripts and WSGI.

    The same store as :class:`AsyncOutbox`, called directly (one connection, shared by threads
    under a lock). :meth:`run` runs the asynchronous worker on an event loop of its own.

    >>> from smtpkit.outbox import Outbox
    >>> with Outbox("outbox.db") as outbox:                                 # doctest: +SKIP
    ...     outbox_id = outbox.enqueue(message, idempotency_key="order-42-receipt")
    ...     outbox.status().counts
    {<Status.QUEUED: 'queued'>: 1, ...}

    Then, in a worker process: ``smtpkit outbox work --db outbox.db --dsn smtps://...``, or
    ``Outbox("outbox.db").run("smtps://...")``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        schedule: Schedule | None = None,
        lease: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lease <= 0:
            raise ValueError("lease must be a positive number of seconds")
        self._path = Path(path)
        self._store = Store(path, clock=clock)
        self._schedule = schedule if schedule is not None else Schedule()
        self._lease = lease
        self._clock = clock
        self._running: tuple[asyncio.AbstractEventLoop, AsyncOutbox] | None = None
        self._stop_requested = False
        self._run_lock = threading.Lock()

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def __repr__(self) -> str:
        return f"<Outbox {str(self._path)!r}>"

    def enqueue(
        self,
        message: Message,
        /,
        *,
        idempotency_key: str | None = None,
        send_after: datetime | timedelta | None = None,
        envelope: Envelope | None = None,
    ) -> int:
        """Store ``message`` durably and return its outbox id; see :meth:`AsyncOutbox.enqueue`."""
        new = _prepare(
            message,
            idempotency_key=idempotency_key,
            send_after=send_after,
            envelope=envelope,
            now=self._store.now(),
        )
        return self._store.enqueue([new])[0]

    def enqueue_many(self, messages: Iterable[Message], /) -> list[int]:
        """Store several messages in one transaction (one fsync); their ids, in order."""
        now = self._store.now()
        return self._store.enqueue(
            [
                _prepare(m, idempotency_key=None, send_after=None, envelope=None, now=now)
                for m in messages
            ]
        )

    def status(self) -> OutboxStats:
        """How many messages are in each state."""
        return self._store.stats()

    def list(
        self,
        status: Status | str | None = None,
        *,
        flagged: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[OutboxEntry]:
        """Messages (without their bytes), oldest first, optionally of one state or flag."""
        chosen = Status(status) if status is not None else None
        return self._store.list(status=chosen, flagged=flagged, limit=limit, offset=offset)

    def get(self, id: int, /) -> OutboxEntry | None:
        """One message's entry, or ``None``."""
        return self._store.get(id)

    def message_bytes(self, id: int, /) -> bytes | None:
        """The stored message bytes exactly as they are sent, or ``None``."""
        return self._store.data(id)

    def retry(self, id: int, /) -> OutboxEntry:
        """Make a message due now; see :meth:`AsyncOutbox.retry`."""
        return self._store.retry(id)

    def purge(self, *, sent_before: datetime, include_failed: bool = False) -> int:
        """Delete messages sent (and failed, if asked) before ``sent_before``; how many."""
        return self._store.purge(before=_purge_before(sent_before), include_failed=include_failed)

    def run(
        self,
        mailer: MailerSource,
        /,
        *,
        concurrency: int = 4,
        stop_when_idle: bool = False,
        poll_interval: float = 1.0,
    ) -> WorkerStats:
        """Run the worker, blocking, until :meth:`stop` (from another thread), Ctrl-C, or idle.

        ``mailer`` is a DSN, an :class:`~smtpkit.SMTPConfig` or a transport (a mailer is
        built on the worker's own event loop). See :meth:`AsyncOutbox.run`.
        """

        async def main() -> WorkerStats:
            async with AsyncOutbox(
                self._path, schedule=self._schedule, lease=self._lease, clock=self._clock
            ) as outbox:
                loop = asyncio.get_running_loop()
                with self._run_lock:
                    self._running = (loop, outbox)
                    stop_now, self._stop_requested = self._stop_requested, False
                try:
                    task = asyncio.ensure_future(
                        outbox.run(
                            mailer,
                            concurrency=concurrency,
                            stop_when_idle=stop_when_idle,
                            poll_interval=poll_interval,
                        )
                    )
                    if stop_now:
                        # stop() came while the loop was starting: honour it once running.
                        loop.call_soon(outbox.stop)
                    return await task
                finally:
                    with self._run_lock:
                        self._running = None

        return asyncio.run(main())

    def stop(self) -> None:
        """Ask a :meth:`run` in another thread to finish what is in flight and return."""
        with self._run_lock:
            running = self._running
            if running is None:
                self._stop_requested = True
                return
        loop, outbox = running
        loop.call_soon_threadsafe(outbox.stop)

    def close(self) -> None:
        """Close the database. Safe to call twice."""
        self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
