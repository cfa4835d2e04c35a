"""Addresses: ``Address`` (an addr-spec) and ``Mailbox`` (display name + address).

One validator decides everything: email-validator, with quoted local parts, domain literals and
display names switched off. Display names are split off by a small strict splitter of our own
(``Name <addr>`` or ``"Quoted, Name" <addr>``); nothing here ever calls ``email.utils.parseaddr``,
which silently keeps part of inputs like ``a@b.example> NOTIFY=SUCCESS``.

Special-use domains (``localhost``, ``*.test``, ``*.invalid``, ...) are refused, as email-validator
does by default. Its documented switch ``email_validator.TEST_ENVIRONMENT = True`` allows them (for
tests, demos and the development server).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias, cast

import email_validator

from smtpkit._exceptions import InvalidAddress, InvalidHeader
from smtpkit._headers import _ATOM_PHRASE, check_header_value, quote_string

__all__ = [
    "MAX_ADDRESS_LENGTH",
    "MAX_NAME_LENGTH",
    "Address",
    "Mailbox",
    "MailboxLike",
    "mailbox_items",
    "parse_mailboxes",
]

#: Longest accepted addr-spec in octets (RFC 5321 4.5.3.1.3 path limit minus the brackets).
MAX_ADDRESS_LENGTH = 254
#: Longest accepted display name, in characters.
MAX_NAME_LENGTH = 512
# Longest ``Name <addr>`` text the splitter looks at at all: bounds the work on hostile input.
_MAX_MAILBOX_TEXT = MAX_NAME_LENGTH * 2 + MAX_ADDRESS_LENGTH + 8


# Shapes of validated fields (email-validator's output): checked again when an Address is built
# directly. Non-ASCII is allowed (SMTPUTF8 / IDN) except C1 controls and line separators.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u00a0-\u2027\u202a-\U0010ffff]"
_LOCAL_SHAPE = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_LABEL = r"[A-Za-z0-9\-\u00a0-\u2027\u202a-\U0010ffff]+"
_DOMAIN_SHAPE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_ASCII_DOMAIN_SHAPE = re.compile(r"[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*")


def _shown(text: str) -> str:
    """A bounded, escaped rendering of untrusted input for error messages."""
    if len(text) > 80:
        text = text[:77] + "..."
    return repr(text)


@dataclass(frozen=True, slots=True)
class Address:
    """An email address (addr-spec), validated by email-validator.

    Build it with :meth:`parse`; the fields hold email-validator's normalised forms.

    >>> a = Address.parse("Ann.Lee@Bücher.example")
    >>> a.local, a.domain, a.ascii_domain
    ('Ann.Lee', 'bücher.example', 'xn--bcher-kva.example')
    >>> a.for_smtp()
    'Ann.Lee@xn--bcher-kva.example'
    """

    #: The local part (before the ``@``), case kept: it is case-sensitive (RFC 5321 2.4).
    local: str
    #: The domain in Unicode (U-label) form, lower-cased.
    domain: str
    #: The domain in ASCII (A-label, ``xn--``) form.
    ascii_domain: str

    def __post_init__(self) -> None:
        # The fields reach headers and MAIL/RCPT verbatim, so an Address built directly (not by
        # parse) must still have their shape: a dot-atom and two host names, nothing else.
        if not (
            isinstance(self.local, str)
            and isinstance(self.domain, str)
            and isinstance(self.ascii_domain, str)
            and _LOCAL_SHAPE.fullmatch(self.local)
            and _DOMAIN_SHAPE.fullmatch(self.domain)
            and _ASCII_DOMAIN_SHAPE.fullmatch(self.ascii_domain)
        ):
            raise InvalidAddress(
                f"Address({_shown(str(self.local))}, {_shown(str(self.domain))}, ...) is not a "
                "valid address: build addresses with Address.parse()"
            )

    @classmethod
    def parse(
        cls, text: str, *, field: str = "address", check_deliverability: bool = False
    ) -> Address:
        """Validate *text* (a bare addr-spec, no display name) and return an ``Address``.

        Quoted local parts, domain literals, display names, comments and lists are refused.
        ``check_deliverability=True`` also asks DNS whether the domain accepts mail.

        Raises:
            InvalidAddress: with the field name first, e.g. ``"to[2]: 'x@' is not ..."``.

        >>> Address.parse("ann@example.com")
        Address(local='ann', domain='example.com', ascii_domain='example.com')
        >>> Address.parse("a@example.com> NOTIFY=SUCCESS", field="to[0]")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        smtpkit._exceptions.InvalidAddress: to[0]: 'a@example.com> NOTIFY=SUCCESS' is not ...
        """
        if not isinstance(text, str):
            raise InvalidAddress(f"{field}: expected an address as str, not {type(text).__name__}")
        if len(text) > MAX_ADDRESS_LENGTH or (
            not text.isascii() and len(text.encode("utf-8", "surrogatepass")) > MAX_ADDRESS_LENGTH
        ):
            raise InvalidAddress(
                f"{field}: address is longer than {MAX_ADDRESS_LENGTH} octets ({_shown(text)})"
            )
        try:
            valid = email_validator.validate_email(
                text,
                allow_smtputf8=True,
                allow_empty_local=False,
                allow_quoted_local=False,
                allow_domain_literal=False,
                allow_display_name=False,
                check_deliverability=check_deliverability,
            )
        except email_validator.EmailNotValidError as exc:
            raise InvalidAddress(f"{field}: {_shown(text)} is not a valid address: {exc}") from None
        if "=?" in valid.local_part:
            # Valid atext, but some parsers (CPython's among them) decode it as an RFC 2047
            # encoded-word, so the address one system checks is not the one another delivers to.
            raise InvalidAddress(
                f"{field}: {_shown(text)}: '=?' in the local part looks like an encoded-word"
            )
        return cls(valid.local_part, valid.domain, valid.ascii_domain)

    @property
    def needs_smtputf8(self) -> bool:
        """Whether the local part is non-ASCII, so the message needs the SMTPUTF8 extension."""
        return not self.local.isascii()

    @property
    def key(self) -> tuple[str, str]:
        """The identity used to merge duplicates: local part as is, domain case-insensitive."""
        return (self.local, self.ascii_domain.lower())

    def for_smtp(self, *, smtputf8: bool = False) -> str:
        """The address as written in ``MAIL FROM``/``RCPT TO`` and in headers.

        ``local@ascii_domain`` (A-label domain), or the Unicode form when *smtputf8* is true.

        Raises:
            InvalidAddress: the local part is non-ASCII and *smtputf8* is false.

        >>> Address.parse("x@bücher.example").for_smtp(smtputf8=True)
        'x@bücher.example'
        """
        if smtputf8:
            return f"{self.local}@{self.domain}"
        if not self.local.isascii():
            raise InvalidAddress(f"{self}: the local part is non-ASCII; sending it needs SMTPUTF8")
        return f"{self.local}@{self.ascii_domain}"

    def __str__(self) -> str:
        """``local@domain`` in Unicode form."""
        return f"{self.local}@{self.domain}"


def _unquote(quoted: str, field: str, original: str) -> str:
    """The content of a quoted-string (surrounding quotes included in *quoted*)."""
    out: list[str] = []
    i, end = 1, len(quoted) - 1
    while i < end:
        ch = quoted[i]
        if ch == "\\":
            if i + 1 >= end:
                break
            out.append(quoted[i + 1])
            i += 2
            continue
        if ch == '"':
            raise InvalidAddress(
                f"{field}: {_shown(original)}: a display name must be one quoted string"
            )
        out.append(ch)
        i += 1
    else:
        return "".join(out)
    raise InvalidAddress(f"{field}: {_shown(original)}: unterminated quoted display name")


def _split_name(text: str, field: str) -> tuple[str | None, str]:
    """Split ``Name <addr>`` / ``"Name" <addr>`` / ``addr`` strictly; anything else is refused."""
    if len(text) > _MAX_MAILBOX_TEXT:
        raise InvalidAddress(f"{field}: {len(text)} characters is too long for one address")
    stripped = text.strip(" ")
    if "<" not in stripped and ">" not in stripped:
        if "," in stripped or ";" in stripped:
            raise InvalidAddress(
                f"{field}: {_shown(text)} holds more than one address; pass a list instead"
            )
        return None, stripped
    if stripped.count("<") != 1 or stripped.count(">") != 1 or not stripped.endswith(">"):
        raise InvalidAddress(
            f"{field}: {_shown(text)} is not one address (expected 'Name <user@domain>')"
        )
    open_at = stripped.index("<")
    addr = stripped[open_at + 1 : -1]
    raw_name = stripped[:open_at].rstrip(" ")
    if not raw_name:
        return None, addr
    if raw_name.startswith('"'):
        if not raw_name.endswith('"') or len(raw_name) < 2:
            raise InvalidAddress(f"{field}: {_shown(text)}: unterminated quoted display name")
        name = _unquote(raw_name, field, text)
    else:
        # An unquoted name is words of atext (and non-ASCII letters) separated by spaces, plus
        # the common "J. Doe" dot. Parentheses (comments), commas, '@' and other specials are
        # refused: they are how one address is smuggled inside another.
        for ch in raw_name:
            if ch in '()<>[]:;@\\,"':
                raise InvalidAddress(
                    f"{field}: {_shown(text)}: character {ch!r} in a display name needs quotes"
                    " ('\"Doe, Jane\" <jane@example.com>')"
                )
        name = raw_name
    return name, addr


def _check_name(name: str | None, field: str) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str):
        raise InvalidHeader(f"{field}: display name must be a str, not {type(name).__name__}")
    check_header_value(name, field=f"{field} name", max_length=MAX_NAME_LENGTH)
    name = name.strip(" ")
    return name or None


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A display name (optional) and an :class:`Address`.

    >>> m = Mailbox.parse('"Doe, Jane" <jane@example.com>')
    >>> m.name, str(m.address)
    ('Doe, Jane', 'jane@example.com')
    >>> str(Mailbox.parse(("Zoë", "zoe@example.com")))
    'Zoë <zoe@example.com>'
    """

    address: Address
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.address, Address):
            raise InvalidAddress(
                f"Mailbox address must be an Address, not {type(self.address).__name__}"
            )
        if self.name is not None:
            if not isinstance(self.name, str):
                raise InvalidHeader(f"display name must be a str, not {type(self.name).__name__}")
            check_header_value(self.name, field="display name", max_length=MAX_NAME_LENGTH)

    @classmethod
    def parse(cls, value: MailboxLike, *, field: str = "address") -> Mailbox:
        """Build a ``Mailbox`` from any accepted form.

        Accepted: ``"a@b.example"``, ``"Name <a@b.example>"``, ``'"Doe, Jane" <a@b.example>'``,
        ``(name, "a@b.example")`` (the name taken verbatim, ``None`` for none), an
        :class:`Address` or a ``Mailbox``. Exactly one address per value: lists, comments and
        anything after the closing ``>`` are refused.

        Raises:
            InvalidAddress: the address or the ``Name <addr>`` form is invalid.
            InvalidHeader: the display name contains a control character or is too long.
        """
        if isinstance(value, Mailbox):
            return value
        if isinstance(value, Address):
            return cls(value)
        if isinstance(value, str):
            if len(value) > _MAX_MAILBOX_TEXT:
                raise InvalidAddress(
                    f"{field}: {len(value)} characters is too long for one address"
                )
            # A control character anywhere is refused as a header error, whatever part holds it.
            check_header_value(value, field=field, max_length=_MAX_MAILBOX_TEXT * 4)
            name, addr = _split_name(value, field)
            name = _check_name(name, field)
            return cls(Address.parse(addr, field=field), name)
        if isinstance(value, tuple) and len(value) == 2:
            raw_name, addr_value = value
            name = _check_name(raw_name, field)
            if isinstance(addr_value, Address):
                return cls(addr_value, name)
            return cls(Address.parse(addr_value, field=field), name)
        raise InvalidAddress(
            f"{field}: expected an address (str, (name, address), Address or Mailbox),"
            f" not {type(value).__name__}"
        )

    @property
    def needs_smtputf8(self) -> bool:
        """Whether the address needs SMTPUTF8 (display names never do: they are encoded)."""
        return self.address.needs_smtputf8

    def __str__(self) -> str:
        """The display form, ``Name <local@domain>`` (Unicode, not encoded for a header)."""
        if not self.name:
            return str(self.address)
        if _ATOM_PHRASE.fullmatch(self.name) is not None or (
            not self.name.isascii() and all(c not in '()<>[]:;@\\,."' for c in self.name)
        ):
            return f"{self.name} <{self.address}>"
        return f"{quote_string(self.name)} <{self.address}>"


