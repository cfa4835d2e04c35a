"""A table of misbehaving SMTP servers, each checked for the same five properties.

Every case is one scripted server (:class:`~smtpkit.devserver.ScriptedServer` driven by a small
SMTP state machine below) that answers like a well-behaved submission server (STARTTLS required,
then AUTH PLAIN, PIPELINING optional) except at one point, where it misbehaves *once*. For each
case and with PIPELINING on and off, the test asserts:

1. the right error class (or success, for odd-but-legal servers), and ``is_transient``;
2. no hang: the failing send ends well within a guard (timeouts 0.5 s, guard 5 s);
3. no plaintext credentials: nothing that starts with ``AUTH`` and not the password's encoding
   ever crosses the wire before TLS is up;
4. no duplicate delivery: each message's content reaches the server at most once (exactly once
   when it succeeded);
5. the connection pool is healthy afterwards: the SAME transport then delivers another message.

Scenarios already covered elsewhere are not repeated here with their details: reply parsing
in fragments (tests/server/test_pipelining.py), certificate failures and injection after
STARTTLS with AUTH (tests/server/test_security_wire.py), the exact wire bytes of smuggling
bodies on a plain, unpipelined connection (tests/server/test_smtp_faults.py
``test_exact_wire_bytes_are_normalised_and_dot_stuffed`` and test_security_wire.py W1/W2). The
last test here checks those bytes again on the path that file does not take: TLS + PIPELINING.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from smtpkit._config import Credentials, RetryPolicy, SMTPConfig, Timeouts, TLSMode
from smtpkit._envelope import Envelope
from smtpkit._exceptions import (
    ConnectError,
    DeliveryUnknown,
    RecipientsRefused,
    ServerDisconnected,
    TLSError,
    TransportError,
    TransportTimeout,
)
from smtpkit._mailer import AsyncMailer
from smtpkit._secrets import Secret
from smtpkit._transports.smtp import SMTPTransport
from smtpkit.devserver import ScriptedServer, ScriptedSession

PASSWORD = "hostile-S3cret-pw"
SHORT = Timeouts(connect=0.5, command=0.5, data=0.5)
# A failing send must end well within this (the slow servers below sleep for 3 s).
HANG_GUARD = 5.0
SLOW = 3.0
FAST_RETRY = RetryPolicy(retries=2, initial_backoff=0.01, max_backoff=0.05, jitter=False)
_ids = itertools.count()

# -- the server ---------------------------------------------------------------------------------

#: What a hook tells the conversation to do next.
GO_ON, STOP, NOW_TLS = "go on", "stop", "now tls"
#: A hook replaces the server's normal answer at one point; it gets the line (or message body).
Hook = Callable[[ScriptedSession, bytes], Awaitable[str]]


def ehlo_reply(*, secure: bool, pipelining: bool) -> bytes:
    lines = ["hostile.test", "8BITMIME", "SIZE 10485760"]
    if pipelining:
        lines.append("PIPELINING")
    lines.append("AUTH PLAIN LOGIN" if secure else "STARTTLS")
    return "".join(
        f"250{' ' if i == len(lines) - 1 else '-'}{text}\r\n" for i, text in enumerate(lines)
    ).encode()


@dataclass
class Hostile:
    """A submission server that misbehaves once at each hooked point, then behaves.

    Points: ``greeting``, ``EHLO`` (before TLS), ``EHLO_TLS``, ``STARTTLS``, ``AUTH``, ``MAIL``,
    ``RCPT``, ``DATA`` (instead of 354), ``DOT`` (after the message was read, instead of 250).
    """

    hooks: dict[str, Hook]
    pipelining: bool
    used: set[str] = field(default_factory=set)

    def hook(self, point: str) -> Hook | None:
        # Each hook fires once across all connections (the event loop thread is the only user).
        if point in self.used or point not in self.hooks:
            return None
        self.used.add(point)
        return self.hooks[point]

    async def __call__(self, s: ScriptedSession) -> None:
        hook = self.hook("greeting")
        if hook is None:
            await s.write(b"220 hostile.test ESMTP\r\n")
        elif await hook(s, b"") == STOP:
            return
        secure = False
        for _ in range(500):  # bounded: a client loop cannot keep the server busy forever
            line = await s.readline()
            if not line:
                return
            verb = line.split(b" ", 1)[0].strip().upper().decode("ascii", "replace")
            point = "EHLO_TLS" if verb == "EHLO" and secure else verb
            hook = self.hook(point) if point != "DATA" else None
            if hook is not None:
                action = await hook(s, line)
                if action == STOP:
                    return
                secure = secure or action == NOW_TLS
                continue
            if verb == "EHLO":
                await s.write(ehlo_reply(secure=secure, pipelining=self.pipelining))
            elif verb == "STARTTLS" and not secure:
                await s.write(b"220 2.0.0 Ready to start TLS\r\n")
                await s.start_tls()
                secure = True
            elif verb == "AUTH":
                if line.strip().upper() == b"AUTH PLAIN":
                    await s.write(b"334 \r\n")
                    await s.readline()
                await s.write(b"235 2.7.0 Authentication successful\r\n")
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                await s.write(b"250 2.0.0 Ok\r\n")
            elif verb == "DATA":
                hook = self.hook("DATA")
                if hook is not None:
                    if await hook(s, line) == STOP:
                        return
                    continue
                await s.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                body = await s.read_data()
                hook = self.hook("DOT")
                if hook is None:
                    await s.write(b"250 2.0.0 Ok: queued\r\n")
                elif await hook(s, body) == STOP:
                    return
            elif verb == "QUIT":
                await s.write(b"221 2.0.0 Bye\r\n")
                return
            else:
                await s.write(b"502 5.5.2 Unknown command\r\n")


# -- hook makers --------------------------------------------------------------------------------


def reply(data: bytes, *, then: str = GO_ON) -> Hook:
    async def hook(s: ScriptedSession, _: bytes) -> str:
        await s.write(data)
        if then == STOP:
            await s.close()
        return then

    return hook


def drip(data: bytes) -> Hook:
    """Send ``data`` one byte per TCP segment (or TLS record)."""

    async def hook(s: ScriptedSession, _: bytes) -> str:
        for byte in data:
            await s.write(bytes([byte]))
            await asyncio.sleep(0.001)
        return GO_ON

    return hook


def slow(data: bytes) -> Hook:
    async def hook(s: ScriptedSession, _: bytes) -> str:
        await asyncio.sleep(SLOW)
        await s.write(data)
        return GO_ON

    return hook


def reset(*, abort: bool = True) -> Hook:
    async def hook(s: ScriptedSession, _: bytes) -> str:
        await s.close(abort=abort)
        return STOP

    return hook


def reset_in_data(s_reply: bytes = b"354 go ahead\r\n") -> Hook:
    async def hook(s: ScriptedSession, _: bytes) -> str:
        await s.write(s_reply)
        await s.readline()  # the first line of the message, then a reset
        await s.close(abort=True)
        return STOP

    return hook


def broken_handshake() -> Hook:
    async def hook(s: ScriptedSession, _: bytes) -> str:
        await s.write(b"220 2.0.0 Ready to start TLS\r\n")
        await asyncio.sleep(0.1)  # the client's ClientHello arrives; answer it with plaintext
        await s.write(b"this is not a TLS record\r\n" * 3)
        for _line in range(100):  # until the client gives up (bounded)
            if not await s.readline():
                break
        return STOP

    return hook


def starttls_then(extra: bytes) -> Hook:
    async def hook(s: ScriptedSession, _: bytes) -> str:
        await s.write(b"220 2.0.0 Ready to start TLS\r\n" + extra)
        await s.start_tls()
        return NOW_TLS

    return hook


def ehlo_lines(*lines: str, final: str) -> bytes:
    return "".join(f"{line}\r\n" for line in lines).encode() + final.encode() + b"\r\n"


SECURE_OFFER = ("250-hostile.test", "250-PIPELINING", "250-8BITMIME")
MANY_LINES = tuple(f"250-X-FILLER-{n:03d} some text" for n in range(150))
HUGE = b"250-" + b"z" * 70_000 + b"\r\n250 ok\r\n"
HUGE_LINES = b"".join(b"250-X-%05d %s\r\n" % (n, b"w" * 60) for n in range(1100)) + b"250 ok\r\n"

# -- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A hostile server and what smtpkit must make of it."""

    hooks: dict[str, Hook]
    error: type[TransportError] | None  # exact class expected; None: the send succeeds
    transient: bool = False
    delivered: int = 1  # how many times the first message's content reaches the server
    via_mailer: bool = False  # send through AsyncMailer with a fast retry policy
    big: bool = False  # a body large enough that the client is still writing at a reset
    stage: str | None = None


