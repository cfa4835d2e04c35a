"""``Envelope``: who the message is sent from and to at the SMTP level (MAIL FROM, RCPT TO).

Usually derived from the message (:meth:`Envelope.from_message`): the return path (or From) as
sender, To + Cc + Bcc as recipients. Bcc exists only here, never in the message bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from smtpkit._address import Address, Mailbox
from smtpkit._exceptions import InvalidAddress, NoRecipients

if TYPE_CHECKING:
    from smtpkit._message import Message

__all__ = ["Envelope"]


def _address(value: object, field: str) -> Address:
    if isinstance(value, Address):
        return value
    if isinstance(value, Mailbox):
        return value.address
    if isinstance(value, str):
        return Mailbox.parse(value, field=field).address
    raise InvalidAddress(f"{field}: expected str, Address or Mailbox, not {type(value).__name__}")


@dataclass(frozen=True, init=False)
class Envelope:
    """The SMTP envelope: ``MAIL FROM`` sender and ``RCPT TO`` recipients.

    ``sender=None`` is the null reverse-path ``<>`` (for bounces and auto-replies). Recipients
    are deduplicated by :attr:`Address.key` (domain case-insensitive, local part case kept),
    first occurrence first. A single ``str`` is one recipient.

    >>> env = Envelope("bounces@example.com", ["ann@example.com", "ann@EXAMPLE.com"])
    >>> [str(r) for r in env.recipients]
    ['ann@example.com']
    >>> Envelope(None, []).recipients
    Traceback (most recent call last):
    smtpkit._exceptions.NoRecipients: envelope: no recipients
    """

    sender: Address | None
    recipients: tuple[Address, ...]

    def __init__(
        self,
        sender: str | Address | Mailbox | None,
        recipients: Iterable[str | Address | Mailbox] | str | Address | Mailbox,
    ) -> None:
        object.__setattr__(
            self, "sender", None if sender is None else _address(sender, "envelope sender")
        )
        single = isinstance(recipients, str | Address | Mailbox)
        items: Iterable[object] = (recipients,) if single else recipients  # type: ignore[assignment]
        merged: dict[tuple[str, str], Address] = {}
        for i, value in enumerate(items):
            address = _address(value, f"envelope recipients[{i}]")
            merged.setdefault(address.key, address)
        if not merged:
            raise NoRecipients("envelope: no recipients")
        object.__setattr__(self, "recipients", tuple(merged.values()))

    @classmethod
    def from_message(cls, message: Message) -> Envelope:
        """The envelope of *message*: return path (or From) and To + Cc + Bcc.

        Raises:
            NoRecipients: the message has no To, Cc or Bcc.
        """
        sender = message.return_path or message.sender.address
        recipients = message.recipients
        if not recipients:
            raise NoRecipients("message: no recipients (to, cc and bcc are all empty)")
        return cls(sender, recipients)

    @property
    def needs_smtputf8(self) -> bool:
        """Whether any address has a non-ASCII local part (MAIL FROM must say SMTPUTF8)."""
        if self.sender is not None and self.sender.needs_smtputf8:
            return True
        return any(r.needs_smtputf8 for r in self.recipients)
