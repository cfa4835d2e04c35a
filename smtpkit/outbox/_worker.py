"""The outbox worker: claim due messages, send them through an AsyncMailer, record outcomes.

Two kinds of coroutine share one worker:

* ``concurrency`` senders, each sending one claimed message at a time through the mailer
  (whose pool bounds the connections) and handing its outcome over;
* the keeper, the worker's only writer. Each of its transactions records the outcomes that
  finished since the last one and claims the next batch of due rows, so a busy worker pays one
  commit (one fsync, milliseconds on most disks) for many messages: a group commit. It keeps a
  small stock of claimed rows ahead of the senders, so they never wait for the disk.

A heartbeat renews the leases while anything is held, so a slow send never loses its lease
however short the lease is; only a dead (or frozen) worker's rows expire.

The crash window is the time between the server's reply and the recorded outcome. A worker
killed there leaves the row ``sending``; when its lease expires the row becomes ``unknown``, is
flagged and is sent again with the same bytes (so the same Message-ID). That is the only way
the outbox can deliver a message twice, and the flag says which messages it may have happened
to. Rows claimed but not yet started when the worker dies are flagged the same way (nobody can
tell them apart afterwards), which is why the stock ahead of the senders is kept small.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from smtpkit._envelope import Envelope
from smtpkit._exceptions import SmtpkitError
from smtpkit._mailer import AsyncMailer
from smtpkit._replies import SendResult
from smtpkit.outbox._outcome import Decision, decide
from smtpkit.outbox._records import (
    RecipientState,
    Status,
    WorkerStats,
    checksum,
    decode_envelope,
    recipients_from_json,
)
from smtpkit.outbox._schedule import Schedule
from smtpkit.outbox._store import Claimed, Exchange, Store

__all__ = ["StoreCall", "Worker", "stock_size"]

#: Runs a blocking store method off the event loop (on the outbox's database thread).
StoreCall = Callable[..., Awaitable[Any]]

_log = logging.getLogger("smtpkit.outbox")


def worker_name() -> str:
    """A lease owner name unique to this worker: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def stock_size(concurrency: int) -> int:
    """Claimed rows kept ready beyond those being sent.

    Enough to cover one commit's latency at full speed, few enough that a crash flags few
    messages: at most ``concurrency + stock_size(concurrency)`` rows are held at any time.
    """
    return max(4 * concurrency, 32)


