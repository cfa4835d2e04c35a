"""``Message``: a validated, immutable email, and its attachments.

Everything is checked when the ``Message`` is built: addresses (email-validator), header names
and values (no control characters, RFC 5322 names, length limits), bodies (no NUL, no lone
surrogate), sizes and recipient counts. ``to_bytes()`` then cannot fail on content, and the
bytes are computed once per instance.

MIME structure (levels that are not needed are left out)::

    multipart/mixed
      multipart/related
        multipart/alternative
          text/plain
          text/html
          text/calendar; method=REQUEST
        inline images (Content-ID)
      attachments
"""

from __future__ import annotations

import mimetypes
import os
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import IO, Any, Literal, TypeAlias

import idna

from smtpkit._address import Address, Mailbox, MailboxLike, mailbox_items
from smtpkit._exceptions import (
    ConfigError,
    InvalidHeader,
    MessageError,
    MessageTooLarge,
)
from smtpkit._headers import (
    check_header_name,
    check_header_value,
    header_mailboxes,
    header_params,
    header_unstructured,
)
from smtpkit._html_text import html_to_text
from smtpkit._mime import Leaf, Multipart, Part, base64_size, encode_text, render

__all__ = ["Attachment", "InlineImage", "Message", "MessageLimits", "Priority"]

#: Message priority: written as ``X-Priority`` and ``Importance``.
Priority: TypeAlias = Literal["high", "normal", "low"]

_PRIORITY_HEADERS = {
    "high": ("1 (Highest)", "high"),
    "normal": ("3 (Normal)", "normal"),
    "low": ("5 (Lowest)", "low"),
}
_AUTO_SUBMITTED = frozenset({"no", "auto-generated", "auto-replied", "auto-notified"})

# Headers that smtpkit writes itself (or that must never be written, like Bcc): setting them
# through ``headers=`` would create duplicates or bypass validation.
_RESERVED = frozenset(
    {
        "from",
        "sender",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "return-path",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "auto-submitted",
        "x-priority",
        "importance",
    }
)
_RESERVED_PREFIXES = ("content-", "resent-")

_BODY_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")
# RFC 6838 restricted-name for type and subtype.
_MIME_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)
# Directional formatting characters: they make "evil\u202efdp.exe" display as "evilexe.pdf".
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CID = re.compile(r"[A-Za-z0-9._@+-]{1,200}")
_MSGID = re.compile(
    r"<?([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,200}@[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,253})>?"
)
_DOMAIN = re.compile(r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*")
_URI = re.compile(r"(?i:https?://|mailto:)[!-;=?-~]+")
_ICS_METHOD = re.compile(r"^METHOD:([A-Za-z-]{1,40})\r?$", re.MULTILINE)
_MAX_FILENAME = 255
_MAX_URI = 900  # one "<uri>," must fit a line of 998 octets


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """Limits checked while a :class:`Message` is built, before its bytes exist.

    Attributes:
        max_size: the largest serialised message, in octets (``MessageTooLarge``).
        max_recipients: the most To + Cc + Bcc recipients after duplicates are merged.
        max_header_length: the longest single header value (subject, a display name, a
            custom header), in octets (``InvalidHeader``).

    >>> MessageLimits(max_size=10 * 2**20).max_recipients
    1000
    """

    max_size: int = 50 * 2**20
    max_recipients: int = 1000
    max_header_length: int = 16 * 1024

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"MessageLimits.{f.name}: expected a positive int, got {value!r}")


def _content_type(value: str | None, filename: str | None, field: str) -> str:
    if value is None:
        guessed = mimetypes.guess_type(filename or "", strict=True)[0] if filename else None
        return guessed or "application/octet-stream"
    if not isinstance(value, str) or _MIME_TYPE.fullmatch(value) is None:
        raise InvalidHeader(f"{field}: {value!r} is not a MIME type like 'application/pdf'")
    value = value.lower()
    if value.startswith(("multipart/", "message/")):
        raise MessageError(
            f"{field}: {value} cannot be attached as base64; use application/octet-stream"
        )
    return value


