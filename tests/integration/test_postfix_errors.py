"""Failures against a real Postfix: the right error class, reply, transience and hint.

Postfix's replies here are its own (not scripted): 535 5.7.8 for a wrong password, 554 5.7.1
"Relay access denied", 550 5.1.1 for an unknown user of a local domain, 552 5.3.4 for a message
over ``message_size_limit``.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Callable

import pytest
from _mta import MTA, PASSWORD, SIZE_LIMIT

from smtpkit import (
    AsyncMailer,
    Attachment,
    AuthenticationError,
    Credentials,
    DataRefused,
    Message,
    MessageTooLarge,
    NoCommonAuthMechanism,
    RecipientsRefused,
    Reply,
    SendResult,
    SMTPConfig,
    TLSError,
    TransportError,
)
from smtpkit import _hints as hints

pytestmark = pytest.mark.postfix

APP = "app@smtpkit.test"
ANN = "ann@smtpkit.test"
UNKNOWN = "nobody-here@smtpkit.test"
EXTERNAL = "someone@example.com"  # not local: relaying (example.* is reserved, never resolves)
WRONG = "not-the-password-Ω"


async def send(config: SMTPConfig, message: Message) -> SendResult:
    async with AsyncMailer(config) as mailer:
        return await mailer.send(message)


def simple(to: str | list[str] = ANN, **changes: object) -> Message:
    fields: dict[str, object] = {"sender": APP, "to": to, "subject": "Hi", "text": "Hello\n"}
    fields.update(changes)
    return Message(**fields)  # type: ignore[arg-type]


async def session_summary(mta: MTA, start: int) -> str:
    """Postfix's summary line (command counts) of the one SMTP session since ``start``.

    Connections that sent no command at all (the fixture's readiness probes) are left out.
    """
    deadline = time.monotonic() + 10
    while True:
        lines = [
            line
            for line in mta.maillog()[start:].splitlines()
            if "disconnect from" in line and "commands=0/0" not in line
        ]
        if lines:
            assert len(lines) == 1, lines
            return lines[0]
        assert time.monotonic() < deadline, f"no session summary in the log\n{mta.log_tail()}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("mode", "mechanisms"),
    [
        pytest.param("submission", ("PLAIN",), id="starttls-PLAIN"),
        pytest.param("submission", ("LOGIN",), id="starttls-LOGIN"),
        pytest.param("submission", ("CRAM-MD5",), id="starttls-CRAM-MD5"),
        pytest.param("smtps", ("PLAIN",), id="implicit-PLAIN"),
        pytest.param("smtps", ("CRAM-MD5",), id="implicit-CRAM-MD5"),
    ],
)
async def test_wrong_password(
    mta: MTA, config: Callable[..., SMTPConfig], mode: str, mechanisms: tuple[str, ...]
) -> None:
    start = len(mta.maillog())
    with pytest.raises(AuthenticationError) as caught:
        await send(config(mode, password=WRONG, mechanisms=mechanisms, transcript=True), simple())
    error = caught.value

    assert type(error) is AuthenticationError
    assert error.stage == "auth"
    assert error.reply is not None
    assert (error.reply.code, error.reply.enhanced_code) == (535, "5.7.8")
    assert not error.is_transient
    assert error.hint == hints._BAD_CREDENTIALS
    assert mechanisms[0] in str(error)
    # Neither the password nor any encoding of it is in the error or its transcript.
    everything = "\n".join([str(error), repr(error), *error.transcript])
    assert WRONG not in everything
    assert base64.b64encode(WRONG.encode()).decode() not in everything
    assert any(line.startswith("C: AUTH") for line in error.transcript), error.transcript
    assert any(line.startswith("C: ") and "***" in line for line in error.transcript)
    # Postfix saw the failed AUTH and no MAIL.
    line = await mta.wait_for_log(f"SASL {mechanisms[0]} authentication failed", start=start)
    assert "sasl_username=app" in line
    summary = await session_summary(mta, start)
    assert "auth=0/1" in summary
    assert "mail=" not in summary


async def test_wrong_password_with_the_default_mechanisms(
    mta: MTA, config: Callable[..., SMTPConfig]
) -> None:
    """With the default preference smtpkit tries CRAM-MD5, then PLAIN, and reports both; it
    does not go on to LOGIN, which would send the same refused password again."""
    start = len(mta.maillog())
    with pytest.raises(AuthenticationError) as caught:
        await send(config("submission", password=WRONG), simple())
    error = caught.value
    assert type(error) is AuthenticationError
    assert "CRAM-MD5: 535 5.7.8" in str(error)
    assert "PLAIN: 535 5.7.8" in str(error)
    assert "LOGIN" not in str(error)
    assert error.reply is not None
    assert error.reply.code == 535
    assert not error.is_transient
    assert error.hint == hints._BAD_CREDENTIALS
    assert WRONG not in str(error)
    await mta.wait_for_log("SASL PLAIN authentication failed", start=start)
    log = mta.maillog()[start:]
    assert "SASL CRAM-MD5 authentication failed" in log
    assert "SASL LOGIN" not in log


async def test_mechanism_not_offered(config: Callable[..., SMTPConfig]) -> None:
    """Postfix/Dovecot offer PLAIN, LOGIN and CRAM-MD5 only: a token for XOAUTH2 has no
    mechanism to go to, and smtpkit says so before sending anything."""
    credentials = Credentials("app", token=lambda: "ya29.not-a-real-token")
    with pytest.raises(NoCommonAuthMechanism) as caught:
        await send(config("submission", credentials=credentials), simple())
    assert caught.value.stage == "auth"
    assert not caught.value.is_transient
    assert caught.value.hint == hints._NO_COMMON_MECHANISM
    assert "ya29" not in str(caught.value)


@pytest.mark.parametrize(
    ("mode", "password"),
    [
        pytest.param("plain", None, id="port25-style"),
        pytest.param("submission", None, id="submission-without-auth"),
    ],
)
async def test_relaying_without_auth_is_refused(
    mta: MTA, config: Callable[..., SMTPConfig], mode: str, password: str | None
) -> None:
    start = len(mta.maillog())
    with pytest.raises(RecipientsRefused) as caught:
        await send(config(mode, password=password), simple(to=EXTERNAL))
    error = caught.value

    assert error.stage == "rcpt"
    assert error.reply is not None
    assert (error.reply.code, error.reply.enhanced_code) == (554, "5.7.1")
    assert "Relay access denied" in error.reply.text
    assert set(error.rejected) == {EXTERNAL}
    assert error.rejected[EXTERNAL].code == 554
    assert not error.is_transient
    assert error.hint == hints._RELAY_DENIED
    line = await mta.wait_for_log("NOQUEUE: reject: RCPT", start=start)
    assert f"to=<{EXTERNAL}>" in line


async def test_submission_requires_auth_even_for_local_mail(
    config: Callable[..., SMTPConfig],
) -> None:
    with pytest.raises(RecipientsRefused) as caught:
        await send(config("submission", password=None), simple(to=ANN))
    error = caught.value
    assert error.reply is not None
    assert (error.reply.code, error.reply.enhanced_code) == (554, "5.7.1")
    assert not error.is_transient
    # 554 5.7.1 at RCPT: the advice is to authenticate.
    assert error.hint == hints._RELAY_DENIED


async def test_authenticated_relay_never_leaves_the_machine(
    mta: MTA, config: Callable[..., SMTPConfig]
) -> None:
    """An authenticated client may relay, but the test MTA routes every foreign domain to its
    error transport, which Postfix applies already at RCPT: nothing is even queued."""
    start = len(mta.maillog())
    with pytest.raises(RecipientsRefused) as caught:
        await send(config("submission"), simple(to=EXTERNAL, subject="Relay me"))
    reply = caught.value.rejected[EXTERNAL]
    assert reply.code == 550
    assert "delivers nothing off this machine" in reply.text
    line = await mta.wait_for_log("NOQUEUE: reject: RCPT", start=start)
    assert f"to=<{EXTERNAL}>" in line
    assert "data=1" not in await session_summary(mta, start)


async def test_unknown_local_user_alone(mta: MTA, config: Callable[..., SMTPConfig]) -> None:
    start = len(mta.maillog())
    with pytest.raises(RecipientsRefused) as caught:
        await send(config("submission"), simple(to=UNKNOWN))
    error = caught.value

    assert error.stage == "rcpt"
    assert set(error.rejected) == {UNKNOWN}
    reply = error.rejected[UNKNOWN]
    assert (reply.code, reply.enhanced_code) == (550, "5.1.1")
    assert "User unknown" in reply.text
    assert error.reply == reply
    assert not error.is_transient
    assert error.hint == hints._USER_UNKNOWN
    # With PIPELINING, DATA may go out in the same group as RCPT; it must not be accepted.
    summary = await session_summary(mta, start)
    assert "data=1" not in summary
    assert "rcpt=0/1" in summary


async def test_unknown_user_next_to_a_known_one(
    mta: MTA, config: Callable[..., SMTPConfig]
) -> None:
    """A partial refusal is data in the result; the known recipient still gets the message."""
    start = len(mta.maillog())
    message = simple(to=[ANN, UNKNOWN])
    result = await send(config("smtps"), message)

    assert result.accepted == (ANN,)
    assert set(result.rejected) == {UNKNOWN}
    rejected: Reply = result.rejected[UNKNOWN]
    assert (rejected.code, rejected.enhanced_code) == (550, "5.1.1")
    statuses = {status.address: status.accepted for status in result.recipients}
    assert statuses == {ANN: True, UNKNOWN: False}
    with pytest.raises(RecipientsRefused) as caught:
        result.raise_for_rejections()
    assert set(caught.value.rejected) == {UNKNOWN}

    delivered = await mta.wait_for_parsed(ANN, message.message_id)
    assert delivered["To"] == f"{ANN}, {UNKNOWN}"
    # Postfix logs the refusal under the queue id the accepted recipient opened.
    line = await mta.wait_for_log(f"to=<{UNKNOWN}>", start=start)
    assert f"{result.queue_id}: reject: RCPT" in line
    assert "550 5.1.1" in line


def oversized() -> Message:
    # Incompressible-looking bytes; base64 makes them a third larger than SIZE_LIMIT allows.
    blob = bytes(range(256)) * (SIZE_LIMIT // 256 + 10)
    return simple(attachments=(Attachment("big.bin", blob, "application/octet-stream"),))


async def test_too_large_for_advertised_size(mta: MTA, config: Callable[..., SMTPConfig]) -> None:
    """Postfix advertises SIZE: smtpkit refuses before MAIL FROM, nothing is transferred."""
    start = len(mta.maillog())
    message = oversized()
    with pytest.raises(MessageTooLarge) as caught:
        await send(config("submission"), message)
    assert caught.value.limit == SIZE_LIMIT
    assert caught.value.size == len(message.to_bytes())
    assert caught.value.size > SIZE_LIMIT
    summary = await session_summary(mta, start)
    assert "mail=" not in summary
    assert "auth=1" in summary or "ehlo=" in summary


async def test_too_large_without_size_extension(
    mta: MTA, config: Callable[..., SMTPConfig]
) -> None:
    """Without SIZE in EHLO the limit shows as Postfix's 552 5.3.4 at the end of data."""
    start = len(mta.maillog())
    with pytest.raises(DataRefused) as caught:
        await send(config("nosize"), oversized())
    error = caught.value
    assert error.stage == "data"
    assert error.reply is not None
    assert (error.reply.code, error.reply.enhanced_code) == (552, "5.3.4")
    assert not error.is_transient
    assert error.hint == hints._TOO_BIG
    summary = await session_summary(mta, start)
    assert re.search(r"data=0/1", summary), summary


async def test_just_under_the_limit_is_delivered(
    mta: MTA, config: Callable[..., SMTPConfig]
) -> None:
    # base64 with line breaks makes 57 bytes into 78; leave a few KB for headers.
    blob = bytes(range(256)) * (int((SIZE_LIMIT - 6000) * 57 / 78) // 256)
    message = simple(attachments=(Attachment("fits.bin", blob, "application/octet-stream"),))
    assert len(message.to_bytes()) < SIZE_LIMIT
    await send(config("submission"), message)
    parsed = await mta.wait_for_parsed(ANN, message.message_id)
    (attachment,) = parsed.iter_attachments()
    assert attachment.get_content() == blob


async def test_untrusted_certificate(config: Callable[..., SMTPConfig]) -> None:
    """Without the test CA the certificate is untrusted: TLSError before any credential."""
    with pytest.raises(TLSError) as caught:
        await send(config("submission", ca_file=None), simple())
    assert caught.value.stage == "tls"
    assert not caught.value.is_transient
    assert caught.value.hint == hints._UNTRUSTED_CERT
    assert PASSWORD not in str(caught.value)


async def test_implicit_tls_against_the_starttls_port(
    mta: MTA, config: Callable[..., SMTPConfig]
) -> None:
    submission = config("submission")
    wrong = config("smtps", port=submission.port)
    with pytest.raises(TransportError) as caught:
        await send(wrong, simple())
    assert isinstance(caught.value, TLSError)
    assert caught.value.hint is not None
    assert "STARTTLS" in caught.value.hint
