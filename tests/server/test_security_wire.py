"""Security properties on the wire, against real servers on loopback (SECURITY-NOTES.md W1-W8).

DevServer (aiosmtpd) shows what a real server received; ScriptedServer shows the exact bytes
and plays the man in the middle. Tests marked ``xfail(strict=True)`` document bugs found in
this review.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from smtpkit._auth import create_mechanism
from smtpkit._config import Credentials, SMTPConfig, Timeouts, TLSMode
from smtpkit._envelope import Envelope
from smtpkit._exceptions import (
    AuthenticationError,
    MessageError,
    SmtpkitError,
    TLSError,
    TransportError,
    TransportTimeout,
)
from smtpkit._mailer import AsyncMailer
from smtpkit._message import Attachment, Message
from smtpkit._retry import RetryPolicy
from smtpkit._secrets import Secret
from smtpkit._transports.smtp import SMTPTransport
from smtpkit.devserver import (
    BadCertificate,
    Close,
    DevServer,
    Hide,
    ReadData,
    Respond,
    ScriptedServer,
    ScriptedSession,
    Sleep,
    StartTLS,
    Step,
)

FAST = Timeouts(connect=2.0, command=2.0, data=2.0)
NO_RETRY = RetryPolicy(retries=0)
PASSWORD = "pw-S3cr3t-51c0"
TOKEN = "ya29.tok-a1b2c3d4e5"

# hannob/smtpsmug end-of-data variants, and the same with a NUL after the dot.
SMUGGLE = [b"\n.\n", b"\r.\r", b"\r.\n", b"\n.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r"]
SMUGGLE += [ending.replace(b".", b".\x00") for ending in SMUGGLE]
SMUGGLED = b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nowned\r\n"


def envelope(*recipients: str) -> Envelope:
    return Envelope("sender@example.com", recipients or ("rcpt@example.com",))


def raw(body: bytes) -> bytes:
    return b"From: sender@example.com\r\nSubject: t\r\nMessage-ID: <s1@example.com>\r\n\r\n" + body


@asynccontextmanager
async def transport_for(config: SMTPConfig) -> AsyncIterator[SMTPTransport]:
    transport = SMTPTransport(config)
    try:
        yield transport
    finally:
        await transport.aclose()


def verbs(server: DevServer) -> list[str]:
    return [command.verb for command in server.commands]


def plain_config(server: ScriptedServer, **overrides: Any) -> SMTPConfig:
    fields: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "tls": TLSMode.NONE,
        "timeouts": FAST,
    }
    fields.update(overrides)
    return SMTPConfig(**fields)


def transactions(count: int) -> list[Step]:
    steps: list[Step] = [(b"EHLO", b"250-scripted.test\r\n250 8BITMIME\r\n")]
    for _ in range(count):
        steps += [
            (b"MAIL FROM:", b"250 2.1.0 Ok\r\n"),
            (b"RCPT TO:", b"250 2.1.5 Ok\r\n"),
            (b"DATA", b"354 go\r\n"),
            ReadData(),
        ]
    return steps


def data_sections(received: bytes) -> list[bytes]:
    """Every DATA payload the client wrote, terminator included."""
    sections = []
    # The smuggled text holds "DATA" lines too: split at the real command sequence only.
    for chunk in received.split(b"RCPT TO:<rcpt@example.com>\r\nDATA\r\n")[1:]:
        end = chunk.index(b"\r\n.\r\n") + len(b"\r\n.\r\n")
        sections.append(chunk[:end])
    return sections


def assert_one_end_of_data(wire: bytes) -> None:
    """W1 + W2, judged by the most lenient server imaginable."""
    assert wire.endswith(b"\r\n.\r\n")
    body = wire[: -len(b".\r\n")]
    # W1: CRLF only.
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", wire) is None
    # W2: no line is a lone "." (or "." followed by anything a lenient server ends DATA on):
    # every line that starts with a dot starts with two.
    assert re.search(rb"(?:^|\n)\.(?!\.)", body) is None
    assert wire.count(b"\r\n.\r\n") == 1
    # W3 for these small messages.
    assert all(len(line) <= 998 for line in wire.split(b"\r\n"))


# -- W1/W2: smuggling through send_raw and send(Message) ---------------------------------------


async def test_send_raw_smuggling_endings_never_end_the_data_early() -> None:
    bodies = [b"start" + ending + SMUGGLED + ending + b"end\r\n" for ending in SMUGGLE]
    bodies.append(b".\r\n" + SMUGGLED + b".")  # a dot line first and a dot without line end last
    with ScriptedServer(transactions(len(bodies))) as server:
        async with transport_for(plain_config(server)) as transport:
            for body in bodies:
                await transport.send_raw(envelope(), raw(body))
        (record,) = server.wait_done(1)
    assert record.mismatches == ()
    sections = data_sections(record.received)
    assert len(sections) == len(bodies)
    # Exactly one MAIL per message: nothing smuggled ran as a command.
    assert sum(line.startswith(b"MAIL FROM:<sender@") for line in record.lines) == len(bodies)
    assert not any(line.startswith(b"MAIL FROM:<evil") for line in record.lines)
    for wire in sections:
        assert_one_end_of_data(wire)
        assert SMUGGLED.split(b"\r\n")[0] in wire


async def test_send_message_with_smuggling_bodies_never_ends_the_data_early() -> None:
    endings = [e.decode() for e in SMUGGLE if b"\x00" not in e]
    messages = [
        Message(
            sender="sender@example.com",
            to="rcpt@example.com",
            text=f"a{ending}{SMUGGLED.decode()}{ending}.",
            html=f"<p>a{ending}.{ending}{SMUGGLED.decode()}</p>",
        )
        for ending in endings
    ]
    with ScriptedServer(transactions(len(messages))) as server:
        async with AsyncMailer(plain_config(server), retry=NO_RETRY) as mailer:
            for message in messages:
                await mailer.send(message)
        (record,) = server.wait_done(1)
    assert record.mismatches == ()
    for wire in data_sections(record.received):
        assert_one_end_of_data(wire)
    # A NUL in a body is refused before anything is built or sent.
    with pytest.raises(MessageError):
        Message(sender="sender@example.com", to="rcpt@example.com", text="a\n.\x00\nb")


async def test_a_real_server_receives_one_message_with_the_smuggled_text_as_body() -> None:
    body = b"".join(b"x" + ending + SMUGGLED for ending in SMUGGLE) + b"done\r\n"
    async with DevServer(tls="none") as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            result = await transport.send_raw(envelope(), raw(body))
        server.wait_idle()
        assert result.accepted == ("rcpt@example.com",)
        assert verbs(server).count("MAIL") == 1
        assert verbs(server).count("DATA") == 1
        (captured,) = server.messages
        assert captured.mail_from == "sender@example.com"
        assert captured.rcpt_tos == ("rcpt@example.com",)
        assert captured.data.count(b"MAIL FROM:<evil@example.org>") == len(SMUGGLE)
        assert captured.data.endswith(b"done\r\n")


# -- W3/W4/W5 on a real send -------------------------------------------------------------------


async def test_seven_bit_server_gets_seven_bit_short_lines_and_no_bcc() -> None:
    word = "wörd" * 1250  # one 5,000-character word
    message = Message(
        sender=("Zoë Ünïcødé", "shop@bücher.example"),
        to=[(f"Empfänger {i} ✓", f"user{i}@bücher.example") for i in range(300)],
        bcc=[("Hidden Person", "hidden@example.org")],
        subject="Grüße " + "x" * 2000 + " 😀" * 50,
        text=word,
        html=f"<p>{word}</p><p>{'a' * 5000}</p>",
        headers={"X-Note": "ñ" * 3000},
        attachments=[Attachment("résumé-" + "é" * 200 + ".pdf", b"%PDF-1.7")],
    )
    faults = [Hide("8BITMIME")]
    async with DevServer(tls="none", smtputf8=False, faults=faults) as server:
        config = server.config(timeouts=FAST, max_recipients_per_transaction=500)
        async with AsyncMailer(config, retry=NO_RETRY) as mailer:
            result = await mailer.send(message)
        (captured,) = server.messages
    assert len(result.accepted) == 301
    data = captured.data
    assert data.isascii()  # W4
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))  # W3
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", data) is None  # W1
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    assert not re.search(rb"(?m)^(resent-)?bcc:", head)  # W5
    assert b"hidden" not in data.lower()
    assert "hidden@example.org" in captured.rcpt_tos
    assert not any(o in captured.mail_options for o in ("BODY=8BITMIME", "SMTPUTF8"))
    assert all(r.isascii() for r in captured.rcpt_tos)
    assert captured.mail_from == "shop@xn--bcher-kva.example"
    assert captured.parsed.get("Subject") == message.subject


async def test_send_raw_refuses_lines_over_998_octets() -> None:
    async with DevServer(tls="none") as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(SmtpkitError):
                await transport.send_raw(envelope(), raw(b"w" * 5000 + b"\r\n"))
        assert "MAIL" not in verbs(server)


# -- W6: credentials that could carry fields into the SASL exchange -----------------------------


@pytest.mark.parametrize(
    ("username", "token"),
    [
        ("ann@example.com\x01auth=Bearer stolen", TOKEN),
        ("ann@example.com", TOKEN + "\x01auth=Bearer stolen"),
    ],
)
@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
async def test_sasl_field_separators_are_refused_before_auth(
    username: str, token: str, mechanism: str
) -> None:
    async with DevServer(auth=True, mechanisms=(mechanism,)) as server:
        credentials = Credentials(username, token=lambda: token)
        config = server.config(timeouts=FAST, credentials=credentials)
        async with transport_for(config) as transport:
            with pytest.raises(AuthenticationError) as caught:
                await transport.send_raw(envelope(), raw(b"x\r\n"))
        assert "stolen" not in str(caught.value)
        assert "AUTH" not in verbs(server)
        assert "MAIL" not in verbs(server)


# -- W7: TLS fails closed ----------------------------------------------------------------------


async def test_opportunistic_starttls_refused_never_sends_credentials_in_plaintext() -> None:
    faults = [Respond("STARTTLS", 454, "4.7.0 TLS not available")]
    async with DevServer(tls="starttls", auth=True, auth_require_tls=False, faults=faults) as s:
        config = s.config(tls=TLSMode.STARTTLS_OPPORTUNISTIC, timeouts=FAST)
        assert not config.allow_insecure_auth
        async with transport_for(config) as transport:
            with pytest.raises(TLSError) as caught:
                await transport.send_raw(envelope(), raw(b"x\r\n"))
        assert caught.value.stage == "auth"
        assert verbs(s) == ["EHLO", "STARTTLS"]


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
@pytest.mark.parametrize("kind", ["untrusted", "wrong_host", "no_ca_file"])
async def test_certificates_are_verified_by_default(tls: Any, kind: str) -> None:
    faults = [] if kind == "no_ca_file" else [BadCertificate(kind)]  # type: ignore[arg-type]
    async with DevServer(tls=tls, auth=True, faults=faults) as server:
        overrides: dict[str, Any] = {"timeouts": FAST}
        if kind == "no_ca_file":
            overrides["ca_file"] = None  # the system store does not know the server's CA
        async with transport_for(server.config(**overrides)) as transport:
            with pytest.raises(TLSError) as caught:
                await transport.send_raw(envelope(), raw(b"x\r\n"))
        assert caught.value.stage == "tls"
        assert "certificate" in str(caught.value).lower()
        assert not {"AUTH", "MAIL", "RCPT", "DATA"} & set(verbs(server))


async def test_starttls_handshake_failure_sends_nothing_more_in_plaintext() -> None:
    script: list[Step] = [
        (b"EHLO", b"250-scripted.test\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n"),
        # A downgrading middlebox answers 220, then keeps talking plaintext.
        (b"STARTTLS", b"220 go ahead\r\n" + b"250 2.0.0 ok\r\n" * 20),
        Sleep(0.5),
    ]
    with ScriptedServer(script) as server:
        creds = Credentials("ann", Secret(PASSWORD))
        config = plain_config(
            server, tls=TLSMode.STARTTLS, ca_file=server.ca_file, credentials=creds
        )
        async with transport_for(config) as transport:
            with pytest.raises(TLSError) as caught:
                await transport.send_raw(envelope(), raw(b"x\r\n"))
        (record,) = server.wait_done(1)
    assert caught.value.stage == "tls"
    after = b"".join(record.lines[2:])
    for verb in (b"EHLO", b"AUTH", b"MAIL", b"RCPT", b"DATA"):
        assert verb not in after
    assert PASSWORD.encode() not in record.received


async def test_connection_closed_after_starttls_220_fails_closed() -> None:
    script: list[Step] = [
        (b"EHLO", b"250-scripted.test\r\n250 STARTTLS\r\n"),
        (b"STARTTLS", b"220 go ahead\r\n"),
        Close(),
    ]
    with ScriptedServer(script) as server:
        config = plain_config(server, tls=TLSMode.STARTTLS, ca_file=server.ca_file)
        async with transport_for(config) as transport:
            with pytest.raises(TransportError) as caught:
                await transport.send_raw(envelope(), raw(b"x\r\n"))
        (record,) = server.wait_done(1)
    assert caught.value.stage == "tls"
    assert [line[:8] for line in record.lines] == [b"EHLO loc", b"STARTTLS"]


def _login_after_tls(injected: bytes) -> list[Step]:
    return [
        (b"EHLO", b"250-scripted.test\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n"),
        (b"STARTTLS", b"220 Ready\r\n" + injected),
        StartTLS(),
        # The real post-TLS offer is LOGIN only; PLAIN was said before TLS (and injected).
        (b"EHLO", b"250-scripted.test\r\n250 AUTH LOGIN\r\n"),
        (b"AUTH LOGIN", b"334 VXNlcm5hbWU6\r\n"),
        (b"", b"334 UGFzc3dvcmQ6\r\n"),
        (b"", b"235 2.7.0 Authentication successful\r\n"),
        (b"MAIL FROM:", b"250 2.1.0 Ok\r\n"),
        (b"RCPT TO:", b"250 2.1.5 Ok\r\n"),
        (b"DATA", b"354 go\r\n"),
        ReadData(),
    ]


@pytest.mark.parametrize(
    "injected",
    [
        b"250-evil\r\n250 AUTH PLAIN\r\n",
        b"250-fragment-without-line-end",
        b"250 AUTH PLAIN\r\n235 2.7.0 ok\r\n250 ok\r\n250 ok\r\n",
    ],
)
async def test_plaintext_injected_after_starttls_is_discarded(injected: bytes) -> None:
    with ScriptedServer(_login_after_tls(injected)) as server:
        config = plain_config(
            server,
            tls=TLSMode.STARTTLS,
            ca_file=server.ca_file,
            credentials=Credentials("ann", Secret(PASSWORD)),
            auth_mechanisms=("PLAIN", "LOGIN"),
            transcript=True,
        )
        async with transport_for(config) as transport:
            result = await transport.send_raw(envelope(), raw(b"x\r\n"))
        (record,) = server.wait_done(1)
    assert record.mismatches == ()
    assert record.tls_started_at == 2
    assert record.lines[2].startswith(b"EHLO")  # EHLO again, first thing after TLS
    assert result.reply is not None
    assert "SCRIPTED" in result.reply.text
    transcript = "\n".join(result.extra["transcript"])
    assert "evil" not in transcript
    assert "fragment" not in transcript


async def test_nothing_learnt_before_starttls_is_trusted() -> None:
    # Before TLS the server claims SIZE 10 and PIPELINING; after TLS it claims neither. A
    # message of more than 10 octets must go out, without SIZE=, with one command at a time.
    script: list[Step] = [
        (b"EHLO", b"250-scripted.test\r\n250-SIZE 10\r\n250-PIPELINING\r\n250 STARTTLS\r\n"),
        (b"STARTTLS", b"220 Ready\r\n"),
        StartTLS(),
        (b"EHLO", b"250-scripted.test\r\n250 8BITMIME\r\n"),
        (b"MAIL FROM:", b"250 2.1.0 Ok\r\n"),
        (b"RCPT TO:", b"250 2.1.5 Ok\r\n"),
        (b"DATA", b"354 go\r\n"),
        ReadData(),
    ]
    with ScriptedServer(script) as server:
        config = plain_config(server, tls=TLSMode.STARTTLS, ca_file=server.ca_file)
        async with transport_for(config) as transport:
            await transport.send_raw(envelope(), raw(b"a body longer than ten octets\r\n"))
        (record,) = server.wait_done(1)
    assert record.mismatches == ()
    mail = next(line for line in record.lines if line.startswith(b"MAIL"))
    assert b"SIZE=" not in mail


# -- property 6: secrets never leak ------------------------------------------------------------


def _leaks(texts: list[str], secrets: list[str]) -> list[str]:
    joined = "\n".join(texts)
    return [secret for secret in secrets if secret in joined]


def _error_texts(error: BaseException) -> list[str]:
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    if isinstance(error, TransportError):
        texts += [str(error.hint), *error.transcript]
    return texts


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
async def test_oauth_tokens_never_reach_logs_reprs_results_or_errors(
    mechanism: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: smtpkit, aiosmtplib, asyncio, ...
    caplog.set_level(logging.DEBUG, logger="aiosmtplib")
    user = "ann@example.com"
    texts: list[str] = []
    async with DevServer(auth={user: TOKEN}, mechanisms=(mechanism,)) as server:
        payload = create_mechanism(
            mechanism, username=user, token=TOKEN, host=server.host, port=server.port
        ).initial_response()
        assert payload is not None
        secrets = [
            TOKEN,
            base64.b64encode(TOKEN.encode()).decode(),
            base64.b64encode(payload).decode(),
            base64.b64encode(payload).decode()[8:40],  # any long piece of it
        ]
        good = server.config(
            timeouts=FAST, transcript=True, credentials=Credentials(user, token=lambda: TOKEN)
        )
        bad_token = TOKEN + "-expired"
        secrets.append(bad_token)
        bad = good.replace(credentials=Credentials(user, token=lambda: bad_token))
        async with AsyncMailer(good, retry=NO_RETRY) as mailer:
            result = await mailer.send(
                Message(sender="shop@example.com", to="ann@example.org", text="hi")
            )
            texts += [repr(mailer), repr(mailer.transport), repr(good), good.redacted_dsn()]
            texts += [json.dumps(result.to_dict()), repr(result), *result.extra["transcript"]]
        async with AsyncMailer(bad, retry=NO_RETRY) as mailer:
            with pytest.raises(AuthenticationError) as caught:
                await mailer.send(Message(sender="shop@example.com", to="ann@example.org"))
            texts += _error_texts(caught.value)
    texts += [record.getMessage() for record in caplog.records]
    texts += [caplog.text]
    assert any("AUTH " + mechanism + " ***" in text for text in texts)
    assert caplog.records
    assert _leaks(texts, secrets) == []


async def test_secrets_echoed_by_the_server_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    payload = base64.b64encode(f"\0ann\0{PASSWORD}".encode()).decode()
    script: list[Step] = [
        (b"EHLO", b"250-scripted.test\r\n250 AUTH PLAIN\r\n"),
        (b"AUTH PLAIN", f"535 5.7.8 Bad credentials {payload} ({PASSWORD})\r\n".encode()),
    ]
    with ScriptedServer(script) as server:
        config = plain_config(
            server,
            credentials=Credentials("ann", Secret(PASSWORD)),
            allow_insecure_auth=True,
            transcript=True,
        )
        async with transport_for(config) as transport:
            with pytest.raises(AuthenticationError) as caught:
                await transport.send_raw(envelope(), raw(b"x\r\n"))
            texts = [*_error_texts(caught.value), repr(transport), repr(config)]
    assert caught.value.reply is not None
    assert caught.value.reply.code == 535
    texts += [record.getMessage() for record in caplog.records]
    assert _leaks(texts, [PASSWORD, payload]) == []


# -- property 12: hostile replies are bounded --------------------------------------------------


@pytest.mark.parametrize(
    ("greeting", "script"),
    [
        (b"220 " + b"x" * 100_000 + b"\r\n", []),
        (None, [(None, b"220 ok\r\n"), (b"EHLO", b"250-ok\r\n" * 20_000 + b"250 ok\r\n")]),
        (None, [(None, b"220 ok\r\n"), (b"EHLO", b"2" * 1_000_000)]),
        (
            None,
            [
                (None, b"220 ok\r\n"),
                (b"EHLO", b"250 ok\r\n"),
                (b"MAIL", b"250 " + b"y" * 100_000 + b"\r\n"),
            ],
        ),
    ],
    ids=["greeting-100k", "endless-continuation", "no-line-end-1mb", "mail-reply-100k"],
)
async def test_oversized_replies_are_errors_not_hangs(
    greeting: bytes | None, script: list[Step]
) -> None:
    with ScriptedServer(script, greeting=greeting) as server:
        async with transport_for(plain_config(server)) as transport:
            started = time.monotonic()
            with pytest.raises(TransportError) as caught:
                await transport.send_raw(envelope(), raw(b"x\r\n"))
            # A hang guard: without the reply-size cap the client would wait for more data.
            assert time.monotonic() - started < 5.0
        records = server.records
    assert "not an SMTP reply" in str(caught.value)
    assert not any(line.startswith(b"RCPT") for r in records for line in r.lines)


async def test_a_reply_dripped_byte_by_byte_is_bounded_by_the_command_timeout() -> None:
    async def drip(session: ScriptedSession) -> None:
        await session.readline()  # EHLO
        await session.write(b"250 ok\r\n")
        await session.readline()  # MAIL
        for _ in range(100):
            await session.write(b"2")
            await asyncio.sleep(0.1)

    with ScriptedServer(drip, greeting=b"220 ok\r\n") as server:
        timeouts = Timeouts(connect=2.0, command=0.5, data=2.0)
        async with transport_for(plain_config(server, timeouts=timeouts)) as transport:
            started = time.monotonic()
            with pytest.raises(TransportTimeout) as caught:
                await transport.send_raw(envelope(), raw(b"x\r\n"))
            assert time.monotonic() - started < 6.0  # the drip alone lasts 10 s
    assert caught.value.stage == "mail"


async def test_a_server_that_stops_reading_the_message_is_bounded_by_the_data_timeout() -> None:
    # Flow control: a large message is written no faster than the socket takes it. A server
    # that accepts DATA and then never reads must end in a timeout, not a hang or a message
    # buffered whole in memory.
    async def stall(session: ScriptedSession) -> None:
        await session.readline()  # EHLO
        await session.write(b"250 ok\r\n")
        for _ in range(3):  # MAIL, RCPT, DATA
            line = await session.readline()
            await session.write(b"354 go ahead\r\n" if line.startswith(b"DATA") else b"250 ok\r\n")
        await asyncio.sleep(8)

    with ScriptedServer(stall, greeting=b"220 ok\r\n") as server:
        timeouts = Timeouts(connect=2.0, command=2.0, data=0.5)
        async with transport_for(plain_config(server, timeouts=timeouts)) as transport:
            body = (b"x" * 76 + b"\r\n") * (40 * 2**20 // 78)  # 40 MB: more than socket buffers
            started = time.monotonic()
            with pytest.raises(TransportTimeout) as caught:
                await transport.send_raw(envelope(), raw(body))
            assert time.monotonic() - started < 6.0
    assert caught.value.stage == "data"
    assert caught.value.is_transient