CASES: dict[str, Case] = {
    "greylisting-450-then-retry": Case(
        {"RCPT": reply(b"450 4.7.1 Greylisted, try again later\r\n")},
        error=None,
        via_mailer=True,
    ),
    "greylisting-450-no-retry": Case(
        {"RCPT": reply(b"450 4.7.1 Greylisted, try again later\r\n")},
        error=RecipientsRefused,
        transient=True,
        delivered=0,
        stage="rcpt",
    ),
    "421-at-greeting": Case(
        {"greeting": reply(b"421 4.3.2 Too busy, closing\r\n", then=STOP)},
        error=ConnectError,
        transient=True,
        delivered=0,
        stage="greeting",
    ),
    "every-reply-byte-by-byte": Case(
        {
            point: drip(data)
            for point, data in [
                ("greeting", b"220 hostile.test ESMTP split\r\n"),
                ("EHLO", ehlo_reply(secure=False, pipelining=True)),
                ("EHLO_TLS", ehlo_reply(secure=True, pipelining=True)),
                ("AUTH", b"235 2.7.0 ok\r\n"),
                ("MAIL", b"250-2.1.0 first\r\n250 2.1.0 Ok\r\n"),
                ("RCPT", b"250 2.1.5 Ok\r\n"),
            ]
        },
        error=None,
    ),
    "multiline-trailing-spaces": Case(
        {
            "EHLO_TLS": reply(
                ehlo_lines(*(line + "   " for line in SECURE_OFFER), final="250 AUTH PLAIN   ")
            ),
            "MAIL": reply(b"250-2.1.0 Sender   \r\n250-ok \t \r\n250 2.1.0 Ok   \r\n"),
        },
        error=None,
    ),
    "multiline-final-after-150-lines": Case(
        {
            "EHLO_TLS": reply(ehlo_lines(*SECURE_OFFER, *MANY_LINES, final="250 AUTH PLAIN")),
            "RCPT": reply(ehlo_lines(*MANY_LINES, final="250 2.1.5 Ok")),
        },
        error=None,
    ),
    "multiline-continuation-with-other-code": Case(
        {
            "EHLO_TLS": reply(
                ehlo_lines(
                    "250-hostile.test", "251-PIPELINING", "299-8BITMIME", final="250 AUTH PLAIN"
                )
            ),
            "MAIL": reply(b"250-2.1.0 Sender\r\n251-odd one\r\n250 2.1.0 Ok\r\n"),
        },
        error=None,
    ),
    "slow-greeting": Case(
        {"greeting": slow(b"220 hostile.test at last\r\n")},
        error=TransportTimeout,
        transient=True,
        delivered=0,
        stage="connect",
    ),
    "slow-ehlo-after-tls": Case(
        {"EHLO_TLS": slow(ehlo_reply(secure=True, pipelining=True))},
        error=TransportTimeout,
        transient=True,
        delivered=0,
    ),
    "slow-rcpt": Case(
        {"RCPT": slow(b"250 2.1.5 Ok\r\n")},
        error=TransportTimeout,
        transient=True,
        delivered=0,
    ),
    "slow-after-dot": Case(
        {"DOT": slow(b"250 2.0.0 Ok: queued late\r\n")},
        error=DeliveryUnknown,
        transient=True,
        stage="data",
    ),
    "reset-during-data": Case(
        {"DATA": reset_in_data()},
        error=ServerDisconnected,
        transient=True,
        delivered=0,
        big=True,
        stage="data",
    ),
    "clean-close-after-dot": Case(
        {"DOT": reset(abort=False)},
        error=DeliveryUnknown,
        transient=True,
        stage="data",
    ),
    "starttls-454": Case(
        {"STARTTLS": reply(b"454 4.7.0 TLS not available due to temporary reason\r\n")},
        error=TLSError,
        transient=True,
        delivered=0,
        stage="tls",
    ),
    "starttls-broken-handshake": Case(
        {"STARTTLS": broken_handshake()},
        error=TLSError,
        transient=False,
        delivered=0,
        stage="tls",
    ),
    "starttls-stripped-from-ehlo": Case(
        {"EHLO": reply(b"250-hostile.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")},
        error=TLSError,
        transient=False,
        delivered=0,
        stage="tls",
    ),
    "extra-lines-after-starttls-220": Case(
        {"STARTTLS": starttls_then(b"250-evil.test\r\n250 AUTH LOGIN\r\n235 2.7.0 ok\r\n")},
        error=None,
    ),
    "garbage-greeting": Case(
        {"greeting": reply(b"HTTP/1.1 400 Bad Request\r\n\r\n", then=STOP)},
        error=TransportError,
        delivered=0,
    ),
    "garbage-mail-reply": Case(
        {"MAIL": reply(b"\x00\xffwhat is this?\r\n")},
        error=TransportError,
        delivered=0,
        stage="mail",
    ),
    "garbage-after-dot": Case(
        {"DOT": reply(b"OK THANKS\r\n")},
        error=TransportError,
        stage="data",
    ),
    "ehlo-reply-over-64k-one-line": Case(
        {"EHLO_TLS": reply(HUGE)},
        error=TransportError,
        delivered=0,
    ),
    "ehlo-reply-over-64k-many-lines": Case(
        {"EHLO_TLS": reply(HUGE_LINES)},
        error=TransportError,
        delivered=0,
    ),
    "rcpt-reply-over-64k": Case(
        {"RCPT": reply(HUGE_LINES)},
        error=TransportError,
        delivered=0,
        stage="rcpt",
    ),
}

