"""RFC 2920 PIPELINING in SMTPTransport: one flight per transaction, replies read in order.

Two kinds of server: the DevServer (aiosmtpd; advertises PIPELINING unless ``Hide``-den, with
per-command faults) for outcomes, and the byte-exact ScriptedServer for what went on the wire
and when. "Pipelined" is proven from the server's side: every command of the group is read
before the server has written a single reply, which a client waiting for replies could not
produce; the client-side write count shows the group left in one write (one segment).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from helpers import FAST, transport_for, verbs
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpkit._config import Credentials, SMTPConfig, Timeouts, TLSMode
from smtpkit._envelope import Envelope
from smtpkit._exceptions import (
    DataRefused,
    DeliveryUnknown,
    RecipientsRefused,
    SenderRefused,
    ServerDisconnected,
    TransportError,
    TransportTimeout,
)
from smtpkit._secrets import Secret
from smtpkit._transports._pipeline import (
    MAX_REPLY_LENGTH,
    MalformedReply,
    ReplyQueue,
    SessionClosed,
)
from smtpkit.devserver import (
    DevServer,
    Drop,
    Hide,
    Respond,
    ScriptedServer,
    ScriptedSession,
)

SENDER = "sender@example.com"
# Long enough for a loaded machine; a pipelining client sends its group at once, so a line
# that takes longer than this to come was held back until a reply.
GROUP_WAIT = 1.0
# How long a non-pipelining client is given to (wrongly) send its next command unprompted.
NO_MORE_WAIT = 0.3


def envelope(*recipients: str) -> Envelope:
    return Envelope(SENDER, recipients or ("rcpt@example.com",))


def message(body: bytes = b"Hello\r\n") -> bytes:
    return b"From: sender@example.com\r\nMessage-ID: <p1@example.com>\r\nSubject: t\r\n\r\n" + body


def plain_config(server: ScriptedServer, **overrides: Any) -> SMTPConfig:
    values: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "tls": TLSMode.NONE,
        "timeouts": FAST,
        "transcript": True,
    }
    values.update(overrides)
    return SMTPConfig(**values)


EHLO_PIPELINING = b"250-scripted.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n"
EHLO_PLAIN = b"250-scripted.test\r\n250 8BITMIME\r\n"


async def read_group(session: ScriptedSession, count: int) -> list[bytes] | None:
    """Read ``count`` lines without replying; None if the client held one back."""
    lines: list[bytes] = []
    for _ in range(count):
        try:
            line = await asyncio.wait_for(session.readline(), GROUP_WAIT)
        except TimeoutError:
            session.mismatch(f"line {len(lines) + 1} of the group never came without a reply")
            return None
        lines.append(line)
    return lines


async def answer_quit(session: ScriptedSession) -> None:
    line = await session.readline()
    if line.upper().startswith(b"QUIT"):
        await session.write(b"221 2.0.0 Bye\r\n")
    elif line:
        session.mismatch(f"expected QUIT, got {line!r}")


async def serve_group(
    session: ScriptedSession, replies: bytes, *, rcpts: int = 1, dribble: bool = False
) -> bool:
    """Read MAIL + ``rcpts`` RCPT + DATA before any reply, then write ``replies``."""
    if await read_group(session, rcpts + 2) is None:
        return False
    if dribble:
        for byte in replies:  # every byte its own write (and, on loopback, its own segment)
            await session.write(bytes([byte]))
            await asyncio.sleep(0.002)
    else:
        await session.write(replies)
    return True


def group_script(
    replies: bytes,
    *,
    rcpts: int = 1,
    then: Callable[[ScriptedSession], Awaitable[None]] | None = None,
    dribble: bool = False,
) -> Callable[[ScriptedSession], Awaitable[None]]:
    """EHLO with PIPELINING, one group answered with ``replies``, then ``then`` (or QUIT)."""

    async def script(session: ScriptedSession) -> None:
        await session.readline()  # EHLO
        await session.write(EHLO_PIPELINING)
        if not await serve_group(session, replies, rcpts=rcpts, dribble=dribble):
            return
        await (then or answer_quit)(session)

    return script


async def receive_message(session: ScriptedSession) -> None:
    await session.read_data()
    await session.write(b"250 2.0.0 Ok: queued as PIPE1\r\n")
    await answer_quit(session)


class WriteSpy:
    """Counts the writes :class:`ReplyQueue` makes, with their bytes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writes: list[bytes] = []
        original = ReplyQueue.send

        def send(queue: ReplyQueue, data: bytes, replies: int) -> None:
            self.writes.append(data)
            original(queue, data, replies)

        monkeypatch.setattr(ReplyQueue, "send", send)


