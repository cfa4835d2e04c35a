"""The outbox's storage: plain synchronous sqlite3, the one implementation of every query.

Durability: the database runs in WAL mode with ``synchronous=FULL``, so a commit returns only
after the write-ahead log is fsynced (``fullfsync`` too, for macOS, where a plain fsync does not
reach the disk). ``enqueue`` commits before it returns: what it returned is on disk.

Claims: one ``BEGIN IMMEDIATE`` transaction takes SQLite's single write lock, turns the expired
leases of dead workers into ``unknown``, then moves due rows to ``sending`` under this worker's
lease with ``UPDATE ... RETURNING``. No two transactions can claim the same row, so two workers
(threads or processes on one machine, sharing the file) never send the same message, and a
crashed worker's claims come back when its lease runs out.

Every public method takes the connection lock, so one store can be shared by threads; the
async twin runs these methods on one dedicated thread instead.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smtpkit._envelope import Envelope
from smtpkit.outbox._outcome import Decision
from smtpkit.outbox._records import (
    OutboxEntry,
    OutboxStats,
    RecipientState,
    Status,
    checksum,
    encode_envelope,
    recipients_from_json,
    recipients_json,
    reply_from_json,
    timestamp,
)

__all__ = ["Claimed", "Exchange", "NewMessage", "Store"]

# Queries marked "noqa: S608" interpolate only "?" placeholders and the constant column list
# below; every value is a bound parameter.

_SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT,
    idempotency_key TEXT UNIQUE,
    status          TEXT NOT NULL,
    data            BLOB NOT NULL,
    envelope        TEXT NOT NULL,
    checksum        TEXT NOT NULL,
    recipients      TEXT NOT NULL,
    size            INTEGER NOT NULL,
    created_at      REAL NOT NULL,
    first_due_at    REAL NOT NULL,
    due_at          REAL NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    flagged         INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     REAL,
    last_error      TEXT,
    last_reply      TEXT,
    results         TEXT NOT NULL DEFAULT '[]',
    updated_at      REAL NOT NULL,
    finished_at     REAL
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (status, due_at);
"""

# Columns an OutboxEntry is built from (everything but the message bytes).
_ENTRY_COLUMNS = (
    "id, message_id, status, idempotency_key, envelope, recipients, size, created_at, due_at, "
    "attempts, flagged, last_error, last_reply, results, updated_at, finished_at, lease_owner"
)

_SELECT_ONE = f"SELECT {_ENTRY_COLUMNS} FROM messages WHERE id = ?"  # noqa: S608

_LEASE_LOST = "worker stopped while sending (lease expired): outcome unknown"


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message ready to store: bytes, envelope and metadata."""

    data: bytes
    envelope: Envelope
    message_id: str | None
    idempotency_key: str | None
    due_at: float | None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row a worker holds under its lease, with what it needs to send it."""

    id: int
    message_id: str | None
    data: bytes
    envelope_json: str
    checksum: str
    recipients_json: str
    attempts: int
    first_due: float
    flagged: bool


@dataclass(frozen=True, slots=True)
class Exchange:
    """What one worker transaction did: outcomes whose lease was lost, rows newly claimed."""

    lost: list[int]
    claimed: list[Claimed]