#: Anything accepted where one address is expected.
MailboxLike: TypeAlias = str | tuple[str | None, str | Address] | Address | Mailbox


def mailbox_items(values: MailboxLike | Iterable[MailboxLike] | None) -> list[MailboxLike]:
    """One address value, or a collection of them, as a list; a ``str`` is always ONE address.

    A 2-tuple is one ``(name, address)`` mailbox when its first item is ``None`` or a name
    without ``@``; ``("a@b.example", "c@d.example")`` is a list of two addresses.
    """
    if values is None:
        return []
    if isinstance(values, str | Address | Mailbox):
        return [values]
    if (
        isinstance(values, tuple)
        and len(values) == 2
        and (values[0] is None or (isinstance(values[0], str) and "@" not in values[0]))
        and isinstance(values[1], str | Address)
    ):
        return [cast("tuple[str | None, str | Address]", values)]
    if isinstance(values, Iterable):
        return list(values)
    raise InvalidAddress(f"expected an address or a list of addresses, not {type(values).__name__}")


def parse_mailboxes(
    values: MailboxLike | Iterable[MailboxLike] | None, *, field: str
) -> tuple[Mailbox, ...]:
    """Parse one address or a list of them; duplicates (by :attr:`Address.key`) are dropped.

    A single ``str`` is always ONE address: it is never split on commas. Errors name the
    position: ``to[2]: ...``.

    >>> [str(m) for m in parse_mailboxes(["a@example.com", "A <a@example.com>"], field="to")]
    ['a@example.com']
    >>> parse_mailboxes("a@example.com, b@example.com", field="to")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    smtpkit._exceptions.InvalidAddress: to: 'a@example.com, b@example.com' holds more than ...
    """
    items = mailbox_items(values)
    single = len(items) == 1 and items[0] is values  # one value, not a list of one
    out: list[Mailbox] = []
    seen: set[tuple[str, str]] = set()
    for i, value in enumerate(items):
        mailbox = Mailbox.parse(value, field=field if single else f"{field}[{i}]")
        key = mailbox.address.key
        if key not in seen:
            seen.add(key)
            out.append(mailbox)
    return tuple(out)
