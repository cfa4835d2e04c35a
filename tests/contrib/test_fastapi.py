"""smtpkit.contrib.fastapi: the lifespan mailer, the dependency and background sending."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import pytest

fastapi = pytest.importorskip("fastapi", reason="FastAPI is not installed (smtpkit[fastapi])")

from fastapi import BackgroundTasks, FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from smtpkit import testing as _testing  # noqa: E402
from smtpkit._hooks import Hooks  # noqa: E402
from smtpkit._mailer import AsyncMailer  # noqa: E402
from smtpkit._message import Message  # noqa: E402
from smtpkit._replies import SendResult  # noqa: E402
from smtpkit._transports.memory import MemoryTransport  # noqa: E402
from smtpkit.contrib.fastapi import (  # noqa: E402
    MailerDep,
    get_mailer,
    send_in_background,
    smtpkit_lifespan,
)
from smtpkit.devserver import DevServer  # noqa: E402
from smtpkit.testing import Respond, assert_sent  # noqa: E402

# The plugin's fixture, registered here under its own name, smtp_server_factory.
_server_factory_fixture = _testing.smtp_server_factory

ServerFactory = Callable[..., DevServer]
ASGIMessage = MutableMapping[str, Any]


def _message(to: tuple[str, ...] = ("ann@example.com",), subject: str = "Hello") -> Message:
    return Message(sender="App <app@example.com>", to=list(to), subject=subject, text="Hi there")


@pytest.fixture
def server(smtp_server_factory: ServerFactory) -> DevServer:
    return smtp_server_factory(tls="none")


def _send_app(lifespan: Any) -> FastAPI:
    app = FastAPI(lifespan=lifespan)

    @app.post("/send")
    async def send(mailer: MailerDep) -> dict[str, str]:
        result = await mailer.send(_message())
        return {"id": result.message_id}

    return app


def test_the_lifespan_opens_one_mailer_and_closes_it_at_shutdown(server: DevServer) -> None:
    app = _send_app(smtpkit_lifespan(server.dsn))
    with TestClient(app) as client:
        mailer = app.state.smtpkit
        assert isinstance(mailer, AsyncMailer)
        ids = [client.post("/send").json()["id"] for _ in range(2)]
        assert [m.header("Message-ID") for m in server.wait_for(2)] == ids
        # The pooled connection stays open while the app runs...
        with pytest.raises(TimeoutError):
            server.wait_idle(timeout=0.2)
    # ...and shutdown closes it (QUIT): nothing leaks.
    server.wait_idle()
    assert len(server.connections) == 1
    assert "QUIT" in [c.verb for c in server.commands]
    assert not hasattr(app.state, "smtpkit")


def test_the_lifespan_reads_smtpkit_variables_at_startup(server: DevServer) -> None:
    environ = {"SMTPKIT_DSN": server.dsn}
    app = _send_app(smtpkit_lifespan(environ=environ))
    environ["SMTPKIT_DSN"] = server.dsn  # read when the app starts, not when it is built
    with TestClient(app) as client:
        assert client.post("/send").status_code == 200
    server.wait_for(1)
    server.wait_idle()


def test_a_transport_target_for_tests() -> None:
    transport = MemoryTransport()
    app = _send_app(smtpkit_lifespan(target=transport))
    with TestClient(app) as client:
        message_id = client.post("/send").json()["id"]
    (sent,) = assert_sent(transport, to="ann@example.com")
    assert sent.message_id == message_id
    assert transport.closed


def test_inside_an_application_lifespan() -> None:
    transport = MemoryTransport()
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with smtpkit_lifespan(target=transport)(app):
            events.append(f"started with {app.state.smtpkit!r}")
            yield
            events.append("stopping")

    app = _send_app(lifespan)
    with TestClient(app) as client:
        client.post("/send")
    assert events == ["started with <AsyncMailer memory://>", "stopping"]
    assert transport.closed
    assert len(transport.outbox) == 1


def test_get_mailer_without_the_lifespan_says_what_to_do() -> None:
    app = _send_app(None)
    with TestClient(app) as client, pytest.raises(RuntimeError, match="smtpkit_lifespan"):
        client.post("/send")


def test_dsn_and_target_are_exclusive() -> None:
    with pytest.raises(TypeError):
        smtpkit_lifespan("smtp://127.0.0.1:2525", target=MemoryTransport())


def test_plain_starlette_with_get_mailer() -> None:
    transport = MemoryTransport()

    async def send(request: Request) -> PlainTextResponse:
        result = await get_mailer(request).send(_message(subject="Starlette"))
        return PlainTextResponse(result.message_id)

    app = Starlette(
        routes=[Route("/send", send, methods=["POST"])], lifespan=smtpkit_lifespan(target=transport)
    )
    with TestClient(app) as client:
        message_id = client.post("/send").text
    (sent,) = assert_sent(transport, subject="Starlette")
    assert sent.message_id == message_id


def _spy_on_responses(app: FastAPI, events: list[str]) -> None:
    """Record "response" once the last body chunk of a response went out."""

    class Spy:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            async def spied(message: ASGIMessage) -> None:
                await send(message)
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    events.append("response")

            await self.inner(scope, receive, spied)

    app.add_middleware(Spy)


@pytest.mark.parametrize("helper", [False, True], ids=["add_task", "send_in_background"])
def test_background_tasks_deliver_after_the_response(server: DevServer, helper: bool) -> None:
    events: list[str] = []

    def delivered(result: SendResult) -> None:
        events.append("delivered")

    app = FastAPI(lifespan=smtpkit_lifespan(server.dsn, hooks=Hooks(sent=(delivered,))))
    _spy_on_responses(app, events)

    @app.post("/signup", status_code=202)
    async def signup(mailer: MailerDep, tasks: BackgroundTasks) -> dict[str, str]:
        message = _message(subject="Welcome")
        if helper:
            send_in_background(tasks, mailer, message)
        else:
            tasks.add_task(mailer.send, message)
        return {"id": message.message_id}

    with TestClient(app) as client:
        response = client.post("/signup")
    assert response.status_code == 202
    (captured,) = server.wait_for(1)
    assert captured.header("Message-ID") == response.json()["id"]
    assert events == ["response", "delivered"]


def test_send_in_background_logs_a_failure(
    server: DevServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.set_faults(Respond("DATA", 554, "5.7.1 Rejected as spam"))
    app = FastAPI(lifespan=smtpkit_lifespan(server.dsn))

    @app.post("/signup", status_code=202)
    async def signup(mailer: MailerDep, tasks: BackgroundTasks) -> dict[str, str]:
        message = _message()
        send_in_background(tasks, mailer, message)
        return {"id": message.message_id}

    with (
        caplog.at_level(logging.ERROR, logger="smtpkit.contrib.fastapi"),
        TestClient(app) as client,
    ):
        response = client.post("/signup")
    assert response.status_code == 202
    assert server.messages == []
    (record,) = [r for r in caplog.records if r.name == "smtpkit.contrib.fastapi"]
    assert record.levelno == logging.ERROR
    assert response.json()["id"] in record.getMessage()
    assert "DataRefused" in record.getMessage()
    assert "Rejected as spam" in record.getMessage()


def test_send_in_background_warns_about_refused_recipients(
    server: DevServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.set_faults(Respond("RCPT", 550, "5.1.1 No such user", match="bob@example.com"))
    app = FastAPI(lifespan=smtpkit_lifespan(server.dsn))

    @app.post("/notify")
    async def notify(mailer: MailerDep, tasks: BackgroundTasks) -> str:
        send_in_background(tasks, mailer, _message(to=("ann@example.com", "bob@example.com")))
        return "ok"

    with (
        caplog.at_level(logging.WARNING, logger="smtpkit.contrib.fastapi"),
        TestClient(app) as client,
    ):
        client.post("/notify")
    (captured,) = server.wait_for(1)
    assert captured.rcpt_tos == ("ann@example.com",)
    (record,) = [r for r in caplog.records if r.name == "smtpkit.contrib.fastapi"]
    assert record.levelno == logging.WARNING
    assert "bob@example.com" in record.getMessage()


def test_send_in_background_logs_an_unexpected_error(caplog: pytest.LogCaptureFixture) -> None:
    def broken_hook(message: Message) -> Message:
        raise RuntimeError("bug in a hook")

    transport = MemoryTransport()
    app = FastAPI(
        lifespan=smtpkit_lifespan(target=transport, hooks=Hooks(before_send=(broken_hook,)))
    )

    @app.post("/notify")
    async def notify(mailer: MailerDep, tasks: BackgroundTasks) -> str:
        send_in_background(tasks, mailer, _message())
        return "ok"

    with TestClient(app) as client:
        assert client.post("/notify").status_code == 200
    assert transport.outbox == []
    (record,) = [r for r in caplog.records if r.name == "smtpkit.contrib.fastapi"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert "bug in a hook" in str(record.exc_info[1])
