"""Fixtures for the web inbox tests: a DevServer and an InboxServer sharing one directory.

``web`` is an :class:`Inbox`: ``web.send(message)`` / ``web.send_raw(data)`` deliver through
smtpkit's Mailer over SMTP (STARTTLS, AUTH) and return the stored message's id, and
``web.fetch(path)`` makes an HTTP request to the inbox (never raising on error statuses).
``canary`` is a loopback HTTP server that records every request: a hostile mail points its
scripts and remote resources at it, and the tests assert it heard nothing.
"""

from __future__ import annotations

import http.client
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message as EmailMessageHeaders
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from smtpkit import Envelope, Mailer, Message
from smtpkit.devserver import DevServer
from smtpkit.devserver._inbox import InboxServer
from smtpkit.devserver._storage import MailDirectory


def tiny_png(rgb: tuple[int, int, int] = (37, 99, 235), size: int = 8) -> bytes:
    """A valid ``size`` x ``size`` single-colour PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


@dataclass
class Response:
    """What the inbox answered."""

    status: int
    headers: EmailMessageHeaders
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass
class Inbox:
    """A running SMTP server + web inbox pair over one MailDirectory."""

    smtp: DevServer
    web: InboxServer
    store: MailDirectory
    mailer: Mailer

    def send(self, message: Message) -> str:
        """Send through smtpkit over SMTP; return the new message's id."""
        before = {m.id for m in self.store.list()}
        self.mailer.send(message)
        return self._new_id(before)

    def send_raw(self, data: bytes, recipients: tuple[str, ...] = ("to@example.com",)) -> str:
        """Send exact bytes through smtpkit over SMTP; return the new message's id."""
        before = {m.id for m in self.store.list()}
        self.mailer.send_raw(Envelope("from@example.com", recipients), data)
        return self._new_id(before)

    def _new_id(self, before: set[str]) -> str:
        (new,) = {m.id for m in self.store.list()} - before
        return new

    def fetch(
        self, path: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> Response:
        """One HTTP request with the path sent exactly as given (no normalisation)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.web.port, timeout=10)
        try:
            connection.request(method, path, headers=headers or {})
            reply = connection.getresponse()
            return Response(reply.status, reply.headers, reply.read())
        finally:
            connection.close()

    def json(self, path: str) -> Any:
        import json

        response = self.fetch(path)
        assert response.status == 200, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        return json.loads(response.body)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Inbox]:
    """An SMTP server (STARTTLS, any login) and its web inbox, on loopback ports."""
    store = MailDirectory(tmp_path / "mail")
    with (
        DevServer(tls="starttls", auth=True, maildir=store.path, on_message=store.record) as smtp,
        InboxServer(store, port=0, smtp_info=f"SMTP {smtp.host}:{smtp.port}") as inbox,
        Mailer(smtp.config()) as mailer,
    ):
        yield Inbox(smtp, inbox, store, mailer)
    assert smtp.errors == []


@dataclass
class Canary:
    """A loopback HTTP server that records the paths it was asked for."""

    url: str
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def canary() -> Iterator[Canary]:
    """A recording HTTP server: anything a hostile mail manages to load shows up here."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield Canary(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