def _safe_filename(name: str, field: str) -> str:
    """Reduce *name* to a base name; refuse controls and bidi overrides (never strip them)."""
    if not isinstance(name, str):
        raise InvalidHeader(f"{field}: expected a str, not {type(name).__name__}")
    check_header_value(name, field=field, max_length=4 * _MAX_FILENAME)
    bidi = _BIDI.search(name)
    if bidi is not None:
        raise InvalidHeader(
            f"{field}: bidirectional control U+{ord(bidi.group()):04X} at position"
            f" {bidi.start()} is not allowed in a file name"
        )
    # Surrounding whitespace (Unicode included) is dropped: it only serves to disguise a name,
    # and parsers strip it anyway.
    base = re.split(r"[/\\]", name)[-1].strip()
    # A double quote is legal inside a quoted parameter, but parsers disagree on it (Python's
    # unquotes twice; CVE-2020-13625 was about quotes in file names): write a single quote.
    base = base.replace('"', "'")
    if base in {"", ".", ".."}:
        raise InvalidHeader(f"{field}: {name!r} has no file name once directories are removed")
    if len(base) > _MAX_FILENAME:
        raise InvalidHeader(f"{field}: file name longer than {_MAX_FILENAME} characters")
    return base


def _read_data(data: object, field: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    read = getattr(data, "read", None)
    if callable(read):
        content = read()
        if isinstance(content, bytes):
            return content
        raise MessageError(f"{field}: the file-like object must be opened in binary mode")
    raise MessageError(
        f"{field}: expected bytes or a binary file object, not {type(data).__name__}"
    )


@dataclass(frozen=True, slots=True, init=False)
class Attachment:
    """A file attached to a message.

    ``filename`` is reduced to a base name (``"../../etc/passwd"`` becomes ``"passwd"``); a
    control or bidi-override character in it is an ``InvalidHeader``. The content type is
    guessed from the name when not given. Non-ASCII names are written RFC 2231-encoded.

    >>> a = Attachment("reports/Q3 résumé.pdf", b"%PDF-1.7 ...")
    >>> a.filename, a.content_type
    ('Q3 résumé.pdf', 'application/pdf')
    """

    filename: str
    data: bytes
    content_type: str

    def __init__(
        self,
        filename: str,
        data: bytes | bytearray | memoryview | IO[bytes],
        content_type: str | None = None,
    ) -> None:
        name = _safe_filename(filename, "attachment filename")
        object.__setattr__(self, "filename", name)
        object.__setattr__(self, "data", _read_data(data, f"attachment {name!r}"))
        object.__setattr__(
            self, "content_type", _content_type(content_type, name, f"attachment {name!r}")
        )

    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike[str],
        filename: str | None = None,
        content_type: str | None = None,
    ) -> Attachment:
        """Read the file at *path* (named by the calling code, never by message data).

        >>> Attachment.from_path("invoice.pdf")  # doctest: +SKIP
        """
        p = Path(path)
        return cls(filename if filename is not None else p.name, p.read_bytes(), content_type)

    def __repr__(self) -> str:
        return (
            f"Attachment(filename={self.filename!r}, content_type={self.content_type!r},"
            f" size={len(self.data)})"
        )


@dataclass(frozen=True, slots=True, init=False)
class InlineImage:
    """An image shown inside the HTML body, referenced as ``<img src="cid:CID">``.

    >>> logo = InlineImage("logo", b"\\x89PNG...", "image/png")
    >>> logo.cid
    'logo'
    """

    cid: str
    data: bytes
    content_type: str

    def __init__(
        self, cid: str, data: bytes | bytearray | memoryview | IO[bytes], content_type: str
    ) -> None:
        if not isinstance(cid, str):
            raise InvalidHeader(f"inline cid: expected a str, not {type(cid).__name__}")
        if cid.startswith("<") and cid.endswith(">"):
            cid = cid[1:-1]
        if _CID.fullmatch(cid) is None:
            check_header_value(cid, field="inline cid", max_length=200)
            raise InvalidHeader(
                f"inline cid: {cid!r} must be 1-200 characters of letters, digits and . _ @ + -"
            )
        object.__setattr__(self, "cid", cid)
        object.__setattr__(self, "data", _read_data(data, f"inline {cid!r}"))
        object.__setattr__(
            self, "content_type", _content_type(content_type, None, f"inline {cid!r}")
        )

    def __repr__(self) -> str:
        return (
            f"InlineImage(cid={self.cid!r}, content_type={self.content_type!r},"
            f" size={len(self.data)})"
        )


