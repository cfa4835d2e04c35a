"""ScriptedServer: a raw asyncio server that answers with exact bytes, for byte-level client tests.

aiosmtpd cannot be told to send a split reply, garbage, a 100 KB line or extra lines after the
STARTTLS ``220``; this server can, because every reply is bytes written as given. Each
connection runs the same script: a list of steps, or an ``async`` function that drives a
:class:`ScriptedSession` itself. Everything the client sends is recorded.

>>> steps = [
...     (b"EHLO", b"250-scripted.test\\r\\n250 STARTTLS\\r\\n"),
...     (b"STARTTLS", b"220 go ahead\\r\\n250-injected\\r\\n"),   # injected after 220
...     StartTLS(),
...     (b"EHLO", b"250 scripted.test\\r\\n"),
... ]
>>> server = ScriptedServer(steps)   # then server.start(), server.port, server.records
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from smtpkit.devserver._base import LoopServer
from smtpkit.devserver._certs import CertificateBundle
from smtpkit.devserver._loop import close_everything

__all__ = [
    "Close",
    "ReadData",
    "ScriptFunction",
    "ScriptedRecord",
    "ScriptedServer",
    "ScriptedSession",
    "Sleep",
    "StartTLS",
    "Step",
]

_LINE_LIMIT = 1 << 20
_CLOSE_GRACE = 2.0


@dataclass(frozen=True, slots=True)
class StartTLS:
    """Step: upgrade this connection to TLS (server side) with the server's certificate."""


@dataclass(frozen=True, slots=True)
class ReadData:
    """Step: read message content up to the ``.`` line, record it, then send ``reply``."""

    reply: bytes | None = b"250 2.0.0 Ok: queued as SCRIPTED\r\n"


@dataclass(frozen=True, slots=True)
class Close:
    """Step: close the connection (``abort=True``: reset it without a clean shutdown)."""

    abort: bool = False


@dataclass(frozen=True, slots=True)
class Sleep:
    """Step: wait ``seconds`` before the next step."""

    seconds: float


#: A step: ``(expect, reply)`` reads one line (``expect=None``: reads nothing) and checks it
#: starts with ``expect`` (case-insensitive; ``b""`` accepts any line), then writes ``reply``
#: exactly (``None``: writes nothing); or one of the action steps.
Step = tuple[bytes | None, bytes | None] | StartTLS | ReadData | Close | Sleep


@dataclass(frozen=True, slots=True)
class ScriptedRecord:
    """What one connection received.

    Attributes:
        index: connection number, from 0.
        received: every byte read from the client, in order (decrypted after TLS).
        lines: every line read, line ending included (message content is in ``bodies``).
        bodies: message contents read by :class:`ReadData`, dot-unstuffed.
        tls_started_at: how many ``lines`` had been read when TLS started, or ``None``.
        mismatches: lines that did not start with the step's expected prefix.
        error: the exception that ended the script early (e.g. the client went away).
        closed: whether the connection is finished.
    """

    index: int
    received: bytes
    lines: tuple[bytes, ...]
    bodies: tuple[bytes, ...]
    tls_started_at: int | None
    mismatches: tuple[str, ...]
    error: str | None
    closed: bool


@dataclass
class _Live:
    # Mutable record of one connection; guarded by ScriptedServer's condition.
    index: int
    received: bytearray = field(default_factory=bytearray)
    lines: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    tls_started_at: int | None = None
    mismatches: list[str] = field(default_factory=list)
    error: str | None = None
    closed: bool = False

    def snapshot(self) -> ScriptedRecord:
        return ScriptedRecord(
            self.index,
            bytes(self.received),
            tuple(self.lines),
            tuple(self.bodies),
            self.tls_started_at,
            tuple(self.mismatches),
            self.error,
            self.closed,
        )


class ScriptedSession:
    """One connection, as seen by a script function (all methods run on the server loop)."""

    def __init__(
        self,
        index: int,
        *,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        live: _Live,
        lock: threading.Condition,
        certs: CertificateBundle,
    ) -> None:
        self.index = index
        self._reader = reader
        self._writer = writer
        self._live = live
        self._lock = lock
        self._certs = certs
        self.closed = False

    async def readline(self) -> bytes:
        """Read one line including its ending (``\\n``-terminated); ``b""`` at end of stream."""
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            line = exc.partial
        with self._lock:
            self._live.received += line
            if line:
                self._live.lines.append(line)
        return line

    async def read_data(self) -> bytes:
        """Read message content up to the ``.`` line; record and return it dot-unstuffed."""
        body = bytearray()
        while True:
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.IncompleteReadError as exc:
                with self._lock:
                    self._live.received += exc.partial
                raise ConnectionError("client closed the connection during DATA") from exc
            with self._lock:
                self._live.received += line
            if line == b".\r\n":
                break
            body += line[1:] if line.startswith(b".") else line
        with self._lock:
            self._live.bodies.append(bytes(body))
        return bytes(body)

    async def write(self, data: bytes) -> None:
        """Write ``data`` exactly as given and wait until it is handed to the OS."""
        self._writer.write(data)
        await self._writer.drain()

    async def start_tls(self) -> None:
        """Upgrade the connection to TLS (the client must start its handshake now)."""
        with self._lock:
            self._live.tls_started_at = len(self._live.lines)
        await self._writer.start_tls(self._certs.context)

    def mismatch(self, text: str) -> None:
        """Record that the client did something the script did not expect."""
        with self._lock:
            self._live.mismatches.append(text)

    async def close(self, *, abort: bool = False) -> None:
        """Close the connection; ``abort=True`` drops it without a clean shutdown."""
        if self.closed:
            return
        self.closed = True
        if abort:
            self._writer.transport.abort()
            return
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), _CLOSE_GRACE)
        except (TimeoutError, OSError):
            # A TLS peer that never answers close_notify: give up politely, then hard.
            self._writer.transport.abort()


