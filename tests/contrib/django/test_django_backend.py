"""smtpkit.contrib.django.EmailBackend: Django's mail API over smtpkit, against the DevServer.

Django is configured once by this directory's ``conftest.py``; each test points the backend
at a server with ``override_settings``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from email.mime.base import MIMEBase
from email.mime.image import MIMEImage
from typing import Any

import pytest

pytest.importorskip("django", reason="Django is not installed (smtpkit[django])")

from django.core import mail
from django.core.mail import (
    EmailMessage,
    EmailMultiAlternatives,
    get_connection,
    mail_admins,
    mail_managers,
    send_mail,
    send_mass_mail,
)
from django.test import override_settings

from smtpkit._config import RetryPolicy, SMTPConfig, TLSMode
from smtpkit._exceptions import (
    AuthenticationError,
    ConfigError,
    ConnectError,
    InvalidHeader,
    RecipientsRefused,
    TLSError,
)
from smtpkit._replies import SendResult
from smtpkit.contrib.django import EmailBackend, message_failed, message_sent
from smtpkit.devserver import DevServer
from smtpkit.testing import Respond

ServerFactory = Callable[..., DevServer]
NO_RETRY = {"retry": RetryPolicy(retries=0)}
PASSWORD = "hunter2-Pa55word"


@pytest.fixture(scope="module")
def shared() -> Iterator[DevServer]:
    with DevServer(tls="starttls") as server:
        yield server


@pytest.fixture
def server(shared: DevServer) -> Iterator[DevServer]:
    """A STARTTLS server with nothing captured, no faults; ``SMTPKIT_DSN`` points to it."""
    shared.wait_idle()
    shared.set_faults()
    shared.clear()
    with override_settings(SMTPKIT_DSN=shared.dsn, SMTPKIT_OPTIONS=NO_RETRY):
        yield shared
    shared.wait_idle()


def _email_settings(server: DevServer, **extra: Any) -> override_settings:
    """Django's EMAIL_* settings for ``server`` (and its CA), without SMTPKIT_DSN."""
    values: dict[str, Any] = {
        "SMTPKIT_DSN": None,
        "EMAIL_HOST": server.host,
        "EMAIL_PORT": server.port,
        "SMTPKIT_CA_FILE": server.ca_file,
        "SMTPKIT_OPTIONS": NO_RETRY,
    }
    values.update(extra)
    return override_settings(**values)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --------------------------------------------------------------------------- the mail API


def test_send_mail_returns_one_and_delivers_over_verified_tls(server: DevServer) -> None:
    sent = send_mail(
        "Welcome", "Hello Ann,\nwelcome aboard.", "Site <site@example.com>", ["ann@example.com"]
    )

    assert sent == 1
    (captured,) = server.wait_for(1)
    assert captured.subject == "Welcome"
    assert captured.text is not None
    assert captured.text.replace("\r\n", "\n").rstrip("\n") == "Hello Ann,\nwelcome aboard."
    assert captured.mail_from == "site@example.com"
    assert captured.rcpt_tos == ("ann@example.com",)
    assert captured.tls is True


def test_send_mass_mail_sends_every_message_over_one_connection(server: DevServer) -> None:
    datatuples = [
        (f"Note {i}", f"Body {i}", "site@example.com", [f"user{i}@example.com"]) for i in range(3)
    ]

    assert send_mass_mail(datatuples) == 3

    captured = server.wait_for(3)
    assert sorted(m.subject or "" for m in captured) == ["Note 0", "Note 1", "Note 2"]
    server.wait_idle()
    assert len(server.connections) == 1


def test_mail_admins_and_mail_managers_use_the_settings(server: DevServer) -> None:
    mail_admins("Server error", "Traceback ...", html_message="<p>Traceback ...</p>")
    mail_managers("Broken link", "/old-page")

    admins, managers = server.wait_for(2)
    assert admins.rcpt_tos == ("ann@example.com", "bob@example.com")
    assert admins.subject == "[Django] Server error"
    assert admins.mail_from == "errors@example.com"
    assert (admins.html or "").strip() == "<p>Traceback ...</p>"
    assert managers.rcpt_tos == ("meg@example.com",)


