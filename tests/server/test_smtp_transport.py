"""SMTPTransport against a real server on loopback: TLS, AUTH, results, extensions, secrets."""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from helpers import FAST, transport_for, verbs

from smtpkit._config import Credentials, SMTPConfig, Timeouts, TLSMode
from smtpkit._envelope import Envelope
from smtpkit._exceptions import (
    AuthenticationError,
    ConnectError,
    ExtensionUnsupported,
    MessageTooLarge,
    NoCommonAuthMechanism,
    TLSError,
    TransportTimeout,
)
from smtpkit._secrets import Secret
from smtpkit._transports.base import AsyncTransport
from smtpkit._transports.smtp import SMTPTransport
from smtpkit.devserver import BadCertificate, DevServer, Hide, Respond

PASSWORD = "pw-S3cr3t-7e1d"
TOKEN = "ya29.tok-9f8e7d6c"


def envelope(*recipients: str, sender: str | None = "sender@example.com") -> Envelope:
    return Envelope(sender, recipients or ("rcpt@example.com",))


def message(
    *, subject: str = "Hi", body: bytes = b"Hello\r\n", message_id: str | None = "<m1@example.com>"
) -> bytes:
    head = b"From: sender@example.com\r\nTo: rcpt@example.com\r\n"
    if message_id:
        head += b"Message-ID: " + message_id.encode() + b"\r\n"
    return head + b"Subject: " + subject.encode() + b"\r\n\r\n" + body


# -- the core path -----------------------------------------------------------------------------


async def test_starttls_auth_plain_send_returns_structured_result() -> None:
    async with DevServer(auth={"user": PASSWORD}) as server:
        config = server.config(timeouts=FAST, auth_mechanisms=("PLAIN",))
        async with transport_for(config) as transport:
            assert isinstance(transport, AsyncTransport)
            result = await transport.send_raw(envelope("ann@example.com"), message())

        assert result.message_id == "<m1@example.com>"
        assert result.accepted == ("ann@example.com",)
        assert result.rejected == {}
        assert result.reply is not None
        assert result.reply.code == 250
        assert server.messages[0].queue_id in result.reply.text
        assert result.attempts == 1
        assert 0 < result.elapsed < 5
        assert result.transport == f"smtp://user@127.0.0.1:{server.port}"
        captured = server.messages
        assert len(captured) == 1
        assert captured[0].tls is True
        assert captured[0].auth_login == "user"
        assert captured[0].rcpt_tos == ("ann@example.com",)
        assert captured[0].data == message()
        # STARTTLS first; EHLO again after it; AUTH only on the encrypted connection.
        assert verbs(server)[:4] == ["EHLO", "STARTTLS", "EHLO", "AUTH"]
        assert [c.tls for c in server.commands if c.verb in ("AUTH", "MAIL")] == [True, True]
        assert server.commands[-1].verb == "QUIT"


async def test_message_id_is_none_without_header_and_found_when_folded() -> None:
    async with DevServer() as server, transport_for(server.config(timeouts=FAST)) as transport:
        plain = await transport.send_raw(envelope(), message(message_id=None))
        folded = b"Message-ID:\r\n <folded@example.com>\r\nSubject: x\r\n\r\nbody\r\n"
        result = await transport.send_raw(envelope(), folded)
    assert plain.message_id is None
    assert result.message_id == "<folded@example.com>"


async def test_description_and_repr_never_show_the_password() -> None:
    config = SMTPConfig(
        host="mail.example.com",
        credentials=Credentials("ann@example.com", Secret(PASSWORD)),
    )
    transport = SMTPTransport(config)
    assert transport.description == "smtp://ann%40example.com@mail.example.com:587"
    assert PASSWORD not in repr(transport)
    implicit = SMTPTransport(SMTPConfig(host="::1", tls=TLSMode.IMPLICIT))
    assert implicit.description == "smtps://[::1]:465"
    await transport.aclose()
    await implicit.aclose()


# -- TLS modes ---------------------------------------------------------------------------------


async def test_implicit_tls() -> None:
    async with DevServer(tls="implicit", auth=True) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            result = await transport.send_raw(envelope(), message())
        assert result.transport.startswith("smtps://user@")
        assert server.messages[0].tls is True
        assert "STARTTLS" not in verbs(server)


async def test_tls_none_sends_in_plaintext() -> None:
    async with DevServer(tls="none") as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            result = await transport.send_raw(envelope(), message())
        assert result.transport.endswith("?tls=none")
        assert server.messages[0].tls is False


