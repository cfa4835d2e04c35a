"""The transport seam: one primitive, ``send_raw(envelope, data) -> SendResult``.

Everything above this layer (the mailer, hooks, retry) works with any object that has these
three members, so SMTP, in-memory, file and failover transports are interchangeable.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from smtpkit._envelope import Envelope
    from smtpkit._replies import SendResult

__all__ = ["AsyncTransport", "header_block", "message_id_of"]

# "Message-ID:" at the start of a header line, possibly folded onto the next line.
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(?:\r?\n[ \t]+)?(<[^<>\s]{1,995}>)", re.I | re.M)
# Bound the header scan so that a message without a blank line is not searched end to end.
_MAX_HEADER_SCAN = 256 * 1024


@runtime_checkable
class AsyncTransport(Protocol):
    """Hands one serialised message to its destination.

    ``send_raw`` makes exactly one attempt: it returns a :class:`~smtpkit.SendResult` with
    ``attempts=1`` or raises a :class:`~smtpkit.TransportError` subclass (or a
    :class:`~smtpkit.MessageError` such as :class:`~smtpkit.MessageTooLarge` when the message
    can never be sent as it is). Retrying is the caller's job.

    >>> class Null:
    ...     description = "null://"
    ...     async def send_raw(self, envelope, data, /): ...
    ...     async def aclose(self): ...
    >>> isinstance(Null(), AsyncTransport)
    True
    """

    @property
    def description(self) -> str:
        """A redacted, human-readable name, e.g. ``"smtp://user@smtp.example.com:587"``."""
        ...

    async def send_raw(self, envelope: Envelope, data: bytes, /) -> SendResult:
        """Send ``data`` (the message bytes, CRLF line ends) to ``envelope``'s recipients."""
        ...

    async def aclose(self) -> None:
        """Release every resource (connections, files). Safe to call more than once."""
        ...


def header_block(data: bytes) -> bytes:
    """The header section of serialised message bytes (up to the first blank line)."""
    end = data.find(b"\r\n\r\n", 0, _MAX_HEADER_SCAN)
    if end < 0:
        end = data.find(b"\n\n", 0, _MAX_HEADER_SCAN)
    return data[: end if end >= 0 else _MAX_HEADER_SCAN]


def message_id_of(data: bytes, *, headers: bytes | None = None) -> str | None:
    """The Message-ID header of serialised message bytes (with angle brackets), or ``None``.

    A cheap scan of the header block, not a MIME parse: transports call it for every message.

    >>> message_id_of(b"Subject: x\\r\\nMessage-ID: <a@b.example>\\r\\n\\r\\nbody")
    '<a@b.example>'
    """
    match = _MESSAGE_ID.search(header_block(data) if headers is None else headers)
    return match.group(1).decode("utf-8", "replace") if match else None