def test_multi_alternatives_with_attachments_cc_bcc_reply_to_and_headers(
    server: DevServer,
) -> None:
    pdf = MIMEBase("application", "pdf")
    pdf.set_payload(b"%PDF-1.7 fake")
    pdf.add_header("Content-Disposition", "attachment", filename="invoice.pdf")
    from email import encoders

    encoders.encode_base64(pdf)
    message = EmailMultiAlternatives(
        subject="Your order",
        body="Plain text version",
        from_email="Shop <shop@example.com>",
        to=["Ann <ann@example.com>"],
        cc=["carl@example.com"],
        bcc=["audit@example.com"],
        reply_to=["Support <support@example.com>"],
        headers={"X-Order-Id": "12345", "Message-ID": "<order-12345@shop.example.com>"},
    )
    message.attach_alternative("<h1>Your order</h1>", "text/html")
    message.attach("notes.txt", "ASCII notes", "text/plain")
    message.attach(pdf)

    assert message.send() == 1

    (captured,) = server.wait_for(1)
    assert set(captured.rcpt_tos) == {"ann@example.com", "carl@example.com", "audit@example.com"}
    assert b"audit@example.com" not in captured.data
    assert b"Bcc" not in captured.data
    assert captured.header("Cc") == "carl@example.com"
    assert captured.header("Reply-To") == "Support <support@example.com>"
    assert captured.header("X-Order-Id") == "12345"
    assert captured.header("Message-ID") == "<order-12345@shop.example.com>"
    assert captured.text is not None
    assert "Plain text version" in captured.text
    assert (captured.html or "").strip() == "<h1>Your order</h1>"
    names = {part.get_filename(): part.get_payload(decode=True) for part in captured.attachments}
    assert names == {"notes.txt": b"ASCII notes", "invoice.pdf": b"%PDF-1.7 fake"}
    result = message.smtpkit_result
    assert isinstance(result, SendResult)
    assert result.message_id == "<order-12345@shop.example.com>"
    assert set(result.accepted) == set(captured.rcpt_tos)


def test_html_content_subtype_gets_a_text_alternative(server: DevServer) -> None:
    message = EmailMessage("Hi", "<p>Hello <b>Ann</b></p>", "site@example.com", ["a@example.com"])
    message.content_subtype = "html"

    assert message.send() == 1

    (captured,) = server.wait_for(1)
    assert (captured.html or "").strip() == "<p>Hello <b>Ann</b></p>"
    assert captured.text is not None
    assert "Hello" in captured.text


def test_inline_image_with_content_id_goes_in_multipart_related(server: DevServer) -> None:
    image = MIMEImage(b"\x89PNG\r\n\x1a\nfake", "png")
    image.add_header("Content-ID", "<logo>")
    image.add_header("Content-Disposition", "inline")
    message = EmailMultiAlternatives("Logo", "text", "site@example.com", ["a@example.com"])
    message.attach_alternative('<img src="cid:logo">', "text/html")
    message.attach(image)

    assert message.send() == 1

    (captured,) = server.wait_for(1)
    assert b"multipart/related" in captured.data
    assert b"Content-ID: <logo>" in captured.data


def test_what_smtpkit_cannot_express_is_sent_as_django_serialises_it(server: DevServer) -> None:
    message = EmailMultiAlternatives(
        "Markdown", "plain", "site@example.com", ["a@example.com"], bcc=["hidden@example.com"]
    )
    message.attach_alternative("# Markdown", "text/markdown")
    message.encoding = "iso-8859-1"

    assert message.send() == 1

    (captured,) = server.wait_for(1)
    assert b"text/markdown" in captured.data
    assert b'charset="iso-8859-1"' in captured.data
    assert b"hidden@example.com" not in captured.data
    assert set(captured.rcpt_tos) == {"a@example.com", "hidden@example.com"}
    assert message.smtpkit_result.message_id == captured.header("Message-ID")


