"""A minimal, fast SMTP sink for the throughput benchmark: it accepts everything and keeps nothing.

Run it as its own process, so that it never shares a GIL with the client being measured::

    python benchmarks/_sink.py --cert server.pem --key server.key

It listens on two loopback ports (chosen by the OS) and prints one line, ``READY <plain> <tls>``,
on standard output once both are bound:

* ``plain``: EHLO offers PIPELINING, SIZE, 8BITMIME and AUTH PLAIN LOGIN; no STARTTLS.
* ``tls``: EHLO offers STARTTLS as well; after the upgrade it offers AUTH PLAIN LOGIN (AUTH is
  only offered over TLS there, as real submission servers do).

Commands: EHLO, HELO, STARTTLS, AUTH (PLAIN with or without an initial response, LOGIN),
MAIL, RCPT, DATA, RSET, NOOP, QUIT, and ``XSTAT``, a private verb the benchmark uses to read
the counters: ``250 <messages> <connections> <cpu seconds of this process>``. Any user name and
password are accepted, but an AUTH exchange is checked for shape (base64, three fields for PLAIN).
Pipelined commands are answered in order. The sink stops when its standard input closes (the
parent exited or closed it), or on SIGTERM.

It is a benchmark tool, not a server: no address checks, no limits beyond the SIZE it advertises
and a cap on command-line length, loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import os
import ssl
import sys
import time

HOST = "127.0.0.1"
MAX_SIZE = 33554432
# A command line longer than this is a client bug (RFC 5321 allows 512 octets; AUTH lines longer).
MAX_LINE = 16384


class _Stats:
    """Counters shared by every connection of this process."""

    __slots__ = ("connections", "messages")

    def __init__(self) -> None:
        self.messages = 0
        self.connections = 0


class SinkProtocol(asyncio.Protocol):
    """One SMTP session. Lines are parsed from a buffer so that pipelined input works."""

    def __init__(self, stats: _Stats, tls_context: ssl.SSLContext | None) -> None:
        self._stats = stats
        self._tls_context = tls_context  # None: STARTTLS is not offered on this port
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._in_data = False
        self._scan_from = 0
        self._secure = False
        self._auth_state: str | None = None  # "plain" or "login-user" / "login-pass"
        self._upgrading = False
        # Keeps the STARTTLS task alive (the loop holds only a weak reference to tasks).
        self._upgrade_task: asyncio.Task[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._stats.connections += 1
        transport.write(b"220 sink.localhost ESMTP benchmark sink\r\n")

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._upgrading:
            # During STARTTLS the bytes wait: see _upgrade.
            self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    # -- protocol --------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)

    def _process(self) -> None:
        buffer = self._buffer
        while buffer and self._transport is not None and not self._upgrading:
            if self._in_data:
                # The data starts right after "354", so a lone ".\r\n" at its very start ends an
                # empty message; a virtual CRLF before the buffer handles that case.
                if self._scan_from == 0 and buffer.startswith(b".\r\n"):
                    end = 3
                else:
                    found = buffer.find(b"\r\n.\r\n", max(0, self._scan_from - 4))
                    if found < 0:
                        self._scan_from = len(buffer)
                        # Discard what cannot be part of the terminator, to keep memory flat.
                        if len(buffer) > 65536:
                            del buffer[: len(buffer) - 4]
                            self._scan_from = 4
                        return
                    end = found + 5
                del buffer[:end]
                self._in_data = False
                self._scan_from = 0
                self._stats.messages += 1
                self._write(b"250 2.0.0 Ok: queued as SINK\r\n")
                continue
            newline = buffer.find(b"\n")
            if newline < 0:
                if len(buffer) > MAX_LINE:
                    self._write(b"500 5.5.2 Line too long\r\n")
                    buffer.clear()
                return
            line = bytes(buffer[:newline]).rstrip(b"\r")
            del buffer[: newline + 1]
            self._command(line)

    def _command(self, line: bytes) -> None:
        if self._auth_state is not None:
            self._auth_continue(line)
            return
        verb, _, arg = line.partition(b" ")
        verb = verb.upper()
        if verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
            self._write(b"250 2.0.0 Ok\r\n")
        elif verb == b"DATA":
            self._in_data = True
            self._scan_from = 0
            self._write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
        elif verb == b"EHLO":
            self._write(self._ehlo_reply())
        elif verb == b"HELO":
            self._write(b"250 sink.localhost\r\n")
        elif verb == b"STARTTLS" and self._tls_context is not None and not self._secure:
            self._write(b"220 2.0.0 Ready to start TLS\r\n")
            self._upgrading = True
            self._upgrade_task = asyncio.get_running_loop().create_task(self._upgrade())
        elif verb == b"AUTH":
            self._auth_start(arg)
        elif verb == b"QUIT":
            self._write(b"221 2.0.0 Bye\r\n")
            if self._transport is not None:
                self._transport.close()
        elif verb == b"XSTAT":
            stats = self._stats
            cpu = time.process_time()
            self._write(b"250 %d %d %.6f\r\n" % (stats.messages, stats.connections, cpu))
        else:
            self._write(b"502 5.5.2 Command not recognised\r\n")

    def _ehlo_reply(self) -> bytes:
        lines = [b"sink.localhost", b"PIPELINING", b"SIZE %d" % MAX_SIZE, b"8BITMIME"]
        if self._tls_context is not None and not self._secure:
            lines.append(b"STARTTLS")
        if self._tls_context is None or self._secure:
            lines.append(b"AUTH PLAIN LOGIN")
        last = len(lines) - 1
        return b"".join(
            b"250" + (b" " if i == last else b"-") + text + b"\r\n" for i, text in enumerate(lines)
        )

    async def _upgrade(self) -> None:
        transport = self._transport
        assert transport is not None and self._tls_context is not None
        loop = asyncio.get_running_loop()
        # Plaintext that arrived after our 220 (a client pipelining past STARTTLS) is dropped
        # (RFC 3207). start_tls swaps the protocol synchronously, before its first await, so
        # everything received from here on is decrypted application data; it is buffered until
        # the new transport is known, since replies must go through it.
        self._buffer.clear()
        try:
            new = await loop.start_tls(transport, self, self._tls_context, server_side=True)
        except (OSError, ssl.SSLError, ConnectionError):
            transport.close()
            return
        if new is None:  # pragma: no cover - only when the transport closed meanwhile
            return
        self._transport = new
        self._secure = True
        self._upgrading = False
        self._process()

    # -- AUTH ------------------------------------------------------------------------------

    def _auth_start(self, arg: bytes) -> None:
        mechanism, _, initial = arg.partition(b" ")
        mechanism = mechanism.upper()
        if mechanism == b"PLAIN":
            if initial:
                self._auth_plain(initial)
            else:
                self._auth_state = "plain"
                self._write(b"334 \r\n")
        elif mechanism == b"LOGIN":
            if initial:
                self._auth_state = "login-pass"
                self._write(b"334 UGFzc3dvcmQ6\r\n")
            else:
                self._auth_state = "login-user"
                self._write(b"334 VXNlcm5hbWU6\r\n")
        else:
            self._write(b"504 5.5.4 Unrecognized authentication type\r\n")

    def _auth_continue(self, line: bytes) -> None:
        state, self._auth_state = self._auth_state, None
        if line == b"*":
            self._write(b"501 5.7.0 Authentication cancelled\r\n")
        elif state == "plain":
            self._auth_plain(line)
        elif state == "login-user":
            self._auth_state = "login-pass"
            self._write(b"334 UGFzc3dvcmQ6\r\n")
        else:
            self._write(b"235 2.7.0 Authentication successful\r\n")

    def _auth_plain(self, encoded: bytes) -> None:
        try:
            fields = base64.b64decode(encoded, validate=True).split(b"\0")
        except binascii.Error:
            fields = []
        if len(fields) == 3 and fields[1]:
            self._write(b"235 2.7.0 Authentication successful\r\n")
        else:
            self._write(b"535 5.7.8 Authentication credentials invalid\r\n")


async def serve(cert: str | None, key: str | None) -> None:
    """Listen on the two ports, announce them, and run until stdin closes."""
    stats = _Stats()
    loop = asyncio.get_running_loop()
    tls_context: ssl.SSLContext | None = None
    if cert is not None:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(cert, key)
    plain = await loop.create_server(lambda: SinkProtocol(stats, None), HOST, 0, backlog=128)
    servers = [plain]
    tls_port = 0
    if tls_context is not None:
        secure = await loop.create_server(
            lambda: SinkProtocol(stats, tls_context), HOST, 0, backlog=128
        )
        servers.append(secure)
        tls_port = secure.sockets[0].getsockname()[1]
    plain_port = plain.sockets[0].getsockname()[1]
    sys.stdout.write(f"READY {plain_port} {tls_port}\n")
    sys.stdout.flush()
    # Standard input closing is the stop signal: it happens even when the parent is killed.
    stdin_closed = loop.create_future()

    def watch_stdin() -> None:
        try:
            data = os.read(sys.stdin.fileno(), 1024)
        except OSError:
            data = b""
        if not data and not stdin_closed.done():
            loop.remove_reader(sys.stdin.fileno())
            stdin_closed.set_result(None)

    loop.add_reader(sys.stdin.fileno(), watch_stdin)
    try:
        await stdin_closed
    finally:
        for server in servers:
            server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="A fast SMTP sink for benchmarks (loopback).")
    parser.add_argument("--cert", help="server certificate chain (PEM) for STARTTLS")
    parser.add_argument("--key", help="the certificate's private key (PEM)")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.cert, args.key))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