async def test_opportunistic_upgrades_when_offered() -> None:
    async with DevServer(tls="starttls") as server:
        config = server.config(tls=TLSMode.STARTTLS_OPPORTUNISTIC, timeouts=FAST)
        async with transport_for(config) as transport:
            await transport.send_raw(envelope(), message())
        assert server.messages[0].tls is True


async def test_opportunistic_continues_in_plaintext_when_not_offered() -> None:
    async with DevServer(tls="none") as server:
        config = server.config(tls=TLSMode.STARTTLS_OPPORTUNISTIC, timeouts=FAST)
        async with transport_for(config) as transport:
            await transport.send_raw(envelope(), message())
        assert server.messages[0].tls is False
        assert "STARTTLS" not in verbs(server)


async def test_opportunistic_continues_when_starttls_is_refused() -> None:
    faults = [Respond("STARTTLS", 454, "4.7.0 TLS not available")]
    async with DevServer(tls="starttls", faults=faults) as server:
        config = server.config(tls=TLSMode.STARTTLS_OPPORTUNISTIC, timeouts=FAST)
        async with transport_for(config) as transport:
            await transport.send_raw(envelope(), message())
        assert server.messages[0].tls is False


async def test_required_starttls_stripped_fails_before_anything_is_sent() -> None:
    async with DevServer(tls="starttls", auth=True, faults=[Hide("STARTTLS")]) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(TLSError) as caught:
                await transport.send_raw(envelope(), message())
        assert caught.value.stage == "tls"
        assert not caught.value.is_transient
        assert caught.value.hint
        assert "STARTTLS" in str(caught.value)
        # Only the EHLO went out in plaintext: no AUTH, no MAIL, no data.
        assert verbs(server) == ["EHLO"]
        assert server.messages == []