def test_message_without_recipients_is_skipped(server: DevServer) -> None:
    backend = EmailBackend()
    assert backend.send_messages([EmailMessage("x", "y", "site@example.com", [])]) == 0
    assert backend.send_messages([]) == 0
    assert server.messages == []


# --------------------------------------------------------------------------- connections


def test_open_close_reuses_one_connection(server: DevServer) -> None:
    connection = get_connection()
    assert connection.open() is True
    assert connection.open() is False
    for i in range(2):
        message = EmailMessage(f"m{i}", "body", "site@example.com", ["a@example.com"])
        message.connection = connection
        assert message.send() == 1
    assert connection.connection is not None
    connection.close()
    connection.close()  # twice is fine
    assert connection.connection is None

    server.wait_for(2)
    server.wait_idle()
    assert len(server.connections) == 1


def test_context_manager_and_send_messages_close_after_the_batch(server: DevServer) -> None:
    with get_connection() as connection:
        messages = [EmailMessage("a", "b", "site@example.com", ["a@example.com"])] * 2
        assert connection.send_messages(messages) == 2
        assert connection.connection is not None
    assert connection.connection is None

    backend = EmailBackend()
    assert backend.send_messages([EmailMessage("c", "d", "site@example.com", ["a@example.com"])])
    assert backend.connection is None  # opened and closed around the batch
    server.wait_for(3)
    server.wait_idle()
    assert len(server.connections) == 2


# --------------------------------------------------------------------------- failures


def test_refused_recipient_raises_unless_fail_silently(server: DevServer) -> None:
    server.set_faults(Respond("RCPT", 550, "5.1.1 No such user"))

    with pytest.raises(RecipientsRefused) as caught:
        send_mail("s", "b", "site@example.com", ["nobody@example.com"])
    assert "nobody@example.com" in caught.value.rejected

    assert send_mail("s", "b", "site@example.com", ["nobody@example.com"], fail_silently=True) == 0
    assert server.messages == []


def test_partial_refusal_counts_as_sent_and_is_in_the_result(server: DevServer) -> None:
    server.set_faults(Respond("RCPT", 550, "5.1.1 No such user", match="bob@example.com"))
    message = EmailMessage("s", "b", "site@example.com", ["ann@example.com", "bob@example.com"])

    assert message.send() == 1

    (captured,) = server.wait_for(1)
    assert captured.rcpt_tos == ("ann@example.com",)
    assert list(message.smtpkit_result.rejected) == ["bob@example.com"]
    assert message.smtpkit_result.rejected["bob@example.com"].code == 550


def test_unreachable_server_returns_zero_silently_or_raises_connect_error() -> None:
    dsn = f"smtp://127.0.0.1:{_closed_port()}?tls=none"
    with override_settings(SMTPKIT_DSN=dsn, SMTPKIT_OPTIONS=NO_RETRY):
        assert send_mail("s", "b", "site@example.com", ["a@example.com"], fail_silently=True) == 0
        with pytest.raises(ConnectError):
            send_mail("s", "b", "site@example.com", ["a@example.com"])


def test_header_injection_is_refused_before_anything_is_sent(server: DevServer) -> None:
    message = EmailMessage(
        "s", "b", "site@example.com", ["a@example.com"], headers={"X-Tag": "a\r\nBcc: x@evil.test"}
    )
    with pytest.raises(InvalidHeader):
        message.send()
    message.connection = None  # send() keeps the connection it made, with its fail_silently
    assert message.send(fail_silently=True) == 0
    assert server.messages == []