# -- helpers ------------------------------------------------------------------------------------


def config_for(server: ScriptedServer) -> SMTPConfig:
    return SMTPConfig(
        host=server.host,
        port=server.port,
        tls=TLSMode.STARTTLS,
        ca_file=server.ca_file,
        credentials=Credentials("ann", Secret(PASSWORD)),
        auth_mechanisms=("PLAIN",),
        timeouts=SHORT,
        local_hostname="client.test",
    )


def new_message(*, big: bool = False) -> tuple[bytes, bytes]:
    """(a unique marker, message bytes containing it)."""
    marker = b"marker-%d-%d" % (time.monotonic_ns(), next(_ids))
    body = b"Hello, this is " + marker + b"\r\n"
    if big:
        # Several MB: more than loopback socket buffers hold, so a reset finds it unsent.
        body += b"".join(
            b"line %07d of a long message, padded out a bit\r\n" % i for i in range(120_000)
        )
    head = b"From: sender@example.com\r\nMessage-ID: <" + marker + b"@example.com>\r\n"
    return marker, head + b"Subject: hostile\r\n\r\n" + body


def envelope() -> Envelope:
    return Envelope("sender@example.com", ["rcpt@example.com"])


def deliveries(server: ScriptedServer, marker: bytes) -> int:
    return sum(marker in body for record in server.records for body in record.bodies)


