"""A minimal, fast SMTP sink for the throughput benchmark: it accepts everything and keeps nothing.

Run it as its own process, so that it never shares a GIL with the client being measured::

    python benchmarks/_sink.py --cert server.pem --key server.key [--engine threads|asyncio]

It listens on three loopback ports (chosen by the OS) and prints one line,
``READY <plain> <starttls> <implicit>``, on standard output once all are bound:

* ``plain``: EHLO offers PIPELINING, SIZE, 8BITMIME and AUTH PLAIN LOGIN; no STARTTLS.
* ``starttls``: EHLO offers STARTTLS; after the upgrade, AUTH PLAIN LOGIN (AUTH only over TLS
  there, as real submission servers do).
* ``implicit``: TLS from the first byte (SMTPS, as on port 465), then the same conversation as
  after STARTTLS: EHLO offers AUTH PLAIN LOGIN, no STARTTLS.

Without ``--cert`` the two TLS ports are 0 (not opened).

Commands: EHLO, HELO, STARTTLS, AUTH (PLAIN with or without an initial response, LOGIN), MAIL,
RCPT, DATA, RSET, NOOP, QUIT, and ``XSTAT``, a private verb the benchmark reads the counters
with: ``250 <messages> <connections> <CPU seconds of this process>``. Any user name and password
are accepted (an AUTH PLAIN response is only checked for shape). Pipelined commands are answered
in order, with the replies to one read sent in one write.

Two engines share the protocol code (:class:`Session`):

* ``threads`` (default): a blocking socket and a thread per connection. On loopback this answers
  a command in about a third of the time the asyncio engine takes, because a blocking ``recv``
  and ``send`` are all the work there is per command; no selector, callbacks or futures.
* ``asyncio``: an ``asyncio.Protocol`` on the default event loop.

The sink stops when its standard input closes (the parent exited or closed it). It is a benchmark
tool, not a server: no address checks, loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable

HOST = "127.0.0.1"
MAX_SIZE = 33554432
# A command line longer than this is a client bug (RFC 5321 allows 512 octets; AUTH lines longer).
MAX_LINE = 16384
# What Session.feed asks its engine to do after writing the replies.
CONTINUE, STARTTLS, CLOSE = 0, 1, 2
# The listeners, in the order of the READY line.
PLAIN, UPGRADE, IMPLICIT = "plain", "starttls", "implicit"


class Stats:
    """Counters shared by every connection of this process (updated under the GIL)."""

    __slots__ = ("connections", "messages")

    def __init__(self) -> None:
        self.messages = 0
        self.connections = 0

    def line(self) -> bytes:
        return b"250 %d %d %.6f\r\n" % (self.messages, self.connections, time.process_time())


class Session:
    """The SMTP conversation of one connection, without I/O: bytes in, replies out."""

    __slots__ = (
        "_auth_state",
        "_buffer",
        "_in_data",
        "_scan_from",
        "_stats",
        "offer_tls",
        "secure",
    )

    GREETING = b"220 sink.localhost ESMTP benchmark sink\r\n"

    def __init__(self, stats: Stats, *, offer_tls: bool) -> None:
        self._stats = stats
        self.offer_tls = offer_tls
        self.secure = False
        self._buffer = bytearray()
        self._in_data = False
        self._scan_from = 0
        self._auth_state: str | None = None  # "plain", "login-user" or "login-pass"

    def feed(self, data: bytes) -> tuple[bytes, int]:
        """Take received bytes; return the replies to write and what to do next.

        After ``STARTTLS`` the rest of the buffer is dropped (RFC 3207: nothing sent before the
        handshake may be acted on) and the engine must upgrade the connection.
        """
        buffer = self._buffer
        buffer += data
        out: list[bytes] = []
        while buffer:
            if self._in_data:
                # The data starts right after "354", so ".\r\n" at its very start ends an
                # empty message.
                if self._scan_from == 0 and buffer.startswith(b".\r\n"):
                    end = 3
                else:
                    found = buffer.find(b"\r\n.\r\n", max(0, self._scan_from - 4))
                    if found < 0:
                        # Keep only what may be the start of the terminator: memory stays flat.
                        if len(buffer) > 65536:
                            del buffer[: len(buffer) - 4]
                        self._scan_from = len(buffer)
                        break
                    end = found + 5
                del buffer[:end]
                self._in_data = False
                self._scan_from = 0
                self._stats.messages += 1
                out.append(b"250 2.0.0 Ok: queued as SINK\r\n")
                continue
            newline = buffer.find(b"\n")
            if newline < 0:
                if len(buffer) > MAX_LINE:
                    out.append(b"500 5.5.2 Line too long\r\n")
                    buffer.clear()
                break
            line = bytes(buffer[:newline]).rstrip(b"\r")
            del buffer[: newline + 1]
            reply, action = self._command(line)
            out.append(reply)
            if action != CONTINUE:
                buffer.clear()
                return b"".join(out), action
        return b"".join(out), CONTINUE

    def _command(self, line: bytes) -> tuple[bytes, int]:
        if self._auth_state is not None:
            return self._auth_continue(line), CONTINUE
        verb, _, arg = line.partition(b" ")
        verb = verb.upper()
        if verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
            return b"250 2.0.0 Ok\r\n", CONTINUE
        if verb == b"DATA":
            self._in_data = True
            self._scan_from = 0
            return b"354 End data with <CR><LF>.<CR><LF>\r\n", CONTINUE
        if verb == b"EHLO":
            return self._ehlo_reply(), CONTINUE
        if verb == b"HELO":
            return b"250 sink.localhost\r\n", CONTINUE
        if verb == b"STARTTLS" and self.offer_tls and not self.secure:
            return b"220 2.0.0 Ready to start TLS\r\n", STARTTLS
        if verb == b"AUTH":
            return self._auth_start(arg), CONTINUE
        if verb == b"QUIT":
            return b"221 2.0.0 Bye\r\n", CLOSE
        if verb == b"XSTAT":
            return self._stats.line(), CONTINUE
        return b"502 5.5.2 Command not recognised\r\n", CONTINUE

    def _ehlo_reply(self) -> bytes:
        lines = [b"sink.localhost", b"PIPELINING", b"SIZE %d" % MAX_SIZE, b"8BITMIME"]
        if self.offer_tls and not self.secure:
            lines.append(b"STARTTLS")
        else:
            lines.append(b"AUTH PLAIN LOGIN")
        last = len(lines) - 1
        return b"".join(
            b"250" + (b" " if i == last else b"-") + text + b"\r\n" for i, text in enumerate(lines)
        )

    def _auth_start(self, arg: bytes) -> bytes:
        mechanism, _, initial = arg.partition(b" ")
        mechanism = mechanism.upper()
        if mechanism == b"PLAIN":
            if initial:
                return self._auth_plain(initial)
            self._auth_state = "plain"
            return b"334 \r\n"
        if mechanism == b"LOGIN":
            self._auth_state = "login-pass" if initial else "login-user"
            return b"334 UGFzc3dvcmQ6\r\n" if initial else b"334 VXNlcm5hbWU6\r\n"
        return b"504 5.5.4 Unrecognized authentication type\r\n"

    def _auth_continue(self, line: bytes) -> bytes:
        state, self._auth_state = self._auth_state, None
        if line == b"*":
            return b"501 5.7.0 Authentication cancelled\r\n"
        if state == "plain":
            return self._auth_plain(line)
        if state == "login-user":
            self._auth_state = "login-pass"
            return b"334 UGFzc3dvcmQ6\r\n"
        return b"235 2.7.0 Authentication successful\r\n"

    def _auth_plain(self, encoded: bytes) -> bytes:
        try:
            fields = base64.b64decode(encoded, validate=True).split(b"\0")
        except binascii.Error:
            fields = []
        if len(fields) == 3 and fields[1]:
            return b"235 2.7.0 Authentication successful\r\n"
        return b"535 5.7.8 Authentication credentials invalid\r\n"


# -- engine: a thread per connection --------------------------------------------------------


def _serve_connection(
    conn: socket.socket, session: Session, tls: ssl.SSLContext | None, implicit: bool
) -> None:
    sock: socket.socket = conn
    try:
        if implicit:
            # TLS from the first byte: the handshake runs here, in the connection's thread.
            assert tls is not None
            sock = tls.wrap_socket(sock, server_side=True)
        sock.sendall(Session.GREETING)
        while True:
            data = sock.recv(65536)  # more would be an mmap per call
            if not data:
                return
            out, action = session.feed(data)
            if out:
                sock.sendall(out)
            if action == CLOSE:
                return
            if action == STARTTLS:
                assert tls is not None
                sock = tls.wrap_socket(sock, server_side=True)
                session.secure = True
    except (OSError, ssl.SSLError):
        return  # the client went away; nothing to report in a sink
    finally:
        sock.close()


def _new_session(stats: Stats, mode: str) -> Session:
    session = Session(stats, offer_tls=mode == UPGRADE)
    # On the implicit-TLS port the connection is secure before the greeting: EHLO offers AUTH.
    session.secure = mode == IMPLICIT
    return session


def _modes(tls: ssl.SSLContext | None) -> tuple[str, ...]:
    return (PLAIN, UPGRADE, IMPLICIT) if tls is not None else (PLAIN,)


def _accept_loop(
    listener: socket.socket, stats: Stats, tls: ssl.SSLContext | None, mode: str
) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return  # the listener was closed: shutting down
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stats.connections += 1
        threading.Thread(
            target=_serve_connection,
            args=(conn, _new_session(stats, mode), tls, mode == IMPLICIT),
            daemon=True,
        ).start()


def serve_threads(tls: ssl.SSLContext | None) -> None:
    stats = Stats()
    listeners = []
    ports = []
    for mode in _modes(tls):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen(128)
        listeners.append(listener)
        ports.append(listener.getsockname()[1])
        context = None if mode == PLAIN else tls
        threading.Thread(
            target=_accept_loop, args=(listener, stats, context, mode), daemon=True
        ).start()
    _announce(ports)
    try:
        _wait_for_stdin_eof()
    finally:
        for listener in listeners:
            listener.close()


def _wait_for_stdin_eof() -> None:
    while True:
        try:
            if not os.read(sys.stdin.fileno(), 1024):
                return
        except OSError:
            return


def _announce(ports: list[int]) -> None:
    # Plain, STARTTLS, implicit TLS; 0 for a port that is not open (no certificate).
    ports = [*ports, 0, 0][:3]
    sys.stdout.write("READY " + " ".join(map(str, ports)) + "\n")
    sys.stdout.flush()


# -- engine: asyncio --------------------------------------------------------------------------


class SinkProtocol(asyncio.Protocol):
    """One connection on the asyncio engine."""

    def __init__(self, stats: Stats, tls: ssl.SSLContext | None, mode: str) -> None:
        self._stats = stats
        self._tls = tls
        self._session = _new_session(stats, mode)
        self._transport: asyncio.Transport | None = None
        self._pending = bytearray()
        self._upgrading = False
        # The loop keeps only a weak reference to tasks.
        self._upgrade_task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._stats.connections += 1
        transport.write(Session.GREETING)

    def data_received(self, data: bytes) -> None:
        if self._upgrading:
            # Decrypted bytes that arrive before start_tls() returns wait for the new transport.
            self._pending += data
            return
        self._handle(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def _handle(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        out, action = self._session.feed(data)
        if out:
            transport.write(out)
        if action == CLOSE:
            transport.close()
        elif action == STARTTLS:
            self._upgrading = True
            self._upgrade_task = asyncio.get_running_loop().create_task(self._upgrade(transport))

    async def _upgrade(self, transport: asyncio.Transport) -> None:
        assert self._tls is not None
        loop = asyncio.get_running_loop()
        # Plaintext that arrived after our 220 is dropped (RFC 3207). start_tls swaps the
        # protocol before its first await, so what arrives from here on is decrypted data.
        self._pending.clear()
        try:
            new = await loop.start_tls(transport, self, self._tls, server_side=True)
        except (OSError, ssl.SSLError):
            transport.close()
            return
        if new is None:  # pragma: no cover - the transport closed meanwhile
            return
        self._transport = new
        self._session.secure = True
        self._upgrading = False
        pending, self._pending = bytes(self._pending), bytearray()
        if pending:
            self._handle(pending)


def _factory(stats: Stats, tls: ssl.SSLContext | None, mode: str) -> Callable[[], SinkProtocol]:
    return lambda: SinkProtocol(stats, tls, mode)


async def serve_asyncio(tls: ssl.SSLContext | None) -> None:
    stats = Stats()
    loop = asyncio.get_running_loop()
    servers = []
    for mode in _modes(tls):
        context = None if mode == PLAIN else tls
        server = await loop.create_server(
            _factory(stats, context, mode),
            HOST,
            0,
            backlog=128,
            # The implicit-TLS port: the loop does the handshake before connection_made.
            ssl=context if mode == IMPLICIT else None,
        )
        servers.append(server)
    _announce([server.sockets[0].getsockname()[1] for server in servers])
    try:
        await asyncio.to_thread(_wait_for_stdin_eof)
    finally:
        for server in servers:
            server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="A fast SMTP sink for benchmarks (loopback).")
    parser.add_argument("--cert", help="server certificate chain (PEM) for the TLS ports")
    parser.add_argument("--key", help="the certificate's private key (PEM)")
    parser.add_argument("--engine", choices=("threads", "asyncio"), default="threads")
    args = parser.parse_args()
    tls: ssl.SSLContext | None = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    try:
        if args.engine == "threads":
            serve_threads(tls)
        else:
            asyncio.run(serve_asyncio(tls))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