class Store:
    """The outbox database. Blocking; safe to share between threads.

    Args:
        path: the SQLite file (created with its directory's permissions if missing).
        clock: the time source in Unix seconds (tests pass a fake one).
        timeout: seconds to wait for another process's write lock before failing.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        # Autocommit mode (isolation_level=None): transactions are explicit BEGIN IMMEDIATE
        # blocks, so the write lock is taken up front and never upgraded half-way (which could
        # fail with "database is locked" instead of waiting).
        self._db = sqlite3.connect(
            str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._setup()
        except BaseException:
            self._db.close()
            raise
        self._closed = False

    def _setup(self) -> None:
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(
                f"{self.path}: the outbox needs WAL mode and SQLite refused it (got {mode!r}); "
                "is the file on a network file system?"
            )
        # FULL: every commit fsyncs the WAL, so a returned enqueue survives power loss too.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA fullfsync=ON")
        self._db.execute("PRAGMA checkpoint_fullfsync=ON")
        # A busy worker touches every row twice; a page cache that holds a large backlog
        # (64 MB at most, allocated only as used) spares re-reading pages from the OS.
        self._db.execute("PRAGMA cache_size=-65536")
        with self._write():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise sqlite3.OperationalError(
                    f"{self.path}: outbox schema version {version} is newer than this smtpkit "
                    f"understands ({_SCHEMA_VERSION}); upgrade smtpkit"
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    # -- plumbing --------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (and fsynced) on success, rolled back otherwise."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            if self._closed:
                raise sqlite3.ProgrammingError("the outbox is closed")
            yield

    def now(self) -> float:
        """The store's clock."""
        return self._clock()

    def close(self) -> None:
        """Close the database connection. Safe to call twice."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    # -- enqueue ---------------------------------------------------------------------------------

    def enqueue(self, messages: Sequence[NewMessage]) -> list[int]:
        """Store ``messages`` in one transaction and return their ids once it is durable.

        A message whose idempotency key is already stored is not stored again: the existing
        row's id is returned in its place.
        """
        now = self._clock()
        ids: list[int] = []
        with self._locked(), self._write() as db:
            for message in messages:
                envelope_json = encode_envelope(message.envelope)
                states = [RecipientState(str(a), "pending") for a in message.envelope.recipients]
                due = message.due_at if message.due_at is not None else now
                row = db.execute(
                    "INSERT INTO messages (message_id, idempotency_key, status, data, envelope, "
                    "checksum, recipients, size, created_at, first_due_at, due_at, updated_at) "
                    "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
                    (
                        message.message_id,
                        message.idempotency_key,
                        message.data,
                        envelope_json,
                        checksum(message.data, envelope_json),
                        recipients_json(states),
                        len(message.data),
                        now,
                        due,
                        due,
                        now,
                    ),
                ).fetchone()
                if row is None:
                    row = db.execute(
                        "SELECT id FROM messages WHERE idempotency_key = ?",
                        (message.idempotency_key,),
                    ).fetchone()
                ids.append(int(row[0]))
        return ids

    # -- the worker's side ----------------------------------------------------------------------

    def claim(
        self, owner: str, *, limit: int, lease: float, include_unknown: bool
    ) -> list[Claimed]:
        """Take up to ``limit`` due messages under ``owner``'s lease (``status='sending'``).

        In the same transaction, rows still ``sending`` under an expired lease (their worker
        died or hung) become ``unknown`` and are flagged: they may have been delivered.
        """
        return self.exchange(
            owner, (), limit=limit, lease=lease, include_unknown=include_unknown
        ).claimed

    def record(self, owner: str, decisions: Sequence[tuple[int, Decision]]) -> list[int]:
        """Store the outcome of each attempt in one transaction; returns ids whose lease was lost.

        A row is only updated while this worker still holds it, so a worker that lost its lease
        (it stalled past it and another worker took the message over) cannot overwrite the
        newer state.
        """
        return self.exchange(owner, decisions, limit=0, lease=0.0, include_unknown=False).lost

    def exchange(
        self,
        owner: str,
        decisions: Sequence[tuple[int, Decision]],
        *,
        limit: int,
        lease: float,
        include_unknown: bool,
        release: Sequence[int] = (),
    ) -> Exchange:
        """Record outcomes, give back unstarted rows and claim new ones, in one transaction.

        The worker's one write path: a commit costs an fsync (milliseconds on most disks), so a
        busy worker records the outcomes that finished meanwhile and takes its next batch in
        the same commit.
        """
        now = self._clock()
        with self._locked(), self._write() as db:
            lost = _record(db, owner, decisions, now)
            if release:
                _release(db, owner, release, now)
            claimed = (
                _claim(
                    db,
                    owner,
                    limit,
                    lease_until=now + lease,
                    include_unknown=include_unknown,
                    now=now,
                )
                if limit
                else []
            )
        return Exchange(lost, claimed)

    def renew(self, owner: str, *, lease: float) -> int:
        """Extend ``owner``'s leases (a heartbeat while sends are in flight)."""
        now = self._clock()
        with self._locked(), self._write() as db:
            cursor = db.execute(
                "UPDATE messages SET lease_until = ? WHERE status = 'sending' AND lease_owner = ?",
                (now + lease, owner),
            )
            return cursor.rowcount

    def release(self, owner: str, ids: Sequence[int]) -> None:
        """Give back claimed rows that were never attempted (a worker stopping cleanly)."""
        if ids:
            now = self._clock()
            with self._locked(), self._write() as db:
                _release(db, owner, ids, now)

    def is_idle(self, *, include_unknown: bool) -> bool:
        """True when nothing is due now and nothing is being sent (by any worker)."""
        now = self._clock()
        statuses = ("queued", "deferred", "unknown") if include_unknown else ("queued", "deferred")
        marks = ", ".join("?" * len(statuses))
        with self._locked():
            row = self._db.execute(
                "SELECT EXISTS (SELECT 1 FROM messages WHERE status = 'sending') "  # noqa: S608
                f"OR EXISTS (SELECT 1 FROM messages WHERE status IN ({marks}) AND due_at <= ?)",
                (*statuses, now),
            ).fetchone()
        return not row[0]

    # -- inspection and administration ----------------------------------------------------------

    def stats(self) -> OutboxStats:
        """Counts per state, flagged messages, the next due time."""
        with self._locked():
            counts = dict.fromkeys(Status, 0)
            for status, count in self._db.execute(
                "SELECT status, COUNT(*) FROM messages GROUP BY status"
            ):
                counts[Status(status)] = count
            flagged = self._db.execute("SELECT COUNT(*) FROM messages WHERE flagged").fetchone()[0]
            next_due, oldest = self._db.execute(
                "SELECT MIN(CASE WHEN status IN ('queued', 'deferred', 'unknown') "
                "THEN due_at END), MIN(created_at) FROM messages "
                "WHERE status IN ('queued', 'deferred', 'unknown', 'sending')"
            ).fetchone()
        return OutboxStats(
            counts=counts,
            flagged=flagged,
            next_due=timestamp(next_due) if next_due is not None else None,
            oldest_waiting=timestamp(oldest) if oldest is not None else None,
        )

    def list(
        self,
        *,
        status: Status | None = None,
        flagged: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[OutboxEntry]:
        """Entries, oldest first, optionally of one state or flag."""
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(Status(status).value)
        if flagged is not None:
            where.append("flagged = ?")
            params.append(int(flagged))
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        with self._locked():
            rows = self._db.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM messages {clause}ORDER BY id LIMIT ? OFFSET ?",  # noqa: S608
                (*params, limit, offset),
            ).fetchall()
        return [_entry(r) for r in rows]

    def get(self, row_id: int) -> OutboxEntry | None:
        """One entry, or ``None``."""
        with self._locked():
            row = self._db.execute(
                _SELECT_ONE,
                (row_id,),
            ).fetchone()
        return _entry(row) if row is not None else None

    def data(self, row_id: int) -> bytes | None:
        """The stored message bytes, or ``None``."""
        with self._locked():
            row = self._db.execute("SELECT data FROM messages WHERE id = ?", (row_id,)).fetchone()
        return bytes(row[0]) if row is not None else None

    def retry(self, row_id: int) -> OutboxEntry:
        """Make a deferred, unknown, failed or queued message due now.

        Recipients refused for good become pending again; accepted ones stay accepted. The
        give-up clock restarts.

        Raises:
            KeyError: no such message.
            ValueError: it is being sent, already sent, or corrupt.
        """
        now = self._clock()
        with self._locked(), self._write() as db:
            row = db.execute(
                "SELECT status, recipients FROM messages WHERE id = ?", (row_id,)
            ).fetchone()
            if row is None:
                raise KeyError(row_id)
            status = Status(row[0])
            if status in (Status.SENDING, Status.SENT, Status.CORRUPT):
                raise ValueError(f"message {row_id} is {status.value}; it cannot be retried")
            states = tuple(
                RecipientState(s.address, "pending", s.reply) if s.state == "refused" else s
                for s in recipients_from_json(row[1])
            )
            # Queued, also for an unknown one: a retry asked for by hand is a decision to
            # resend (still with the same bytes and Message-ID, and the row stays flagged).
            db.execute(
                "UPDATE messages SET status = 'queued', recipients = ?, due_at = ?, "
                "first_due_at = ?, finished_at = NULL, updated_at = ? WHERE id = ?",
                (recipients_json(states), now, now, now, row_id),
            )
            entry = db.execute(
                _SELECT_ONE,
                (row_id,),
            ).fetchone()
        return _entry(entry)

    def purge(self, *, before: float, include_failed: bool) -> int:
        """Delete messages sent (and, if asked, failed) before ``before``; returns how many."""
        statuses = ("sent", "failed") if include_failed else ("sent",)
        marks = ", ".join("?" * len(statuses))
        with self._locked(), self._write() as db:
            cursor = db.execute(
                f"DELETE FROM messages WHERE status IN ({marks}) AND finished_at < ?",  # noqa: S608
                (*statuses, before),
            )
            return cursor.rowcount


