"""Server replies and the structured result of a send.

A :class:`Reply` is one SMTP reply (code, RFC 3463 enhanced status code, text). A
:class:`SendResult` records what happened to one message: every recipient's outcome, the reply
to the end of data, the number of attempts and the time taken.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from smtpkit._exceptions import RecipientsRefused

if TYPE_CHECKING:
    from smtpkit._envelope import Envelope

__all__ = ["RecipientStatus", "Reply", "SendResult"]

# RFC 3463: class "." subject "." detail, class in {2,4,5}, subject 1-3 digits, detail 1-3 digits.
_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")
# Servers phrase the queue id differently; these cover Postfix, Exim, Sendmail, SES and most relays.
_QUEUE_ID_PATTERNS = tuple(
    re.compile(prefix + r"\s*<?([A-Za-z0-9][A-Za-z0-9._@-]{3,127})>?", re.IGNORECASE)
    for prefix in (r"queued as", r"queue id:?", r"id=", r"^Ok:?")
)


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply.

    Attributes:
        code: the three-digit reply code, e.g. ``550``.
        enhanced_code: the RFC 3463 status code such as ``"5.1.1"``, or ``None``.
        text: the reply text without codes; lines of a multi-line reply joined by ``"\\n"``.

    >>> Reply.parse(550, "5.1.1 <bob@example.com>: Recipient address rejected")
    Reply(code=550, enhanced_code='5.1.1', text='<bob@example.com>: Recipient address rejected')
    """

    code: int
    enhanced_code: str | None = None
    text: str = ""

    @classmethod
    def parse(cls, code: int, message: str) -> Reply:
        """Build a reply from its code and the text after the code (as SMTP libraries give it).

        The enhanced status code is taken from the start of the first line when present and its
        class matches the reply's; it is stripped from every line so ``text`` holds prose only.
        """
        lines = message.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        enhanced: str | None = None
        cleaned: list[str] = []
        for index, line in enumerate(lines):
            stripped = line.strip()
            match = _ENHANCED.match(stripped)
            if match and match.group(1) == str(code)[:1]:
                if index == 0:
                    enhanced = ".".join(match.groups())
                if enhanced is not None and ".".join(match.groups()) == enhanced:
                    stripped = stripped[match.end() :]
            cleaned.append(stripped)
        text = "\n".join(cleaned).strip()
        return cls(code=code, enhanced_code=enhanced, text=text)

    @property
    def is_success(self) -> bool:
        """True for 2xx and 3xx (intermediate) replies."""
        return 200 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """True for 4xx replies: the same command may succeed later."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """True for 5xx replies: retrying the same command will fail again."""
        return 500 <= self.code < 600

    def __str__(self) -> str:
        parts = [str(self.code)]
        if self.enhanced_code:
            parts.append(self.enhanced_code)
        if self.text:
            parts.append(self.text.replace("\n", " / "))
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping of the reply."""
        return {"code": self.code, "enhanced_code": self.enhanced_code, "text": self.text}


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """What the server said to ``RCPT TO`` for one recipient.

    Attributes:
        address: the recipient address as sent in the envelope.
        reply: the server's reply to its ``RCPT TO``.
    """

    address: str
    reply: Reply

    @property
    def accepted(self) -> bool:
        """True when the server accepted this recipient (2xx)."""
        return 200 <= self.reply.code < 300


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of sending one message.

    Attributes:
        message_id: the Message-ID header with angle brackets, or ``None`` for raw data without one.
        envelope: the envelope used (MAIL FROM and RCPT TO).
        recipients: one :class:`RecipientStatus` per envelope recipient, in order.
        reply: the reply to the end of data (``None`` if no recipient was accepted).
        attempts: how many times sending was tried (1 when the first try succeeded).
        elapsed: seconds from the first attempt to the result.
        transport: a redacted description of the transport that delivered it.

    >>> result.accepted            # doctest: +SKIP
    ('ann@example.com',)
    >>> result.rejected            # doctest: +SKIP
    {'bob@example.com': Reply(code=550, enhanced_code='5.1.1', text='No such user')}
    """

    message_id: str | None
    envelope: Envelope
    recipients: tuple[RecipientStatus, ...]
    reply: Reply | None
    attempts: int = 1
    elapsed: float = 0.0
    transport: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def accepted(self) -> tuple[str, ...]:
        """Addresses the server accepted."""
        return tuple(r.address for r in self.recipients if r.accepted)

    @property
    def rejected(self) -> dict[str, Reply]:
        """Refused addresses mapped to the server's reply."""
        return {r.address: r.reply for r in self.recipients if not r.accepted}

    @property
    def queue_id(self) -> str | None:
        """The server's queue id from the end-of-data reply, when it gave one."""
        if self.reply is None:
            return None
        for pattern in _QUEUE_ID_PATTERNS:
            match = pattern.search(self.reply.text)
            if match:
                return match.group(1)
        return None

    def raise_for_rejections(self) -> SendResult:
        """Raise :class:`~smtpkit.RecipientsRefused` if any recipient was refused; else self."""
        rejected = self.rejected
        if rejected:
            names = ", ".join(rejected)
            raise RecipientsRefused(f"recipients refused: {names}", rejected=rejected)
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping of the result."""
        return {
            "message_id": self.message_id,
            "envelope": {
                "sender": None if self.envelope.sender is None else str(self.envelope.sender),
                "recipients": [str(r) for r in self.envelope.recipients],
            },
            "recipients": [
                {"address": r.address, "accepted": r.accepted, "reply": r.reply.to_dict()}
                for r in self.recipients
            ],
            "reply": self.reply.to_dict() if self.reply else None,
            "queue_id": self.queue_id,
            "attempts": self.attempts,
            "elapsed": self.elapsed,
            "transport": self.transport,
        }
