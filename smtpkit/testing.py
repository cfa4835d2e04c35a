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

    from smtpkit.testing import Drop, Hide, Respond

    def test_greylisting(smtp_server_factory):
        server = smtp_server_factory(faults=[Respond("RCPT", 450, "4.7.1 Greylisted", times=1)])

``Respond`` is the fault rule that answers a command with a given reply (named so that it
does not collide with the ``smtpkit.Reply`` result value).

Importing this module needs neither pytest nor aiosmtpd: the fixtures are defined only when
pytest is importable, and the servers are imported when first used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from smtpkit._transports.memory import MemoryTransport, SentMessage
from smtpkit.devserver._faults import (
    BadCertificate,
    Drop,
    Fault,
    Greeting,
    Hang,
    Hide,
    Respond,
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
    "MemoryTransport",
    "ReceivedCommand",
    "Respond",
    "ScriptedServer",
    "SentMessage",
    "assert_nothing_sent",
    "assert_sent",
    "memory_transport",
    "sent_messages",
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


def _memory_transport() -> MemoryTransport:
    return MemoryTransport()


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixtures
    pass
else:
    smtp_server_factory = pytest.fixture(name="smtp_server_factory")(_server_factory)
    """Fixture: ``smtp_server_factory(**kwargs)`` starts a DevServer, stopped at teardown."""

    smtp_server = pytest.fixture(name="smtp_server")(_server)
    """Fixture: a started DevServer with STARTTLS and AUTH (``user``/``pass``)."""

    memory_transport = pytest.fixture(name="memory_transport")(_memory_transport)
    """Fixture: a fresh :class:`~smtpkit.MemoryTransport` whose outbox the test inspects."""


# ------------------------------------------------------------------------------------------
# MemoryTransport outbox assertions
# ------------------------------------------------------------------------------------------


def sent_messages(
    transport: MemoryTransport,
    *,
    to: str | None = None,
    subject: str | None = None,
) -> list[SentMessage]:
    """The messages in ``transport.outbox``, filtered by recipient and/or exact subject.

    ``to`` matches any envelope recipient (Bcc included), case-insensitively.
    """
    found = []
    for sent in transport.outbox:
        if to is not None and to.lower() not in (r.lower() for r in sent.recipients):
            continue
        if subject is not None and sent.subject != subject:
            continue
        found.append(sent)
    return found


def assert_sent(
    transport: MemoryTransport,
    *,
    to: str | None = None,
    subject: str | None = None,
    text_contains: str | None = None,
    html_contains: str | None = None,
    count: int = 1,
) -> list[SentMessage]:
    """Assert that exactly ``count`` messages match, and return them.

    >>> transport = MemoryTransport()                          # doctest: +SKIP
    >>> await AsyncMailer(transport).send(message)             # doctest: +SKIP
    >>> (sent,) = assert_sent(transport, to="ann@example.com", text_contains="reset")
    """
    matches = [
        sent
        for sent in sent_messages(transport, to=to, subject=subject)
        if (text_contains is None or text_contains in (sent.text or ""))
        and (html_contains is None or html_contains in (sent.html or ""))
    ]
    if len(matches) != count:
        wanted = ", ".join(
            f"{k}={v!r}"
            for k, v in (
                ("to", to),
                ("subject", subject),
                ("text_contains", text_contains),
                ("html_contains", html_contains),
            )
            if v is not None
        )
        seen = "; ".join(f"to {list(m.recipients)} subject {m.subject!r}" for m in transport.outbox)
        raise AssertionError(
            f"expected {count} message(s) matching {wanted or 'anything'}, found {len(matches)}"
            f" (outbox: {seen or 'empty'})"
        )
    return matches


def assert_nothing_sent(transport: MemoryTransport) -> None:
    """Assert that the transport's outbox is empty."""
    if transport.outbox:
        raise AssertionError(f"expected no message, found {len(transport.outbox)}")