def test_signals_and_result_attribute(server: DevServer) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def on_sent(sender: type, **kwargs: Any) -> None:
        seen.append(("sent", {"sender": sender, **kwargs}))

    def on_failed(sender: type, **kwargs: Any) -> None:
        seen.append(("failed", {"sender": sender, **kwargs}))

    def broken(sender: type, **kwargs: Any) -> None:
        raise RuntimeError("a receiver bug must not turn a sent message into a failure")

    message_sent.connect(on_sent, sender=EmailBackend)
    message_sent.connect(broken, sender=EmailBackend)
    message_failed.connect(on_failed, sender=EmailBackend)
    try:
        good = EmailMessage("ok", "b", "site@example.com", ["a@example.com"])
        assert good.send() == 1
        server.set_faults(Respond("RCPT", 550, "5.1.1 No such user"))
        bad = EmailMessage("no", "b", "site@example.com", ["z@example.com"])
        assert bad.send(fail_silently=True) == 0
    finally:
        message_sent.disconnect(on_sent, sender=EmailBackend)
        message_sent.disconnect(broken, sender=EmailBackend)
        message_failed.disconnect(on_failed, sender=EmailBackend)

    # The broken receiver was logged; Django's default logging mailed that error to ADMINS
    # through this backend, without emitting the signals again (no loop).
    (kind1, sent), (kind2, failed) = seen
    assert (kind1, kind2) == ("sent", "failed")
    assert sent["sender"] is EmailBackend
    assert sent["message"] is good
    assert sent["result"] is good.smtpkit_result
    assert sent["result"].accepted == ("a@example.com",)
    assert failed["message"] is bad
    assert isinstance(failed["error"], RecipientsRefused)
    assert bad.smtpkit_result is None


# --------------------------------------------------------------------------- settings


def test_email_settings_map_to_starttls_with_auth(smtp_server_factory: ServerFactory) -> None:
    server = smtp_server_factory(tls="starttls", auth={"app": PASSWORD}, require_auth=True)
    with _email_settings(
        server, EMAIL_USE_TLS=True, EMAIL_HOST_USER="app", EMAIL_HOST_PASSWORD=PASSWORD
    ):
        backend = EmailBackend()
        assert isinstance(backend.config, SMTPConfig)
        assert backend.config.tls is TLSMode.STARTTLS
        assert send_mail("s", "b", "site@example.com", ["a@example.com"]) == 1
    (captured,) = server.wait_for(1)
    assert captured.tls is True
    assert captured.auth_login == "app"


def test_email_use_ssl_is_implicit_tls(smtp_server_factory: ServerFactory) -> None:
    server = smtp_server_factory(tls="implicit")
    with _email_settings(server, EMAIL_USE_SSL=True, EMAIL_TIMEOUT=5):
        backend = EmailBackend()
        assert backend.config.tls is TLSMode.IMPLICIT
        assert backend.config.timeouts.command == 5.0
        assert send_mail("s", "b", "site@example.com", ["a@example.com"]) == 1
    assert server.wait_for(1)[0].tls is True


def test_neither_tls_flag_still_requires_starttls(smtp_server_factory: ServerFactory) -> None:
    server = smtp_server_factory(tls="none")
    with _email_settings(server, EMAIL_USE_TLS=False, EMAIL_USE_SSL=False):
        with pytest.raises(TLSError) as caught:
            send_mail("s", "b", "site@example.com", ["a@example.com"])
        assert caught.value.hint is not None
        assert "SMTPKIT_TLS" in caught.value.hint
        assert "SMTPKIT_TLS" in str(caught.value)
    assert server.messages == []

    with _email_settings(server, SMTPKIT_TLS="none"):
        assert send_mail("s", "b", "site@example.com", ["a@example.com"]) == 1
    assert server.wait_for(1)[0].tls is False


def test_constructor_arguments_override_settings(smtp_server_factory: ServerFactory) -> None:
    server = smtp_server_factory(tls="starttls", auth={"app": PASSWORD}, require_auth=True)
    wrong = {"EMAIL_PORT": _closed_port(), "EMAIL_HOST_USER": "", "EMAIL_HOST_PASSWORD": ""}
    with _email_settings(server, **wrong):
        connection = get_connection(
            port=server.port, use_tls=True, username="app", password=PASSWORD
        )
        sent = send_mail("s", "b", "site@example.com", ["a@example.com"], connection=connection)
        assert sent == 1
    with _email_settings(server, EMAIL_USE_TLS=True):
        sent = send_mail(
            "s", "b", "site@example.com", ["a@example.com"], auth_user="app", auth_password=PASSWORD
        )
        assert sent == 1
    assert [m.auth_login for m in server.wait_for(2)] == ["app", "app"]


