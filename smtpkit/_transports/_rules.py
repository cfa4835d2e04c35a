"""RFC 5321 rules the SMTP transport applies around a transaction, as pure functions.

No I/O and no aiosmtplib: what a message needs from the server (its plan), line and size limits,
"too many recipients" replies, and the MAIL/RCPT path encoding.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from smtpkit._replies import Reply

if TYPE_CHECKING:
    from smtpkit._address import Address

__all__ = [
    "MAX_LINE",
    "Plan",
    "overlong_line",
    "path",
    "size_limit",
    "summary",
    "too_many_recipients",
]


@dataclass(frozen=True, slots=True)
class Plan:
    """What one message needs from the server, worked out once before any I/O."""

    message_id: str | None
    size: int
    smtputf8: bool
    eightbit: bool


# RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with its CRLF.
MAX_LINE = 998


def overlong_line(data: bytes) -> int | None:
    """The number of the first line longer than 998 octets, or None.

    aiosmtplib turns a lone CR or LF into CRLF, so both end a line. Lines are found with
    ``bytes.find`` (no copy of the data, linear time); a long LF-delimited stretch is split on
    CR only in the rare case that it is long enough to matter.
    """
    if len(data) <= MAX_LINE:
        return None
    start, number, size = 0, 1, len(data)
    while start < size:
        end = data.find(b"\n", start)
        if end < 0:
            end = size
        if end - start > MAX_LINE:
            pieces = data[start:end].split(b"\r")
            if any(len(piece) > MAX_LINE for piece in pieces):
                return number
        start, number = end + 1, number + 1
    return None


def size_limit(extensions: dict[str, str]) -> int | None:
    """The server's SIZE maximum (RFC 1870), or None when it has none (absent, 0 or bad)."""
    value = extensions.get("size", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return None


def too_many_recipients(reply: Reply) -> bool:
    """RFC 5321 §4.5.3.1.10: 452 (or 552, sent by older servers) for "too many recipients"."""
    if reply.code == 452:
        return reply.enhanced_code in (None, "4.5.3") or "too many" in reply.text.lower()
    if reply.code == 552:
        return reply.enhanced_code == "5.5.3" or "too many recipients" in reply.text.lower()
    return False


def path(address: Address | None, smtputf8: bool, encoding: str) -> bytes:
    """``<local@domain>`` for MAIL/RCPT; ``<>`` for the null reverse-path."""
    if address is None:
        return b"<>"
    return b"<" + address.for_smtp(smtputf8=smtputf8).encode(encoding) + b">"


def summary(rejected: dict[str, Reply], limit: int = 3) -> str:
    """The first few refused addresses with their replies, for an error message."""
    items = [f"{address} ({reply})" for address, reply in itertools.islice(rejected.items(), limit)]
    more = len(rejected) - limit
    if more > 0:
        items.append(f"and {more} more")
    return ", ".join(items)
