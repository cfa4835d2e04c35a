"""Helpers for testing code that sends mail with smtpkit.

**A real SMTP server in a test.** Load the plugin once (``pytest_plugins = ["smtpkit.testing"]``
in your top-level ``conftest.py``) and ask for a fixture:

``smtp_server``
    a started :class:`~smtpkit.devserver.DevServer` (STARTTLS, AUTH with ``user``/``pass``),
    stopped after the test. ``smtp_server.config()`` is an ``SMTPConfig`` that reaches it.
``smtp_server_factory``
    ``smtp_server_factory(**DevServer_kwargs)`` starts more servers (any TLS mode, AUTH,
    faults); all of them are stopped after the test.

Faults make the server misbehave on purpose::

    from smtpkit.testing import Drop, Hide, Reply

    def test_greylisting(smtp_server_factory):
        server = smtp_server_factory(faults=[Reply("RCPT", 450, "4.7.1 Greylisted", times=1)])

``Reply`` here is the *fault rule* (answer a command with a given reply), not the
``smtpkit.Reply`` result value; import one of them under another name if you need both.

Importing this module needs neither pytest nor aiosmtpd: the fixtures are defined only when
pytest is importable, and the servers are imported when first used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from smtpkit.devserver._faults import (
    BadCertificate,
    Drop,
    Fault,
    Greeting,
    Hang,
    Hide,
    Reply,
)
from smtpkit.devserver._store import CapturedMessage, ConnectionInfo, ReceivedCommand

if TYPE_CHECKING:
    from smtpkit.devserver._scripted import ScriptedServer
    from smtpkit.devserver._server import DevServer

__all__ = [
    "BadCertificate",
    "CapturedMessage",
    "ConnectionInfo",
    "DevServer",
    "Drop",
    "Fault",
    "Greeting",
    "Hang",
    "Hide",
    "ReceivedCommand",
    "Reply",
    "ScriptedServer",
    "smtp_server",
    "smtp_server_factory",
]

#: The login the ``smtp_server`` fixture accepts.
SMTP_SERVER_USER = ("user", "pass")


def __getattr__(name: str) -> Any:
    # DevServer needs aiosmtpd (the "devserver" extra); import it only when asked for, so the
    # outbox assertions below stay usable without it.
    if name == "DevServer":
        from smtpkit.devserver._server import DevServer

        return DevServer
    if name == "ScriptedServer":
        from smtpkit.devserver._scripted import ScriptedServer

        return ScriptedServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------------------------------
# pytest fixtures
# ------------------------------------------------------------------------------------------


def _server_factory() -> Iterator[Callable[..., DevServer]]:
    from smtpkit.devserver._server import DevServer

    started: list[DevServer] = []

    def factory(**kwargs: Any) -> DevServer:
        server = DevServer(**kwargs)
        server.start()
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in reversed(started):
            server.stop()


def _server(smtp_server_factory: Callable[..., DevServer]) -> DevServer:
    user, password = SMTP_SERVER_USER
    return smtp_server_factory(tls="starttls", auth={user: password})


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixtures
    pass
else:
    smtp_server_factory = pytest.fixture(name="smtp_server_factory")(_server_factory)
    """Fixture: ``smtp_server_factory(**kwargs)`` starts a DevServer, stopped at teardown."""

    smtp_server = pytest.fixture(name="smtp_server")(_server)
    """Fixture: a started DevServer with STARTTLS and AUTH (``user``/``pass``)."""


# ------------------------------------------------------------------------------------------
# MemoryTransport outbox assertions
# ------------------------------------------------------------------------------------------
# (added by the lead: assertions over smtpkit._transports.memory.MemoryTransport's outbox)
