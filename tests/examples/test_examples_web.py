"""examples/flask_contact and examples/fastapi_contact, driven against the embedded server.

Each app is imported from its file and configured the way a user runs it, through
``SMTPKIT_DSN`` in the environment; then the same hostile submissions are sent to both. The last
two tests start the documented commands (``flask ... run``, ``uvicorn ...``) as processes.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

flask = pytest.importorskip("flask", reason="Flask is not installed (smtpkit[flask])")
fastapi = pytest.importorskip("fastapi", reason="FastAPI is not installed (smtpkit[fastapi])")

from fastapi.testclient import TestClient  # noqa: E402

from smtpkit import testing as _testing  # noqa: E402
from smtpkit.devserver import DevServer  # noqa: E402
from smtpkit.testing import CapturedMessage  # noqa: E402

# The plugin's fixture, registered here under its own name, smtp_server_factory.
_server_factory_fixture = _testing.smtp_server_factory

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SENDER = "Website <website@example.com>"
TEAM = "team@example.com"

ServerFactory = Callable[..., DevServer]
Post = Callable[[dict[str, str]], Any]  # form fields -> response with .status_code


def _load(relative: str, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / relative)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Flask finds its templates next to the module registered under this name.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def flask_example() -> Iterator[ModuleType]:
    yield _load("flask_contact/app.py", "smtpkit_example_flask_contact")
    sys.modules.pop("smtpkit_example_flask_contact", None)


@pytest.fixture(scope="module")
def fastapi_example() -> Iterator[ModuleType]:
    yield _load("fastapi_contact/app.py", "smtpkit_example_fastapi_contact")
    sys.modules.pop("smtpkit_example_fastapi_contact", None)


@pytest.fixture
def server(smtp_server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch) -> DevServer:
    # STARTTLS and AUTH, as a real provider; the apps find it through SMTPKIT_DSN.
    started = smtp_server_factory(tls="starttls", auth={"site": "pw"})
    monkeypatch.setenv("SMTPKIT_DSN", started.dsn)
    for name in ("CONTACT_SENDER", "CONTACT_TO"):
        monkeypatch.delenv(name, raising=False)
    return started


@pytest.fixture(params=["flask", "fastapi"])
def post(
    request: pytest.FixtureRequest,
    server: DevServer,
    flask_example: ModuleType,
    fastapi_example: ModuleType,
) -> Iterator[Post]:
    """POST a contact form to a fresh app (fresh rate limiter) of either example."""
    if request.param == "flask":
        app = flask_example.create_app()
        client = app.test_client()
        yield lambda fields: client.post("/", data=fields)
        app.extensions["smtpkit"].close()
    else:
        with TestClient(fastapi_example.create_app()) as test_client:
            yield lambda fields: test_client.post("/contact", data=fields)
    server.wait_idle()  # the apps closed their connections


def _form(**changes: str) -> dict[str, str]:
    fields = {
        "name": "Ann Visitor",
        "email": "ann@example.org",
        "subject": "Your product",
        "message": "Hello,\n<script>alert(1)</script> & goodbye",
    }
    fields.update(changes)
    return fields


def _only_message(server: DevServer) -> CapturedMessage:
    (captured,) = server.wait_for(1)
    return captured


def test_a_submission_is_sent_from_the_site_to_the_site(server: DevServer, post: Post) -> None:
    response = post(_form())
    assert response.status_code in (200, 202)

    captured = _only_message(server)
    assert captured.header("From") == SENDER
    assert captured.header("To") == TEAM
    assert captured.header("Reply-To") == "Ann Visitor <ann@example.org>"
    assert captured.rcpt_tos == (TEAM,)
    assert captured.mail_from == "website@example.com"
    assert captured.subject == "[Contact] Your product"
    assert captured.text is not None
    assert "<script>alert(1)</script> & goodbye" in captured.text
    assert captured.html is not None
    assert "<script>" not in captured.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; goodbye" in captured.html
    assert captured.tls
    assert captured.auth_login == "site"


def test_the_honeypot_is_answered_like_success_and_sends_nothing(
    server: DevServer, post: Post
) -> None:
    accepted = post(_form())
    bot = post(_form(website="https://spam.example.com"))
    assert bot.status_code == accepted.status_code
    assert bot.status_code in (200, 202)
    time.sleep(0.1)
    assert len(server.messages) == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "Ann\r\nBcc: victim@example.net"},
        {"subject": "Hi\nBcc: victim@example.net"},
        {"email": "ann@example.org\r\nBcc: victim@example.net"},
        {"email": "ann@example.org, victim@example.net"},
        {"message": "x" * 10_001},
        {"message": "   "},
    ],
    ids=["name", "subject", "email-crlf", "two-addresses", "huge", "empty"],
)
def test_hostile_fields_are_refused_with_400_and_nothing_sent(
    server: DevServer, post: Post, changes: dict[str, str]
) -> None:
    response = post(_form(**changes))
    assert response.status_code == 400
    assert "victim@example.net" not in "".join(str(c.line) for c in server.commands)
    assert server.messages == []


def test_the_rate_limit_answers_429(server: DevServer, post: Post) -> None:
    statuses = [post(_form(message=f"message {i}")).status_code for i in range(6)]
    assert statuses[:5] == [statuses[0]] * 5
    assert statuses[0] in (200, 202)
    assert statuses[5] == 429
    assert len(server.wait_for(5)) == 5
    time.sleep(0.1)
    assert len(server.messages) == 5


def test_flask_example_page_and_error_escaping(
    server: DevServer, flask_example: ModuleType
) -> None:
    app = flask_example.create_app({"TESTING": True})
    client = app.test_client()
    page = client.get("/")
    assert page.status_code == 200
    assert b'name="website"' in page.data
    bad = client.post("/", data=_form(email="<b>not an address</b>"))
    assert bad.status_code == 400
    assert b"<b>not an address</b>" not in bad.data  # the visitor's input is escaped
    assert b"&lt;b&gt;not an address&lt;/b&gt;" in bad.data
    app.extensions["smtpkit"].close()


def test_flask_example_reports_a_server_failure_with_503(
    server: DevServer, flask_example: ModuleType
) -> None:
    from smtpkit.testing import Respond

    server.set_faults(Respond("MAIL", 550, "5.7.1 Sender not allowed"))
    app = flask_example.create_app()
    response = app.test_client().post("/", data=_form())
    assert response.status_code == 503
    assert b"could not be sent" in response.data
    app.extensions["smtpkit"].close()


def test_flask_example_can_be_tested_with_record_messages(flask_example: ModuleType) -> None:
    from smtpkit.contrib.flask import record_messages
    from smtpkit.testing import assert_sent

    app = flask_example.create_app({"TESTING": True, "SMTPKIT_RECORD": True})
    with record_messages(app) as outbox:
        assert app.test_client().post("/", data=_form()).status_code == 200
    (sent,) = assert_sent(outbox, to=TEAM, subject="[Contact] Your product")
    assert sent.header("Reply-To") == "Ann Visitor <ann@example.org>"


def test_fastapi_example_sends_after_answering_and_logs_failures(
    server: DevServer, fastapi_example: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    from smtpkit.testing import Respond

    assert isinstance(fastapi_example.app, fastapi.FastAPI)
    server.set_faults(Respond("DATA", 554, "5.7.1 Message refused"))
    with TestClient(fastapi_example.create_app()) as client:
        assert client.get("/").status_code == 200
        response = client.post("/contact", data=_form())
    # Accepted for sending: the failure happened after the answer, and was logged.
    assert response.status_code == 202
    assert server.messages == []
    assert any(
        r.name == "smtpkit.contrib.fastapi" and "Message refused" in r.getMessage()
        for r in caplog.records
    )


# -- the documented commands ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run_and_post(command: list[str], port: int, path: str, server: DevServer) -> int:
    env = {**os.environ, "SMTPKIT_DSN": server.dsn, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    body = urllib.parse.urlencode(_form()).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    status: int = response.status
                break
            except urllib.error.URLError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode() if process.stdout else ""
                    pytest.fail(f"{command} did not start:\n{output}")
                time.sleep(0.1)
        server.wait_for(1, timeout=10)
        return status
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout:
            process.stdout.close()


def test_flask_run_serves_the_example(server: DevServer) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "flask", "--app", "examples/flask_contact/app.py", "run",
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    assert _run_and_post(command, port, "/", server) == 200
    assert _only_message(server).header("Reply-To") == "Ann Visitor <ann@example.org>"


def test_uvicorn_serves_the_example(server: DevServer) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "examples.fastapi_contact.app:app",
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    assert _run_and_post(command, port, "/contact", server) == 202
    assert _only_message(server).header("Reply-To") == "Ann Visitor <ann@example.org>"
