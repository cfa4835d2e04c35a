"""MemoryTransport: keeps every message in a list, for tests.

>>> import asyncio
>>> from smtpkit._envelope import Envelope
>>> transport = MemoryTransport()
>>> data = b"Subject: Hi\\r\\nMessage-ID: <1@example.com>\\r\\n\\r\\nHello\\r\\n"
>>> result = asyncio.run(transport.send_raw(Envelope("a@example.com", ["b@example.com"]), data))
>>> result.accepted, transport.outbox[0].subject
(('b@example.com',), 'Hi')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cached_property
from typing import TYPE_CHECKING

from smtpkit._exceptions import RecipientsRefused
from smtpkit._parsed import ParsedMessageView
from smtpkit._replies import RecipientStatus, Reply, SendResult
from smtpkit._transports.base import message_id_of

if TYPE_CHECKING:
    from smtpkit._envelope import Envelope

__all__ = ["MemoryTransport", "SentMessage"]

_ACCEPTED = Reply(250, "2.1.5", "OK")
_QUEUED = Reply(250, "2.0.0", "OK: queued in memory")
#: The reply given to refused addresses unless another is set.
DEFAULT_REFUSAL = Reply(550, "5.1.1", "Mailbox unavailable")


@dataclass(frozen=True, eq=False)
class SentMessage(ParsedMessageView):
    """One message a :class:`MemoryTransport` accepted.

    Its headers and bodies read like a captured message's (:class:`ParsedMessageView`):
    ``subject``, ``header(name)``, ``text``, ``html``, ``attachments``; ``message`` and
    ``parsed`` are the whole parsed message.

    Attributes:
        envelope: the envelope it was sent with.
        data: the message bytes exactly as given to ``send_raw``.
        result: the result that was returned for it.
    """

    envelope: Envelope
    data: bytes
    result: SendResult = field(repr=False)

    @cached_property
    def message(self) -> EmailMessage:
        """The bytes parsed back into an :class:`email.message.EmailMessage` (parsed once)."""
        return self.parsed

    def _view(self) -> EmailMessage:
        # Read the cached parse: tests look at several headers and bodies of one message.
        return self.message

    @property
    def sender(self) -> str | None:
        """The envelope sender (``None`` for the null reverse-path)."""
        return None if self.envelope.sender is None else str(self.envelope.sender)

    @property
    def recipients(self) -> tuple[str, ...]:
        """The envelope recipients the transport accepted (Bcc included)."""
        return self.result.accepted

    @property
    def message_id(self) -> str | None:
        """The Message-ID header, with angle brackets."""
        return self.result.message_id

    def __repr__(self) -> str:
        return f"<SentMessage {self.message_id} to {', '.join(self.recipients)}>"


class MemoryTransport:
    """A transport that keeps messages in :attr:`outbox` instead of sending them.

    It can be told to refuse addresses (recorded per recipient like a real server does) and to
    fail the next sends with a given error, to test how code handles both.

    Args:
        refuse: addresses (any case) to refuse with ``refuse_reply``.
        refuse_reply: the reply given to refused addresses.
        description: the name reported in results.
    """

    def __init__(
        self,
        *,
        refuse: Iterable[str] = (),
        refuse_reply: Reply = DEFAULT_REFUSAL,
        description: str = "memory://",
    ) -> None:
        #: Every accepted message, oldest first.
        self.outbox: list[SentMessage] = []
        self._refused: dict[str, Reply] = {}
        self._errors: list[Exception] = []
        self._description = description
        self._closed = False
        self.refuse(*refuse, reply=refuse_reply)

    @property
    def description(self) -> str:
        """The name reported in results (``memory://`` by default)."""
        return self._description

    @property
    def closed(self) -> bool:
        """True after :meth:`aclose`."""
        return self._closed

    def refuse(self, *addresses: str, reply: Reply = DEFAULT_REFUSAL) -> None:
        """Refuse these recipients (case-insensitive) with ``reply`` from now on."""
        for address in addresses:
            self._refused[address.lower()] = reply

    def fail_next(self, error: Exception, *, times: int = 1) -> None:
        """Make the next ``times`` sends raise ``error`` (nothing is recorded for them)."""
        self._errors.extend([error] * times)

    def clear(self) -> None:
        """Forget sent messages, refusals and queued errors."""
        self.outbox.clear()
        self._refused.clear()
        self._errors.clear()

    async def send_raw(self, envelope: Envelope, data: bytes, /) -> SendResult:
        """Record the message, or refuse recipients / raise as configured."""
        if self._errors:
            raise self._errors.pop(0)
        statuses = tuple(
            RecipientStatus(str(r), self._refused.get(str(r).lower(), _ACCEPTED))
            for r in envelope.recipients
        )
        if not any(s.accepted for s in statuses):
            rejected = {s.address: s.reply for s in statuses}
            raise RecipientsRefused("every recipient was refused", rejected=rejected)
        result = SendResult(
            message_id=message_id_of(data),
            envelope=envelope,
            recipients=statuses,
            reply=_QUEUED,
            transport=self._description,
        )
        self.outbox.append(SentMessage(envelope=envelope, data=bytes(data), result=result))
        return result

    async def aclose(self) -> None:
        """Mark the transport closed; the outbox stays readable (and sending still works, so
        that several mailers in one test may share and close the same transport)."""
        self._closed = True