def assert_no_plaintext_credentials(server: ScriptedServer) -> None:
    secrets = [PASSWORD.encode(), base64.b64encode(b"\0ann\0" + PASSWORD.encode())]
    for record in server.records:
        plaintext = (
            record.lines if record.tls_started_at is None else record.lines[: record.tls_started_at]
        )
        assert not [line for line in plaintext if line.upper().startswith(b"AUTH")], plaintext
        joined = b"".join(plaintext)
        assert not [secret for secret in secrets if secret in joined]
        if record.tls_started_at is None:
            # No TLS on this connection at all: nothing of the secret anywhere in it.
            assert not [secret for secret in secrets if secret in record.received]


# -- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
@pytest.mark.parametrize("name", list(CASES))
async def test_hostile_server(name: str, pipelining: bool) -> None:
    case = CASES[name]
    hostile = Hostile(case.hooks, pipelining)
    server = ScriptedServer(hostile, greeting=None)
    with server:
        transport = SMTPTransport(config_for(server))
        try:
            marker, data = new_message(big=case.big)
            started = time.monotonic()
            caught: TransportError | None = None
            try:
                if case.via_mailer:
                    mailer = AsyncMailer(transport, retry=FAST_RETRY)
                    result = await mailer.send_raw(envelope(), data)
                    assert result.attempts == 2
                else:
                    await transport.send_raw(envelope(), data)
            except TransportError as exc:
                caught = exc
            elapsed = time.monotonic() - started
            # 1. the right error, 2. no hang
            assert elapsed < HANG_GUARD, f"{name}: took {elapsed:.1f} s"
            if case.error is None:
                assert caught is None, f"{name}: unexpected {caught!r}"
            else:
                assert type(caught) is case.error, f"{name}: got {caught!r}"
                assert caught.is_transient is case.transient
                if case.stage is not None:
                    assert caught.stage == case.stage
            # 5. the same transport (and its pool) still delivers.
            second, data2 = new_message()
            await transport.send_raw(envelope(), data2)
        finally:
            await transport.aclose()
        # Every misbehaviour of the case was acted out (the table tests what it says).
        assert hostile.used == set(case.hooks)
        # 4. no duplicate delivery; 3. no plaintext credentials.
        assert deliveries(server, marker) == case.delivered
        assert deliveries(server, second) == 1
        assert_no_plaintext_credentials(server)