async def test_required_starttls_refused_by_server() -> None:
    faults = [Respond("STARTTLS", 454, "4.7.0 TLS not available due to temporary reason")]
    async with DevServer(tls="starttls", auth=True, faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(TLSError) as caught:
                await transport.send_raw(envelope(), message())
        error = caught.value
        assert error.stage == "tls"
        assert error.reply is not None
        assert error.reply.code == 454
        assert error.reply.enhanced_code == "4.7.0"
        assert error.is_transient
        assert verbs(server) == ["EHLO", "STARTTLS"]


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_certificate_for_the_wrong_host_is_refused(tls: Any) -> None:
    async with DevServer(tls=tls, auth=True, faults=[BadCertificate("wrong_host")]) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(TLSError) as caught:
                await transport.send_raw(envelope(), message())
        assert caught.value.stage == "tls"
        assert caught.value.hint
        assert "certificate" in str(caught.value).lower()
        assert "AUTH" not in verbs(server)
        assert "MAIL" not in verbs(server)


async def test_untrusted_certificate_is_refused() -> None:
    async with DevServer(tls="starttls", faults=[BadCertificate("untrusted")]) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(TLSError, match="certificate"):
                await transport.send_raw(envelope(), message())
        assert "MAIL" not in verbs(server)


async def test_implicit_tls_against_a_plaintext_port_explains_the_mismatch() -> None:
    async with DevServer(tls="starttls") as server:
        config = server.config(tls=TLSMode.IMPLICIT, timeouts=FAST)
        async with transport_for(config) as transport:
            with pytest.raises(TLSError) as caught:
                await transport.send_raw(envelope(), message())
        error = caught.value
        assert error.stage == "tls"
        assert error.hint is not None
        assert "implicit" in error.hint.lower() or "starttls" in error.hint.lower()


async def test_starttls_against_an_implicit_tls_port_times_out_at_connect() -> None:
    # The server waits for a TLS ClientHello, the client for a greeting: neither comes.
    async with DevServer(tls="implicit") as server:
        config = server.config(tls=TLSMode.STARTTLS, timeouts=Timeouts(connect=0.4))
        async with transport_for(config) as transport:
            with pytest.raises(TransportTimeout) as caught:
                await transport.send_raw(envelope(), message())
    assert caught.value.stage == "connect"
    assert caught.value.is_transient
    assert caught.value.hint


async def test_connection_refused_is_a_transient_connect_error() -> None:
    async with DevServer() as server:
        port = server.port
    config = SMTPConfig(host="127.0.0.1", port=port, tls=TLSMode.NONE, timeouts=FAST)
    async with transport_for(config) as transport:
        with pytest.raises(ConnectError) as caught:
            await transport.send_raw(envelope(), message())
    assert caught.value.stage == "connect"
    assert caught.value.is_transient
    assert isinstance(caught.value.__cause__, Exception)


# -- AUTH --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
async def test_password_mechanisms_succeed(mechanism: str) -> None:
    async with DevServer(auth={"ann": PASSWORD}, mechanisms=(mechanism,)) as server:
        config = server.config(timeouts=FAST, auth_mechanisms=(mechanism,))
        async with transport_for(config) as transport:
            await transport.send_raw(envelope(), message())
        assert server.messages[0].auth_login == "ann"
        assert next(c.line for c in server.commands if c.verb == "AUTH").startswith(
            f"AUTH {mechanism}"
        )


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
async def test_password_mechanisms_fail_with_auth_error(mechanism: str) -> None:
    async with DevServer(auth={"ann": "right"}, mechanisms=(mechanism,)) as server:
        config = server.config(
            timeouts=FAST,
            auth_mechanisms=(mechanism,),
            credentials=Credentials("ann", Secret(PASSWORD)),
        )
        async with transport_for(config) as transport:
            with pytest.raises(AuthenticationError) as caught:
                await transport.send_raw(envelope(), message())
        error = caught.value
        assert type(error) is AuthenticationError
        assert error.stage == "auth"
        assert error.reply is not None
        assert error.reply.code == 535
        assert not error.is_transient
        assert mechanism in str(error)
        assert PASSWORD not in str(error)
        assert "MAIL" not in verbs(server)


async def test_preference_order_picks_the_first_offered_mechanism() -> None:
    async with DevServer(auth=True, mechanisms=("LOGIN", "PLAIN", "CRAM-MD5")) as server:
        config = server.config(timeouts=FAST, auth_mechanisms=("PLAIN", "LOGIN"))
        async with transport_for(config) as transport:
            await transport.send_raw(envelope(), message())
        assert [c.line for c in server.commands if c.verb == "AUTH"] == ["AUTH PLAIN ***"]


async def test_cram_md5_failure_falls_back_to_plain() -> None:
    # A 535 to CRAM-MD5 (for example a server whose password store cannot do it) does not
    # mean the password is wrong: the next mechanism is tried.
    faults = [Respond("AUTH", 535, "5.7.8 CRAM-MD5 not usable", match="CRAM-MD5")]
    async with DevServer(auth=True, mechanisms=("CRAM-MD5", "PLAIN"), faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            await transport.send_raw(envelope(), message())
        assert [c.line for c in server.commands if c.verb == "AUTH"] == [
            "AUTH CRAM-MD5",
            "AUTH PLAIN ***",
        ]


async def test_plain_535_does_not_retry_the_same_password_with_login() -> None:
    async with DevServer(auth={"ann": "right"}, mechanisms=("PLAIN", "LOGIN")) as server:
        config = server.config(timeouts=FAST, credentials=Credentials("ann", Secret(PASSWORD)))
        async with transport_for(config) as transport:
            with pytest.raises(AuthenticationError):
                await transport.send_raw(envelope(), message())
        assert [c.verb for c in server.commands].count("AUTH") == 1


async def test_auth_4xx_is_transient() -> None:
    faults = [Respond("AUTH", 454, "4.7.0 Temporary authentication failure")]
    async with DevServer(auth=True, faults=faults) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(AuthenticationError) as caught:
                await transport.send_raw(envelope(), message())
        assert caught.value.is_transient


async def test_no_common_mechanism() -> None:
    async with DevServer(auth=True, mechanisms=("LOGIN",)) as server:
        config = server.config(timeouts=FAST, auth_mechanisms=("CRAM-MD5", "PLAIN"))
        async with transport_for(config) as transport:
            with pytest.raises(NoCommonAuthMechanism) as caught:
                await transport.send_raw(envelope(), message())
        assert "LOGIN" in str(caught.value)
        assert caught.value.stage == "auth"
        assert not caught.value.is_transient
        assert "AUTH" not in verbs(server)


async def test_credentials_but_no_auth_offered() -> None:
    async with DevServer(auth=False) as server:
        config = server.config(timeouts=FAST, credentials=Credentials("ann", Secret(PASSWORD)))
        async with transport_for(config) as transport:
            with pytest.raises(NoCommonAuthMechanism, match="does not offer AUTH"):
                await transport.send_raw(envelope(), message())
        assert "MAIL" not in verbs(server)


async def test_auth_over_plaintext_is_refused_client_side_even_on_loopback() -> None:
    # The server would accept AUTH without TLS; the client must not send the password.
    async with DevServer(tls="none", auth=True, auth_require_tls=False) as server:
        config = server.config(
            tls=TLSMode.STARTTLS_OPPORTUNISTIC, allow_insecure_auth=False, timeouts=FAST
        )
        async with transport_for(config) as transport:
            with pytest.raises(TLSError) as caught:
                await transport.send_raw(envelope(), message())
        assert caught.value.stage == "auth"
        assert "allow_insecure_auth" in str(caught.value)
        assert verbs(server) == ["EHLO"]


async def test_auth_over_plaintext_when_explicitly_allowed() -> None:
    async with DevServer(tls="none", auth=True, auth_require_tls=False) as server:
        config = server.config(timeouts=FAST)
        assert config.allow_insecure_auth
        async with transport_for(config) as transport:
            await transport.send_raw(envelope(), message())
        assert server.messages[0].auth_login == "user"


def _sync_token() -> str:
    return TOKEN


async def _async_token() -> str:
    return TOKEN


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
@pytest.mark.parametrize("provider", [_sync_token, _async_token])
async def test_token_mechanisms_with_sync_and_async_providers(
    mechanism: str, provider: Callable[[], str | Awaitable[str]]
) -> None:
    async with DevServer(auth={"ann@example.com": TOKEN}, mechanisms=(mechanism,)) as server:
        config = server.config(
            timeouts=FAST, credentials=Credentials("ann@example.com", token=provider)
        )
        async with transport_for(config) as transport:
            await transport.send_raw(envelope(), message())
        assert server.messages[0].auth_login == "ann@example.com"


async def test_token_is_fetched_again_once_after_a_token_error() -> None:
    tokens = iter(["expired-token", TOKEN])
    calls: list[str] = []

    def provider() -> str:
        calls.append("fetch")
        return next(tokens)

    async with DevServer(auth={"ann": TOKEN}, mechanisms=("XOAUTH2",)) as server:
        config = server.config(
            timeouts=FAST, transcript=True, credentials=Credentials("ann", token=provider)
        )
        async with transport_for(config) as transport:
            result = await transport.send_raw(envelope(), message())
        assert len(calls) == 2
        assert [c.verb for c in server.commands].count("AUTH") == 2
        assert server.messages[0].auth_login == "ann"
        transcript = "\n".join(result.extra["transcript"])
        assert "expired-token" not in transcript
        assert TOKEN not in transcript


async def test_token_refused_twice_is_an_auth_error() -> None:
    calls: list[str] = []

    def provider() -> str:
        calls.append("fetch")
        return "always-bad"

    async with DevServer(auth={"ann": TOKEN}, mechanisms=("XOAUTH2",)) as server:
        config = server.config(timeouts=FAST, credentials=Credentials("ann", token=provider))
        async with transport_for(config) as transport:
            with pytest.raises(AuthenticationError) as caught:
                await transport.send_raw(envelope(), message())
        assert len(calls) == 2
        assert caught.value.reply is not None
        assert caught.value.reply.code == 535
        assert "always-bad" not in str(caught.value)


async def test_token_is_fetched_fresh_for_each_new_connection() -> None:
    calls: list[str] = []

    def provider() -> str:
        calls.append("fetch")
        return TOKEN

    async with DevServer(auth={"ann": TOKEN}, mechanisms=("XOAUTH2",)) as server:
        config = server.config(timeouts=FAST, credentials=Credentials("ann", token=provider))
        async with transport_for(config) as transport:
            await transport.send_raw(envelope(), message())
            await transport.send_raw(envelope(), message())  # reused connection: no fetch
            assert len(calls) == 1
        async with transport_for(config) as transport:
            await transport.send_raw(envelope(), message())
        assert len(calls) == 2


async def test_failing_token_provider_is_an_auth_error_without_its_text() -> None:
    def provider() -> str:
        raise RuntimeError("refresh failed for refresh_token=rt-very-secret")

    async with DevServer(auth=True, mechanisms=("XOAUTH2",)) as server:
        config = server.config(timeouts=FAST, credentials=Credentials("ann", token=provider))
        async with transport_for(config) as transport:
            with pytest.raises(AuthenticationError) as caught:
                await transport.send_raw(envelope(), message())
        assert "RuntimeError" in str(caught.value)
        assert "rt-very-secret" not in str(caught.value)
        assert isinstance(caught.value.__cause__, RuntimeError)


# -- extensions --------------------------------------------------------------------------------


async def test_size_limit_exceeded_sends_nothing() -> None:
    async with DevServer(data_size_limit=1000) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(MessageTooLarge) as caught:
                await transport.send_raw(envelope(), message(body=(b"x" * 70 + b"\r\n") * 30))
            assert caught.value.limit == 1000
            assert caught.value.size is not None
            assert caught.value.size > 1000
            assert "MAIL" not in verbs(server)
            # The connection is still good for a message that fits.
            await transport.send_raw(envelope(), message())
        assert len(server.connections) == 1
        assert any(o.startswith("SIZE=") for o in server.messages[0].mail_options)


async def test_smtputf8_used_when_needed_and_offered() -> None:
    async with DevServer() as server, transport_for(server.config(timeouts=FAST)) as transport:
        await transport.send_raw(envelope("jörg@example.com"), message())
        ascii_only = await transport.send_raw(envelope(), message())
        utf8_header = await transport.send_raw(envelope(), message(subject="Grüße"))
    first, second, third = server.messages
    assert "SMTPUTF8" in first.mail_options
    assert first.rcpt_tos == ("jörg@example.com",)
    assert "SMTPUTF8" not in second.mail_options
    assert "SMTPUTF8" in third.mail_options
    assert "BODY=8BITMIME" in third.mail_options
    assert ascii_only.accepted == ("rcpt@example.com",)
    assert utf8_header.accepted == ("rcpt@example.com",)


async def test_smtputf8_needed_but_absent_sends_nothing() -> None:
    async with DevServer(smtputf8=False) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(ExtensionUnsupported) as caught:
                await transport.send_raw(envelope("jörg@example.com"), message())
        assert "SMTPUTF8" in str(caught.value)
        assert not caught.value.is_transient
        assert "MAIL" not in verbs(server)


async def test_idn_domain_goes_as_a_label_without_smtputf8() -> None:
    async with DevServer(smtputf8=False) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            result = await transport.send_raw(envelope("ann@bücher.example"), message())
        assert server.messages[0].rcpt_tos == ("ann@xn--bcher-kva.example",)
        assert result.accepted == ("ann@bücher.example",)


async def test_8bit_body_uses_8bitmime_and_fails_without_it() -> None:
    body = "Grüße\r\n".encode()
    async with DevServer() as server, transport_for(server.config(timeouts=FAST)) as transport:
        await transport.send_raw(envelope(), message(body=body))
        assert server.messages[0].mail_options[-1] == "BODY=8BITMIME"
        assert "SMTPUTF8" not in server.messages[0].mail_options
        server.set_faults(Hide("8BITMIME"))
        # New EHLO needed to see the change: use a fresh transport.
    async with DevServer(faults=[Hide("8BITMIME")]) as server:
        async with transport_for(server.config(timeouts=FAST)) as transport:
            with pytest.raises(ExtensionUnsupported, match="8BITMIME"):
                await transport.send_raw(envelope(), message(body=body))
        assert "MAIL" not in verbs(server)


# -- secrets -----------------------------------------------------------------------------------


async def test_secrets_absent_from_transcript_logs_and_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpkit.transport")
    plain_payload = base64.b64encode(f"\0ann\0{PASSWORD}".encode()).decode()
    login_password = base64.b64encode(PASSWORD.encode()).decode()
    texts: list[str] = []
    for mechanism in ("PLAIN", "LOGIN", "CRAM-MD5"):
        async with DevServer(auth={"ann": PASSWORD}, mechanisms=(mechanism,)) as server:
            good = server.config(timeouts=FAST, transcript=True)
            bad = server.config(
                timeouts=FAST,
                transcript=True,
                credentials=Credentials("ann", Secret(PASSWORD + "-wrong")),
            )
            async with transport_for(good) as transport:
                result = await transport.send_raw(envelope(), message())
                texts.extend(result.extra["transcript"])
            async with transport_for(bad) as transport:
                with pytest.raises(AuthenticationError) as caught:
                    await transport.send_raw(envelope(), message())
                texts.extend([str(caught.value), repr(caught.value), *caught.value.transcript])
    texts.extend(record.getMessage() for record in caplog.records)
    assert any("AUTH PLAIN ***" in text for text in texts)
    assert any(text.startswith("S: 235") for text in texts)
    assert caplog.records, "DEBUG logging of the conversation is expected"
    joined = "\n".join(texts)
    for secret in (PASSWORD, plain_payload, login_password):
        assert secret not in joined
