"""Crash safety of the outbox, tested by killing real processes with SIGKILL.

1. A worker process (the real ``smtpkit outbox work`` command) drains 300 messages into a
   development server on loopback. It is killed at random points four times and restarted;
   afterwards every message must have been delivered, none lost, and none delivered twice
   unless the outbox flagged it (its outcome was unknown: the worker died while sending it).
2. A process enqueues messages one by one and is killed four times; every enqueue that
   returned must be in the database, complete, and a worker must then deliver each exactly once.

Every wait has a deadline and waits on a condition (lines read, messages counted), not a sleep.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from smtpkit import Message
from smtpkit.devserver import CapturedMessage, DevServer
from smtpkit.outbox import Outbox, Status
from smtpkit.outbox._records import checksum
from smtpkit.outbox._worker import stock_size

HERE = Path(__file__).resolve().parent
MESSAGES = 300
KILLS = 4
# Short, so that a killed worker's claims come back quickly; the heartbeat keeps live ones.
LEASE = 1.0
CONCURRENCY = 8

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")


class Deliveries:
    """Counts the messages a server received, by Message-ID (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.by_id: Counter[str] = Counter()

    def __call__(self, message: CapturedMessage) -> None:
        message_id = message.header("Message-ID") or ""
        with self._changed:
            self.by_id[message_id] += 1
            self._changed.notify_all()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_id.values())

    def wait_total(self, count: int, deadline: float) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: sum(self.by_id.values()) >= count, max(0.0, deadline - time.monotonic())
            )


@pytest.fixture
def deliveries() -> Deliveries:
    return Deliveries()


@pytest.fixture
def server(deliveries: Deliveries) -> Iterator[DevServer]:
    with DevServer(tls="none", on_message=deliveries) as running:
        yield running


def _messages(count: int, start: int = 0) -> list[Message]:
    return [
        Message(
            sender="app@example.com",
            to=[f"user{n}@example.com"],
            subject=f"n{n}",
            text=f"message {n}\n" * 20,
        )
        for n in range(start, start + count)
    ]


def _worker(db: Path, server: DevServer) -> subprocess.Popen[bytes]:
    dsn = f"smtp://{server.host}:{server.port}?tls=none"
    return subprocess.Popen(
        [
            sys.executable,
            str(HERE / "_run_cli.py"),
            "work",
            "--db",
            str(db),
            "--dsn",
            dsn,
            "--concurrency",
            str(CONCURRENCY),
            "--lease",
            str(LEASE),
            "--poll-interval",
            "0.05",
            "--until-idle",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=10)


def test_worker_killed_repeatedly_loses_nothing_and_duplicates_only_flagged(
    tmp_path: Path, server: DevServer, deliveries: Deliveries
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    db = tmp_path / "outbox.db"
    with Outbox(db) as outbox:
        ids = outbox.enqueue_many(_messages(MESSAGES))
    assert len(ids) == MESSAGES

    # Kill points: after a random number of deliveries, plus a random sub-millisecond-to-30 ms
    # delay, so kills land before, during and after sends and outcome writes.
    thresholds = sorted(rng.sample(range(20, MESSAGES - 40), KILLS))
    deadline = time.monotonic() + 40
    kills = 0
    for threshold in thresholds:
        process = _worker(db, server)
        try:
            reached = deliveries.wait_total(threshold, deadline)
            time.sleep(rng.uniform(0, 0.03))
        finally:
            _kill(process)
        assert reached, f"seed={seed}: stuck before {threshold} deliveries"
        kills += 1
    assert kills == KILLS

    process = _worker(db, server)
    try:
        out, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill(process)
        raise
    assert process.returncode == 0, f"seed={seed}: {err.decode(errors='replace')[-2000:]}"
    assert b"sent=" in out

    with Outbox(db) as outbox:
        entries = outbox.list(limit=MESSAGES + 10)
        stats = outbox.status()
    assert len(entries) == MESSAGES
    assert stats.counts[Status.SENT] == MESSAGES, f"seed={seed}: {stats.to_dict()}"
    delivered = dict(deliveries.by_id)
    stored_ids = {e.message_id for e in entries}
    assert set(delivered) == stored_ids, f"seed={seed}: lost or foreign messages"
    duplicates = {mid for mid, count in delivered.items() if count > 1}
    flagged = {e.message_id for e in entries if e.flagged}
    assert duplicates <= flagged, f"seed={seed}: unflagged duplicates {duplicates - flagged}"
    # The flag is narrow: only the messages a killed worker held (sending or claimed next).
    held = CONCURRENCY + stock_size(CONCURRENCY)
    assert len(flagged) <= KILLS * held, f"seed={seed}: {len(flagged)} flagged"


def _verify_rows(db: Path) -> dict[str, tuple[int, str]]:
    """Every row's checksum is intact; returns idempotency key -> (id, status)."""
    connection = sqlite3.connect(db)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = connection.execute(
            "SELECT id, idempotency_key, status, data, envelope, checksum FROM messages"
        ).fetchall()
    finally:
        connection.close()
    found: dict[str, tuple[int, str]] = {}
    for row_id, key, status, data, envelope, digest in rows:
        assert checksum(bytes(data), envelope) == digest, f"row {row_id} is incomplete"
        found[key] = (row_id, status)
    return found


def test_enqueue_killed_repeatedly_keeps_every_returned_message(
    tmp_path: Path, server: DevServer, deliveries: Deliveries
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    db = tmp_path / "outbox.db"
    Outbox(db).close()  # created up front, so the children only ever open it
    returned: dict[str, int] = {}
    start = 0
    deadline = time.monotonic() + 30
    for _ in range(KILLS):
        process = subprocess.Popen(
            [sys.executable, str(HERE / "_enqueue_proc.py"), str(db), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None
        wanted = rng.randrange(5, 40)
        lines = 0
        try:
            while lines < wanted and time.monotonic() < deadline:
                line = process.stdout.readline()
                if not line:
                    break
                n, row_id = line.split()
                returned[f"k{int(n)}"] = int(row_id)
                lines += 1
            time.sleep(rng.uniform(0, 0.005))
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            rest, err = process.communicate(timeout=10)
        assert lines == wanted, f"seed={seed}: {err.decode(errors='replace')[-2000:]}"
        # Lines written before the kill but not read yet are returned enqueues too.
        for line in rest.decode().splitlines():
            parts = line.split()
            if len(parts) == 2:
                returned[f"k{int(parts[0])}"] = int(parts[1])
        # The next child starts after everything this one may have stored, even unreported.
        stored = _verify_rows(db)
        start = 1 + max(int(key[1:]) for key in stored)

    stored = _verify_rows(db)
    for key, row_id in returned.items():
        assert key in stored, f"seed={seed}: enqueue of {key} returned but it is not stored"
        assert stored[key] == (row_id, "queued")
    # Partial enqueues (killed before returning) are either absent or whole: the checksums
    # above are all intact, and at most one row per kill was never reported.
    assert len(stored) - len(returned) <= KILLS

    with Outbox(db) as outbox:
        stats = outbox.run(server.config(), concurrency=4, stop_when_idle=True)
        entries = outbox.list(limit=1000)
    assert stats.sent == len(stored)
    assert all(e.status is Status.SENT for e in entries)
    assert sorted(deliveries.by_id.values()) == [1] * len(stored)
    assert set(deliveries.by_id) == {e.message_id for e in entries}
