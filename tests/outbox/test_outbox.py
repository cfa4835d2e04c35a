"""The outbox end to end: enqueue, the worker against a real server on loopback, every outcome."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from smtpkit import Envelope
from smtpkit.devserver import DevServer, Drop, Respond
from smtpkit.outbox import AsyncOutbox, Outbox, Schedule, Status
from smtpkit.outbox._store import Store

from .conftest import FakeClock, mailer_for, message

QUICK = Schedule(delays=(60.0, 600.0), jitter=0)


async def _drain(outbox: AsyncOutbox, server: DevServer, **kwargs: object) -> dict[str, int]:
    async with mailer_for(server) as mailer:
        stats = await outbox.run(mailer, stop_when_idle=True, poll_interval=0.02, **kwargs)  # type: ignore[arg-type]
    return stats.to_dict()


# -- enqueue ----------------------------------------------------------------------------------


def test_enqueue_is_committed_before_it_returns(db: Path) -> None:
    with Outbox(db) as outbox:
        sent = message(1)
        row_id = outbox.enqueue(sent)
        # A second connection (as another process would) sees the row at once.
        other = sqlite3.connect(db)
        try:
            row = other.execute(
                "SELECT status, message_id, data FROM messages WHERE id = ?", (row_id,)
            ).fetchone()
            mode = other.execute("PRAGMA journal_mode").fetchone()[0]
        finally:
            other.close()
    assert row[0] == "queued"
    assert row[1] == sent.message_id
    assert bytes(row[2]) == sent.to_bytes()
    assert mode == "wal"


def test_same_idempotency_key_stores_one_message(db: Path) -> None:
    with Outbox(db) as outbox:
        first = outbox.enqueue(message(1), idempotency_key="signup-1")
        second = outbox.enqueue(message(2), idempotency_key="signup-1")
        third = outbox.enqueue(message(3), idempotency_key="signup-2")
        plain = [outbox.enqueue(message(4)), outbox.enqueue(message(4))]
        assert first == second
        assert third != first
        assert plain[0] != plain[1]  # no key: every enqueue stores a message
        assert outbox.status().total == 4
        entry = outbox.get(first)
    assert entry is not None
    assert entry.idempotency_key == "signup-1"
    assert entry.recipients[0].address == "user1@example.com"


def test_enqueue_rejects_bad_arguments(db: Path) -> None:
    with Outbox(db) as outbox:
        with pytest.raises(ValueError, match="timezone-aware"):
            outbox.enqueue(message(), send_after=datetime(2030, 1, 1))
        with pytest.raises(ValueError, match="idempotency_key"):
            outbox.enqueue(message(), idempotency_key="")
        with pytest.raises(TypeError):
            outbox.enqueue("not a message")  # type: ignore[arg-type]
        assert outbox.status().total == 0


def test_explicit_envelope_and_bcc_are_stored(db: Path) -> None:
    with Outbox(db) as outbox:
        row_id = outbox.enqueue(
            message(1, bcc=["hidden@example.com"]),
        )
        bounce = outbox.enqueue(
            message(2), envelope=Envelope("bounces@example.com", ["other@example.com"])
        )
        entry, custom = outbox.get(row_id), outbox.get(bounce)
        data = outbox.message_bytes(row_id)
    assert entry is not None
    assert custom is not None
    assert data is not None
    assert [r.address for r in entry.recipients] == ["user1@example.com", "hidden@example.com"]
    assert b"hidden@example.com" not in data  # Bcc is in the envelope only
    assert custom.sender == "bounces@example.com"
    assert custom.pending == ("other@example.com",)


# -- the worker ---------------------------------------------------------------------------------


async def test_worker_sends_and_records_the_full_result(
    db: Path, server: DevServer, clock: FakeClock
) -> None:
    async with AsyncOutbox(db, clock=clock) as outbox:
        ids = [await outbox.enqueue(message(n)) for n in range(5)]
        assert await _drain(outbox, server) == {
            "sent": 5,
            "deferred": 0,
            "failed": 0,
            "unknown": 0,
            "corrupt": 0,
        }
        entry = await outbox.get(ids[0])
        stats = await outbox.status()
    assert entry is not None
    assert entry.status is Status.SENT
    assert entry.attempts == 1
    assert not entry.flagged
    assert entry.finished_at == datetime.fromtimestamp(clock.now, UTC)
    assert entry.results[0]["queue_id"]
    assert entry.results[0]["recipients"][0]["accepted"] is True
    assert stats.counts[Status.SENT] == 5
    assert stats.waiting == 0
    assert len(server.messages) == 5
    assert entry.message_id in {m.header("Message-ID") for m in server.messages}


async def test_send_after_holds_a_message_back(
    db: Path, server: DevServer, clock: FakeClock
) -> None:
    async with AsyncOutbox(db, clock=clock) as outbox:
        later = await outbox.enqueue(message(1), send_after=timedelta(hours=1))
        at = datetime.fromtimestamp(clock.now + 7200, UTC)
        later_still = await outbox.enqueue(message(2), send_after=at)
        assert (await _drain(outbox, server))["sent"] == 0
        clock.advance(3600)
        assert (await _drain(outbox, server))["sent"] == 1
        entry = await outbox.get(later_still)
        assert entry is not None
        assert entry.due_at == at
        clock.advance(3600)
        assert (await _drain(outbox, server))["sent"] == 1
        assert (await outbox.get(later)).status is Status.SENT  # type: ignore[union-attr]


async def test_permanent_refusal_fails_with_the_reply(
    db: Path, server: DevServer, clock: FakeClock
) -> None:
    server.set_faults(Respond("RCPT", 550, "5.1.1 No such user"))
    async with AsyncOutbox(db, clock=clock) as outbox:
        row_id = await outbox.enqueue(message(1))
        assert (await _drain(outbox, server))["failed"] == 1
        entry = await outbox.get(row_id)
    assert entry is not None
    assert entry.status is Status.FAILED
    assert entry.last_reply is not None
    assert entry.last_reply.code == 550
    assert entry.recipients[0].state == "refused"
    assert entry.recipients[0].reply is not None
    assert entry.recipients[0].reply.enhanced_code == "5.1.1"
    assert server.messages == []


async def test_transient_failure_is_deferred_on_the_schedule(
    db: Path, server: DevServer, clock: FakeClock
) -> None:
    server.set_faults(Respond("MAIL", 451, "4.3.0 Try again later", times=2))
    async with AsyncOutbox(db, clock=clock, schedule=QUICK) as outbox:
        row_id = await outbox.enqueue(message(1))
        assert (await _drain(outbox, server))["deferred"] == 1
        entry = await outbox.get(row_id)
        assert entry is not None
        assert entry.status is Status.DEFERRED
        assert entry.due_at == datetime.fromtimestamp(clock.now + 60, UTC)
        assert entry.last_reply is not None
        assert entry.last_reply.code == 451
        # Not due yet: an idle worker leaves it alone.
        assert (await _drain(outbox, server))["deferred"] == 0
        clock.advance(60)
        assert (await _drain(outbox, server))["deferred"] == 1
        entry = await outbox.get(row_id)
        assert entry is not None
        assert entry.due_at == datetime.fromtimestamp(clock.now + 600, UTC)  # second delay
        clock.advance(600)
        assert (await _drain(outbox, server))["sent"] == 1
        entry = await outbox.get(row_id)
    assert entry is not None
    assert entry.status is Status.SENT
    assert entry.attempts == 3
    assert len(server.messages) == 1


async def test_gives_up_after_the_lifetime_with_4_4_7(
    db: Path, server: DevServer, clock: FakeClock
) -> None:
    server.set_faults(Respond("MAIL", 451, "4.3.0 Try again later"))
    schedule = Schedule(delays=(3600.0,), give_up_after=3 * 3600.0, jitter=0)
    async with AsyncOutbox(db, clock=clock, schedule=schedule) as outbox:
        row_id = await outbox.enqueue(message(1))
        for _ in range(3):
            assert (await _drain(outbox, server))["deferred"] == 1
            clock.advance(3600)
        assert (await _drain(outbox, server))["failed"] == 1
        entry = await outbox.get(row_id)
    assert entry is not None
    assert entry.status is Status.FAILED
    assert entry.attempts == 4
    assert entry.last_reply is not None
    assert entry.last_reply.enhanced_code == "4.4.7"
    assert entry.recipients[0].state == "refused"


async def test_only_transiently_refused_recipients_are_retried(
    db: Path, server: DevServer, clock: FakeClock
) -> None:
    server.set_faults(
        Respond("RCPT", 450, "4.2.0 Greylisted", match="grey@example.com"),
        Respond("RCPT", 550, "5.1.1 No such user", match="gone@example.com"),
    )
    async with AsyncOutbox(db, clock=clock, schedule=QUICK) as outbox:
        row_id = await outbox.enqueue(
            message(1, to=["ann@example.com", "grey@example.com", "gone@example.com"])
        )
        assert (await _drain(outbox, server))["deferred"] == 1
        entry = await outbox.get(row_id)
        assert entry is not None
        assert {r.address: r.state for r in entry.recipients} == {
            "ann@example.com": "accepted",
            "grey@example.com": "pending",
            "gone@example.com": "refused",
        }
        server.set_faults()
        clock.advance(60)
        assert (await _drain(outbox, server))["sent"] == 1
        entry = await outbox.get(row_id)
    assert entry is not None
    assert entry.status is Status.SENT
    assert [m.rcpt_tos for m in server.messages] == [
        ("ann@example.com",),
        ("grey@example.com",),
    ]
    # Both transactions carried the same bytes, so the same Message-ID.
    assert {m.header("Message-ID") for m in server.messages} == {entry.message_id}
    assert len(entry.results) == 2


async def test_unknown_outcome_is_retried_under_the_same_message_id_and_flagged(
    db: Path, server: DevServer, clock: FakeClock
) -> None:
    server.set_faults(Drop("DATA_END", times=1))
    async with AsyncOutbox(db, clock=clock, schedule=QUICK) as outbox:
        row_id = await outbox.enqueue(message(1))
        assert (await _drain(outbox, server))["unknown"] == 1
        entry = await outbox.get(row_id)
        assert entry is not None
        assert entry.status is Status.UNKNOWN
        assert entry.flagged
        assert entry.last_error is not None
        assert "DeliveryUnknown" in entry.last_error
        assert (await outbox.status()).flagged == 1
        clock.advance(60)
        assert (await _drain(outbox, server))["sent"] == 1
        entry = await outbox.get(row_id)
    assert entry is not None
    assert entry.status is Status.SENT
    assert entry.flagged
    copies = server.messages
    assert len(copies) == 2  # the server had it the first time: the flag says so
    assert {m.header("Message-ID") for m in copies} == {entry.message_id}
    assert copies[0].data == copies[1].data


async def test_unknown_outcome_can_be_parked_until_retried(
    db: Path, server: DevServer, clock: FakeClock
) -> None:
    server.set_faults(Drop("DATA_END", times=1))
    parked = Schedule(jitter=0, retry_unknown=False)
    async with AsyncOutbox(db, clock=clock, schedule=parked) as outbox:
        row_id = await outbox.enqueue(message(1))
        assert (await _drain(outbox, server))["unknown"] == 1
        clock.advance(86400)
        assert (await _drain(outbox, server))["sent"] == 0
        await outbox.retry(row_id)
        assert (await _drain(outbox, server))["sent"] == 1


async def test_worker_side_errors_defer_rather_than_fail(
    db: Path, clock: FakeClock, server: DevServer
) -> None:
    # A worker pointed at a closed port: nothing is wrong with the message itself.
    port = server.port
    server.stop()
    async with AsyncOutbox(db, clock=clock, schedule=QUICK) as outbox:
        row_id = await outbox.enqueue(message(1))
        stats = await outbox.run(
            f"smtp://127.0.0.1:{port}?tls=none", stop_when_idle=True, poll_interval=0.02
        )
        entry = await outbox.get(row_id)
    assert stats.deferred == 1
    assert entry is not None
    assert entry.status is Status.DEFERRED
    assert entry.last_error is not None
    assert "ConnectError" in entry.last_error


async def test_corrupt_row_is_quarantined_not_sent(
    db: Path, server: DevServer, clock: FakeClock
) -> None:
    async with AsyncOutbox(db, clock=clock) as outbox:
        good = await outbox.enqueue(message(1))
        bad = await outbox.enqueue(message(2))
        tamper = sqlite3.connect(db)
        tamper.execute(
            "UPDATE messages SET data = CAST(replace(CAST(data AS TEXT), 'message 2', "
            "'message X') AS BLOB) WHERE id = ?",
            (bad,),
        )
        tamper.commit()
        tamper.close()
        stats = await _drain(outbox, server)
        entry = await outbox.get(bad)
        assert (await outbox.get(good)).status is Status.SENT  # type: ignore[union-attr]
        with pytest.raises(ValueError, match="corrupt"):
            await outbox.retry(bad)
    assert stats["corrupt"] == 1
    assert stats["sent"] == 1
    assert entry is not None
    assert entry.status is Status.CORRUPT
    assert entry.last_error is not None
    assert "checksum" in entry.last_error
    assert len(server.messages) == 1


async def test_tampered_envelope_cannot_inject_commands(
    db: Path, server: DevServer, clock: FakeClock
) -> None:
    # Even with a matching checksum (an attacker who can write the file can recompute it),
    # a forged address fails Address's shape check instead of reaching RCPT TO.
    from smtpkit.outbox._records import checksum

    async with AsyncOutbox(db, clock=clock) as outbox:
        row_id = await outbox.enqueue(message(1))
        con = sqlite3.connect(db)
        data, envelope = con.execute(
            "SELECT data, envelope FROM messages WHERE id = ?", (row_id,)
        ).fetchone()
        forged = envelope.replace('"user1"', '"x>\\r\\nRCPT TO:<evil"')
        con.execute(
            "UPDATE messages SET envelope = ?, checksum = ? WHERE id = ?",
            (forged, checksum(bytes(data), forged), row_id),
        )
        con.commit()
        con.close()
        stats = await _drain(outbox, server)
    assert stats["corrupt"] == 1
    assert server.messages == []
    assert not any("evil" in c.line for c in server.commands)


async def test_a_dead_workers_claim_expires_and_comes_back_flagged(
    db: Path, server: DevServer, clock: FakeClock
) -> None:
    async with AsyncOutbox(db, clock=clock, lease=30) as outbox:
        row_id = await outbox.enqueue(message(1))
    # A worker that claimed the message and died (its lease is never renewed).
    store = Store(db, clock=clock)
    try:
        assert [c.id for c in store.claim("dead", limit=10, lease=30, include_unknown=True)] == [
            row_id
        ]
    finally:
        store.close()
    async with AsyncOutbox(db, clock=clock, lease=30) as outbox:
        # Not expired yet: nobody else may send it, and the outbox is not idle.
        runner = asyncio.create_task(_drain(outbox, server))
        await asyncio.sleep(0.2)
        assert not runner.done()
        assert server.messages == []
        clock.advance(31)
        stats = await asyncio.wait_for(runner, 10)
        entry = await outbox.get(row_id)
    assert stats["sent"] == 1
    assert entry is not None
    assert entry.flagged
    assert entry.attempts == 2
    assert len(server.messages) == 1


async def test_two_workers_on_one_file_never_send_a_message_twice(
    db: Path, server: DevServer
) -> None:
    async with AsyncOutbox(db) as first, AsyncOutbox(db) as second:
        await first.enqueue_many([message(n) for n in range(200)])
        a, b = await asyncio.gather(_drain(first, server), _drain(second, server))
        stats = await first.status()
    assert a["sent"] + b["sent"] == 200
    assert a["sent"] > 0
    assert b["sent"] > 0
    assert stats.counts[Status.SENT] == 200
    assert stats.flagged == 0
    counts = Counter(m.header("Message-ID") for m in server.messages)
    assert len(counts) == 200
    assert set(counts.values()) == {1}


async def test_stop_finishes_in_flight_and_returns(db: Path, server: DevServer) -> None:
    async with AsyncOutbox(db) as outbox:
        async with mailer_for(server) as mailer:
            runner = asyncio.create_task(outbox.run(mailer, poll_interval=0.02))
            await outbox.enqueue(message(1))
            for _ in range(200):
                if server.messages:
                    break
                await asyncio.sleep(0.01)
            outbox.stop()
            stats = await asyncio.wait_for(runner, 10)
        assert stats.sent == 1
        assert (await outbox.status()).counts[Status.SENDING] == 0


def test_blocking_run_and_stop_from_another_thread(db: Path, server: DevServer) -> None:
    with Outbox(db) as outbox:
        outbox.enqueue(message(1))
        result: list[object] = []
        thread = threading.Thread(
            target=lambda: result.append(outbox.run(server.config(), poll_interval=0.02))
        )
        thread.start()
        server.wait_for(1, timeout=10)
        outbox.stop()
        thread.join(10)
        assert not thread.is_alive()
        assert outbox.status().counts[Status.SENT] == 1
    assert getattr(result[0], "sent", None) == 1


# -- administration -----------------------------------------------------------------------------


async def test_retry_makes_a_failed_message_due_with_refused_recipients_pending(
    db: Path, server: DevServer, clock: FakeClock
) -> None:
    server.set_faults(Respond("RCPT", 550, "5.1.1 No such user", times=1))
    async with AsyncOutbox(db, clock=clock) as outbox:
        row_id = await outbox.enqueue(message(1))
        assert (await _drain(outbox, server))["failed"] == 1
        entry = await outbox.retry(row_id)
        assert entry.status is Status.QUEUED
        assert entry.pending == ("user1@example.com",)
        assert (await _drain(outbox, server))["sent"] == 1
        with pytest.raises(ValueError, match="sent"):
            await outbox.retry(row_id)
        with pytest.raises(KeyError):
            await outbox.retry(9999)


def test_list_filters_and_purge_removes_old_sent(db: Path, clock: FakeClock) -> None:
    with Outbox(db, clock=clock) as outbox:
        ids = [outbox.enqueue(message(n)) for n in range(4)]
        store = Store(db, clock=clock)
        try:
            claimed = store.claim("w", limit=2, lease=60, include_unknown=True)
            from smtpkit.outbox._outcome import Decision

            store.record(
                "w",
                [(c.id, Decision(Status.SENT, (), None, False, None, None, None)) for c in claimed],
            )
        finally:
            store.close()
        assert [e.id for e in outbox.list(Status.SENT)] == ids[:2]
        assert [e.id for e in outbox.list("queued")] == ids[2:]
        assert outbox.list(flagged=True) == []
        assert [e.id for e in outbox.list(limit=1, offset=1)] == [ids[1]]
        now = datetime.fromtimestamp(clock.now, UTC)
        assert outbox.purge(sent_before=now) == 0  # finished exactly now: not before
        assert outbox.purge(sent_before=now + timedelta(seconds=1)) == 2
        assert outbox.status().total == 2
        assert outbox.get(ids[0]) is None
        with pytest.raises(ValueError, match="timezone-aware"):
            outbox.purge(sent_before=datetime(2030, 1, 1))


def test_store_refuses_a_newer_schema(db: Path) -> None:
    Outbox(db).close()
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    with pytest.raises(sqlite3.OperationalError, match="newer"):
        Outbox(db)
