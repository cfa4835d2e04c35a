"""Connection pooling of SMTPTransport: reuse, limits, idle expiry, stale connections."""

from __future__ import annotations

import asyncio
import time

import pytest
from helpers import FAST, transport_for, verbs

from smtpkit._config import PoolLimits
from smtpkit._envelope import Envelope
from smtpkit._exceptions import DeliveryUnknown
from smtpkit._transports._pool import ConnectionPool
from smtpkit._transports.smtp import SMTPTransport
from smtpkit.devserver import DevServer, Drop, Hang, Respond


def envelope() -> Envelope:
    return Envelope("sender@example.com", ["rcpt@example.com"])


def message(n: int = 0) -> bytes:
    return b"Message-ID: <p%d@example.com>\r\nSubject: %d\r\n\r\nbody\r\n" % (n, n)


async def test_sequential_messages_reuse_one_connection() -> None:
    async with DevServer(auth=True) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            ids = [(await transport.send_raw(envelope(), message(i))).message_id for i in range(10)]
        assert ids == [f"<p{i}@example.com>" for i in range(10)]
        assert len(server.messages) == 10
        assert len(server.connections) == 1
        # One handshake and one login for all ten; a clean transaction needs no RSET.
        assert verbs(server).count("STARTTLS") == 1
        assert verbs(server).count("AUTH") == 1
        assert verbs(server).count("MAIL") == 10
        assert "RSET" not in verbs(server)
        assert verbs(server)[-1] == "QUIT"


async def test_concurrent_sends_respect_max_connections() -> None:
    async with DevServer(faults=[Hang("DATA_END", 0.15)]) as server:
        config = server.config(timeouts=FAST, pool=PoolLimits(max_connections=2))
        async with transport_for(config) as transport:
            started = time.monotonic()
            results = await asyncio.gather(
                *(transport.send_raw(envelope(), message(i)) for i in range(6))
            )
            elapsed = time.monotonic() - started
        assert len(results) == 6
        assert len(server.messages) == 6
        # Two connections carried the six messages in parallel (sequential would be >= 0.9 s).
        assert len(server.connections) == 2
        assert {m.connection for m in server.messages} == {c.index for c in server.connections}
        assert elapsed < 0.85


async def test_one_connection_limit_serialises_senders() -> None:
    async with DevServer() as server:
        config = server.config(timeouts=FAST, pool=PoolLimits(max_connections=1))
        async with transport_for(config) as transport:
            await asyncio.gather(*(transport.send_raw(envelope(), message(i)) for i in range(4)))
        assert len(server.connections) == 1
        assert len(server.messages) == 4


async def test_max_messages_per_connection() -> None:
    async with DevServer() as server:
        config = server.config(timeouts=FAST, pool=PoolLimits(max_messages_per_connection=3))
        async with transport_for(config) as transport:
            for i in range(7):
                await transport.send_raw(envelope(), message(i))
        assert [
            len([m for m in server.messages if m.connection == c.index]) for c in server.connections
        ] == [3, 3, 1]
        assert verbs(server).count("QUIT") == 3


async def test_idle_connections_are_closed_after_idle_timeout() -> None:
    async with DevServer() as server:
        config = server.config(timeouts=FAST, pool=PoolLimits(idle_timeout=0.15))
        async with transport_for(config) as transport:
            await transport.send_raw(envelope(), message())
            await asyncio.sleep(0.45)
            assert verbs(server)[-1] == "QUIT"
            assert all(not c.open for c in server.connections)
            await transport.send_raw(envelope(), message())
        assert len(server.connections) == 2


async def test_connection_closed_by_the_server_while_idle_is_replaced() -> None:
    # aiosmtpd closes a connection idle for `timeout` seconds.
    async with DevServer(timeout=0.2) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            await transport.send_raw(envelope(), message(1))
            await asyncio.sleep(0.5)
            result = await transport.send_raw(envelope(), message(2))
        assert result.accepted == ("rcpt@example.com",)
        assert len(server.connections) == 2
        assert [m.data for m in server.messages] == [message(1), message(2)]


