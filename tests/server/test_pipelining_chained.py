"""RFC 2920 chaining: the next message's group goes right behind the previous end of data.

With PIPELINING and a caller waiting for a connection, SMTPTransport hands the connection on
as soon as a message's final dot is written; the next message writes MAIL, RCPT and DATA at
once and reads its replies after the previous message's final reply. "Chained" is proven from
the server's side (ScriptedServer): the next MAIL is read before the server has answered the
dot. The outcomes (one SendResult or error per message, refusals kept apart, a drop after the
dot) are checked against the DevServer and the ScriptedServer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers import FAST, transport_for

from smtpkit._config import PoolLimits, SMTPConfig, TLSMode
from smtpkit._envelope import Envelope
from smtpkit._exceptions import (
    DataRefused,
    DeliveryUnknown,
    RecipientsRefused,
    ServerDisconnected,
)
from smtpkit._replies import SendResult
from smtpkit._transports.smtp import SMTPTransport
from smtpkit.devserver import DevServer, Hide, Respond, ScriptedServer, ScriptedSession

SENDER = "sender@example.com"
# Long enough for a loaded machine; a chaining client writes the next group at once.
GROUP_WAIT = 1.0
# How long a client that must not chain is given to (wrongly) send the next MAIL early.
NO_MORE_WAIT = 0.3
ONE = PoolLimits(max_connections=1)

EHLO_PIPELINING = b"250-scripted.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n"
EHLO_PLAIN = b"250-scripted.test\r\n250 8BITMIME\r\n"


def envelope(rcpt: str = "rcpt@example.com") -> Envelope:
    return Envelope(SENDER, (rcpt,))


def message(number: int) -> bytes:
    return (
        f"From: sender@example.com\r\nMessage-ID: <chain{number}@example.com>\r\n"
        f"Subject: m{number}\r\n\r\nBody {number}\r\n"
    ).encode()


def plain_config(server: ScriptedServer, **overrides: Any) -> SMTPConfig:
    values: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "tls": TLSMode.NONE,
        "timeouts": FAST,
        "transcript": True,
        "pool": ONE,
    }
    values.update(overrides)
    return SMTPConfig(**values)


async def send_all(
    transport: SMTPTransport, items: list[tuple[Envelope, bytes]]
) -> list[SendResult | BaseException]:
    """Every message at once (as send_many with concurrency > pool size): callers wait."""
    return await asyncio.gather(
        *(transport.send_raw(env, data) for env, data in items), return_exceptions=True
    )


async def read_lines(session: ScriptedSession, count: int, what: str) -> list[bytes] | None:
    lines: list[bytes] = []
    for _ in range(count):
        try:
            lines.append(await asyncio.wait_for(session.readline(), GROUP_WAIT))
        except TimeoutError:
            session.mismatch(f"{what}: line {len(lines) + 1} never came without a reply")
            return None
    return lines


async def answer_quit(session: ScriptedSession) -> None:
    line = await session.readline()
    if line.upper().startswith(b"QUIT"):
        await session.write(b"221 2.0.0 Bye\r\n")
    elif line:
        session.mismatch(f"expected QUIT, got {line!r}")


# -- on the wire -------------------------------------------------------------------------------


async def test_next_group_arrives_before_the_dot_is_answered() -> None:
    async def script(session: ScriptedSession) -> None:
        await session.readline()
        await session.write(EHLO_PIPELINING)
        if await read_lines(session, 3, "first group") is None:
            return
        await session.write(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go\r\n")
        await session.read_data()
        # Not a word about the first message yet: the second group must come regardless.
        if await read_lines(session, 3, "chained group") is None:
            return
        await session.write(
            b"250 2.0.0 Ok: queued as ONE\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go\r\n"
        )
        await session.read_data()
        await session.write(b"250 2.0.0 Ok: queued as TWO\r\n")
        await answer_quit(session)

    with ScriptedServer(script) as server:
        async with transport_for(plain_config(server)) as transport:
            first, second = await send_all(
                transport, [(envelope("a@example.com"), message(1)), (envelope(), message(2))]
            )
        (record,) = server.wait_done(1)
    assert record.mismatches == ()
    assert isinstance(first, SendResult), first
    assert isinstance(second, SendResult), second
    assert record.bodies == (message(1), message(2))
    # The byte-exact wire: group 1, message 1 and its dot, then group 2 with no reply between.
    assert record.lines[1:4] == (
        b"MAIL FROM:<sender@example.com>\r\n",
        b"RCPT TO:<a@example.com>\r\n",
        b"DATA\r\n",
    )
    assert record.lines[-4:-1] == (
        b"MAIL FROM:<sender@example.com>\r\n",
        b"RCPT TO:<rcpt@example.com>\r\n",
        b"DATA\r\n",
    )
    assert message(1) + b".\r\n" + b"".join(record.lines[-4:-1]) in record.received
    # Each message has its own final reply and its own transcript.
    assert first.reply is not None
    assert second.reply is not None
    assert first.reply.text.endswith("ONE")
    assert second.reply.text.endswith("TWO")
    assert first.accepted == ("a@example.com",)
    assert second.accepted == ("rcpt@example.com",)
    assert first.extra["transcript"][-1] == "S: 250 2.0.0 Ok: queued as ONE"
    assert not any("rcpt@example.com" in line for line in first.extra["transcript"])
    assert not any("a@example.com" in line for line in second.extra["transcript"])


@pytest.mark.parametrize("mode", ["no-pipelining", "abort-on-partial-rejection"])
async def test_no_chaining_without_pipelining_or_in_abort_mode(mode: str) -> None:
    pipelining = mode != "no-pipelining"

    async def transaction(session: ScriptedSession, queue_id: bytes) -> bool:
        if pipelining:  # abort mode: MAIL and RCPT together, DATA held back
            if await read_lines(session, 2, "group") is None:
                return False
            await session.write(b"250 Ok\r\n250 Ok\r\n")
        else:
            for _ in range(2):
                await session.readline()
                await session.write(b"250 Ok\r\n")
        line = await session.readline()
        if line != b"DATA\r\n":
            session.mismatch(f"expected DATA, got {line!r}")
            return False
        await session.write(b"354 Go\r\n")
        await session.read_data()
        try:
            early = await asyncio.wait_for(session.readline(), NO_MORE_WAIT)
        except TimeoutError:
            await session.write(b"250 2.0.0 Ok: queued as " + queue_id + b"\r\n")
            return True
        session.mismatch(f"{early!r} was sent before the reply to the dot")
        return False

    async def script(session: ScriptedSession) -> None:
        await session.readline()
        await session.write(EHLO_PIPELINING if pipelining else EHLO_PLAIN)
        if await transaction(session, b"ONE") and await transaction(session, b"TWO"):
            await answer_quit(session)

    overrides: dict[str, Any] = {"on_partial_rejection": "abort"} if pipelining else {}
    with ScriptedServer(script) as server:
        async with transport_for(plain_config(server, **overrides)) as transport:
            first, second = await send_all(
                transport, [(envelope(), message(1)), (envelope(), message(2))]
            )
        (record,) = server.wait_done(1)
    assert record.mismatches == ()
    assert isinstance(first, SendResult), first
    assert isinstance(second, SendResult), second
    assert first.reply is not None
    assert second.reply is not None
    assert first.reply.text.endswith("ONE")
    assert second.reply.text.endswith("TWO")


async def test_drop_after_the_dot_with_the_next_group_written() -> None:
    async def script(session: ScriptedSession) -> None:
        await session.readline()
        await session.write(EHLO_PIPELINING)
        if session.index == 0:
            if await read_lines(session, 3, "first group") is None:
                return
            await session.write(b"250 Ok\r\n250 Ok\r\n354 Go\r\n")
            await session.read_data()
            # The second message's group is already here: then the server dies.
            if await read_lines(session, 3, "chained group") is None:
                return
            await session.close(abort=True)
            return
        # The retry of message 2 on a new connection.
        if await read_lines(session, 3, "retry group") is None:
            return
        await session.write(b"250 Ok\r\n250 Ok\r\n354 Go\r\n")
        await session.read_data()
        await session.write(b"250 2.0.0 Ok: queued as RETRY\r\n")
        await answer_quit(session)

    with ScriptedServer(script) as server:
        async with transport_for(plain_config(server)) as transport:
            first, second = await send_all(
                transport, [(envelope(), message(1)), (envelope(), message(2))]
            )
            assert isinstance(first, DeliveryUnknown), first
            assert first.stage == "data"
            assert isinstance(second, ServerDisconnected), second
            assert not isinstance(second, DeliveryUnknown)
            assert second.is_transient
            retried = await transport.send_raw(envelope(), message(2))
        records = server.wait_done(2)
    assert [r.mismatches for r in records] == [(), ()]
    # Message 2's data never left before the drop: only its retry carried it.
    assert records[0].bodies == (message(1),)
    assert records[1].bodies == (message(2),)
    assert retried.reply is not None
    assert retried.reply.text.endswith("RETRY")


# -- outcomes against the DevServer ------------------------------------------------------------


async def test_twenty_messages_on_one_connection_each_get_their_own_result() -> None:
    async with DevServer() as server:
        config = server.config(timeouts=FAST, pool=ONE)
        async with transport_for(config) as transport:
            items = [(envelope(f"r{n}@example.com"), message(n)) for n in range(20)]
            results = await send_all(transport, items)
        captured = {m.queue_id: m for m in server.messages}
        assert len(server.connections) == 1
    assert len(captured) == 20  # each delivered once
    for number, result in enumerate(results):
        assert isinstance(result, SendResult), result
        assert result.accepted == (f"r{number}@example.com",)
        assert result.message_id == f"<chain{number}@example.com>"
        assert result.reply is not None
        queue_id = result.reply.text.rsplit(" ", 1)[-1]
        assert captured[queue_id].data.endswith(f"Body {number}\r\n".encode())
        assert captured[queue_id].rcpt_tos == (f"r{number}@example.com",)


async def test_a_refused_message_does_not_affect_the_next() -> None:
    faults = [
        Respond("RCPT", 550, "5.1.1 No such user", match="r3@"),
        Respond("DATA_END", 554, "5.7.1 Spam", match="Body 6"),
    ]
    async with DevServer(faults=faults) as server:
        config = server.config(timeouts=FAST, pool=ONE)
        async with transport_for(config) as transport:
            items = [(envelope(f"r{n}@example.com"), message(n)) for n in range(10)]
            results = await send_all(transport, items)
        delivered = sorted(m.rcpt_tos[0] for m in server.messages)
        assert len(server.connections) == 1
    assert isinstance(results[3], RecipientsRefused)
    assert results[3].rejected["r3@example.com"].code == 550
    assert isinstance(results[6], DataRefused)
    assert results[6].reply is not None
    assert results[6].reply.code == 554
    for number in (0, 1, 2, 4, 5, 7, 8, 9):
        result = results[number]
        assert isinstance(result, SendResult), (number, result)
        assert result.accepted == (f"r{number}@example.com",)
    assert delivered == sorted(f"r{n}@example.com" for n in (0, 1, 2, 4, 5, 7, 8, 9))


async def test_without_pipelining_concurrent_sends_still_deliver_each_once() -> None:
    async with DevServer(faults=[Hide("PIPELINING")]) as server:
        config = server.config(timeouts=FAST, pool=ONE)
        async with transport_for(config) as transport:
            items = [(envelope(f"r{n}@example.com"), message(n)) for n in range(5)]
            results = await send_all(transport, items)
        assert len(server.messages) == 5
    assert all(isinstance(r, SendResult) for r in results), results