@pytest.mark.parametrize("tls", [True, False], ids=["starttls", "plaintext"])
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
async def test_reset_after_the_dot_is_never_resent_by_the_mailer(
    pipelining: bool, tls: bool
) -> None:
    # The server read the whole message (it may have queued it), then reset the connection.
    server = ScriptedServer(Hostile({"DOT": reset(abort=True)}, pipelining), greeting=None)
    with server:
        config = config_for(server)
        if not tls:
            config = SMTPConfig(
                host=server.host, port=server.port, tls=TLSMode.NONE, timeouts=SHORT
            )
        transport = SMTPTransport(config)
        try:
            marker, data = new_message()
            with pytest.raises(TransportError) as caught:
                await AsyncMailer(transport, retry=FAST_RETRY).send_raw(envelope(), data)
            await transport.send_raw(envelope(), new_message()[1])
        finally:
            await transport.aclose()
        assert deliveries(server, marker) == 1
    assert type(caught.value) is DeliveryUnknown
    assert caught.value.is_transient


# -- wire bytes on the TLS + PIPELINING path ------------------------------------------------------


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"a\rb\r\n", b"a\r\nb\r\n"),
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"x\n.\ny\r\n", b"x\r\n..\r\ny\r\n"),
        (b"x\r\n.\r\ny\r\n", b"x\r\n..\r\ny\r\n"),
    ],
    ids=["bare-cr", "bare-lf", "lf-dot-lf", "crlf-dot-crlf"],
)
async def test_wire_bytes_over_tls_are_crlf_and_dot_stuffed(
    body: bytes, expected: bytes, pipelining: bool
) -> None:
    head = b"From: sender@example.com\r\nSubject: wire\r\n\r\n"
    server = ScriptedServer(Hostile({}, pipelining), greeting=None)
    with server:
        transport = SMTPTransport(config_for(server))
        try:
            await transport.send_raw(envelope(), head + body)
        finally:
            await transport.aclose()
        (record,) = server.wait_done(1)
    assert record.tls_started_at is not None
    received = record.received
    start = received.index(b"\r\nDATA\r\n") + len(b"\r\nDATA\r\n")
    wire = received[start : received.index(b"\r\n.\r\n", start) + 5]
    assert wire == head + expected + b".\r\n"
    assert received[start + len(wire) :] == b"QUIT\r\n"