#: A script written as code: it gets the session and drives it.
ScriptFunction = Callable[[ScriptedSession], Awaitable[None]]


async def _run_steps(session: ScriptedSession, steps: Sequence[Step]) -> None:
    for number, step in enumerate(steps):
        if isinstance(step, StartTLS):
            await session.start_tls()
        elif isinstance(step, ReadData):
            await session.read_data()
            if step.reply is not None:
                await session.write(step.reply)
        elif isinstance(step, Close):
            await session.close(abort=step.abort)
            return
        elif isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
        else:
            expect, reply = step
            if expect is not None:
                line = await session.readline()
                if not line:
                    return  # the client went away
                if not line.upper().startswith(expect.upper()):
                    session.mismatch(f"step {number}: expected {expect!r}, got {line!r}")
            if reply is not None:
                await session.write(reply)
    await _after_script(session)


async def _after_script(session: ScriptedSession) -> None:
    # Past the end of the script: answer QUIT politely, refuse anything else, until EOF.
    while True:
        line = await session.readline()
        if not line:
            return
        if line.upper().startswith(b"QUIT"):
            await session.write(b"221 2.0.0 Bye\r\n")
            return
        await session.write(b"502 5.5.1 Unscripted command\r\n")


class ScriptedServer(LoopServer):
    """A byte-exact scripted SMTP server on its own event-loop thread.

    Args:
        script: steps (see :data:`Step`) or an ``async`` function taking a
            :class:`ScriptedSession`. Every connection runs it from the start; after the
            steps, QUIT gets ``221`` and other lines ``502``.
        greeting: bytes sent on connect before the script (``None``: nothing).
        host, port: where to listen (``port=0`` picks a free port).
        tls: ``"implicit"`` wraps the listening socket in TLS; ``StartTLS`` steps work in
            either mode. ``ca_file`` is the CA to trust.
    """

    _thread_name = "smtpkit-scripted"

    def __init__(
        self,
        script: Sequence[Step] | ScriptFunction,
        *,
        greeting: bytes | None = b"220 scripted.test ESMTP\r\n",
        host: str = "127.0.0.1",
        port: int = 0,
        tls: Literal["none", "implicit"] = "none",
        cert_hostnames: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
    ) -> None:
        if tls not in ("none", "implicit"):
            raise ValueError("tls must be 'none' or 'implicit'")
        if not callable(script):
            for step in script:
                valid = isinstance(step, StartTLS | ReadData | Close | Sleep) or (
                    isinstance(step, tuple) and len(step) == 2
                )
                if not valid:
                    raise TypeError(f"not a script step: {step!r}")
        super().__init__(host=host, port=port, cert_hostnames=cert_hostnames)
        self._script = script
        self._greeting = greeting
        self._tls = tls
        self._cond = threading.Condition()
        self._live: list[_Live] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<ScriptedServer {self._host} {self._state()}>"

    async def _listen(self, certs: CertificateBundle) -> asyncio.Server:
        def on_client(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> Coroutine[Any, Any, None]:
            # Runs synchronously in connection_made: the writer is known before the task
            # starts, so a stop() in between still closes its transport.
            self._writers.add(writer)
            return self._serve(reader, writer, certs)

        return await asyncio.start_server(
            on_client,
            self._host,
            self._requested_port,
            ssl=certs.context if self._tls == "implicit" else None,
            limit=_LINE_LIMIT,
        )

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, certs: CertificateBundle
    ) -> None:
        with self._cond:
            live = _Live(len(self._live))
            self._live.append(live)
        session = ScriptedSession(
            live.index, reader=reader, writer=writer, live=live, lock=self._cond, certs=certs
        )
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self._greeting is not None:
                await session.write(self._greeting)
            if callable(self._script):
                await self._script(session)
            else:
                await _run_steps(session, self._script)
        except asyncio.CancelledError:
            await session.close(abort=True)
            if not self._stopping:
                raise
            # Our own stop(): end quietly (a cancelled task here makes asyncio log an error).
        except Exception as exc:
            with self._cond:
                live.error = repr(exc)
        finally:
            await session.close(abort=live.error is not None)
            self._tasks.discard(task)
            self._writers.discard(writer)
            with self._cond:
                live.closed = True
                self._cond.notify_all()

    async def _shutdown(self, server: asyncio.Server) -> None:
        self._stopping = True

        def abort() -> None:
            for writer in list(self._writers):
                writer.transport.abort()

        await close_everything(server, abort)

    def _stopped(self) -> None:
        self._stopping = False

    @property
    def records(self) -> list[ScriptedRecord]:
        """Snapshots of every connection so far."""
        with self._cond:
            return [live.snapshot() for live in self._live]

    def wait_done(self, count: int = 1, timeout: float = 5.0) -> list[ScriptedRecord]:
        """Block until ``count`` connections have finished; return all records."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(live.closed for live in self._live) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{count} connection(s) not finished after {timeout} s")
                self._cond.wait(remaining)
            return [live.snapshot() for live in self._live]