# --------------------------------------------------------------------------- helpers


def _mailboxes(
    values: MailboxLike | Iterable[MailboxLike] | None, name: str, budget: int
) -> tuple[Mailbox, ...]:
    items = mailbox_items(values)
    if len(items) > budget:
        raise MessageError(f"{name}: {len(items)} addresses, more than the limit of {budget}")
    out: list[Mailbox] = []
    seen: set[tuple[str, str]] = set()
    single = len(items) == 1 and items[0] is values  # one value, not a list of one
    for i, item in enumerate(items):
        mailbox = Mailbox.parse(item, field=name if single else f"{name}[{i}]")
        key = mailbox.address.key
        if key not in seen:
            seen.add(key)
            out.append(mailbox)
    return tuple(out)


def _check_body(value: object, name: str, max_size: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MessageError(f"{name}: expected a str, not {type(value).__name__}")
    if len(value) > max_size:
        raise MessageTooLarge(
            f"{name}: {len(value)} characters, more than the message size limit {max_size}",
            limit=max_size,
            size=len(value),
        )
    if not value.isascii() or "\x00" in value:
        bad = _BODY_FORBIDDEN.search(value)
        if bad is not None:
            what = "NUL character" if bad.group() == "\x00" else "lone surrogate"
            raise MessageError(f"{name}: {what} at position {bad.start()}")
    return value


def _check_message_id(value: str, field: str = "message_id") -> str:
    if not isinstance(value, str):
        raise InvalidHeader(f"{field}: expected a str, not {type(value).__name__}")
    check_header_value(value, field=field, max_length=460)
    match = _MSGID.fullmatch(value)
    if match is None or value.startswith("<") != value.endswith(">"):
        raise InvalidHeader(f"{field}: {value!r} is not a Message-ID like '<id@domain.example>'")
    return f"<{match.group(1)}>"


def _check_domain(value: str, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidHeader(f"{field}: expected a str, not {type(value).__name__}")
    check_header_value(value, field=field, max_length=253)
    ascii_value = value
    if not value.isascii():
        try:
            ascii_value = idna.encode(value, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise InvalidHeader(f"{field}: {value!r} is not a valid domain: {exc}") from None
    if _DOMAIN.fullmatch(ascii_value) is None or len(ascii_value) > 253:
        raise InvalidHeader(f"{field}: {value!r} is not a valid domain")
    return ascii_value.lower()


def _headers(
    values: Mapping[str, str] | Iterable[tuple[str, str]] | None, max_length: int
) -> tuple[tuple[str, str], ...]:
    if values is None:
        return ()
    items = values.items() if isinstance(values, Mapping) else values
    out: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise InvalidHeader(f"headers: expected (name, value) pairs, got {item!r}")
        name, value = item
        check_header_name(name)
        where = f"headers[{name!r}]"
        lower = name.lower()
        if lower in _RESERVED or lower.startswith(_RESERVED_PREFIXES):
            raise InvalidHeader(
                f"{where}: {name} is set by smtpkit; use the Message argument for it instead"
            )
        check_header_value(value, field=where, max_length=max_length)
        out.append((name, value))
    return tuple(out)


def _unsubscribe(value: str | Sequence[str] | None, post: bool) -> tuple[str, ...]:
    if value is None:
        uris: tuple[str, ...] = ()
    elif isinstance(value, str):
        uris = (value,)
    else:
        uris = tuple(value)
    for i, uri in enumerate(uris):
        where = f"list_unsubscribe[{i}]"
        if not isinstance(uri, str):
            raise InvalidHeader(f"{where}: expected a str, not {type(uri).__name__}")
        check_header_value(uri, field=where, max_length=_MAX_URI)
        if _URI.fullmatch(uri) is None:
            raise InvalidHeader(
                f"{where}: {uri[:80]!r} must be an https:, http: or mailto: URI without spaces,"
                " '<' or '>'"
            )
    if post and not any(u[:8].lower() == "https://" for u in uris):
        raise MessageError(
            "list_unsubscribe_post: one-click unsubscribe (RFC 8058) needs an https:// URI in"
            " list_unsubscribe"
        )
    return uris


def _calendar(value: str | bytes | None, max_size: int) -> str | None:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MessageError(f"calendar: not UTF-8 ({exc.reason} at {exc.start})") from None
    return _check_body(value, "calendar", max_size)


def _addr(mailboxes: Iterable[Mailbox], utf8: bool) -> list[tuple[str | None, str]]:
    return [(m.name, m.address.for_smtp(smtputf8=utf8)) for m in mailboxes]


_TEXT_HEADERS = {
    (sub, cte): f'Content-Type: text/{sub}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n'
    for sub in ("plain", "html")
    for cte in ("7bit", "8bit", "quoted-printable", "base64")
}


def _text_leaf(subtype: str, text: str, utf8: bool) -> Leaf:
    cte, body = encode_text(text, allow_8bit=utf8)
    return Leaf(_TEXT_HEADERS[subtype, cte], body)


def _calendar_leaf(ics: str, utf8: bool) -> Leaf:
    found = _ICS_METHOD.search(ics)
    method = found.group(1).upper() if found else "REQUEST"
    cte, body = encode_text(ics, allow_8bit=utf8)
    head = (
        f'Content-Type: text/calendar; charset="utf-8"; method={method}\r\n'
        f"Content-Transfer-Encoding: {cte}\r\n"
    )
    return Leaf(head, body)


# --------------------------------------------------------------------------- Message

_INIT_FIELDS = (
    "sender",
    "to",
    "cc",
    "bcc",
    "reply_to",
    "subject",
    "text",
    "html",
    "attachments",
    "inline",
    "headers",
    "message_id",
    "date",
    "return_path",
    "list_unsubscribe",
    "list_unsubscribe_post",
    "auto_submitted",
    "calendar",
    "priority",
    "message_id_domain",
    "limits",
)


@dataclass(frozen=True, slots=True, init=False)
class Message:
    """An email message: validated when built, immutable, serialised once.

    Every argument is keyword-only. Addresses may be given as ``"a@b.example"``,
    ``"Name <a@b.example>"``, ``("Name", "a@b.example")``, :class:`Address` or :class:`Mailbox`,
    one per list element. Bcc recipients reach :attr:`recipients` (the envelope) and never the
    bytes.

    >>> msg = Message(
    ...     sender="Shop <shop@example.com>",
    ...     to=["ann@example.com"],
    ...     subject="Your receipt",
    ...     text="Thanks!",
    ...     html="<p>Thanks!</p>",
    ... )
    >>> msg.to_bytes().startswith(b"Date: ")
    True
    >>> [str(a) for a in msg.recipients]
    ['ann@example.com']

    Attributes beyond the arguments: ``message_id`` is always set (generated as
    ``<random@domain>`` when not given, the domain being ``message_id_domain`` or the sender's),
    ``date`` is the given time or the construction time (UTC). :meth:`replace` keeps both unless
    given: pass ``message_id=None, date=None`` for fresh ones.

    Raises (at construction): ``InvalidAddress``, ``InvalidHeader`` (control characters, bad or
    reserved header names, values over ``limits.max_header_length``), ``MessageTooLarge``,
    ``MessageError`` (NUL or lone surrogate in a body, too many recipients, inline images
    without HTML, ...). Each names the field: ``to[2]: ...``.
    """

    sender: Mailbox
    to: tuple[Mailbox, ...]
    cc: tuple[Mailbox, ...]
    bcc: tuple[Mailbox, ...]
    reply_to: tuple[Mailbox, ...]
    subject: str
    text: str | None
    html: str | None
    attachments: tuple[Attachment, ...]
    inline: tuple[InlineImage, ...]
    headers: tuple[tuple[str, str], ...]
    message_id: str
    date: datetime
    return_path: Address | None
    list_unsubscribe: tuple[str, ...]
    list_unsubscribe_post: bool
    auto_submitted: str | None
    calendar: str | None
    priority: Priority | None
    message_id_domain: str | None
    limits: MessageLimits
    _derived_text: bool = field(repr=False, compare=False)
    _seed: str = field(repr=False, compare=False)
    _bytes: bytes | None = field(repr=False, compare=False)

    def __init__(
        self,
        *,
        sender: MailboxLike,
        to: MailboxLike | Iterable[MailboxLike] | None = (),
        cc: MailboxLike | Iterable[MailboxLike] | None = (),
        bcc: MailboxLike | Iterable[MailboxLike] | None = (),
        reply_to: MailboxLike | Iterable[MailboxLike] | None = (),
        subject: str = "",
        text: str | None = None,
        html: str | None = None,
        attachments: Iterable[Attachment] = (),
        inline: Iterable[InlineImage] = (),
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        message_id: str | None = None,
        date: datetime | None = None,
        return_path: MailboxLike | None = None,
        list_unsubscribe: str | Sequence[str] | None = None,
        list_unsubscribe_post: bool = False,
        auto_submitted: str | None = None,
        calendar: str | bytes | None = None,
        priority: Priority | None = None,
        message_id_domain: str | None = None,
        limits: MessageLimits = MessageLimits(),
    ) -> None:
        if not isinstance(limits, MessageLimits):
            raise ConfigError(f"limits: expected MessageLimits, not {type(limits).__name__}")
        put = object.__setattr__
        hlen = limits.max_header_length
        max_size = limits.max_size

        sender_box = Mailbox.parse(sender, field="sender")
        budget = 2 * limits.max_recipients  # bounds the parsing work before duplicates merge
        to_boxes = _mailboxes(to, "to", budget)
        cc_boxes = _mailboxes(cc, "cc", budget)
        bcc_boxes = _mailboxes(bcc, "bcc", budget)
        reply_boxes = _mailboxes(reply_to, "reply_to", budget)
        for where, boxes in (("sender", (sender_box,)), ("to", to_boxes), ("cc", cc_boxes),
                             ("bcc", bcc_boxes), ("reply_to", reply_boxes)):  # fmt: skip
            for i, box in enumerate(boxes):
                if box.name is not None and len(box.name) > hlen:
                    raise InvalidHeader(f"{where}[{i}]: display name longer than {hlen}")
        put(self, "sender", sender_box)
        put(self, "to", to_boxes)
        put(self, "cc", cc_boxes)
        put(self, "bcc", bcc_boxes)
        put(self, "reply_to", reply_boxes)
        count = len(self._recipient_keys())
        if count > limits.max_recipients:
            raise MessageError(
                f"to/cc/bcc: {count} recipients, more than the limit of {limits.max_recipients}"
            )

        put(self, "subject", check_header_value(subject, field="subject", max_length=hlen))
        html = _check_body(html, "html", max_size)
        # A message with only HTML gets a readable text alternative: spam filters penalise
        # HTML-only mail, and text-only clients show nothing useful without one.
        derived = text is None and html is not None
        if derived:
            text = html_to_text(html or "")
        put(self, "text", _check_body(text, "text", max_size))
        put(self, "html", html)
        put(self, "_derived_text", derived)
        put(self, "calendar", _calendar(calendar, max_size))

        attachment_list = tuple(attachments)
        for i, att in enumerate(attachment_list):
            if not isinstance(att, Attachment):
                raise MessageError(
                    f"attachments[{i}]: expected an Attachment, not {type(att).__name__}"
                )
        inline_list = tuple(inline)
        cids: set[str] = set()
        for i, img in enumerate(inline_list):
            if not isinstance(img, InlineImage):
                raise MessageError(
                    f"inline[{i}]: expected an InlineImage, not {type(img).__name__}"
                )
            if img.cid in cids:
                raise MessageError(f"inline[{i}]: duplicate cid {img.cid!r}")
            cids.add(img.cid)
        if inline_list and html is None:
            raise MessageError("inline: inline images need an HTML body that references them")
        put(self, "attachments", attachment_list)
        put(self, "inline", inline_list)
        put(self, "headers", _headers(headers, hlen))

        if message_id_domain is not None:
            message_id_domain = _check_domain(message_id_domain, "message_id_domain")
        put(self, "message_id_domain", message_id_domain)
        if message_id is None:
            domain = message_id_domain or sender_box.address.ascii_domain
            message_id = f"<{secrets.token_hex(16)}@{domain}>"
        else:
            message_id = _check_message_id(message_id)
        put(self, "message_id", message_id)
        if date is None:
            date = datetime.now(UTC).replace(microsecond=0)
        elif not isinstance(date, datetime) or date.tzinfo is None:
            raise MessageError("date: expected a timezone-aware datetime")
        put(self, "date", date)

        put(
            self,
            "return_path",
            None
            if return_path is None
            else Mailbox.parse(return_path, field="return_path").address,
        )
        put(self, "list_unsubscribe", _unsubscribe(list_unsubscribe, bool(list_unsubscribe_post)))
        put(self, "list_unsubscribe_post", bool(list_unsubscribe_post))
        if auto_submitted is not None and auto_submitted not in _AUTO_SUBMITTED:
            raise InvalidHeader(
                f"auto_submitted: {auto_submitted!r} is not one of {sorted(_AUTO_SUBMITTED)}"
            )
        put(self, "auto_submitted", auto_submitted)
        if priority is not None and priority not in _PRIORITY_HEADERS:
            raise MessageError(f"priority: {priority!r} is not 'high', 'normal' or 'low'")
        put(self, "priority", priority)
        put(self, "limits", limits)
        put(self, "_seed", secrets.token_hex(8))
        put(self, "_bytes", None)

        estimate = self._estimated_size()
        if estimate > max_size:
            raise MessageTooLarge(
                f"message: about {estimate} octets, more than the limit {max_size}",
                limit=max_size,
                size=estimate,
            )

    # ------------------------------------------------------------------ derived values

    def _recipient_keys(self) -> dict[tuple[str, str], Address]:
        merged: dict[tuple[str, str], Address] = {}
        for box in (*self.to, *self.cc, *self.bcc):
            merged.setdefault(box.address.key, box.address)
        return merged

    @property
    def recipients(self) -> tuple[Address, ...]:
        """Every envelope recipient: To, Cc and Bcc, duplicates merged, order kept."""
        return tuple(self._recipient_keys().values())

    @property
    def needs_smtputf8(self) -> bool:
        """Whether any address has a non-ASCII local part (the server must offer SMTPUTF8)."""
        return any(
            box.address.needs_smtputf8
            for box in (self.sender, *self.to, *self.cc, *self.bcc, *self.reply_to)
        ) or (self.return_path is not None and self.return_path.needs_smtputf8)

    def _estimated_size(self) -> int:
        """A cheap lower bound of the serialised size, computed without building anything."""
        size = 1024 + len(self.subject) + sum(len(v) for _, v in self.headers)
        for body in (self.text, self.html, self.calendar):
            if body is not None:
                size += len(body)
        for att in self.attachments:
            size += base64_size(len(att.data)) + 200
        for img in self.inline:
            size += base64_size(len(img.data)) + 200
        return size

    def replace(self, **changes: Any) -> Message:
        """A copy with some fields changed, validated again.

        Message-ID and Date are kept unless given (``message_id=None`` generates a new one).

        >>> a = Message(sender="a@example.com", to="b@example.com", subject="Hi")
        >>> b = a.replace(subject="Hello")
        >>> (b.subject, b.message_id == a.message_id)
        ('Hello', True)
        """
        kwargs = {name: getattr(self, name) for name in _INIT_FIELDS}
        if self._derived_text and "html" in changes and "text" not in changes:
            kwargs["text"] = None  # derive it again from the new HTML
        kwargs.update(changes)
        return Message(**kwargs)

    # ------------------------------------------------------------------ serialisation

    def to_bytes(self) -> bytes:
        """The message as sent: CRLF line ends, no Bcc, computed once and cached.

        8-bit headers and bodies appear only when :attr:`needs_smtputf8` is true.

        Raises:
            MessageTooLarge: the result is larger than ``limits.max_size``.
        """
        cached = self._bytes
        if cached is None:
            cached = self._render()
            object.__setattr__(self, "_bytes", cached)
        return cached

    def _render(self) -> bytes:
        utf8 = self.needs_smtputf8
        head = [
            "Date: " + format_datetime(self.date) + "\r\n",
            header_mailboxes("From", _addr((self.sender,), utf8), utf8=utf8),
        ]
        if self.reply_to:
            head.append(header_mailboxes("Reply-To", _addr(self.reply_to, utf8), utf8=utf8))
        if self.to:
            head.append(header_mailboxes("To", _addr(self.to, utf8), utf8=utf8))
        if self.cc:
            head.append(header_mailboxes("Cc", _addr(self.cc, utf8), utf8=utf8))
        head.append(header_unstructured("Subject", self.subject, utf8=utf8))
        head.append("Message-ID: " + self.message_id + "\r\n")
        if self.list_unsubscribe:
            line = "List-Unsubscribe: " + ", ".join(f"<{u}>" for u in self.list_unsubscribe)
            # One line where it fits: some DKIM signers mishandle folded List-Unsubscribe.
            if len(line) > 998:
                line = "List-Unsubscribe:" + ",\r\n".join(f" <{u}>" for u in self.list_unsubscribe)
            head.append(line + "\r\n")
            if self.list_unsubscribe_post:
                head.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        if self.auto_submitted is not None:
            head.append(f"Auto-Submitted: {self.auto_submitted}\r\n")
        if self.priority is not None:
            x_priority, importance = _PRIORITY_HEADERS[self.priority]
            head.append(f"X-Priority: {x_priority}\r\nImportance: {importance}\r\n")
        for name, value in self.headers:
            head.append(header_unstructured(name, value, utf8=utf8))
        head.append("MIME-Version: 1.0\r\n")

        data = render("".join(head), self._tree(utf8), boundary_seed=self._seed, utf8=utf8)
        if len(data) > self.limits.max_size:
            raise MessageTooLarge(
                f"message: {len(data)} octets, more than the limit {self.limits.max_size}",
                limit=self.limits.max_size,
                size=len(data),
            )
        return data

    def _tree(self, utf8: bool) -> Part:
        alternatives: list[Part] = []
        if self.text is not None:
            alternatives.append(_text_leaf("plain", self.text, utf8))
        if self.html is not None:
            alternatives.append(_text_leaf("html", self.html, utf8))
        if self.calendar is not None:
            alternatives.append(_calendar_leaf(self.calendar, utf8))
        if not alternatives and not self.attachments:
            alternatives.append(_text_leaf("plain", "", utf8))
        body: Part | None = None
        if len(alternatives) == 1:
            body = alternatives[0]
        elif alternatives:
            body = Multipart("alternative", alternatives)
        if self.inline:
            related: list[Part] = [body] if body is not None else []
            for img in self.inline:
                related.append(
                    Leaf(
                        header_params("Content-Type", img.content_type, ())
                        + "Content-Transfer-Encoding: base64\r\n"
                        + f"Content-ID: <{img.cid}>\r\n"
                        + "Content-Disposition: inline\r\n",
                        b64=img.data,
                    )
                )
            # RFC 2387: "type" names the root part's content type.
            root = "multipart/alternative" if isinstance(body, Multipart) else "text/html"
            body = Multipart("related", related, f'; type="{root}"')
        if self.attachments:
            mixed: list[Part] = [body] if body is not None else []
            for att in self.attachments:
                mixed.append(
                    Leaf(
                        header_params("Content-Type", att.content_type, (("name", att.filename),))
                        + "Content-Transfer-Encoding: base64\r\n"
                        + header_params(
                            "Content-Disposition", "attachment", (("filename", att.filename),)
                        ),
                        b64=att.data,
                    )
                )
            body = Multipart("mixed", mixed)
        assert body is not None  # an empty text part is added above when nothing else exists
        return body
