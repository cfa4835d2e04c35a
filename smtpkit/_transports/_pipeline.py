"""The mail-transaction half of an SMTP session: commands out, replies queued in order.

aiosmtplib sets a connection up (connect, TLS, EHLO, AUTH); then :mod:`smtpkit._transports.smtp`
hands the asyncio transport to a :class:`ReplyQueue` with ``transport.set_protocol`` (public
asyncio API, plain and TLS transports alike) for everything after: MAIL, RCPT, DATA, RSET, QUIT.

Why not aiosmtplib for those too: its protocol holds one parsed reply at a time and drops data
that arrives while that reply awaits pickup, so it cannot read the several replies a server
writes at once to an RFC 2920 (PIPELINING) group. This protocol queues every reply it is owed,
in order, so a group of commands can go out in one write and its replies be read one by one.

Bounded like aiosmtplib's reader: a reply line is at most 8 KB and a (multi-line) reply 32 KB;
bytes the client is not owed a reply for (nothing outstanding, or more replies than commands)
are dropped, so they can neither pile up nor be paired with a later command. Each read has its
own timeout. The module knows nothing about aiosmtplib (it must not import it) or about SMTP
semantics beyond the reply syntax of RFC 5321 §4.2.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque

__all__ = [
    "MAX_LINE_LENGTH",
    "MAX_REPLY_LENGTH",
    "MalformedReply",
    "ReplyQueue",
    "ReplyTimeout",
    "SessionClosed",
    "SessionError",
    "check_command",
]

#: Longest reply line accepted, line ending included (aiosmtplib's limit too).
MAX_LINE_LENGTH = 8192
#: Longest reply accepted, all lines of a multi-line reply together.
MAX_REPLY_LENGTH = 4 * MAX_LINE_LENGTH

# Every C0 control and DEL: in a command line, CR/LF/NUL would smuggle in further commands.
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


class SessionError(Exception):
    """The session failed (as opposed to the server answering with an error reply)."""


class SessionClosed(SessionError, ConnectionError):
    """The connection is closed; ``__cause__`` is the socket error, if there was one."""


class ReplyTimeout(SessionError, TimeoutError):
    """No complete reply within the timeout."""


class MalformedReply(SessionError):
    """The server sent something that is not an SMTP reply, or one over the size limits.

    ``text`` holds the start of the offending line (decoded leniently) for the error message.
    """

    def __init__(self, message: str, text: str = "") -> None:
        super().__init__(message)
        self.text = text


def check_command(line: bytes) -> bytes:
    """``line`` (a command without its CRLF) if it holds no control character, else ValueError.

    Addresses and parameters are validated long before they get here; this is the last guard
    against a CR or LF turning one command into two (the same check aiosmtplib makes).
    """
    if _CONTROL.search(line) is not None:
        raise ValueError("SMTP command contains a control character")
    return line


class ReplyQueue(asyncio.Protocol):
    """An asyncio protocol that parses SMTP replies into a queue, in the order they arrive.

    Attach it to a connected transport with :meth:`attach`. :meth:`send` writes commands and
    says how many replies they are owed; :meth:`read` returns the next reply as
    ``(code, text)``, text lines joined by ``"\\n"`` without codes or separators (the shape
    aiosmtplib gives, so :meth:`smtpkit.Reply.parse` reads both alike).
    """

    __slots__ = (
        "_buffer",
        "_cause",
        "_closed",
        "_failure",
        "_loop",
        "_owed",
        "_parts",
        "_replies",
        "_size",
        "_transport",
        "_unsent_at_close",
        "_waiter",
        "_writable",
    )

    def __init__(self, transport: asyncio.Transport) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport = transport
        self._buffer = bytearray()
        # Lines of the reply being parsed, and their total length.
        self._parts: list[bytes] = []
        self._size = 0
        self._replies: deque[tuple[int, str]] = deque()
        # Replies still to come for the commands written so far.
        self._owed = 0
        self._waiter: asyncio.Future[None] | None = None
        self._failure: MalformedReply | None = None
        self._closed = transport.is_closing()
        self._cause: BaseException | None = None
        self._unsent_at_close = 0
        # Set while the transport's write buffer is below its high-water mark (flow control):
        # a large message is written no faster than the socket takes it, so the transport
        # never holds a second copy of it.
        self._writable = asyncio.Event()
        self._writable.set()

    @classmethod
    def attach(cls, transport: asyncio.Transport) -> ReplyQueue:
        """Make a queue the protocol of ``transport`` from now on and return it.

        Bytes the previous protocol had buffered stay with it: at a command boundary a server
        owes nothing, so any there would be unsolicited anyway.
        """
        queue = cls(transport)
        transport.set_protocol(queue)
        return queue

    # -- state ------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the connection is closed or closing (by either side), or unusable."""
        return self._closed or self._failure is not None or self._transport.is_closing()

    @property
    def transport(self) -> asyncio.Transport:
        """The transport this queue reads from and writes to."""
        return self._transport

    def unsent(self) -> int:
        """Bytes written but not yet handed to the operating system (0 when unknown).

        After the server closed the connection this is the count seen at the end of the
        stream: bytes it can never have read.
        """
        try:
            current = self._transport.get_write_buffer_size()
        except (AttributeError, RuntimeError):
            current = 0
        return max(current, self._unsent_at_close)

    def close(self) -> None:
        """Drop the connection at once (no QUIT; that is the caller's business)."""
        self._closed = True
        if not self._transport.is_closing():
            self._transport.abort()

    # -- commands and replies ---------------------------------------------------------------

    def send(self, data: bytes, replies: int) -> None:
        """Write ``data`` (whole command lines, or message content) owed ``replies`` replies."""
        if self.closed:
            raise self._closed_error()
        self._owed += replies
        self._transport.write(data)

    def pause_writing(self) -> None:
        """The transport's buffer is over its high-water mark: writers should wait."""
        self._writable.clear()

    def resume_writing(self) -> None:
        """The transport's buffer drained below its low-water mark."""
        self._writable.set()

    async def drain(self, seconds: float) -> None:
        """Wait until the transport can take more data (at most ``seconds``)."""
        if self._writable.is_set() or self.closed:
            return
        try:
            await asyncio.wait_for(self._writable.wait(), seconds)
        except TimeoutError:
            raise ReplyTimeout(
                "timed out writing the message: the server stopped reading"
            ) from None

    async def read(self, seconds: float) -> tuple[int, str]:
        """The next reply; waits at most ``seconds`` for it to be complete.

        Replies already received are returned before any failure is reported: the server's
        last words (a 421, say) come before the news that it hung up.
        """
        if self._replies:
            return self._replies.popleft()
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise self._closed_error()
        waiter = self._loop.create_future()
        self._waiter = waiter
        timer = self._loop.call_later(seconds, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        if self._replies:
            return self._replies.popleft()
        if self._failure is not None:
            raise self._failure
        raise self._closed_error()

    def _closed_error(self) -> SessionClosed:
        error = SessionClosed("the server closed the connection")
        error.__cause__ = self._cause
        return error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- asyncio.Protocol -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Parse complete replies into the queue (unsolicited bytes are dropped)."""
        if self._owed <= 0 or self._failure is not None:
            return
        buffer = self._buffer
        buffer += data
        start = 0
        try:
            while self._owed > 0:
                end = buffer.find(b"\n", start)
                if end < 0:
                    break
                line = bytes(buffer[start : end + 1])
                start = end + 1
                self._line(line)
            if self._owed <= 0:
                # More than the commands asked for: never let it answer a later command.
                buffer.clear()
                self._parts.clear()
                self._size = 0
            else:
                del buffer[:start]
                if len(buffer) >= MAX_LINE_LENGTH:
                    raise MalformedReply(
                        "reply line too long", buffer[:80].decode("utf-8", "replace")
                    )
        except MalformedReply as exc:
            self._failure = exc
            buffer.clear()
        if self._replies or self._failure is not None:
            self._wake()  # not for a partial reply: the reader keeps waiting (and timing)

    def _line(self, line: bytes) -> None:
        if len(line) > MAX_LINE_LENGTH:
            raise MalformedReply("reply line too long", line[:80].decode("utf-8", "replace"))
        code = line[:3]
        if not code.isdigit():
            raise MalformedReply(
                "malformed reply line", line[:200].decode("utf-8", "replace").rstrip()
            )
        self._size += len(line)
        if self._size > MAX_REPLY_LENGTH:
            raise MalformedReply("reply too long", line[:80].decode("utf-8", "replace"))
        self._parts.append(line[4:].strip(b" \t\r\n"))
        if line[3:4] == b"-":
            return  # a continuation line: the reply goes on
        text = b"\n".join(self._parts).decode("utf-8", "surrogateescape")
        self._parts.clear()
        self._size = 0
        self._owed -= 1
        self._replies.append((int(code), text))

    def eof_received(self) -> bool:
        """The server closed its side: note what it cannot have read, then close ours."""
        self._unsent_at_close = self.unsent()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Remember why the connection ended and wake a reader waiting for a reply."""
        self._closed = True
        self._cause = exc
        self._writable.set()  # a writer waiting to drain must not wait for a dead socket
        self._wake()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(ReplyTimeout("timed out waiting for the server's reply"))