def _claim(
    db: sqlite3.Connection,
    owner: str,
    limit: int,
    *,
    lease_until: float,
    include_unknown: bool,
    now: float,
) -> list[Claimed]:
    db.execute(
        "UPDATE messages SET status = 'unknown', flagged = 1, lease_owner = NULL, "
        "lease_until = NULL, due_at = ?, last_error = ?, updated_at = ? "
        "WHERE status = 'sending' AND lease_until <= ?",
        (now, _LEASE_LOST, now, now),
    )
    statuses = ("queued", "deferred", "unknown") if include_unknown else ("queued", "deferred")
    marks = ", ".join("?" * len(statuses))
    # No ORDER BY: the (status, due_at) index already yields rows due first within each
    # state, and sorting every due row on each claim would cost O(queue) per batch.
    rows = db.execute(
        "UPDATE messages SET status = 'sending', lease_owner = ?, lease_until = ?, "  # noqa: S608
        "attempts = attempts + 1, updated_at = ? "
        "WHERE id IN (SELECT id FROM messages "
        f"  WHERE status IN ({marks}) AND due_at <= ? LIMIT ?) "
        "RETURNING id, message_id, data, envelope, checksum, recipients, attempts, "
        "first_due_at, flagged",
        (owner, lease_until, now, *statuses, now, limit),
    ).fetchall()
    return [
        Claimed(r[0], r[1], bytes(r[2]), r[3], r[4], r[5], r[6], r[7], bool(r[8])) for r in rows
    ]


