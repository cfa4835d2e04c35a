"""smtpkit.contrib.flask: the SmtpKit extension against the embedded server."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

flask = pytest.importorskip("flask", reason="Flask is not installed (smtpkit[flask])")

from smtpkit import testing as _testing  # noqa: E402
from smtpkit._config import TLSMode  # noqa: E402
from smtpkit._exceptions import ConfigError, InvalidHeader  # noqa: E402
from smtpkit._message import Message  # noqa: E402
from smtpkit.contrib import flask as smtpkit_flask  # noqa: E402
from smtpkit.contrib.flask import SmtpKit, SmtpKitState, record_messages  # noqa: E402
from smtpkit.devserver import DevServer  # noqa: E402
from smtpkit.testing import assert_sent  # noqa: E402

# The plugin's fixture, registered here under its own name, smtp_server_factory.
_server_factory_fixture = _testing.smtp_server_factory

ServerFactory = Callable[..., DevServer]


def _message(to: str = "ann@example.com", subject: str = "Hello") -> Message:
    return Message(sender="App <app@example.com>", to=[to], subject=subject, text="Hi there")


def _app(**config: Any) -> flask.Flask:
    app = flask.Flask(__name__)
    app.config.update(config)
    return app


@pytest.fixture
def server(smtp_server_factory: ServerFactory) -> DevServer:
    return smtp_server_factory(tls="none")


def test_sends_through_one_pooled_mailer_from_a_dsn(server: DevServer) -> None:
    app = _app(SMTPKIT_DSN=server.dsn)
    mail = SmtpKit(app)

    @app.post("/send")
    def send() -> dict[str, str]:
        result = mail.send(_message(to=flask.request.form["to"]))
        return {"id": result.message_id}

    client = app.test_client()
    first = client.post("/send", data={"to": "ann@example.com"})
    second = client.post("/send", data={"to": "bob@example.com"})

    assert first.status_code == second.status_code == 200
    captured = server.wait_for(2)
    assert [m.rcpt_tos for m in captured] == [("ann@example.com",), ("bob@example.com",)]
    assert captured[0].header("Message-ID") == first.get_json()["id"]
    # One app, one mailer: the second request reused the first one's connection.
    assert len(server.connections) == 1
    assert app.extensions["smtpkit"].mailer is mail.mailer
    mail.close()
    server.wait_idle()


def test_reads_the_env_style_settings_with_python_values(
    smtp_server_factory: ServerFactory,
) -> None:
    server = smtp_server_factory(tls="starttls", auth={"user": "s3cret"})
    app = _app(
        SMTPKIT_HOST="127.0.0.1",
        SMTPKIT_PORT=server.port,  # an int, as people write it in a config file
        SMTPKIT_TLS=TLSMode.STARTTLS,  # an enum member is read by its value
        SMTPKIT_USERNAME="user",
        SMTPKIT_PASSWORD="s3cret",
        SMTPKIT_CA_FILE=server.ca_file,
        SMTPKIT_ALLOW_INSECURE_AUTH=False,
        SMTPKIT_TIMEOUT=None,  # None counts as unset
    )
    mail = SmtpKit(app)
    try:
        with app.app_context():
            mail.send(_message())
        (captured,) = server.wait_for(1)
        assert captured.tls
        assert captured.auth_login == "user"
    finally:
        mail.close()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, "no SMTP server configured"),
        ({"SMTPKIT_HOST": "127.0.0.1", "SMTPKIT_PORT": "twenty-five"}, "SMTPKIT_PORT"),
        ({"SMTPKIT_DSN": "smtp://127.0.0.1:2525", "SMTPKIT_HOST": "127.0.0.1"}, "one or the other"),
        ({"SMTPKIT_DSN": "smtp://127.0.0.1:2525", "SMTPKIT_RECORD": True}, "TESTING"),
        (
            {"SMTPKIT_DSN": "smtp://127.0.0.1", "SMTPKIT_TEMPLATES": "t",
             "SMTPKIT_TEMPLATES_USE_FLASK": True},
            "not both",
        ),
    ],
)  # fmt: skip
def test_bad_settings_fail_at_init_app(config: dict[str, Any], expected: str) -> None:
    mail = SmtpKit()
    with pytest.raises(ConfigError, match=expected):
        mail.init_app(_app(**config))


def test_record_setting_keeps_messages_in_memory_in_testing() -> None:
    app = _app(TESTING=True, SMTPKIT_RECORD=True)
    mail = SmtpKit(app)
    try:
        with app.app_context():
            result = mail.send(_message(subject="Recorded"))
        assert mail.outbox is not None
        (sent,) = assert_sent(mail.outbox, to="ann@example.com", subject="Recorded")
        assert sent.message_id == result.message_id
    finally:
        mail.close()


def test_record_messages_diverts_only_inside_the_block(server: DevServer) -> None:
    app = _app(SMTPKIT_DSN=server.dsn)
    mail = SmtpKit(app)

    @app.post("/send")
    def send() -> str:
        mail.send(_message(subject=flask.request.form["subject"]))
        return "ok"

    client = app.test_client()
    try:
        with record_messages(app) as outbox:
            assert client.post("/send", data={"subject": "Inside"}).status_code == 200
        client.post("/send", data={"subject": "Outside"})

        assert_sent(outbox, subject="Inside")
        assert len(outbox.outbox) == 1
        (captured,) = server.wait_for(1)
        assert captured.subject == "Outside"
    finally:
        mail.close()


def test_send_template_from_a_directory_with_the_default_sender(
    server: DevServer, tmp_path: Path
) -> None:
    templates = tmp_path / "mail"
    templates.mkdir()
    (templates / "welcome.subject.txt").write_text("Welcome, {{ name }}!")
    (templates / "welcome.html").write_text("<p>Hello <b>{{ name }}</b></p>")
    app = flask.Flask(__name__, root_path=str(tmp_path))
    app.config.update(
        SMTPKIT_DSN=server.dsn,
        SMTPKIT_TEMPLATES="mail",  # relative to the app's root_path
        SMTPKIT_DEFAULT_SENDER="Site <site@example.com>",
    )
    mail = SmtpKit(app)
    try:
        with app.app_context():
            mail.send_template("welcome", {"name": "Ann <3"}, to=["ann@example.com"])
            with pytest.raises(InvalidHeader):
                mail.send_template("welcome", {"name": "x\r\nBcc: all@example.com"}, to=["a@b.c"])
        (captured,) = server.wait_for(1)
        assert captured.subject == "Welcome, Ann <3!"
        assert captured.header("From") == "Site <site@example.com>"
        assert captured.html is not None
        assert "<b>Ann &lt;3</b>" in captured.html
        assert captured.text is not None
        assert "Hello Ann <3" in captured.text
    finally:
        mail.close()


def test_templates_through_flasks_loader_and_filters(tmp_path: Path) -> None:
    (tmp_path / "reset.subject.txt").write_text("Reset for {{ name | shout }}")
    (tmp_path / "reset.txt").write_text("Code: {{ code }}")
    app = flask.Flask(__name__, template_folder=str(tmp_path))
    app.config.update(TESTING=True, SMTPKIT_RECORD=True, SMTPKIT_TEMPLATES_USE_FLASK=True)

    @app.template_filter("shout")
    def shout(value: str) -> str:
        return value.upper()

    mail = SmtpKit(app)
    try:
        with app.app_context():
            message = mail.template_message(
                "reset",
                {"name": "ann", "code": "123"},
                sender="a@example.com",
                to=["b@example.com"],
            )
            mail.send(message)
        assert mail.outbox is not None
        (sent,) = assert_sent(mail.outbox, subject="Reset for ANN", text_contains="Code: 123")
        assert sent.header("From") == "a@example.com"
    finally:
        mail.close()


def test_template_errors_name_the_missing_setting() -> None:
    app = _app(TESTING=True, SMTPKIT_RECORD=True)
    mail = SmtpKit(app)
    with app.app_context():
        with pytest.raises(ConfigError, match="SMTPKIT_TEMPLATES"):
            mail.send_template("welcome", {}, sender="a@example.com", to=["b@example.com"])
        with pytest.raises(ConfigError, match="SMTPKIT_DEFAULT_SENDER"):
            mail.template_message("welcome", {}, to=["b@example.com"])


def test_one_extension_serves_several_apps_each_with_its_own_mailer() -> None:
    mail = SmtpKit()
    first, second = _app(TESTING=True, SMTPKIT_RECORD=True), _app(TESTING=True, SMTPKIT_RECORD=True)
    mail.init_app(first)
    mail.init_app(second)
    try:
        with second.app_context():
            mail.send(_message(subject="Second"))
        with first.app_context():
            assert mail.outbox is not None
            assert mail.outbox.outbox == []
        with second.app_context():
            assert mail.outbox is not None
            assert_sent(mail.outbox, subject="Second")
            assert mail.mailer is not first.extensions["smtpkit"].mailer
    finally:
        for app in (first, second):
            app.extensions["smtpkit"].close()
    with pytest.raises(RuntimeError, match="app context"):
        mail.send(_message())


def test_an_extension_made_with_an_app_works_outside_a_context() -> None:
    app = _app(TESTING=True, SMTPKIT_RECORD=True)
    mail = SmtpKit(app)
    try:
        mail.send(_message())
        assert mail.outbox is not None
        assert len(mail.outbox.outbox) == 1
    finally:
        mail.close()
    with pytest.raises(RuntimeError, match="not set up"):
        smtpkit_flask._state(_app())


def test_the_mailer_is_closed_when_the_app_goes_away(server: DevServer) -> None:
    def run() -> None:
        app = _app(SMTPKIT_DSN=server.dsn)
        SmtpKit().init_app(app)
        app.extensions["smtpkit"].mailer.send(_message())

    run()
    server.wait_for(1)
    gc.collect()  # the app and its state are gone: the finalizer says QUIT
    server.wait_idle()
    assert "QUIT" in [c.verb for c in server.commands]


def test_close_then_send_opens_a_new_connection(server: DevServer) -> None:
    app = _app(SMTPKIT_DSN=server.dsn)
    mail = SmtpKit(app)
    mail.send(_message())
    server.wait_for(1)
    mail.close()
    server.wait_idle()
    mail.send(_message())
    server.wait_for(2)
    assert len(server.connections) == 2
    mail.close()
    server.wait_idle()


def test_a_forked_process_gets_its_own_mailer(monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(TESTING=True, SMTPKIT_RECORD=True)
    state: SmtpKitState = SmtpKit(app).state
    parent = state.mailer
    try:
        # As seen from a child process: the parent's mailer (and loop thread) is not usable.
        child_pid = os.getpid() + 1
        monkeypatch.setattr(smtpkit_flask.os, "getpid", lambda: child_pid)
        child = state.mailer
        assert child is not parent
        assert state.mailer is child
        state.close()  # closes the child's mailer only; the parent's finalizer was detached
        with pytest.raises(ConfigError, match="closed"):
            child.send(_message())
        parent.send(_message())
    finally:
        parent.close()
