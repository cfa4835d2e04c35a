"""The development server, exercised with the standard library's smtplib and ssl as the client."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

import smtpkit
from smtpkit.devserver import (
    BadCertificate,
    CapturedMessage,
    Close,
    DevServer,
    Drop,
    Greeting,
    Hang,
    Hide,
    ReadData,
    Respond,
    ScriptedServer,
    ScriptedSession,
    StartTLS,
)

Factory = Callable[..., DevServer]
ContextFor = Callable[[DevServer | ScriptedServer], ssl.SSLContext]

# A dropped connection shows up as a clean EOF or as a reset, depending on unread data.
DISCONNECTED = (smtplib.SMTPServerDisconnected, ConnectionError, ssl.SSLError)
# smtplib reports a read timeout as a disconnection (and closes the socket).
TIMED_OUT = (TimeoutError, smtplib.SMTPServerDisconnected)
MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Hello\r\n\r\nHi there.\r\n"


def connect(server: DevServer, *, timeout: float = 5.0) -> smtplib.SMTP:
    """A plaintext smtplib client that has sent EHLO."""
    client = smtplib.SMTP(server.host, server.port, timeout=timeout)
    client.ehlo()
    return client


def connect_tls(server: DevServer, *, timeout: float = 5.0) -> smtplib.SMTP:
    """A client after STARTTLS (with certificate and host name checks) and a second EHLO."""
    client = connect(server, timeout=timeout)
    client.starttls(context=ssl.create_default_context(cafile=server.ca_file))
    client.ehlo()
    return client


def extensions(client: smtplib.SMTP) -> set[str]:
    """The EHLO keywords the client saw."""
    return {name.upper() for name in client.esmtp_features}


@pytest.fixture
def auth_server(smtp_server_factory: Factory) -> DevServer:
    """STARTTLS, every mechanism, one user."""
    return smtp_server_factory(
        auth={"ann": "s3cret"}, mechanisms=("PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "OAUTHBEARER")
    )


# ---------------------------------------------------------------------------------------------
# Life cycle
# ---------------------------------------------------------------------------------------------


def test_port_zero_binds_a_real_free_port() -> None:
    with DevServer() as first, DevServer() as second:
        assert first.port > 0
        assert second.port > 0
        assert first.port != second.port
        with socket.create_connection((first.host, first.port), timeout=5) as sock:
            assert sock.recv(100).startswith(b"220 ")


def test_port_and_ca_file_need_a_running_server() -> None:
    server = DevServer()
    with pytest.raises(RuntimeError, match="start"):
        _ = server.port
    with pytest.raises(RuntimeError, match="start"):
        _ = server.ca_file


def test_stop_is_clean_idempotent_and_removes_the_ca_file() -> None:
    before = set(threading.enumerate())
    server = DevServer(faults=[Hang("MAIL")]).start()
    ca_file = Path(server.ca_file)
    assert ca_file.read_bytes() == server.ca_pem
    assert server.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    # A client stuck in a hanging command must not delay the stop.
    client = connect(server)
    client.sock.sendall(b"MAIL FROM:<a@example.com>\r\n")  # type: ignore[union-attr]
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3
    server.stop()
    client.close()
    assert not ca_file.exists()
    assert set(threading.enumerate()) <= before
    assert not server.running


def test_can_restart_after_stop() -> None:
    server = DevServer()
    with server:
        first = server.port
    with server, connect(server) as client:
        assert client.noop()[0] == 250
    assert first > 0


def test_start_twice_is_an_error() -> None:
    with DevServer() as server, pytest.raises(RuntimeError, match="already"):
        server.start()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tls": "ssl"}, "tls must be"),
        ({"mechanisms": ("GSSAPI",)}, "unsupported AUTH"),
        ({"auth": True, "tls": "none"}, "auth_require_tls=False"),
        ({"require_auth": True}, "needs auth"),
        ({"auth": {}}, "at least one user"),
        ({"data_size_limit": 0}, "positive"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DevServer(**kwargs)  # type: ignore[arg-type]


async def test_async_context_manager() -> None:
    async with DevServer() as server:
        assert server.running
        port = server.port
    assert port > 0
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.port


def test_smtp_server_fixture_has_starttls_and_auth(smtp_server: DevServer) -> None:
    with connect(smtp_server) as client:
        assert "starttls" in client.esmtp_features
        assert "auth" not in client.esmtp_features  # not before TLS
        client.starttls(context=ssl.create_default_context(cafile=smtp_server.ca_file))
        client.ehlo()
        client.login("user", "pass")
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert smtp_server.wait_for(1)[0].auth_login == "user"
    assert smtp_server.credentials == ("user", "pass")


# ---------------------------------------------------------------------------------------------
# Capture
# ---------------------------------------------------------------------------------------------


def test_captures_the_exact_bytes_and_envelope(plain_server: DevServer) -> None:
    data = b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\nend\r\n"
    with connect(plain_server) as client:
        client.sendmail(
            "Sender@Example.com",
            ["one@example.com", "two@example.org"],
            data,
            mail_options=["BODY=8BITMIME"],
        )
    [message] = plain_server.messages
    assert message.data == data  # smtplib stuffed the dots, the server removed them
    assert message.mail_from == "Sender@Example.com"
    assert message.rcpt_tos == ("one@example.com", "two@example.org")
    assert "BODY=8BITMIME" in message.mail_options
    assert any(option.startswith("SIZE=") for option in message.mail_options) is False
    assert message.tls is False
    assert message.auth_login is None
    assert message.acknowledged is True
    assert message.peer.startswith("127.0.0.1:")
    assert re.fullmatch(r"[0-9A-F]{12}", message.queue_id)


def test_final_reply_carries_the_queue_id(plain_server: DevServer) -> None:
    with connect(plain_server) as client:
        client.mail("a@example.com")
        client.rcpt("b@example.com")
        code, text = client.data(MESSAGE)
    assert code == 250
    assert text.decode() == f"2.0.0 Ok: queued as {plain_server.messages[0].queue_id}"


def test_null_sender_is_an_empty_string(plain_server: DevServer) -> None:
    with connect(plain_server) as client:
        client.sendmail("<>", ["b@example.com"], MESSAGE)
    assert plain_server.messages[0].mail_from == ""


def test_parsed_subject_text_and_html(plain_server: DevServer) -> None:
    message = EmailMessage()
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message["Subject"] = "Grüße"
    message.set_content("plain body\n")
    message.add_alternative("<p>html body</p>\n", subtype="html")
    with connect(plain_server) as client:
        client.send_message(message)
    captured = plain_server.wait_for(1)[0]
    assert captured.subject == "Grüße"
    assert captured.text == "plain body\n"
    assert captured.html == "<p>html body</p>\n"
    assert captured.parsed["To"] == "b@example.com"


def test_text_and_html_are_none_when_absent(plain_server: DevServer) -> None:
    with connect(plain_server) as client:
        client.sendmail("a@example.com", ["b@example.com"], b"X-Empty: 1\r\n\r\n")
    captured = plain_server.messages[0]
    assert captured.subject is None
    assert captured.html is None


def test_smtputf8_address_is_accepted(plain_server: DevServer) -> None:
    with connect(plain_server) as client:
        assert "smtputf8" in client.esmtp_features
        client.sendmail("jörg@example.com", ["ü@example.org"], MESSAGE, mail_options=["SMTPUTF8"])
    captured = plain_server.messages[0]
    assert captured.mail_from == "jörg@example.com"
    assert captured.rcpt_tos == ("ü@example.org",)


def test_maildir_gets_one_eml_file_per_message(
    smtp_server_factory: Factory, tmp_path: Path
) -> None:
    maildir = tmp_path / "mail" / "new"
    server = smtp_server_factory(tls="none", maildir=maildir)
    with connect(server) as client:
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        client.sendmail("a@example.com", ["c@example.com"], MESSAGE.replace(b"Hello", b"Two"))
    files = sorted(maildir.glob("*.eml"))
    assert len(files) == 2
    assert sorted(f.read_bytes() for f in files) == sorted(m.data for m in server.messages)
    assert {m.path for m in server.messages} == {str(f) for f in files}
    assert not list(maildir.glob(".*"))  # no temporary files left behind


def test_on_message_callback_and_wait_for(smtp_server_factory: Factory) -> None:
    seen: list[CapturedMessage] = []
    server = smtp_server_factory(tls="none", on_message=seen.append)
    with connect(server) as client:
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert server.wait_for(1) == seen
    with pytest.raises(TimeoutError, match="expected 2"):
        server.wait_for(2, timeout=0.05)


def test_clear_forgets_messages_and_commands(plain_server: DevServer) -> None:
    with connect(plain_server) as client:
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    plain_server.wait_idle()
    assert plain_server.messages
    assert plain_server.commands
    plain_server.clear()
    assert plain_server.messages == []
    assert plain_server.commands == []
    assert plain_server.connections == []


def test_size_is_advertised_and_enforced(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(tls="none", data_size_limit=1000)
    with connect(server) as client:
        assert client.esmtp_features["size"] == "1000"
        code, _ = client.docmd("MAIL FROM:<a@example.com> SIZE=5000")
        assert code == 552
        client.rset()
        client.mail("a@example.com")
        client.rcpt("b@example.com")
        code, _ = client.data(b"Subject: big\r\n\r\n" + b"x" * 900 + b"\r\n" + b"y" * 900 + b"\r\n")
        assert code == 552
    assert server.messages == []


def test_command_log_redacts_auth_and_records_tls(auth_server: DevServer) -> None:
    with connect_tls(auth_server) as client:
        client.login("ann", "s3cret")
    auth_server.wait_idle()
    lines = [command.line for command in auth_server.commands]
    assert [c.verb for c in auth_server.commands] == ["EHLO", "STARTTLS", "EHLO", "AUTH", "QUIT"]
    auth = [c for c in auth_server.commands if c.verb == "AUTH"]
    assert len(auth) == 1
    assert auth[0].tls is True
    assert re.fullmatch(r"AUTH [A-Z0-9-]+( \*\*\*)?", auth[0].line)
    assert all("s3cret" not in line for line in lines)
    encoded = base64.b64encode(b"\0ann\0s3cret").decode()
    assert all(encoded not in line for line in lines)
    [connection] = auth_server.connections
    assert connection.tls is True
    assert connection.auth_login == "ann"
    assert connection.open is False
    assert [c.tls for c in connection.commands][:2] == [False, False]


# ---------------------------------------------------------------------------------------------
# TLS
# ---------------------------------------------------------------------------------------------


def test_starttls_with_verified_certificate(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory()
    with connect(server) as client:
        assert "starttls" in client.esmtp_features
        code, _ = client.starttls(context=ssl.create_default_context(cafile=server.ca_file))
        assert code == 220
        client.ehlo()
        assert "starttls" not in client.esmtp_features
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert server.messages[0].tls is True


def test_certificate_is_valid_for_localhost_too(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(tls="implicit")
    context = ssl.create_default_context(cafile=server.ca_file)
    with (
        socket.create_connection((server.host, server.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        assert sock.recv(100).startswith(b"220 ")


def test_implicit_tls(implicit_server: DevServer) -> None:
    context = ssl.create_default_context(cafile=implicit_server.ca_file)
    with smtplib.SMTP_SSL(
        implicit_server.host, implicit_server.port, context=context, timeout=5
    ) as client:
        client.ehlo()
        assert "starttls" not in client.esmtp_features
        assert "auth" in client.esmtp_features  # already encrypted
        client.login("user", "pass")
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    captured = implicit_server.messages[0]
    assert captured.tls is True
    assert captured.auth_login == "user"
    assert implicit_server.commands[0].tls is True


def test_plaintext_client_on_implicit_port_gets_no_greeting(implicit_server: DevServer) -> None:
    with pytest.raises(TIMED_OUT):
        smtplib.SMTP(implicit_server.host, implicit_server.port, timeout=0.3)


def test_tls_none_has_no_starttls(plain_server: DevServer) -> None:
    with connect(plain_server) as client:
        assert "starttls" not in client.esmtp_features
        code, _ = client.docmd("STARTTLS")
        assert code == 502


def test_second_starttls_is_refused(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory()
    with connect_tls(server) as client:
        assert client.docmd("STARTTLS")[0] == 503


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("wrong_host", "not valid for|mismatch"), ("untrusted", "unable to get local issuer")],
)
@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_bad_certificate_fault(
    smtp_server_factory: Factory, tls: str, kind: str, reason: str
) -> None:
    server = smtp_server_factory(tls=tls, faults=[BadCertificate(kind)])  # type: ignore[arg-type]
    context = ssl.create_default_context(cafile=server.ca_file)
    with pytest.raises(ssl.SSLCertVerificationError, match=reason):
        _noop_over_tls(server, context)
    # Turning the fault off at runtime restores the valid certificate.
    server.set_faults()
    assert _noop_over_tls(server, context) == 250
    assert server.errors == []


def _noop_over_tls(server: DevServer, context: ssl.SSLContext) -> int:
    client: smtplib.SMTP
    if server.tls == "starttls":
        client = connect(server)
        try:
            client.starttls(context=context)
        except BaseException:
            client.close()
            raise
    else:
        client = smtplib.SMTP_SSL(server.host, server.port, context=context, timeout=5)
    with client:
        return client.noop()[0]


def test_wrong_host_certificate_is_signed_by_the_trusted_ca(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(tls="implicit", faults=[BadCertificate("wrong_host")])
    context = ssl.create_default_context(cafile=server.ca_file)
    context.check_hostname = False  # chain still verified: only the name is wrong
    with (
        socket.create_connection((server.host, server.port), timeout=5) as raw,
        context.wrap_socket(raw) as sock,
    ):
        cert = sock.getpeercert()
    assert cert is not None
    assert ("DNS", "wrong.example") in cert["subjectAltName"]


# ---------------------------------------------------------------------------------------------
# AUTH
# ---------------------------------------------------------------------------------------------


def _login(client: smtplib.SMTP, mechanism: str, user: str, password: str) -> None:
    client.user, client.password = user, password
    method: Any = {
        "PLAIN": client.auth_plain,
        "LOGIN": client.auth_login,
        "CRAM-MD5": client.auth_cram_md5,
    }[mechanism]
    client.auth(mechanism, method, initial_response_ok=mechanism != "LOGIN")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_auth_mechanism_accepts_the_right_password(auth_server: DevServer, mechanism: str) -> None:
    with connect_tls(auth_server) as client:
        _login(client, mechanism, "ann", "s3cret")
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert auth_server.messages[0].auth_login == "ann"


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
@pytest.mark.parametrize(("user", "password"), [("ann", "wrong"), ("bob", "s3cret")])
def test_auth_mechanism_refuses_bad_credentials(
    auth_server: DevServer, mechanism: str, user: str, password: str
) -> None:
    with connect_tls(auth_server) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            _login(client, mechanism, user, password)
        assert caught.value.smtp_code == 535
        error: Any = caught.value.smtp_error  # bytes at runtime (typeshed says str)
        assert error.startswith(b"5.7.8")
    assert auth_server.connections[0].auth_login is None


def test_auth_true_accepts_anything(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(auth=True)
    with connect_tls(server) as client:
        _login(client, "PLAIN", "whoever", "whatever")
    assert server.credentials == ("user", "pass")


def test_mechanisms_are_offered_in_the_given_order(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(auth=True, mechanisms=("LOGIN", "PLAIN"))
    with connect_tls(server) as client:
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        assert client.docmd("AUTH CRAM-MD5")[0] == 504


def test_auth_before_tls_is_refused_and_not_offered(auth_server: DevServer) -> None:
    with connect(auth_server) as client:
        assert "auth" not in client.esmtp_features
        code, text = client.docmd("AUTH PLAIN " + base64.b64encode(b"\0ann\0s3cret").decode())
    assert code == 538
    assert text.startswith(b"5.7.11")


def test_auth_over_plaintext_when_allowed(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(tls="none", auth={"ann": "pw"}, auth_require_tls=False)
    with connect(server) as client:
        assert "auth" in client.esmtp_features
        client.login("ann", "pw")
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    captured = server.messages[0]
    assert (captured.tls, captured.auth_login) == (False, "ann")


def test_no_auth_means_no_auth(plain_server: DevServer) -> None:
    with connect(plain_server) as client:
        assert "auth" not in client.esmtp_features
        assert client.docmd("AUTH PLAIN")[0] == 502


def test_require_auth(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(auth={"ann": "pw"}, require_auth=True)
    with connect_tls(server) as client:
        code, text = client.docmd("MAIL FROM:<a@example.com>")
        assert (code, text) == (530, b"5.7.0 Authentication required")
        client.login("ann", "pw")
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert len(server.messages) == 1


def _xoauth2(user: str, token: str) -> str:
    return base64.b64encode(f"user={user}\x01auth=Bearer {token}\x01\x01".encode()).decode()


def _oauthbearer(user: str, token: str) -> str:
    payload = f"n,a={user},\x01host=127.0.0.1\x01port=587\x01auth=Bearer {token}\x01\x01"
    return base64.b64encode(payload.encode()).decode()


@pytest.mark.parametrize(
    ("mechanism", "encode", "abort"),
    [("XOAUTH2", _xoauth2, ""), ("OAUTHBEARER", _oauthbearer, "AQ==")],
)
def test_oauth_mechanisms(
    auth_server: DevServer, mechanism: str, encode: Callable[[str, str], str], abort: str
) -> None:
    with connect_tls(auth_server) as client:
        # A bad token gets the provider-style JSON error challenge, then 535.
        code, challenge = client.docmd(f"AUTH {mechanism} {encode('ann', 'expired')}")
        assert code == 334
        assert "status" in json.loads(base64.b64decode(challenge))
        code, text = client.docmd(abort)
        assert code == 535
        assert text.startswith(b"5.7.8")
        # The right token (the "password" in the mapping) logs in, also without an
        # initial response.
        code, challenge = client.docmd(f"AUTH {mechanism}")
        assert (code, challenge) == (334, b"")
        code, _ = client.docmd(encode("ann", "s3cret"))
        assert code == 235
    assert auth_server.connections[0].auth_login == "ann"


def test_cram_md5_needs_no_initial_response(auth_server: DevServer) -> None:
    with connect_tls(auth_server) as client:
        assert client.docmd("AUTH CRAM-MD5 abcd")[0] == 501


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------


def test_reply_fault_for_one_recipient(plain_server: DevServer) -> None:
    plain_server.set_faults(Respond("RCPT", 550, "5.1.1 No such user", match="bad@example.com"))
    with connect(plain_server) as client:
        refused = client.sendmail("a@example.com", ["good@example.com", "bad@example.com"], MESSAGE)
    assert refused == {"bad@example.com": (550, b"5.1.1 No such user")}
    assert plain_server.messages[0].rcpt_tos == ("good@example.com",)


def test_reply_fault_with_regex_and_multiline_text(plain_server: DevServer) -> None:
    plain_server.set_faults(
        Respond("MAIL", 554, "5.7.1 Listed at\nzen.spamhaus.test", match=re.compile(r"@spam\."))
    )
    with connect(plain_server) as client:
        code, text = client.docmd("MAIL FROM:<x@spam.example>")
        assert (code, text) == (554, b"5.7.1 Listed at\nzen.spamhaus.test")
        assert client.docmd("MAIL FROM:<x@ham.example>")[0] == 250


def test_greylisting_with_times(plain_server: DevServer) -> None:
    plain_server.set_faults(Respond("RCPT", 450, "4.7.1 Greylisted, try again", times=2))
    codes = []
    for _ in range(3):
        with connect(plain_server) as client:
            client.mail("a@example.com")
            codes.append(client.rcpt("b@example.com")[0])
    assert codes == [450, 450, 250]
    plain_server.set_faults(*plain_server.faults)  # resets the counts
    with connect(plain_server) as client:
        client.mail("a@example.com")
        assert client.rcpt("b@example.com")[0] == 450


def test_greeting_421_closes(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(faults=[Greeting(421, "4.3.2 Try later")])
    with pytest.raises(smtplib.SMTPConnectError) as caught:
        smtplib.SMTP(server.host, server.port, timeout=5)
    assert caught.value.smtp_code == 421
    server.wait_idle()
    assert server.connections[0].open is False


def test_greeting_554_refuses_everything_but_quit(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(faults=[Respond("CONNECT", 554, "5.7.1 No thanks")])
    with (
        socket.create_connection((server.host, server.port), timeout=5) as sock,
        sock.makefile("rb") as reader,
    ):
        assert reader.readline() == b"554 5.7.1 No thanks\r\n"
        sock.sendall(b"EHLO me\r\n")
        assert reader.readline().startswith(b"503 ")
        sock.sendall(b"QUIT\r\n")
        assert reader.readline().startswith(b"221 ")


def test_custom_greeting_text(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(faults=[Greeting(220, "mx.example ESMTP ready")])
    with (
        socket.create_connection((server.host, server.port), timeout=5) as sock,
        sock.makefile("rb") as reader,
    ):
        assert reader.readline() == b"220 mx.example ESMTP ready\r\n"


def test_reply_421_closes_the_connection(plain_server: DevServer) -> None:
    plain_server.set_faults(Respond("MAIL", 421, "4.7.0 Too busy"))
    with connect(plain_server) as client:
        assert client.docmd("MAIL FROM:<a@example.com>") == (421, b"4.7.0 Too busy")
        with pytest.raises(DISCONNECTED):
            client.noop()
    plain_server.wait_idle()


def test_positive_reply_fault_replaces_the_text_only(plain_server: DevServer) -> None:
    plain_server.set_faults(
        Respond("RCPT", 251, "2.1.5 User not local; will forward"),
        Respond("DATA_END", 250, "2.0.0 Ok: queued as ABC123"),
    )
    with connect(plain_server) as client:
        client.mail("a@example.com")
        assert client.rcpt("b@example.com") == (251, b"2.1.5 User not local; will forward")
        assert client.data(MESSAGE) == (250, b"2.0.0 Ok: queued as ABC123")
    assert plain_server.messages[0].rcpt_tos == ("b@example.com",)


def test_custom_ehlo_reply(plain_server: DevServer) -> None:
    plain_server.set_faults(Respond("EHLO", 250, "mx.example\nX-ODD\nSIZE 10"))
    with connect(plain_server) as client:
        assert set(client.esmtp_features) == {"x-odd", "size"}
        assert client.mail("a@example.com")[0] == 250  # EHLO still counted


def test_refusal_at_data_end_captures_nothing(plain_server: DevServer) -> None:
    plain_server.set_faults(Respond("DATA_END", 554, "5.6.0 Content rejected", match="viagra"))
    with connect(plain_server) as client:
        with pytest.raises(smtplib.SMTPDataError) as caught:
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: viagra\r\n\r\nx\r\n")
        assert caught.value.smtp_code == 554
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert [m.subject for m in plain_server.messages] == ["Hello"]


def test_reply_at_data_command(plain_server: DevServer) -> None:
    plain_server.set_faults(Respond("DATA", 451, "4.3.0 Not now"))
    with connect(plain_server) as client:
        client.mail("a@example.com")
        client.rcpt("b@example.com")
        with pytest.raises(smtplib.SMTPDataError) as caught:
            client.data(MESSAGE)
    assert (caught.value.smtp_code, caught.value.smtp_error) == (451, b"4.3.0 Not now")
    assert plain_server.messages == []


@pytest.mark.parametrize("command", ["MAIL", "RCPT", "EHLO", "NOOP"])
def test_drop_at_command(plain_server: DevServer, command: str) -> None:
    plain_server.set_faults(Drop(command))
    client = smtplib.SMTP(plain_server.host, plain_server.port, timeout=5)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("EHLO", client.ehlo),
        ("NOOP", client.noop),
        ("MAIL", lambda: client.mail("a@example.com")),
        ("RCPT", lambda: client.rcpt("b@example.com")),
    ]
    try:
        for name, step in steps:
            if name == command:
                with pytest.raises(DISCONNECTED):
                    step()
                break
            step()
    finally:
        client.close()
    plain_server.wait_idle()
    assert plain_server.commands[-1].verb == command
    assert plain_server.messages == []


def test_drop_in_the_middle_of_data_captures_nothing(plain_server: DevServer) -> None:
    plain_server.set_faults(Drop("DATA", times=1))
    with connect(plain_server) as client, pytest.raises(DISCONNECTED):
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE * 100)
    plain_server.wait_idle()
    assert plain_server.messages == []
    # times=1: the next connection delivers.
    with connect(plain_server) as client:
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert len(plain_server.messages) == 1


@pytest.mark.parametrize("fault", [Drop("DATA", after_dot=True), Drop("DATA_END")])
def test_drop_after_the_dot_captures_unacknowledged(
    smtp_server_factory: Factory, fault: Drop
) -> None:
    server = smtp_server_factory(faults=[fault])
    with connect_tls(server) as client, pytest.raises(DISCONNECTED):
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    [captured] = server.wait_for(1)
    assert captured.acknowledged is False
    assert captured.data == MESSAGE
    assert server.errors == []


def test_hang_forever_until_the_client_gives_up(plain_server: DevServer) -> None:
    plain_server.set_faults(Hang("MAIL"))
    with connect(plain_server, timeout=0.2) as client, pytest.raises(TIMED_OUT):
        client.mail("a@example.com")
    plain_server.wait_idle()  # the hang ended when the client closed


def test_hang_for_a_while_then_answer(plain_server: DevServer) -> None:
    plain_server.set_faults(Hang("DATA_END", 0.2))
    with connect(plain_server) as client:
        client.mail("a@example.com")
        client.rcpt("b@example.com")
        started = time.monotonic()
        assert client.data(MESSAGE)[0] == 250
        assert time.monotonic() - started >= 0.2


def test_hang_at_connect_delays_the_greeting(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(faults=[Hang("CONNECT", None)])
    with pytest.raises(TIMED_OUT):
        smtplib.SMTP(server.host, server.port, timeout=0.2)


@pytest.mark.parametrize("extension", ["STARTTLS", "SIZE", "SMTPUTF8", "8BITMIME", "PIPELINING"])
def test_hide_removes_the_extension(smtp_server_factory: Factory, extension: str) -> None:
    server = smtp_server_factory(data_size_limit=10_000)
    with connect(server) as client:
        assert extension in extensions(client)
    server.set_faults(Hide(extension))
    with connect(server) as client:
        assert extension not in extensions(client)
        assert extensions(client) >= {"HELP"}


def test_hidden_auth_is_not_offered_and_refused(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(auth={"ann": "pw"}, faults=[Hide("AUTH")])
    with connect_tls(server) as client:
        assert "auth" not in client.esmtp_features
        assert client.docmd("AUTH PLAIN " + base64.b64encode(b"\0ann\0pw").decode())[0] == 502


def test_hidden_starttls_is_refused(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(faults=[Hide("STARTTLS")])
    with connect(server) as client:
        assert client.docmd("STARTTLS")[0] == 502


@pytest.mark.parametrize(
    ("extension", "parameter"),
    [("SMTPUTF8", "SMTPUTF8"), ("8BITMIME", "BODY=8BITMIME"), ("SIZE", "SIZE=100")],
)
def test_hidden_extension_parameter_is_refused(
    smtp_server_factory: Factory, extension: str, parameter: str
) -> None:
    server = smtp_server_factory(tls="none", data_size_limit=10_000, faults=[Hide(extension)])
    with connect(server) as client:
        code, text = client.docmd(f"MAIL FROM:<a@example.com> {parameter}")
    assert code == 555
    assert extension.encode() in text or parameter.encode() in text


def test_smtputf8_off(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(tls="none", smtputf8=False)
    with connect(server) as client:
        assert "smtputf8" not in client.esmtp_features
        assert client.docmd("MAIL FROM:<a@example.com> SMTPUTF8")[0] == 501


def test_fault_rules_validate_their_input() -> None:
    with pytest.raises(ValueError, match="unknown SMTP command"):
        Respond("BDAT", 250)
    with pytest.raises(ValueError, match="between 200 and 599"):
        Respond("RCPT", 999)
    with pytest.raises(ValueError, match="CR"):
        Respond("RCPT", 550, "x\r\n250 injected")
    with pytest.raises(ValueError, match="times"):
        Respond("RCPT", 550, times=0)
    with pytest.raises(ValueError, match="after_dot"):
        Drop("MAIL", after_dot=True)
    with pytest.raises(ValueError, match="cannot hide"):
        Hide("CHUNKING")
    with pytest.raises(ValueError, match="seconds"):
        Hang("MAIL", -1)
    with pytest.raises(ValueError, match="kind"):
        BadCertificate("expired")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a fault"):
        DevServer(faults=["RCPT 550"])  # type: ignore[list-item]
    assert Respond("message", 250).command == "DATA_END"
    assert Respond("greeting", 220).command == "CONNECT"
    assert Drop("DATA_END") == Drop("DATA", after_dot=True)


# ---------------------------------------------------------------------------------------------
# config() (SMTPConfig is written in parallel: skipped until it exists)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tls", ["starttls", "implicit", "none"])
def test_config_matches_the_server(smtp_server_factory: Factory, tls: str) -> None:
    config_module = pytest.importorskip("smtpkit._config")
    server = smtp_server_factory(tls=tls, auth={"ann": "pw"}, auth_require_tls=tls != "none")
    config = server.config()
    assert isinstance(config, config_module.SMTPConfig)
    assert (config.host, config.port, config.ca_file) == (server.host, server.port, server.ca_file)
    assert config.tls == config_module.TLSMode(tls)
    assert config.credentials.username == "ann"
    assert config.credentials.password.reveal() == "pw"
    assert config.allow_insecure_auth is (tls == "none")
    assert server.config(local_hostname="client.test").local_hostname == "client.test"


def test_dsn_names_the_ca_file(smtp_server_factory: Factory) -> None:
    server = smtp_server_factory(tls="implicit", auth={"a b": "p@ss"})
    assert server.dsn == f"smtps://a%20b:p%40ss@127.0.0.1:{server.port}?ca_file={server.ca_file}"


# ---------------------------------------------------------------------------------------------
# ScriptedServer
# ---------------------------------------------------------------------------------------------


def test_scripted_server_sends_exact_bytes_and_records(
    scripted_server_factory: Callable[..., ScriptedServer],
) -> None:
    server = scripted_server_factory(
        [
            (b"EHLO", b"250-scripted.test\r\n250 PIPELINING\r\n"),
            (b"MAIL", b"250 ok\r\n"),
            (b"RCPT", b"250 ok\r\n"),
            (b"DATA", b"354 go\r\n"),
            ReadData(b"250 2.0.0 Ok: queued as XYZ\r\n"),
        ]
    )
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.sendmail("a@example.com", ["b@example.com"], b"Subject: s\r\n\r\n.dot\r\n")
    [record] = server.wait_done(1)
    assert record.bodies == (b"Subject: s\r\n\r\n.dot\r\n",)
    assert b"..dot\r\n" in record.received  # raw bytes keep the client's stuffing
    assert record.lines[0].startswith(b"ehlo ")
    assert record.lines[-1] == b"QUIT\r\n"
    assert record.mismatches == ()
    assert record.error is None


def test_scripted_server_split_reply_and_mismatch(
    scripted_server_factory: Callable[..., ScriptedServer],
) -> None:
    server = scripted_server_factory(
        [(b"HELO", b"250-first part "), (None, b"continued\r\n250 end\r\n"), Close()],
        greeting=b"220 hi\r\n",
    )
    with (
        socket.create_connection((server.host, server.port), timeout=5) as sock,
        sock.makefile("rb") as reader,
    ):
        assert reader.readline() == b"220 hi\r\n"
        sock.sendall(b"EHLO me\r\n")
        assert reader.readline() == b"250-first part continued\r\n"
        assert reader.readline() == b"250 end\r\n"
        assert reader.readline() == b""
    [record] = server.wait_done(1)
    assert record.mismatches == ("step 0: expected b'HELO', got b'EHLO me\\r\\n'",)


def test_scripted_starttls_with_injected_lines(
    scripted_server_factory: Callable[..., ScriptedServer], client_context: ContextFor
) -> None:
    server = scripted_server_factory(
        [
            (b"EHLO", b"250-scripted.test\r\n250 STARTTLS\r\n"),
            (b"STARTTLS", b"220 go ahead\r\n250-injected\r\n"),
            StartTLS(),
            (b"EHLO", b"250-scripted.test\r\n250 HELP\r\n"),
        ]
    )
    with socket.create_connection((server.host, server.port), timeout=5) as raw:
        with raw.makefile("rb") as reader:
            reader.readline()
            raw.sendall(b"EHLO me\r\n")
            assert reader.readline() == b"250-scripted.test\r\n"
            reader.readline()
            raw.sendall(b"STARTTLS\r\n")
            assert reader.readline() == b"220 go ahead\r\n"
            assert reader.readline() == b"250-injected\r\n"  # what a client must discard
        with (
            client_context(server).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            tls.makefile("rb") as tls_reader,
        ):
            tls.sendall(b"EHLO again\r\n")
            assert tls_reader.readline() == b"250-scripted.test\r\n"
            assert tls_reader.readline() == b"250 HELP\r\n"
            tls.sendall(b"QUIT\r\n")
            assert tls_reader.readline().startswith(b"221")
    [record] = server.wait_done(1)
    assert record.tls_started_at == 2
    assert record.lines[2] == b"EHLO again\r\n"


def test_scripted_function_and_large_reply(
    scripted_server_factory: Callable[..., ScriptedServer],
) -> None:
    big = b"250-" + b"x" * 70_000 + b"\r\n250 ok\r\n"

    async def script(session: ScriptedSession) -> None:
        line = await session.readline()
        await session.write(big if line.startswith(b"EHLO") else b"500 what\r\n")
        await session.close()

    server = scripted_server_factory(script, greeting=None)
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"EHLO me\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received == big
    assert server.wait_done(1)[0].lines == (b"EHLO me\r\n",)


def test_scripted_implicit_tls(
    scripted_server_factory: Callable[..., ScriptedServer], client_context: ContextFor
) -> None:
    server = scripted_server_factory([(b"NOOP", b"250 fine\r\n")], tls="implicit")
    context = client_context(server)
    with smtplib.SMTP_SSL(server.host, server.port, context=context, timeout=5) as client:
        assert client.noop() == (250, b"fine")
        assert client.docmd("RSET")[0] == 502
    assert server.wait_done(1)[0].lines[-1] == b"QUIT\r\n"


def test_scripted_server_stop_with_open_connection() -> None:
    before = set(threading.enumerate())
    server = ScriptedServer([(b"EHLO", None)]).start()  # never answers EHLO
    sock = socket.create_connection((server.host, server.port), timeout=5)
    sock.sendall(b"EHLO me\r\n")
    server.stop()
    sock.close()
    assert set(threading.enumerate()) <= before


def test_scripted_server_rejects_bad_steps() -> None:
    with pytest.raises(TypeError, match="not a script step"):
        ScriptedServer([b"EHLO"])  # type: ignore[list-item]


# ---------------------------------------------------------------------------------------------
# python -m smtpkit.devserver
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def devserver_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    maildir = tmp_path / "mail"
    # The child must import this checkout's smtpkit, installed or not.
    root = str(Path(smtpkit.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path)
    command = [sys.executable, "-m", "smtpkit.devserver", "--port", "0", "--tls", "none"]
    process = subprocess.Popen(
        [*command, "--maildir", str(maildir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        yield process, maildir
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_command_line_server(devserver_process: tuple[subprocess.Popen[str], Path]) -> None:
    process, maildir = devserver_process
    assert process.stdout is not None
    first = process.stdout.readline()
    match = re.match(r"smtpkit devserver listening on 127\.0\.0\.1:(\d+) \(tls=none\)", first)
    assert match, first
    port = int(match.group(1))
    lines = [process.stdout.readline() for _ in range(3)]
    assert lines[1].startswith(f"DSN: smtp://127.0.0.1:{port}?ca_file=")
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    summary = process.stdout.readline()
    assert "a@example.com -> b@example.com | Hello |" in summary
    assert len(list(maildir.glob("*.eml"))) == 1
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
