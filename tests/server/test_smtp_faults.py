"""SMTPTransport under faults: refusals, splitting, drops, timeouts, exact wire bytes, injection."""

from __future__ import annotations

import time

import pytest
from helpers import FAST, transport_for, verbs

from smtpkit._config import SMTPConfig, Timeouts, TLSMode
from smtpkit._envelope import Envelope
from smtpkit._exceptions import (
    ConnectError,
    DataRefused,
    DeliveryUnknown,
    RecipientsRefused,
    SenderRefused,
    ServerDisconnected,
    TransportError,
    TransportTimeout,
)
from smtpkit.devserver import (
    DevServer,
    Drop,
    Greeting,
    Hang,
    Hide,
    ReadData,
    Respond,
    ScriptedServer,
    StartTLS,
    Step,
)

SHORT = Timeouts(connect=0.4, command=0.4, data=0.4)


def envelope(*recipients: str) -> Envelope:
    return Envelope("sender@example.com", recipients or ("rcpt@example.com",))


def message(body: bytes = b"Hello\r\n") -> bytes:
    return b"From: sender@example.com\r\nMessage-ID: <f1@example.com>\r\nSubject: t\r\n\r\n" + body


# -- recipients --------------------------------------------------------------------------------


async def test_partial_refusal_delivers_to_the_accepted_and_records_every_reply() -> None:
    faults = [Respond("RCPT", 550, "5.1.1 No such user here", match="bob@")]
    async with DevServer(faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            result = await transport.send_raw(
                envelope("ann@example.com", "bob@example.com", "cy@example.com"), message()
            )
        assert result.accepted == ("ann@example.com", "cy@example.com")
        refusal = result.rejected["bob@example.com"]
        assert (refusal.code, refusal.enhanced_code) == (550, "5.1.1")
        assert refusal.text == "No such user here"
        assert [r.address for r in result.recipients] == [
            "ann@example.com",
            "bob@example.com",
            "cy@example.com",
        ]
        assert server.messages[0].rcpt_tos == ("ann@example.com", "cy@example.com")
        with pytest.raises(RecipientsRefused):
            result.raise_for_rejections()


async def test_every_recipient_refused_permanently() -> None:
    faults = [Respond("RCPT", 550, "5.1.1 No such user")]
    async with DevServer(faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(RecipientsRefused) as caught:
                await transport.send_raw(envelope("a@example.com", "b@example.com"), message())
            # The transaction was reset: the same connection carries the next message.
            server.set_faults()
            await transport.send_raw(envelope(), message())
        error = caught.value
        assert set(error.rejected) == {"a@example.com", "b@example.com"}
        assert error.stage == "rcpt"
        assert not error.is_transient
        assert "RSET" in verbs(server)
        assert "DATA" in verbs(server)  # only for the second message
        assert len(server.messages) == 1
        assert len(server.connections) == 1


async def test_every_recipient_greylisted_is_transient_and_a_retry_succeeds() -> None:
    faults = [Respond("RCPT", 450, "4.7.1 Greylisted, try again later", times=1)]
    async with DevServer(faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(RecipientsRefused) as caught:
                await transport.send_raw(envelope(), message())
            assert caught.value.is_transient
            assert caught.value.hint
            result = await transport.send_raw(envelope(), message())
        assert result.accepted == ("rcpt@example.com",)


async def test_mixed_4xx_and_5xx_refusal_is_permanent() -> None:
    faults = [
        Respond("RCPT", 450, "4.2.0 Mailbox busy", match="a@"),
        Respond("RCPT", 550, "5.1.1 No such user", match="b@"),
    ]
    async with (
        DevServer(faults=faults) as server,
        transport_for(server.config(timeouts=FAST)) as transport,
    ):
        with pytest.raises(RecipientsRefused) as caught:
            await transport.send_raw(envelope("a@example.com", "b@example.com"), message())
    assert not caught.value.is_transient


async def test_abort_mode_resets_and_raises_on_partial_refusal() -> None:
    faults = [Respond("RCPT", 550, "5.1.1 No such user", match="bob@")]
    async with DevServer(faults=faults) as server:
        config = server.config(timeouts=FAST, on_partial_rejection="abort")
        async with transport_for(config) as transport:
            with pytest.raises(RecipientsRefused) as caught:
                await transport.send_raw(envelope("ann@example.com", "bob@example.com"), message())
        assert list(caught.value.rejected) == ["bob@example.com"]
        assert "DATA" not in verbs(server)
        assert "RSET" in verbs(server)
        assert server.messages == []


async def test_452_too_many_recipients_splits_into_another_transaction() -> None:
    rcpts = [f"r{i}@example.com" for i in range(1, 6)]
    # One command at a time: the pipelined form of this case is in test_pipelining.py.
    faults = [
        Hide("PIPELINING"),
        Respond("RCPT", 452, "4.5.3 Too many recipients", match="r3@", times=1),
    ]
    async with DevServer(faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            result = await transport.send_raw(envelope(*rcpts), message())
        assert result.accepted == tuple(rcpts)
        assert [m.rcpt_tos for m in server.messages] == [tuple(rcpts[:2]), tuple(rcpts[2:])]
        assert len(result.extra["data_replies"]) == 2
        assert result.message_id == "<f1@example.com>"


async def test_552_too_many_recipients_also_splits() -> None:
    rcpts = ["a@example.com", "b@example.com"]
    faults = [Respond("RCPT", 552, "5.5.3 Too many recipients", match="b@", times=1)]
    async with DevServer(faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            result = await transport.send_raw(envelope(*rcpts), message())
        assert result.accepted == tuple(rcpts)
        assert len(server.messages) == 2


async def test_452_for_the_first_recipient_of_a_transaction_is_a_refusal() -> None:
    faults = [Respond("RCPT", 452, "4.5.3 Too many recipients", match="a@")]
    async with DevServer(faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            result = await transport.send_raw(envelope("a@example.com", "b@example.com"), message())
        assert result.accepted == ("b@example.com",)
        assert result.rejected["a@example.com"].code == 452


async def test_max_recipients_per_transaction() -> None:
    rcpts = [f"r{i}@example.com" for i in range(5)]
    async with DevServer() as server:
        config = server.config(timeouts=FAST, max_recipients_per_transaction=2)
        async with transport_for(config) as transport:
            result = await transport.send_raw(envelope(*rcpts), message())
        assert [len(m.rcpt_tos) for m in server.messages] == [2, 2, 1]
        assert result.accepted == tuple(rcpts)
        assert len(server.connections) == 1


async def test_data_refused_in_a_later_transaction_is_recorded_per_recipient() -> None:
    # The first transaction is delivered; refusing the second one's data must not turn into
    # an error (a retry would deliver the first recipient twice): it is that recipient's
    # outcome.
    faults = [
        Respond("DATA_END", 250, "2.0.0 Ok", times=1),
        Respond("DATA_END", 554, "5.6.0 Content rejected"),
    ]
    async with DevServer(faults=faults) as server:
        config = server.config(timeouts=FAST, max_recipients_per_transaction=1)
        async with transport_for(config) as transport:
            result = await transport.send_raw(envelope("a@example.com", "b@example.com"), message())
        assert result.accepted == ("a@example.com",)
        assert result.rejected["b@example.com"].code == 554
        assert result.reply is not None
        assert result.reply.code == 250


# -- replies to MAIL and DATA ------------------------------------------------------------------


async def test_sender_refused_keeps_the_connection() -> None:
    faults = [Respond("MAIL", 553, "5.7.1 Sender address rejected: not owned by user", times=1)]
    async with DevServer(faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(SenderRefused) as caught:
                await transport.send_raw(envelope(), message())
            await transport.send_raw(envelope(), message())
        error = caught.value
        assert error.stage == "mail"
        assert error.reply is not None
        assert (error.reply.code, error.reply.enhanced_code) == (553, "5.7.1")
        assert not error.is_transient
        assert len(server.connections) == 1


@pytest.mark.parametrize("command", ["DATA", "DATA_END"])
async def test_data_refused(command: str) -> None:
    faults = [Respond(command, 554, "5.7.1 Message rejected as spam", times=1)]
    async with DevServer(faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(DataRefused) as caught:
                await transport.send_raw(envelope(), message())
            await transport.send_raw(envelope(), message())
        assert caught.value.stage == "data"
        assert caught.value.reply is not None
        assert caught.value.reply.code == 554
        assert len(server.messages) == 1
        assert len(server.connections) == 1


async def test_data_451_is_transient() -> None:
    faults = [Respond("DATA_END", 451, "4.3.0 Temporary local problem")]
    async with (
        DevServer(faults=faults) as server,
        transport_for(server.config(timeouts=FAST)) as transport,
    ):
        with pytest.raises(DataRefused) as caught:
            await transport.send_raw(envelope(), message())
    assert caught.value.is_transient


async def test_421_at_connect_is_a_transient_connect_error() -> None:
    faults = [Greeting(421, "4.3.2 Service not available, too busy")]
    async with (
        DevServer(faults=faults) as server,
        transport_for(server.config(timeouts=FAST)) as transport,
    ):
        with pytest.raises(ConnectError) as caught:
            await transport.send_raw(envelope(), message())
    error = caught.value
    assert error.stage == "greeting"
    assert error.reply is not None
    assert error.reply.code == 421
    assert error.is_transient


async def test_554_greeting_is_permanent() -> None:
    faults = [Greeting(554, "5.7.1 No SMTP service here")]
    async with (
        DevServer(faults=faults) as server,
        transport_for(server.config(timeouts=FAST)) as transport,
    ):
        with pytest.raises(ConnectError) as caught:
            await transport.send_raw(envelope(), message())
    assert not caught.value.is_transient


async def test_421_to_mail_on_a_fresh_connection_is_a_disconnect() -> None:
    faults = [Respond("MAIL", 421, "4.7.0 Too many errors, closing")]
    async with (
        DevServer(faults=faults) as server,
        transport_for(server.config(timeouts=FAST)) as transport,
    ):
        with pytest.raises(ServerDisconnected) as caught:
            await transport.send_raw(envelope(), message())
    assert caught.value.reply is not None
    assert caught.value.reply.code == 421
    assert caught.value.is_transient


async def test_ehlo_refused_falls_back_to_helo_in_plaintext() -> None:
    async with DevServer(tls="none", faults=[Respond("EHLO", 502, "5.5.2 Not implemented")]) as s:
        async with transport_for(s.config(timeouts=FAST)) as transport:
            await transport.send_raw(envelope(), message())
        assert verbs(s)[:2] == ["EHLO", "HELO"]
        assert len(s.messages) == 1


async def test_ehlo_refused_with_required_starttls_is_not_a_plaintext_fallback() -> None:
    async with DevServer(faults=[Respond("EHLO", 502, "5.5.2 Not implemented")]) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(Exception) as caught:
                await transport.send_raw(envelope(), message())
        assert caught.value.__class__.__name__ == "TLSError"
        assert "MAIL" not in verbs(server)


# -- drops and timeouts ------------------------------------------------------------------------


async def test_drop_in_the_middle_of_data_is_a_retryable_disconnect() -> None:
    # Large enough that the server cannot have read it all when it drops the connection.
    body = b"".join(b"line %06d of a long message\r\n" % i for i in range(40_000))
    async with DevServer(faults=[Drop("DATA", times=1)]) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(ServerDisconnected) as caught:
                await transport.send_raw(envelope(), message(body))
            assert caught.value.stage == "data"
            assert caught.value.is_transient
            assert server.messages == []
            # A retry goes through on a new connection.
            await transport.send_raw(envelope(), message(body))
        assert len(server.messages) == 1


async def test_drop_before_data_is_a_disconnect() -> None:
    async with (
        DevServer(faults=[Drop("RCPT")]) as server,
        transport_for(server.config(timeouts=FAST)) as transport,
    ):
        with pytest.raises(ServerDisconnected) as caught:
            await transport.send_raw(envelope(), message())
    assert caught.value.stage == "rcpt"
    assert not isinstance(caught.value, DeliveryUnknown)


async def test_drop_after_the_dot_is_delivery_unknown_and_never_resent() -> None:
    async with DevServer(faults=[Drop("DATA_END", times=1)]) as server:
        config = server.config(timeouts=FAST, transcript=True)
        async with transport_for(config) as transport:
            with pytest.raises(DeliveryUnknown) as caught:
                await transport.send_raw(envelope(), message())
        error = caught.value
        assert error.stage == "data"
        assert error.is_transient
        assert "Message-ID" in str(error)
        assert any(line.startswith("C: <message") for line in error.transcript)
        # Captured once (unacknowledged): the transport did not send it again by itself.
        assert len(server.messages) == 1
        assert server.messages[0].acknowledged is False
        assert verbs(server).count("DATA") == 1


async def test_timeout_after_the_dot_is_delivery_unknown() -> None:
    async with (
        DevServer(faults=[Hang("DATA_END", 5)]) as server,
        transport_for(server.config(timeouts=SHORT)) as transport,
    ):
        started = time.monotonic()
        with pytest.raises(DeliveryUnknown):
            await transport.send_raw(envelope(), message())
        assert time.monotonic() - started < 4  # the server hangs for 5 s


@pytest.mark.parametrize(
    ("command", "stage"),
    [("CONNECT", "connect"), ("STARTTLS", "tls"), ("MAIL", "mail")],
    ids=["greeting", "starttls", "command"],
)
async def test_slow_reply_times_out_at_its_stage(command: str, stage: str) -> None:
    async with (
        DevServer(faults=[Hang(command, 5)]) as server,
        transport_for(server.config(timeouts=SHORT)) as transport,
    ):
        started = time.monotonic()
        with pytest.raises(TransportTimeout) as caught:
            await transport.send_raw(envelope(), message())
        assert time.monotonic() - started < 4  # the server hangs for 5 s
    assert caught.value.stage == stage
    assert caught.value.is_transient
    assert isinstance(caught.value, TimeoutError)


# -- exact bytes on the wire -------------------------------------------------------------------


def _plain_script() -> list[Step]:
    return [
        (b"EHLO", b"250-scripted.test\r\n250 8BITMIME\r\n"),
        (b"MAIL FROM:", b"250 2.1.0 Ok\r\n"),
        (b"RCPT TO:", b"250 2.1.5 Ok\r\n"),
        (b"DATA", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        ReadData(),
    ]


def _wire_data(received: bytes) -> bytes:
    """Everything the client sent after DATA, without the QUIT that closes the session."""
    begin = received.index(b"DATA\r\n") + len(b"DATA\r\n")
    assert received.endswith(b"QUIT\r\n")
    return received[begin : -len(b"QUIT\r\n")]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"a\rb\r\n", b"a\r\nb\r\n"),  # bare CR
        (b"a\nb\n", b"a\r\nb\r\n"),  # bare LF
        (b"x\n.\ny\r\n", b"x\r\n..\r\ny\r\n"),  # smuggling attempt with LF.LF
        (b"x\r\n.\r\ny\r\n", b"x\r\n..\r\ny\r\n"),  # a real end-of-data line inside the body
        (b"x\r.\ry\r\n", b"x\r\n..\r\ny\r\n"),
        (b".leading\r\n..two\r\nend", b"..leading\r\n...two\r\nend\r\n"),
    ],
)
async def test_exact_wire_bytes_are_normalised_and_dot_stuffed(
    body: bytes, expected: bytes
) -> None:
    header = b"Subject: t\r\n\r\n"
    with ScriptedServer(_plain_script()) as server:
        config = SMTPConfig(host=server.host, port=server.port, tls=TLSMode.NONE, timeouts=FAST)
        async with transport_for(config) as transport:
            await transport.send_raw(envelope(), header + body)
        (record,) = server.wait_done(1)
    wire = _wire_data(record.received)
    assert wire == header + expected + b".\r\n"
    # W1: CRLF only; W2: the terminator appears exactly once, at the end.
    assert wire.replace(b"\r\n", b"").count(b"\r") == 0
    assert wire.replace(b"\r\n", b"").count(b"\n") == 0
    assert wire.count(b"\r\n.\r\n") == 1
    assert wire.endswith(b"\r\n.\r\n")


async def test_starttls_response_injection_is_discarded() -> None:
    # A man in the middle appends plaintext lines after the 220: they must never be read as
    # the answer to the post-TLS EHLO (which would make the client believe the server
    # offers AUTH LOGIN only, or desynchronise every later reply).
    script: list[Step] = [
        (b"EHLO", b"250-scripted.test\r\n250 STARTTLS\r\n"),
        (b"STARTTLS", b"220 Go ahead\r\n250-mx.evil\r\n250 AUTH LOGIN\r\n"),
        StartTLS(),
        (b"EHLO", b"250-scripted.test\r\n250 8BITMIME\r\n"),
        (b"MAIL FROM:", b"250 2.1.0 Ok\r\n"),
        (b"RCPT TO:", b"250 2.1.5 Ok\r\n"),
        (b"DATA", b"354 go\r\n"),
        ReadData(),
    ]
    with ScriptedServer(script) as server:
        config = SMTPConfig(
            host=server.host,
            port=server.port,
            ca_file=server.ca_file,
            timeouts=FAST,
            transcript=True,
        )
        async with transport_for(config) as transport:
            result = await transport.send_raw(envelope(), message())
        (record,) = server.wait_done(1)
    assert record.mismatches == ()
    assert record.tls_started_at == 2
    assert result.reply is not None
    assert "SCRIPTED" in result.reply.text
    transcript = "\n".join(result.extra["transcript"])
    assert "mx.evil" not in transcript
    assert "AUTH LOGIN" not in transcript


async def test_garbage_reply_is_a_transport_error_not_an_aiosmtplib_one() -> None:
    script: list[Step] = [(b"EHLO", b"250 scripted.test\r\n"), (b"MAIL", b"hello there\r\n")]
    with ScriptedServer(script) as server:
        config = SMTPConfig(host=server.host, port=server.port, tls=TLSMode.NONE, timeouts=FAST)
        async with transport_for(config) as transport:
            with pytest.raises(TransportError) as caught:
                await transport.send_raw(envelope(), message())
    error = caught.value
    assert type(error) is TransportError
    assert error.stage == "mail"
    assert error.reply is None
    assert "not an SMTP reply" in str(error)
    assert type(error.__cause__).__module__.startswith("smtpkit._transports._pipeline")
