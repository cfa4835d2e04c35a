"""The mailers end to end against real servers on loopback: the full stack, as users call it."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from smtpkit import (
    AsyncMailer,
    Attachment,
    AuthenticationError,
    Credentials,
    DeliveryUnknown,
    Hooks,
    Mailer,
    MemoryTransport,
    Message,
    PoolLimits,
    RecipientsRefused,
    RetryPolicy,
    SendResult,
    SMTPConfig,
    Templates,
)
from smtpkit.devserver import DevServer
from smtpkit.testing import Drop, Respond, assert_nothing_sent, assert_sent, sent_messages

FAST = RetryPolicy(retries=2, initial_backoff=0.01, max_backoff=0.05, max_elapsed=10.0)
SECRET = "s3cr3t-P@ss/word"


def message(n: int = 0, **kw: object) -> Message:
    fields: dict[str, object] = {
        "sender": "Shop <shop@example.com>",
        "to": [f"customer{n}@example.com"],
        "subject": f"Receipt {n}",
        "text": f"Thanks for order {n}.",
        "html": f"<p>Thanks for order <b>{n}</b>.</p>",
    }
    fields.update(kw)
    return Message(**fields)  # type: ignore[arg-type]


async def test_greylisted_recipient_is_delivered_on_retry(
    smtp_server_factory: Callable[..., DevServer],
) -> None:
    server = smtp_server_factory(
        tls="starttls",
        auth={"user": SECRET},
        faults=[Respond("RCPT", 450, "4.7.1 Greylisted, try again", times=1)],
    )
    async with AsyncMailer(server.config(), retry=FAST) as mailer:
        result = await mailer.send(message())
    assert result.attempts == 2
    assert result.accepted == ("customer0@example.com",)
    (captured,) = server.wait_for(1)
    assert captured.tls
    assert captured.auth_login == "user"
    assert captured.subject == "Receipt 0"


async def test_a_dropped_connection_after_the_dot_is_reported_not_resent(
    smtp_server_factory: Callable[..., DevServer],
) -> None:
    server = smtp_server_factory(tls="none", faults=[Drop("DATA_END", times=1)])
    async with AsyncMailer(server.config(), retry=FAST) as mailer:
        with pytest.raises(DeliveryUnknown) as info:
            await mailer.send(message())
    assert info.value.is_transient
    assert info.value.attempts == 1
    server.wait_idle()
    # The server holds one copy (unacknowledged); smtpkit did not send a second.
    assert len(server.messages) == 1


async def test_send_many_over_a_pool_delivers_each_message_once(
    smtp_server_factory: Callable[..., DevServer],
) -> None:
    server = smtp_server_factory(tls="starttls", auth={"user": SECRET})
    config = server.config(pool=PoolLimits(max_connections=3))
    async with AsyncMailer(config) as mailer:
        outcomes = await mailer.send_many([message(n) for n in range(12)], concurrency=3)
    assert all(isinstance(o, SendResult) for o in outcomes)
    subjects = sorted(m.subject or "" for m in server.wait_for(12))
    assert subjects == sorted(f"Receipt {n}" for n in range(12))
    assert 1 <= len(server.connections) <= 3


def test_sync_mailer_reuses_its_connection_across_calls(
    smtp_server_factory: Callable[..., DevServer],
) -> None:
    server = smtp_server_factory(tls="implicit", auth={"user": SECRET})
    with Mailer(server.config()) as mailer:
        first = mailer.send(message(1))
        second = mailer.send(message(2, attachments=[Attachment("r.pdf", b"%PDF-1.4 fake")]))
    assert first.accepted == ("customer1@example.com",)
    assert second.message_id is not None
    captured = server.wait_for(2)
    assert len(server.connections) == 1
    assert captured[1].parsed.get_content_type() == "multipart/mixed"


def test_partial_refusal_is_data_and_can_be_raised(
    smtp_server_factory: Callable[..., DevServer],
) -> None:
    server = smtp_server_factory(
        tls="none", faults=[Respond("RCPT", 550, "5.1.1 No such user", match="bad@")]
    )
    with Mailer(server.config()) as mailer:
        result = mailer.send(message(to=["good@example.com", "bad@example.com"]))
    assert result.accepted == ("good@example.com",)
    reply = result.rejected["bad@example.com"]
    assert (reply.code, reply.enhanced_code, reply.text) == (550, "5.1.1", "No such user")
    with pytest.raises(RecipientsRefused) as info:
        result.raise_for_rejections()
    assert set(info.value.rejected) == {"bad@example.com"}
    (captured,) = server.wait_for(1)
    assert captured.rcpt_tos == ("good@example.com",)


def test_templates_render_into_a_real_send(
    smtp_server_factory: Callable[..., DevServer], tmp_path: Path
) -> None:
    (tmp_path / "reset.subject.txt").write_text("Reset your password, {{ name }}")
    (tmp_path / "reset.html").write_text('<p>Hi {{ name }}, <a href="{{ url }}">reset it</a>.</p>')
    templates = Templates(tmp_path)
    server = smtp_server_factory(tls="starttls", auth={"user": SECRET})
    msg = templates.message(
        "reset",
        {"name": "<Ann>", "url": "https://app.example.com/r?t=1"},
        sender="app@example.com",
        to=["ann@example.com"],
    )
    with Mailer(server.config()) as mailer:
        mailer.send(msg)
    (captured,) = server.wait_for(1)
    assert captured.subject == "Reset your password, <Ann>"
    assert "&lt;Ann&gt;" in (captured.html or "")
    assert "reset it (https://app.example.com/r?t=1)" in (captured.text or "")


def test_wrong_password_fails_with_a_classified_error_and_no_secret_anywhere(
    smtp_server_factory: Callable[..., DevServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = smtp_server_factory(tls="starttls", auth={"user": "right-password"})
    config = server.config(transcript=True, credentials=Credentials("user", password=SECRET))
    caplog.set_level(logging.DEBUG, logger="smtpkit")
    with Mailer(config, retry=FAST) as mailer:
        with pytest.raises(AuthenticationError) as info:
            mailer.send(message())
        text = repr(mailer) + repr(config) + str(config)
    error = info.value
    assert error.stage == "auth"
    assert error.reply is not None
    assert error.reply.code == 535
    assert not error.is_transient
    assert error.attempts == 1
    everything = "\n".join(
        [text, str(error), repr(error), *error.transcript, caplog.text, *map(str, error.args)]
    )
    assert error.transcript  # a transcript was asked for, and it is there, redacted
    assert SECRET not in everything
    assert base64.b64encode(f"\0user\0{SECRET}".encode()).decode() not in everything
    assert_nothing_received(server)


def assert_nothing_received(server: DevServer) -> None:
    assert server.messages == []
    assert not any(c.verb in {"MAIL", "RCPT", "DATA"} for c in server.commands)


async def test_hooks_and_memory_transport_assertions() -> None:
    transport = MemoryTransport(refuse=["blocked@example.com"])
    stamped: list[str] = []

    def stamp(m: Message) -> Message:
        return m.replace(headers={"X-Campaign": "receipts"})

    hooks = Hooks(before_send=(stamp,), sent=(lambda r: stamped.append(r.message_id or ""),))
    async with AsyncMailer(transport, hooks=hooks) as mailer:
        assert_nothing_sent(transport)
        result = await mailer.send(message(1, cc=["blocked@example.com"]))
    (sent,) = assert_sent(transport, to="customer1@example.com", text_contains="order 1")
    assert sent.header("X-Campaign") == "receipts"
    assert stamped == [result.message_id]
    assert set(result.rejected) == {"blocked@example.com"}
    assert sent_messages(transport, subject="nope") == []
    with pytest.raises(AssertionError, match="expected 2 message"):
        assert_sent(transport, count=2)


def test_from_dsn_builds_a_working_mailer(smtp_server_factory: Callable[..., DevServer]) -> None:
    server = smtp_server_factory(tls="starttls", auth={"user": SECRET})
    with Mailer.from_dsn(server.dsn) as mailer:
        result = mailer.send(message())
        assert SECRET not in repr(mailer)
    assert result.accepted == ("customer0@example.com",)


def test_failover_dsn_uses_the_second_server_when_the_first_is_down(
    smtp_server_factory: Callable[..., DevServer],
) -> None:
    down = smtp_server_factory(tls="none")
    up = smtp_server_factory(tls="none")
    down_dsn = down.dsn
    down.stop()
    with Mailer.from_dsn(f"failover({down_dsn} {up.dsn})", retry=RetryPolicy(retries=0)) as m:
        result = m.send(message())
    assert result.accepted == ("customer0@example.com",)
    assert len(up.wait_for(1)) == 1


def test_from_env_reads_the_dsn(smtp_server_factory: Callable[..., DevServer]) -> None:
    server = smtp_server_factory(tls="none")
    with Mailer.from_env({"SMTPKIT_DSN": server.dsn}) as mailer:
        mailer.send(message())
    assert len(server.wait_for(1)) == 1
    assert isinstance(SMTPConfig.from_dsn(server.dsn), SMTPConfig)


def test_a_greylisted_recipient_among_accepted_ones_is_retried_alone(
    smtp_server_factory: Callable[..., DevServer],
) -> None:
    server = smtp_server_factory(
        tls="none",
        faults=[Respond("RCPT", 450, "4.7.1 Greylisted, try again", match="slow@", times=1)],
    )
    with Mailer(server.config(), retry=FAST) as mailer:
        result = mailer.send(message(to=["fast@example.com", "slow@example.com"]))
    assert result.attempts == 2
    assert result.accepted == ("fast@example.com", "slow@example.com")
    assert result.rejected == {}
    first, second = server.wait_for(2)
    # The accepted recipient got exactly one copy; the retry went to the greylisted one only.
    assert first.rcpt_tos == ("fast@example.com",)
    assert second.rcpt_tos == ("slow@example.com",)
    assert first.parsed["Message-ID"] == second.parsed["Message-ID"] == result.message_id


def test_a_recipient_still_greylisted_after_all_retries_is_reported_refused(
    smtp_server_factory: Callable[..., DevServer],
) -> None:
    server = smtp_server_factory(
        tls="none", faults=[Respond("RCPT", 451, "4.7.1 Still greylisted", match="slow@")]
    )
    with Mailer(server.config(), retry=FAST) as mailer:
        result = mailer.send(message(to=["fast@example.com", "slow@example.com"]))
    assert result.accepted == ("fast@example.com",)
    assert result.rejected["slow@example.com"].code == 451
    assert result.attempts == 3
    assert len(server.wait_for(1)) == 1
    assert [m.rcpt_tos for m in server.messages] == [("fast@example.com",)]


def test_a_later_permanent_refusal_does_not_fail_a_delivered_message(
    smtp_server_factory: Callable[..., DevServer],
) -> None:
    holder: list[DevServer] = []

    def refuse_further_mail(captured: object) -> None:
        # Once the first copy is stored, the server refuses any further transaction.
        holder[0].set_faults(Respond("MAIL", 550, "5.7.1 Go away"))

    server = smtp_server_factory(
        tls="none",
        faults=[Respond("RCPT", 450, "4.7.1 Greylisted", match="slow@", times=1)],
        on_message=refuse_further_mail,
    )
    holder.append(server)
    delivered: list[SendResult] = []
    with Mailer(server.config(), retry=FAST, hooks=Hooks(sent=(delivered.append,))) as mailer:
        result = mailer.send(message(to=["fast@example.com", "slow@example.com"]))
    assert result.accepted == ("fast@example.com",)
    assert result.rejected["slow@example.com"].code == 550
    assert delivered == [result]
    assert len(server.messages) == 1