class Worker:
    """One run of the worker loop (see :meth:`AsyncOutbox.run <smtpkit.outbox.AsyncOutbox.run>`)."""

    def __init__(
        self,
        store: Store,
        call: StoreCall,
        mailer: AsyncMailer,
        *,
        concurrency: int,
        lease: float,
        schedule: Schedule,
        poll_interval: float,
        stop_when_idle: bool,
        stop: asyncio.Event,
        wake: asyncio.Event,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if lease <= 0 or poll_interval <= 0:
            raise ValueError("lease and poll_interval must be positive")
        self._store = store
        self._call = call
        self._mailer = mailer
        self._concurrency = concurrency
        self._cap = concurrency + stock_size(concurrency)
        # Claim once at least this many rows fit: fewer, larger claims.
        self._min_claim = max(1, stock_size(concurrency) // 2)
        self._lease = lease
        self._schedule = schedule
        self._poll = poll_interval
        self._until_idle = stop_when_idle
        self._stop = stop
        self._wake = wake
        self._owner = worker_name()
        self._rng = random.Random()  # noqa: S311 - retry jitter, not a secret
        self._ready: asyncio.Queue[Claimed | None] = asyncio.Queue()
        # Rows claimed and not yet recorded: waiting in _ready, being sent, or being recorded.
        self._held = 0
        self._outcomes: list[tuple[int, Decision]] = []
        self._have_outcomes = asyncio.Event()
        self.stats = WorkerStats()

    @property
    def owner(self) -> str:
        """This worker's lease owner name."""
        return self._owner

    def __str__(self) -> str:
        return self._owner

    async def run(self) -> WorkerStats:
        """Work until stopped (or idle, with ``stop_when_idle``); returns the outcome counts."""
        _log.info("outbox worker %s started on %s", self._owner, self._store.path)
        senders = [asyncio.create_task(self._sender()) for _ in range(self._concurrency)]
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            await self._keeper()
        except BaseException:
            # Cancelled (or a database failure): abandon the sends in flight. Their rows stay
            # "sending" under a lease nobody renews, and come back as unknown when it expires.
            for sender in senders:
                sender.cancel()
            raise
        finally:
            for _ in senders:
                self._ready.put_nowait(None)
            await asyncio.gather(*senders, return_exceptions=True)
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            _log.info("outbox worker %s stopped: %s", self._owner, self.stats.to_dict())
        return self.stats

    # -- the keeper: every write of the worker -----------------------------------------------------

    async def _keeper(self) -> None:
        include_unknown = self._schedule.retry_unknown
        while True:
            stopping = self._stop.is_set()
            # Cleared before the list is taken, so an outcome added later always wakes us.
            self._have_outcomes.clear()
            batch, self._outcomes = self._outcomes, []
            release = self._take_unstarted() if stopping else []
            room = 0 if stopping else self._cap - (self._held - len(batch) - len(release))
            limit = room if room >= self._min_claim else 0
            if not batch and not release and not limit:
                if stopping and self._held == 0:
                    return
                # Senders are busy and the stock is full: an outcome will come (this is the
                # hot path, so a plain event wait; a stop request is seen with that outcome).
                await self._have_outcomes.wait()
                continue
            done: Exchange = await self._call(
                self._store.exchange,
                self._owner,
                batch,
                limit=limit,
                lease=self._lease,
                include_unknown=include_unknown,
                release=release,
            )
            self._count(batch, done.lost)
            self._held += len(done.claimed) - len(batch) - len(release)
            for row in done.claimed:
                self._ready.put_nowait(row)
            if batch or release or done.claimed:
                continue
            # Nothing finished and nothing due.
            if (
                self._held == 0
                and self._until_idle
                and await self._call(self._store.is_idle, include_unknown=include_unknown)
            ):
                return
            self._wake.clear()
            await self._wait(self._wake, self._poll)

    def _take_unstarted(self) -> list[int]:
        ids: list[int] = []
        while not self._ready.empty():
            item = self._ready.get_nowait()
            if item is not None:
                ids.append(item.id)
        return ids

    def _count(self, batch: list[tuple[int, Decision]], lost: list[int]) -> None:
        lost_ids = set(lost)
        for row_id, decision in batch:
            if row_id in lost_ids:
                _log.warning("outbox message %d: lease lost before its outcome was stored", row_id)
            else:
                self.stats.count(decision.status)

    async def _wait(self, event: asyncio.Event, delay: float) -> None:
        """Wait for ``event``, an outcome, the stop request, or ``delay`` seconds."""
        waiters = [
            asyncio.create_task(event.wait()),
            asyncio.create_task(self._have_outcomes.wait()),
            asyncio.create_task(self._stop.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            if self._held:
                try:
                    await self._call(self._store.renew, self._owner, lease=self._lease)
                except Exception:
                    _log.exception("outbox worker %s could not renew its leases", self)

    # -- sending -----------------------------------------------------------------------------------

    async def _sender(self) -> None:
        while True:
            row = await self._ready.get()
            if row is None:
                return
            try:
                decision = await self._attempt(row)
            except Exception as exc:
                # A bug here must not leave the row held for ever: it goes back as deferred
                # with the error, like any other transient failure.
                _log.exception("outbox worker %s: unexpected error on message %d", self, row.id)
                decision = self._decide(row, recipients_from_json(row.recipients_json), exc)
            self._outcomes.append((row.id, decision))
            self._have_outcomes.set()

    async def _attempt(self, row: Claimed) -> Decision:
        """Send one claimed row; returns its next state."""
        try:
            if checksum(row.data, row.envelope_json) != row.checksum:
                raise ValueError("checksum mismatch")
            envelope = decode_envelope(row.envelope_json)
            states = recipients_from_json(row.recipients_json)
        except (ValueError, TypeError, KeyError) as exc:
            # Postfix moves unreadable queue files to its "corrupt" queue: never send what we
            # cannot vouch for, keep it for inspection.
            reason = f"corrupt record, not sent: {exc}"
            _log.error("outbox message %d quarantined: %s", row.id, reason)
            return Decision(Status.CORRUPT, (), None, row.flagged, reason, None, None)
        by_text = {str(a): a for a in envelope.recipients}
        pending = [
            by_text[s.address] for s in states if s.state == "pending" and s.address in by_text
        ]
        if not pending:
            # Nothing left to send (cannot normally happen: a final state is written at once).
            return _final_without_send(states, flagged=row.flagged)
        if len(pending) < len(envelope.recipients):
            # Only the recipients still pending: those accepted earlier never get a second copy.
            envelope = Envelope(envelope.sender, pending)
        outcome: SendResult | BaseException
        try:
            outcome = await self._mailer.send_raw(envelope, row.data)
        except SmtpkitError as exc:
            outcome = exc
        except Exception as exc:
            _log.exception("outbox message %d: unexpected error while sending", row.id)
            outcome = exc
        return self._decide(row, states, outcome)

    def _decide(
        self,
        row: Claimed,
        states: tuple[RecipientState, ...],
        outcome: SendResult | BaseException,
    ) -> Decision:
        return decide(
            states,
            outcome,
            attempts=row.attempts,
            first_due=row.first_due,
            now=self._store.now(),
            schedule=self._schedule,
            flagged=row.flagged,
            rng=self._rng,
        )


def _final_without_send(states: tuple[RecipientState, ...], *, flagged: bool) -> Decision:
    accepted = any(s.state == "accepted" for s in states)
    return Decision(
        Status.SENT if accepted else Status.FAILED,
        states,
        None,
        flagged,
        None if accepted else "no recipient left to send to",
        None,
        None,
    )
