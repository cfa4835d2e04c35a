"""A read-only view of message bytes parsed back: headers, text and HTML bodies, attachments.

Both places that hand recorded messages to tests (``MemoryTransport``'s outbox and the
development server's captures) mix :class:`ParsedMessageView` into their frozen dataclasses,
so a test reads a message the same way whichever one recorded it.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Raw(ParsedMessageView):
...     data: bytes
>>> Raw(b"Subject: Hi\\r\\n\\r\\nHello\\r\\n").text
'Hello\\n'
"""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.parser import BytesParser

__all__ = ["ParsedMessageView", "parse_message"]


def parse_message(data: bytes) -> EmailMessage:
    """Parse message bytes with ``email.policy.default`` (so headers come back decoded)."""
    parsed = BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(parsed, EmailMessage)  # guaranteed by policy.default
    return parsed


class ParsedMessageView:
    """Mixin for (frozen, optionally slotted) dataclasses that hold a ``data: bytes`` field.

    Every accessor reads :meth:`_view`, which parses :attr:`data` afresh; a class that keeps
    its parse (``MemoryTransport``'s ``SentMessage`` caches it) overrides :meth:`_view`.
    """

    __slots__ = ()

    data: bytes

    @property
    def parsed(self) -> EmailMessage:
        """The message parsed with ``email.policy.default`` (a new object on every access)."""
        return parse_message(self.data)

    def _view(self) -> EmailMessage:
        # What the accessors below read.
        return self.parsed

    @property
    def subject(self) -> str | None:
        """The decoded ``Subject`` header, or ``None`` when there is none."""
        return self.header("Subject")

    def header(self, name: str) -> str | None:
        """A decoded header value, or ``None`` when absent."""
        value = self._view().get(name)
        return None if value is None else str(value)

    @property
    def text(self) -> str | None:
        """The ``text/plain`` body, decoded, with ``"\\n"`` line ends; or ``None``."""
        return self._body("plain")

    @property
    def html(self) -> str | None:
        """The ``text/html`` body, decoded, with ``"\\n"`` line ends; or ``None``."""
        return self._body("html")

    def _body(self, subtype: str) -> str | None:
        part = self._view().get_body(preferencelist=(subtype,))
        if part is None or part.get_content_type() != f"text/{subtype}":
            return None
        content = part.get_content()
        return content.replace("\r\n", "\n") if isinstance(content, str) else None

    @property
    def attachments(self) -> list[EmailMessage]:
        """The attachment parts (use ``get_filename()`` and ``get_content()`` on each)."""
        return [p for p in self._view().iter_attachments() if isinstance(p, EmailMessage)]
