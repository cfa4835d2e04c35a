"""What the development server records: messages, connections and commands.

Everything here is a frozen snapshot or a lock-protected store, because the server writes from
its event-loop thread while tests read from theirs.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from smtpkit._parsed import ParsedMessageView

__all__ = ["CapturedMessage", "ConnectionInfo", "MessageStore", "ReceivedCommand"]


@dataclass(frozen=True)
class CapturedMessage(ParsedMessageView):
    """One message the server received.

    Its headers and bodies are read through :class:`ParsedMessageView`: ``parsed`` (the whole
    message, a new object on every access), ``subject``, ``header(name)``, ``text``, ``html``
    and ``attachments``.

    Attributes:
        mail_from: the ``MAIL FROM`` address (``""`` for the null sender ``<>``).
        rcpt_tos: the accepted ``RCPT TO`` addresses, in order.
        data: the message exactly as received, after dot-unstuffing, with its CRLF line ends.
        mail_options: ``MAIL FROM`` parameters as sent (upper-cased), e.g. ``("SIZE=123",)``.
        rcpt_options: ``RCPT TO`` parameters of all recipients.
        received_at: when the end-of-data dot arrived (UTC).
        tls: whether the session was encrypted (implicit TLS or after STARTTLS).
        auth_login: the authenticated user name, or ``None``.
        peer: the client's ``host:port``.
        acknowledged: ``False`` when a ``Drop`` fault closed the connection after the dot
            without replying (the client could not know the message arrived).
        queue_id: the id given in the ``250`` reply (``"250 2.0.0 Ok: queued as <queue_id>"``).
        connection: index of the connection in :attr:`DevServer.connections`.
        path: the ``.eml`` file written to the server's ``maildir``, or ``None``.
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes = field(repr=False)
    mail_options: tuple[str, ...] = ()
    rcpt_options: tuple[str, ...] = ()
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    tls: bool = False
    auth_login: str | None = None
    peer: str = ""
    acknowledged: bool = True
    queue_id: str = ""
    connection: int = 0
    path: str | None = None


@dataclass(frozen=True, slots=True)
class ReceivedCommand:
    """One command line the server received.

    ``line`` is redacted: ``AUTH PLAIN ***`` keeps only the verb and the mechanism, and the
    responses to AUTH challenges are never recorded.
    """

    verb: str
    line: str
    tls: bool
    connection: int


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """A snapshot of one client connection."""

    index: int
    peer: str
    opened_at: datetime
    closed_at: datetime | None
    tls: bool
    auth_login: str | None
    commands: tuple[ReceivedCommand, ...]

    @property
    def open(self) -> bool:
        """Whether the connection was still open when the snapshot was taken."""
        return self.closed_at is None


@dataclass
class _Connection:
    # Mutable per-connection state; only touched under MessageStore's lock.
    index: int
    peer: str
    opened_at: datetime
    tls: bool
    closed_at: datetime | None = None
    auth_login: str | None = None


class MessageStore:
    """Thread-safe record of messages, connections and commands, with optional ``.eml`` files."""

    def __init__(
        self,
        maildir: Path | None = None,
        on_message: Callable[[CapturedMessage], None] | None = None,
    ) -> None:
        self._maildir = maildir
        self._on_message = on_message
        self._cond = threading.Condition()
        self._messages: list[CapturedMessage] = []
        self._connections: dict[int, _Connection] = {}
        self._commands: list[ReceivedCommand] = []
        self._next_connection = 0
        self._next_file = 0
        self.errors: list[str] = []

    # -- written by the server thread ------------------------------------------------------
    def open_connection(self, peer: str, *, tls: bool) -> int:
        """Record a new connection and return its index."""
        with self._cond:
            index = self._next_connection
            self._next_connection += 1
            self._connections[index] = _Connection(index, peer, datetime.now(UTC), tls)
            self._cond.notify_all()
            return index

    def set_tls(self, index: int) -> None:
        """Mark a connection as encrypted (after STARTTLS)."""
        with self._cond:
            conn = self._connections.get(index)
            if conn is not None:
                conn.tls = True

    def set_auth(self, index: int, login: str) -> None:
        """Record the user a connection authenticated as."""
        with self._cond:
            conn = self._connections.get(index)
            if conn is not None:
                conn.auth_login = login

    def close_connection(self, index: int) -> None:
        """Mark a connection closed (idempotent)."""
        with self._cond:
            conn = self._connections.get(index)
            if conn is not None and conn.closed_at is None:
                conn.closed_at = datetime.now(UTC)
            self._cond.notify_all()

    def add_command(self, command: ReceivedCommand) -> None:
        """Append a (redacted) command to the log."""
        with self._cond:
            self._commands.append(command)

    def add_error(self, text: str) -> None:
        """Record an unexpected server-side error (tests can assert there were none)."""
        with self._cond:
            self.errors.append(text)

    def add_message(self, message: CapturedMessage) -> CapturedMessage:
        """Store a message (and its ``.eml`` file); return it with ``path`` filled in."""
        if self._maildir is not None:
            message = replace(message, path=self._write_eml(message))
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()
        if self._on_message is not None:
            self._on_message(message)
        return message

    def _write_eml(self, message: CapturedMessage) -> str:
        assert self._maildir is not None
        with self._cond:
            self._next_file += 1
            number = self._next_file
        stamp = message.received_at.strftime("%Y%m%dT%H%M%S")
        name = f"{stamp}-{os.getpid()}-{number:06d}-{message.queue_id}.eml"
        final = self._maildir / name
        temporary = self._maildir / f".{name}.tmp"
        # Write then rename, so a reader polling the directory never sees half a message.
        temporary.write_bytes(message.data)
        temporary.replace(final)
        return str(final)

    # -- read by tests ---------------------------------------------------------------------
    def messages(self) -> list[CapturedMessage]:
        """A snapshot of the captured messages."""
        with self._cond:
            return list(self._messages)

    def commands(self) -> list[ReceivedCommand]:
        """A snapshot of the command log."""
        with self._cond:
            return list(self._commands)

    def connections(self) -> list[ConnectionInfo]:
        """Snapshots of the recorded connections, oldest first."""
        with self._cond:
            return [self._snapshot(conn) for conn in self._connections.values()]

    def _snapshot(self, conn: _Connection) -> ConnectionInfo:
        commands = tuple(c for c in self._commands if c.connection == conn.index)
        return ConnectionInfo(
            conn.index,
            conn.peer,
            conn.opened_at,
            conn.closed_at,
            conn.tls,
            conn.auth_login,
            commands,
        )

    def clear(self) -> None:
        """Forget captured messages, commands and closed connections."""
        with self._cond:
            self._messages.clear()
            self._commands.clear()
            self.errors.clear()
            for index in [i for i, c in self._connections.items() if c.closed_at is not None]:
                del self._connections[index]

    def wait_for(self, count: int, timeout: float) -> list[CapturedMessage]:
        """Block until at least ``count`` messages were captured; raise ``TimeoutError``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {count} message(s) within {timeout} s, got {len(self._messages)}"
                    )
                self._cond.wait(remaining)
            return list(self._messages)

    def wait_idle(self, timeout: float) -> None:
        """Block until no connection is open; raise ``TimeoutError``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(c.closed_at is None for c in self._connections.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"connections still open after {timeout} s")
                self._cond.wait(remaining)