@pytest.mark.parametrize(
    "fault",
    [Drop("MAIL", times=1), Respond("MAIL", 421, "4.4.2 Idle timeout, closing", times=1)],
    ids=["drop", "421"],
)
async def test_stale_connection_found_at_mail_is_replaced_without_losing_the_message(
    fault: Drop | Respond,
) -> None:
    async with DevServer() as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            await transport.send_raw(envelope(), message(1))
            # The server has gone away behind the pooled connection's back.
            server.set_faults(fault)
            result = await transport.send_raw(envelope(), message(2))
        assert result.accepted == ("rcpt@example.com",)
        assert len(server.connections) == 2
        assert [m.data for m in server.messages] == [message(1), message(2)]
        assert verbs(server).count("MAIL") == 3


async def test_a_fresh_connection_failing_at_mail_is_not_retried() -> None:
    async with DevServer(faults=[Drop("MAIL")]) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(ConnectionError):
                await transport.send_raw(envelope(), message())
        assert len(server.connections) == 1


async def test_connection_is_discarded_after_delivery_unknown() -> None:
    async with DevServer(faults=[Drop("DATA_END", times=1)]) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(DeliveryUnknown):
                await transport.send_raw(envelope(), message(1))
            await transport.send_raw(envelope(), message(2))
        assert len(server.connections) == 2


async def test_cancelled_send_discards_its_connection() -> None:
    async with DevServer(faults=[Hang("DATA_END", 5, times=1)]) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            task = asyncio.create_task(transport.send_raw(envelope(), message(1)))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            result = await transport.send_raw(envelope(), message(2))
        assert result.accepted
        assert len(server.connections) == 2


async def test_aclose_quits_every_idle_connection_and_refuses_new_sends() -> None:
    async with DevServer(faults=[Hang("DATA_END", 0.1)]) as server:
        config = server.config(timeouts=FAST, pool=PoolLimits(max_connections=3))
        transport = SMTPTransport(config)
        await asyncio.gather(*(transport.send_raw(envelope(), message(i)) for i in range(3)))
        assert len(server.connections) == 3
        await transport.aclose()
        await transport.aclose()  # idempotent
        assert verbs(server).count("QUIT") == 3
        with pytest.raises(RuntimeError, match="closed"):
            await transport.send_raw(envelope(), message())


# -- the pool on its own -----------------------------------------------------------------------


class FakeConnection:
    def __init__(self) -> None:
        self.reusable = True
        self.uses = 0
        self.events: list[str] = []

    async def aclose(self) -> None:
        self.events.append("aclose")
        self.reusable = False

    def abort(self) -> None:
        self.events.append("abort")
        self.reusable = False


async def test_pool_reuses_most_recent_first_and_drops_broken_ones() -> None:
    pool: ConnectionPool[FakeConnection] = ConnectionPool(
        max_connections=4, max_uses=10, idle_timeout=60
    )
    first, second = FakeConnection(), FakeConnection()
    await pool.checkin(first)
    await pool.checkin(second)
    assert pool.checkout() is second
    second.reusable = False
    await pool.checkin(second)
    assert second.events == ["abort"]
    first.reusable = False  # e.g. the server closed it while idle
    assert pool.checkout() is None
    assert first.events == ["abort"]
    await pool.aclose()


async def test_pool_retires_used_up_connections_and_expires_idle_ones() -> None:
    pool: ConnectionPool[FakeConnection] = ConnectionPool(
        max_connections=1, max_uses=2, idle_timeout=0.05
    )
    used_up = FakeConnection()
    used_up.uses = 2
    await pool.checkin(used_up)
    assert used_up.events == ["aclose"]
    idle = FakeConnection()
    await pool.checkin(idle)
    assert pool.idle_count == 1
    await asyncio.sleep(0.15)
    assert pool.idle_count == 0
    assert idle.events == ["aclose"]
    await pool.aclose()
    late = FakeConnection()
    await pool.checkin(late)  # after aclose: closed politely, never pooled
    assert late.events == ["aclose"]
    assert pool.closed


async def test_pool_slots_bound_concurrency() -> None:
    pool: ConnectionPool[FakeConnection] = ConnectionPool(
        max_connections=2, max_uses=10, idle_timeout=60
    )
    peak = 0

    async def work() -> None:
        nonlocal peak
        async with pool.slot():
            peak = max(peak, pool.in_use)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(work() for _ in range(6)))
    assert peak == 2
    assert pool.in_use == 0
    await pool.aclose()