# -- the group on the wire ---------------------------------------------------------------------


@pytest.mark.parametrize("dribble", [False, True], ids=["replies-in-one-segment", "byte-by-byte"])
async def test_mail_rcpt_data_go_in_one_write_and_replies_are_read_in_order(
    dribble: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    replies = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250-2.1.5 Ok,\r\n250 2.1.5 two lines\r\n354 Go\r\n"
    script = group_script(replies, rcpts=2, then=receive_message, dribble=dribble)
    spy = WriteSpy(monkeypatch)
    with ScriptedServer(script) as server:
        async with transport_for(plain_config(server)) as transport:
            result = await transport.send_raw(envelope("a@example.com", "b@example.com"), message())
        (record,) = server.wait_done(1)
    assert record.mismatches == ()
    assert record.lines[1:5] == (
        b"MAIL FROM:<sender@example.com>\r\n",
        b"RCPT TO:<a@example.com>\r\n",
        b"RCPT TO:<b@example.com>\r\n",
        b"DATA\r\n",
    )
    # One write for the whole group, then one for the message (dot-stuffed, with its dot).
    assert spy.writes[0] == b"".join(record.lines[1:5])
    assert spy.writes[1] == message() + b".\r\n"
    assert record.bodies == (message(),)
    assert result.accepted == ("a@example.com", "b@example.com")
    assert result.rejected == {}
    assert result.recipients[1].reply.text == "Ok,\ntwo lines"
    assert result.reply is not None
    assert "PIPE1" in result.reply.text
    transcript = result.extra["transcript"]
    first_reply = next(i for i, line in enumerate(transcript) if line.startswith("S: 250 2.1.0"))
    # The transcript shows the wire order: all four commands, then the replies.
    assert [line[:7] for line in transcript[first_reply - 4 : first_reply]] == [
        "C: MAIL",
        "C: RCPT",
        "C: RCPT",
        "C: DATA",
    ]


async def test_without_pipelining_each_command_waits_for_its_reply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def script(session: ScriptedSession) -> None:
        await session.readline()
        await session.write(EHLO_PLAIN)
        for expect, reply in [
            (b"MAIL", b"250 2.1.0 Ok\r\n"),
            (b"RCPT", b"250 2.1.5 Ok\r\n"),
            (b"RCPT", b"250 2.1.5 Ok\r\n"),
            (b"DATA", b"354 Go\r\n"),
        ]:
            line = await session.readline()
            if not line.startswith(expect):
                session.mismatch(f"expected {expect!r}, got {line!r}")
            try:
                early = await asyncio.wait_for(session.readline(), NO_MORE_WAIT)
            except TimeoutError:
                pass  # right: the client waits for the reply
            else:
                session.mismatch(f"{early!r} was sent before the reply to {line!r}")
                return
            await session.write(reply)
        await receive_message(session)

    spy = WriteSpy(monkeypatch)
    with ScriptedServer(script) as server:
        async with transport_for(plain_config(server)) as transport:
            result = await transport.send_raw(envelope("a@example.com", "b@example.com"), message())
        (record,) = server.wait_done(1)
    assert record.mismatches == ()
    assert result.accepted == ("a@example.com", "b@example.com")
    assert [w.split(b" ", 1)[0].split(b":")[0] for w in spy.writes[:4]] == [
        b"MAIL",
        b"RCPT",
        b"RCPT",
        b"DATA\r\n",
    ]


async def test_pipelining_offered_only_before_starttls_is_not_used() -> None:
    # RFC 3207 §4.2: what the server said before TLS is forgotten. Here only the pre-TLS EHLO
    # offers PIPELINING, so after TLS every command waits for its reply.
    async def script(session: ScriptedSession) -> None:
        await session.readline()
        await session.write(b"250-scripted.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
        await session.readline()
        await session.write(b"220 Ready\r\n")
        await session.start_tls()
        await session.readline()
        await session.write(EHLO_PLAIN)
        await session.readline()  # MAIL
        try:
            early = await asyncio.wait_for(session.readline(), NO_MORE_WAIT)
        except TimeoutError:
            await session.write(b"250 2.1.0 Ok\r\n")
        else:
            session.mismatch(f"{early!r} was pipelined although PIPELINING was not offered")
            return
        await session.readline()  # RCPT
        await session.write(b"250 2.1.5 Ok\r\n")
        await session.readline()  # DATA
        await session.write(b"354 Go\r\n")
        await receive_message(session)

    with ScriptedServer(script) as server:
        config = plain_config(server, tls=TLSMode.STARTTLS, ca_file=server.ca_file)
        async with transport_for(config) as transport:
            await transport.send_raw(envelope(), message())
        (record,) = server.wait_done(1)
    assert record.mismatches == ()
    assert record.bodies == (message(),)


async def test_pipelining_offered_after_starttls_is_used_over_tls() -> None:
    async def script(session: ScriptedSession) -> None:
        await session.readline()
        await session.write(b"250-scripted.test\r\n250 STARTTLS\r\n")
        await session.readline()
        await session.write(b"220 Ready\r\n")
        await session.start_tls()
        await group_script(b"250 Ok\r\n250 Ok\r\n354 Go\r\n", then=receive_message)(session)

    with ScriptedServer(script) as server:
        config = plain_config(server, tls=TLSMode.STARTTLS, ca_file=server.ca_file)
        async with transport_for(config) as transport:
            result = await transport.send_raw(envelope(), message())
        (record,) = server.wait_done(1)
    assert record.mismatches == ()
    assert record.tls_started_at == 2
    assert result.accepted == ("rcpt@example.com",)


# -- per-recipient results in a pipelined group ------------------------------------------------


async def test_refused_recipients_in_a_group_get_their_own_replies() -> None:
    faults = [
        Respond("RCPT", 550, "5.1.1 No such user", match="bob@"),
        Respond("RCPT", 450, "4.2.1 Mailbox busy", match="dan@"),
    ]
    rcpts = ["ann@example.com", "bob@example.com", "cy@example.com", "dan@example.com"]
    async with DevServer(faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            result = await transport.send_raw(envelope(*rcpts), message())
            again = await transport.send_raw(envelope("eve@example.com"), message())
        assert [m.rcpt_tos for m in server.messages] == [
            ("ann@example.com", "cy@example.com"),
            ("eve@example.com",),
        ]
        assert len(server.connections) == 1  # the connection stayed in step
    assert result.accepted == ("ann@example.com", "cy@example.com")
    assert result.rejected["bob@example.com"].code == 550
    assert result.rejected["bob@example.com"].enhanced_code == "5.1.1"
    assert result.rejected["dan@example.com"].code == 450
    assert [status.address for status in result.recipients] == rcpts
    assert again.accepted == ("eve@example.com",)


async def test_every_recipient_refused_and_data_354_sends_only_the_dot() -> None:
    # RFC 2920 §3.1: the DATA of the group can get 354 although no RCPT was accepted; the
    # client then ends it with a lone dot. Not a byte of the message may go out, and the
    # reply to the dot ends the transaction: the connection is reused without an RSET.
    async def then(session: ScriptedSession) -> None:
        line = await session.readline()
        if line != b".\r\n":
            session.mismatch(f"expected a lone dot, got {line!r}")
            return
        await session.write(b"554 5.5.1 No valid recipients\r\n")
        if await serve_group(session, b"250 Ok\r\n250 Ok\r\n354 Go\r\n"):
            await receive_message(session)

    replies = b"250 Ok\r\n550 5.1.1 No\r\n550 5.1.1 Nope\r\n354 Go ahead\r\n"
    with ScriptedServer(group_script(replies, rcpts=2, then=then)) as server:
        async with transport_for(plain_config(server)) as transport:
            with pytest.raises(RecipientsRefused) as caught:
                await transport.send_raw(
                    envelope("a@example.com", "b@example.com"), message(b"SECRET BODY\r\n")
                )
            result = await transport.send_raw(envelope(), message())
        (record,) = server.wait_done(1)
    assert record.mismatches == ()
    assert record.received.count(b"SECRET BODY") == 0
    assert record.bodies == (message(),)  # only the second message's
    assert caught.value.stage == "rcpt"
    assert set(caught.value.rejected) == {"a@example.com", "b@example.com"}
    assert not caught.value.is_transient
    assert result.accepted == ("rcpt@example.com",)


async def test_every_recipient_refused_and_data_refused_resets() -> None:
    faults = [Respond("RCPT", 550, "5.1.1 No such user")]
    async with DevServer(faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(RecipientsRefused) as caught:
                await transport.send_raw(envelope("a@example.com", "b@example.com"), message())
        assert server.messages == []
        # aiosmtpd refuses the group's DATA itself (no recipient): then RSET, not a dot.
        assert verbs(server)[-2:] == ["RSET", "QUIT"]
    assert set(caught.value.rejected) == {"a@example.com", "b@example.com"}


async def test_data_refused_in_a_group_is_data_refused() -> None:
    faults = [Respond("DATA", 554, "5.7.1 Not from you", times=1)]
    async with DevServer(faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(DataRefused) as caught:
                await transport.send_raw(envelope(), message())
            result = await transport.send_raw(envelope(), message())
        assert len(server.messages) == 1
        assert len(server.connections) == 1  # RSET kept the connection
    assert caught.value.stage == "data"
    assert caught.value.reply is not None
    assert caught.value.reply.code == 554
    assert not caught.value.is_transient
    assert result.accepted == ("rcpt@example.com",)


async def test_sender_refused_in_a_group_reads_every_reply_and_keeps_the_connection() -> None:
    faults = [Respond("MAIL", 553, "5.7.1 Not your address", times=1)]
    async with DevServer(faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(SenderRefused) as caught:
                await transport.send_raw(envelope("a@example.com", "b@example.com"), message())
            result = await transport.send_raw(envelope(), message())
        assert len(server.connections) == 1
        assert [m.rcpt_tos for m in server.messages] == [("rcpt@example.com",)]
    assert caught.value.stage == "mail"
    assert caught.value.reply is not None
    assert caught.value.reply.code == 553
    assert result.accepted == ("rcpt@example.com",)


async def test_abort_mode_sends_data_only_after_checking_the_recipients() -> None:
    faults = [Respond("RCPT", 550, "5.1.1 No such user", match="bob@")]
    async with DevServer(faults=faults) as server:
        config = server.config(timeouts=FAST, on_partial_rejection="abort")
        async with transport_for(config) as transport:
            with pytest.raises(RecipientsRefused):
                await transport.send_raw(envelope("ann@example.com", "bob@example.com"), message())
            result = await transport.send_raw(envelope("ann@example.com"), message())
        commands = verbs(server)
        assert server.messages[0].rcpt_tos == ("ann@example.com",)
        assert len(server.messages) == 1
    assert commands.count("DATA") == 1  # only for the second message
    assert result.accepted == ("ann@example.com",)


async def test_too_many_recipients_in_a_group_go_in_the_next_transaction() -> None:
    # Like a server with a limit of two per transaction: r3..r5 get 452 the first time.
    rcpts = [f"r{i}@example.com" for i in range(1, 6)]
    faults = [
        Respond("RCPT", 452, "4.5.3 Too many recipients", match=f"r{i}@", times=1)
        for i in range(3, 6)
    ]
    async with DevServer(faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            result = await transport.send_raw(envelope(*rcpts), message())
        assert [m.rcpt_tos for m in server.messages] == [tuple(rcpts[:2]), tuple(rcpts[2:])]
    assert result.accepted == tuple(rcpts)
    assert len(result.extra["data_replies"]) == 2


async def test_a_recipient_accepted_after_a_too_many_reply_is_not_sent_twice() -> None:
    # Every RCPT of a group has been sent: one the server accepted is in this transaction,
    # whatever the reply before it said, and must not be repeated in the next.
    rcpts = [f"r{i}@example.com" for i in range(1, 5)]
    faults = [Respond("RCPT", 452, "4.5.3 Too many recipients", match="r3@", times=1)]
    async with DevServer(faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            result = await transport.send_raw(envelope(*rcpts), message())
        delivered = [m.rcpt_tos for m in server.messages]
    assert delivered == [
        ("r1@example.com", "r2@example.com", "r4@example.com"),
        ("r3@example.com",),
    ]
    assert result.accepted == tuple(rcpts)


async def test_max_recipients_per_transaction_makes_several_groups() -> None:
    rcpts = [f"r{i}@example.com" for i in range(5)]
    async with DevServer() as server:
        config = server.config(timeouts=FAST, max_recipients_per_transaction=2)
        async with transport_for(config) as transport:
            result = await transport.send_raw(envelope(*rcpts), message())
        assert [len(m.rcpt_tos) for m in server.messages] == [2, 2, 1]
    assert result.accepted == tuple(rcpts)


# -- failures in the middle of a group ---------------------------------------------------------


async def test_421_in_the_middle_of_a_group_is_a_disconnect_and_nothing_is_sent() -> None:
    async def then(session: ScriptedSession) -> None:
        await session.close()

    script = group_script(b"250 Ok\r\n421 4.7.0 Too busy, closing\r\n", rcpts=2, then=then)
    with ScriptedServer(script) as server:
        async with transport_for(plain_config(server)) as transport:
            with pytest.raises(ServerDisconnected) as caught:
                await transport.send_raw(envelope("a@example.com", "b@example.com"), message())
        (record,) = server.wait_done(1)
    error = caught.value
    assert error.stage == "rcpt"
    assert error.is_transient
    assert error.reply is not None
    assert error.reply.code == 421
    assert not isinstance(error, DeliveryUnknown)
    assert record.bodies == ()
    assert b"Subject" not in record.received


async def test_421_to_a_recipient_on_the_devserver_delivers_nothing() -> None:
    faults = [Respond("RCPT", 421, "4.3.2 Shutting down", match="b@", times=1)]
    async with DevServer(faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(ServerDisconnected) as caught:
                await transport.send_raw(envelope("a@example.com", "b@example.com"), message())
            # The pool replaced the closed connection.
            await transport.send_raw(envelope(), message())
        assert [m.rcpt_tos for m in server.messages] == [("rcpt@example.com",)]
    assert caught.value.is_transient


async def test_data_refused_in_a_scripted_group() -> None:
    async def then(session: ScriptedSession) -> None:
        line = await session.readline()
        if not line.startswith(b"RSET"):
            session.mismatch(f"expected RSET, got {line!r}")
        await session.write(b"250 2.0.0 Ok\r\n")
        await answer_quit(session)

    script = group_script(b"250 Ok\r\n250 Ok\r\n554 5.7.1 No thanks\r\n", then=then)
    with ScriptedServer(script) as server:
        async with transport_for(plain_config(server)) as transport:
            with pytest.raises(DataRefused) as caught:
                await transport.send_raw(envelope(), message())
        (record,) = server.wait_done(1)
    assert record.mismatches == ()
    assert b"Subject" not in record.received
    assert caught.value.reply is not None
    assert caught.value.reply.code == 554


async def test_drop_after_the_dot_is_delivery_unknown() -> None:
    async def then(session: ScriptedSession) -> None:
        await session.read_data()
        await session.close()

    script = group_script(b"250 Ok\r\n250 Ok\r\n354 Go\r\n", then=then)
    with ScriptedServer(script) as server:
        async with transport_for(plain_config(server)) as transport:
            with pytest.raises(DeliveryUnknown) as caught:
                await transport.send_raw(envelope(), message())
        (record,) = server.wait_done(1)
    assert record.bodies == (message(),)
    assert caught.value.stage == "data"
    assert caught.value.is_transient
    assert any(line.startswith("C: <message") for line in caught.value.transcript)


async def test_drop_after_the_dot_on_the_devserver_is_never_resent() -> None:
    async with DevServer(faults=[Drop("DATA_END", times=1)]) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(DeliveryUnknown):
                await transport.send_raw(envelope(), message())
        assert [m.acknowledged for m in server.messages] == [False]
        assert verbs(server).count("DATA") == 1


async def test_drop_in_the_middle_of_a_group_is_a_disconnect() -> None:
    async def then(session: ScriptedSession) -> None:
        await session.close()

    script = group_script(b"250 Ok\r\n", rcpts=2, then=then)
    with ScriptedServer(script) as server:
        async with transport_for(plain_config(server)) as transport:
            with pytest.raises(ServerDisconnected) as caught:
                await transport.send_raw(envelope("a@example.com", "b@example.com"), message())
    assert caught.value.stage == "rcpt"
    assert not isinstance(caught.value, DeliveryUnknown)


async def test_a_group_reply_that_never_comes_times_out_at_its_stage() -> None:
    async def then(session: ScriptedSession) -> None:
        await asyncio.sleep(3)

    script = group_script(b"250 Ok\r\n", rcpts=1, then=then)
    with ScriptedServer(script) as server:
        timeouts = Timeouts(connect=2.0, command=0.3, data=2.0)
        async with transport_for(plain_config(server, timeouts=timeouts)) as transport:
            with pytest.raises(TransportTimeout) as caught:
                await transport.send_raw(envelope(), message())
    assert caught.value.stage == "rcpt"


async def test_an_oversized_reply_in_a_group_is_an_error_and_sends_no_content() -> None:
    script = group_script(b"250 Ok\r\n250 " + b"y" * 40_000 + b"\r\n354 Go\r\n")
    with ScriptedServer(script) as server:
        async with transport_for(plain_config(server)) as transport:
            with pytest.raises(TransportError) as caught:
                await transport.send_raw(envelope(), message())
        # The client dropped the connection: let its loop close the socket meanwhile.
        (record,) = await asyncio.to_thread(server.wait_done, 1)
    assert "not an SMTP reply" in str(caught.value)
    assert caught.value.stage == "rcpt"
    assert b"Subject" not in record.received


# -- with TLS and AUTH, and without PIPELINING -------------------------------------------------


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_pipelining_after_tls_and_auth(tls: Any) -> None:
    async with DevServer(tls=tls, auth={"user": "pass"}) as server:
        config = server.config(timeouts=FAST, credentials=Credentials("user", Secret("pass")))
        async with transport_for(config) as transport:
            results = [await transport.send_raw(envelope(), message()) for _ in range(3)]
        assert len(server.messages) == 3
        assert len(server.connections) == 1
        assert all(m.tls and m.auth_login == "user" for m in server.messages)
    assert all(r.accepted == ("rcpt@example.com",) for r in results)


async def test_hidden_pipelining_gives_the_same_results() -> None:
    faults: list[Hide | Respond] = [
        Hide("PIPELINING"),
        Respond("RCPT", 550, "5.1.1 No such user", match="bob@"),
    ]
    async with DevServer(faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            result = await transport.send_raw(
                envelope("ann@example.com", "bob@example.com"), message()
            )
        assert [m.rcpt_tos for m in server.messages] == [("ann@example.com",)]
    assert result.accepted == ("ann@example.com",)
    assert result.rejected["bob@example.com"].code == 550


async def test_many_messages_on_one_pipelined_connection() -> None:
    async with DevServer() as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            for number in range(20):
                body = f".line {number}\r\n".encode()
                await transport.send_raw(envelope(), message(body))
        assert [m.data for m in server.messages] == [
            message(f".line {n}\r\n".encode()) for n in range(20)
        ]
        assert len(server.connections) == 1


# -- the reply queue itself --------------------------------------------------------------------


class FakeTransport:
    """Just enough of an asyncio transport for :class:`ReplyQueue` (records writes)."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.protocol: Any = None
        self.closing = False

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        self.written += data

    def abort(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0


REPLIES = b"250 2.1.0 Ok\r\n250-first\r\n250-second\r\n250 third\r\n354 Go\n"
PARSED = [(250, "2.1.0 Ok"), (250, "first\nsecond\nthird"), (354, "Go")]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(REPLIES) - 1), unique=True))
def test_replies_parse_the_same_however_they_are_split(cuts: list[int]) -> None:
    async def run() -> list[tuple[int, str]]:
        transport = FakeTransport()
        queue = ReplyQueue.attach(transport)  # type: ignore[arg-type]
        queue.send(b"MAIL\r\nRCPT\r\nDATA\r\n", 3)
        points = [0, *sorted(cuts), len(REPLIES)]
        for start, end in itertools.pairwise(points):
            queue.data_received(REPLIES[start:end])
        return [await queue.read(1.0) for _ in range(3)]

    assert asyncio.run(run()) == PARSED


async def test_unsolicited_and_surplus_replies_are_dropped() -> None:
    transport = FakeTransport()
    queue = ReplyQueue.attach(transport)  # type: ignore[arg-type]
    queue.data_received(b"250 nobody asked\r\n")  # nothing outstanding
    queue.send(b"NOOP\r\n", 1)
    queue.data_received(b"250 ok\r\n250 surplus\r\n")
    assert await queue.read(1.0) == (250, "ok")
    queue.send(b"NOOP\r\n", 1)
    queue.data_received(b"251 next\r\n")
    assert await queue.read(1.0) == (251, "next")


async def test_the_last_replies_come_before_the_news_of_the_close() -> None:
    transport = FakeTransport()
    queue = ReplyQueue.attach(transport)  # type: ignore[arg-type]
    queue.send(b"MAIL\r\nRCPT\r\n", 2)
    queue.data_received(b"421 4.7.0 bye\r\n")
    queue.connection_lost(ConnectionResetError())
    assert await queue.read(1.0) == (421, "4.7.0 bye")
    with pytest.raises(SessionClosed) as caught:
        await queue.read(1.0)
    assert isinstance(caught.value.__cause__, ConnectionResetError)
    with pytest.raises(SessionClosed):
        queue.send(b"RSET\r\n", 1)


@pytest.mark.parametrize(
    "data",
    [b"hello\r\n", b"25\r\n", b"250-" + b"x" * 9000 + b"\r\n", b"2" * 9000],
    ids=["garbage", "short-code", "long-line", "no-line-end"],
)
async def test_malformed_replies_fail_the_read(data: bytes) -> None:
    transport = FakeTransport()
    queue = ReplyQueue.attach(transport)  # type: ignore[arg-type]
    queue.send(b"MAIL\r\n", 1)
    queue.data_received(data)
    with pytest.raises(MalformedReply):
        await queue.read(1.0)
    assert queue.closed


async def test_a_multiline_reply_over_the_total_limit_fails() -> None:
    transport = FakeTransport()
    queue = ReplyQueue.attach(transport)  # type: ignore[arg-type]
    queue.send(b"EHLO x\r\n", 1)
    line = b"250-" + b"x" * 1000 + b"\r\n"
    queue.data_received(line * (MAX_REPLY_LENGTH // len(line) + 1))
    with pytest.raises(MalformedReply):
        await queue.read(1.0)