_RECORD = (
    "UPDATE messages SET status = :status, recipients = COALESCE(:recipients, recipients), "
    "due_at = COALESCE(:due, due_at), flagged = :flagged, "
    "last_error = :error, last_reply = :reply, "
    # Appending by string keeps SQLite from parsing the JSON history on every update.
    "results = CASE WHEN :result IS NULL THEN results WHEN results = '[]' "
    "  THEN '[' || :result || ']' "
    "  ELSE substr(results, 1, length(results) - 1) || ',' || :result || ']' END, "
    "lease_owner = NULL, lease_until = NULL, updated_at = :now, finished_at = :finished "
    "WHERE id = :id AND status = 'sending' AND lease_owner = :owner"
)


def _record(
    db: sqlite3.Connection, owner: str, decisions: Sequence[tuple[int, Decision]], now: float
) -> list[int]:
    """Write outcomes; returns the ids this worker no longer held (left unchanged)."""
    if not decisions:
        return []
    ids = [row_id for row_id, _ in decisions]
    marks = ", ".join("?" * len(ids))
    lost = [
        row[0]
        for row in db.execute(
            f"SELECT id FROM messages WHERE id IN ({marks}) "  # noqa: S608
            "AND NOT (status = 'sending' AND lease_owner IS ?)",
            (*ids, owner),
        )
    ]
    # One executemany, not a statement per row: fewer trips between SQLite and Python.
    db.executemany(
        _RECORD,
        [
            {
                "status": d.status.value,
                "recipients": recipients_json(d.recipients) if d.recipients else None,
                "due": d.due_at,
                "flagged": int(d.flagged),
                "error": d.last_error,
                "reply": json.dumps(d.last_reply.to_dict()) if d.last_reply else None,
                "result": json.dumps(d.result, separators=(",", ":")) if d.result else None,
                "now": now,
                "finished": now if d.status in (Status.SENT, Status.FAILED) else None,
                "id": row_id,
                "owner": owner,
            }
            for row_id, d in decisions
        ],
    )
    return lost


def _release(db: sqlite3.Connection, owner: str, ids: Sequence[int], now: float) -> None:
    marks = ", ".join("?" * len(ids))
    db.execute(
        "UPDATE messages SET "  # noqa: S608
        "status = CASE WHEN flagged THEN 'unknown' ELSE 'queued' END, "
        "attempts = attempts - 1, lease_owner = NULL, lease_until = NULL, updated_at = ? "
        f"WHERE status = 'sending' AND lease_owner = ? AND id IN ({marks})",
        (now, owner, *ids),
    )


def _entry(row: Sequence[Any]) -> OutboxEntry:
    (
        row_id,
        message_id,
        status,
        key,
        envelope_json,
        states_json,
        size,
        created,
        due,
        attempts,
        flagged,
        last_error,
        last_reply,
        results,
        updated,
        finished,
        owner,
    ) = row
    try:
        envelope = json.loads(envelope_json)
        sender_parts = envelope.get("sender")
        sender = f"{sender_parts[0]}@{sender_parts[1]}" if sender_parts else None
        states = recipients_from_json(states_json)
        result_list = tuple(json.loads(results))
        reply = reply_from_json(json.loads(last_reply)) if last_reply else None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        # A damaged row is still listed (so it can be found and purged), with what is readable.
        sender, states, result_list, reply = None, (), (), None
    return OutboxEntry(
        id=row_id,
        message_id=message_id,
        status=Status(status),
        idempotency_key=key,
        sender=sender,
        recipients=states,
        size=size,
        created_at=timestamp(created),
        due_at=timestamp(due),
        attempts=attempts,
        flagged=bool(flagged),
        last_error=last_error,
        last_reply=reply,
        results=result_list,
        updated_at=timestamp(updated) if updated is not None else None,
        finished_at=timestamp(finished) if finished is not None else None,
        lease_owner=owner,
    )