def test_dsn_takes_precedence_over_email_settings(server: DevServer) -> None:
    with override_settings(EMAIL_HOST="unreachable.invalid", EMAIL_PORT=1, EMAIL_USE_SSL=True):
        assert send_mail("s", "b", "site@example.com", ["a@example.com"]) == 1
    server.wait_for(1)


def test_mailers_setting_configures_from_options_only(server: DevServer) -> None:
    # Django 6.1's MAILERS hands the backend its OPTIONS as keyword arguments; the EMAIL_*
    # settings (deprecated there) are not read.
    with override_settings(MAILERS={"default": {}}, SMTPKIT_DSN=None, EMAIL_HOST="bad.invalid"):
        with pytest.raises(ConfigError, match="host="):
            EmailBackend()
        backend = EmailBackend(dsn=server.dsn)
        message = EmailMessage("s", "b", "site@example.com", ["a@example.com"])
        assert backend.send_messages([message]) == 1
    server.wait_for(1)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"EMAIL_USE_TLS": True, "EMAIL_USE_SSL": True}, "mutually exclusive"),
        ({"EMAIL_PORT": 465}, "EMAIL_USE_SSL = True"),
        ({"EMAIL_PORT": 587, "EMAIL_USE_SSL": True}, "EMAIL_USE_TLS = True"),
        ({"SMTPKIT_TLS": "sometimes"}, "unknown TLS mode"),
        ({"EMAIL_USE_SSL": True, "SMTPKIT_TLS": "none"}, "contradicts"),
        ({"SMTPKIT_OPTIONS": {"verfy": False}}, "unknown option"),
        ({"EMAIL_SSL_KEYFILE": "/nonexistent/key.pem"}, "client_key"),
    ],
)
def test_bad_settings_are_config_errors_at_get_connection(
    server: DevServer, extra: dict[str, Any], match: str
) -> None:
    with _email_settings(server, **extra), pytest.raises(ConfigError, match=match):
        get_connection(fail_silently=True)


def test_smtpkit_options_reach_the_config(server: DevServer) -> None:
    with override_settings(SMTPKIT_OPTIONS={"transcript": True, "local_hostname": "app.test"}):
        backend = EmailBackend()
    assert isinstance(backend.config, SMTPConfig)
    assert backend.config.transcript is True
    assert backend.config.local_hostname == "app.test"


def test_password_never_appears_in_reprs_or_errors(smtp_server_factory: ServerFactory) -> None:
    server = smtp_server_factory(tls="starttls", auth={"app": "the-right-one"})
    with _email_settings(
        server, EMAIL_USE_TLS=True, EMAIL_HOST_USER="app", EMAIL_HOST_PASSWORD=PASSWORD
    ):
        backend = EmailBackend()
        texts = [repr(backend), str(backend), repr(vars(backend)), repr(backend.config)]
        assert backend.open() is True
        texts.append(repr(backend))
        with pytest.raises(AuthenticationError) as caught:
            backend.send_messages([EmailMessage("s", "b", "site@example.com", ["a@example.com"])])
        backend.close()
        texts += [str(caught.value), repr(caught.value), repr(caught.value.transcript)]
    with _email_settings(
        server, SMTPKIT_TLS="none", EMAIL_HOST_USER="app", EMAIL_HOST_PASSWORD=PASSWORD
    ):
        with pytest.raises(ConfigError) as config_error:
            EmailBackend()
        texts.append(str(config_error.value))
    assert "allow_insecure_auth" in texts[-1]
    assert "***" in texts[0]
    for text in texts:
        assert PASSWORD not in text
    assert not hasattr(backend, "password")


def test_django_outbox_is_untouched(server: DevServer) -> None:
    # The backend sends for real; Django's locmem outbox is only for its own test backend.
    assert send_mail("s", "b", "site@example.com", ["a@example.com"]) == 1
    assert getattr(mail, "outbox", []) == []
    server.wait_for(1)
