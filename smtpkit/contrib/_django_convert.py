"""Turn a Django ``EmailMessage`` into an smtpkit :class:`~smtpkit.Message`, when faithful.

Used by :mod:`smtpkit.contrib.django`. :func:`convert` either returns a ``Message`` that says
the same as Django's own serialisation would, or raises :class:`Unconvertible` with the reason,
and the backend then sends Django's bytes (``message.message()``) unchanged. It never guesses:
whatever smtpkit cannot express exactly (a non-UTF-8 charset, a ``From`` header that differs
from ``from_email``, a subclass that builds its own MIME tree, an alternative other than HTML or
calendar, a nested message attachment, ...) is left to Django.

Validation errors of the content itself (a header with a line break, an invalid address) are
*not* a reason to fall back: they are raised as smtpkit's :class:`~smtpkit.MessageError`, just as
Django raises ``BadHeaderError`` for them.

This module does not import Django: it works on the attributes Django's classes document
(``from_email``, ``to``, ``cc``, ``bcc``, ``reply_to``, ``subject``, ``body``,
``content_subtype``, ``alternatives``, ``attachments``, ``extra_headers``, ``encoding``).
"""

from __future__ import annotations

import email.message
import re
from collections.abc import Iterable
from email.utils import parsedate_to_datetime
from typing import Any

from smtpkit._address import MailboxLike
from smtpkit._message import (
    _RESERVED,
    _RESERVED_PREFIXES,
    Attachment,
    InlineImage,
    Message,
)

__all__ = ["Unconvertible", "convert"]

# Methods with which an EmailMessage subclass can change the MIME tree Django builds. When a
# subclass overrides one, only Django's own serialisation says what the message is.
_MIME_METHODS = (
    "message",
    "_create_message",
    "_create_attachments",
    "_create_attachment",
    "_create_mime_attachment",
    "_create_alternatives",
    "_set_list_header_if_not_empty",
)
_UTF8 = frozenset({"utf-8", "utf8"})
# Headers of a MIME attachment part that the smtpkit Attachment reproduces itself.
_PART_HEADERS = frozenset(
    {"content-type", "content-transfer-encoding", "content-disposition", "mime-version"}
)
_LIST_URI = re.compile(r"\s*<([^<>]*)>\s*(?:,|$)")


class Unconvertible(Exception):
    """The message uses something smtpkit cannot express exactly; ``str()`` says what."""


def _django_base(message: object, bases: Iterable[type]) -> type | None:
    for base in bases:
        if isinstance(message, base):
            return base
    return None


def _check_methods(message: object, bases: tuple[type, ...]) -> None:
    base = _django_base(message, bases)
    if base is None:
        raise Unconvertible(f"{type(message).__name__} is not a Django EmailMessage")
    for name in _MIME_METHODS:
        if getattr(type(message), name, None) is not getattr(base, name, None):
            raise Unconvertible(f"{type(message).__name__} overrides {name}()")


def _mailbox(value: Any) -> MailboxLike:
    # Django accepts "Name <addr>" strings, lazy strings and (name, addr) pairs.
    if isinstance(value, tuple):
        return value  # Mailbox.parse checks the pair
    return str(value)


def _mailboxes(values: Any) -> list[MailboxLike]:
    return [_mailbox(v) for v in (values or ()) if v]


def _text(content: Any, what: str) -> str:
    if isinstance(content, bytes):
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError:
            raise Unconvertible(f"{what} is bytes that are not UTF-8") from None
    return str(content)


def _part_attachment(
    part: email.message.Message, index: int, html: str | None
) -> Attachment | InlineImage:
    where = f"attachments[{index}]"
    if part.is_multipart() or part.get_content_maintype() in ("multipart", "message"):
        raise Unconvertible(f"{where} is a {part.get_content_type()} part")
    extra = [k for k in part if k.lower() not in _PART_HEADERS | {"content-id"}]
    if extra:
        raise Unconvertible(f"{where} has the header(s) {', '.join(extra)}")
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        raise Unconvertible(f"{where} has no decodable payload")
    content_type = part.get_content_type()
    if part.get_content_maintype() == "text" and not data.isascii():
        # smtpkit writes attachments without a charset parameter.
        raise Unconvertible(f"{where} is non-ASCII text")
    cid = part.get("Content-ID")
    if cid is not None:
        disposition = (part.get_content_disposition() or "inline").lower()
        if html is None or disposition != "inline" or part.get_filename() is not None:
            raise Unconvertible(f"{where} has a Content-ID but is not an inline image of HTML")
        return InlineImage(str(cid).strip(), data, content_type)
    filename = part.get_filename()
    if not filename or (part.get_content_disposition() or "").lower() != "attachment":
        raise Unconvertible(f"{where} is a MIME part without an attachment file name")
    return Attachment(filename, data, content_type)


def _tuple_attachment(item: Any, index: int) -> Attachment:
    where = f"attachments[{index}]"
    try:
        filename, content, mimetype = item
    except (TypeError, ValueError):
        raise Unconvertible(
            f"{where} is neither a MIME part nor (filename, content, mimetype)"
        ) from None
    if not filename:
        raise Unconvertible(f"{where} has no file name")
    mimetype = str(mimetype or "application/octet-stream")
    maintype = mimetype.split("/", 1)[0].lower()
    if maintype in ("message", "multipart"):
        raise Unconvertible(f"{where} is {mimetype}")
    if isinstance(content, str):
        if maintype != "text" or not content.isascii():
            # Django writes text with a charset parameter, which smtpkit attachments lack.
            raise Unconvertible(f"{where} is non-ASCII text or text with a non-text type")
        data = content.encode("ascii")
    elif isinstance(content, bytes | bytearray | memoryview):
        data = bytes(content)
        if maintype == "text" and not data.isascii():
            raise Unconvertible(f"{where} is non-ASCII text")
    else:
        raise Unconvertible(f"{where} content is a {type(content).__name__}")
    return Attachment(str(filename), data, mimetype)


def _list_unsubscribe(value: str) -> list[str]:
    uris: list[str] = []
    position = 0
    while position < len(value):
        match = _LIST_URI.match(value, position)
        if match is None:
            raise Unconvertible("List-Unsubscribe is not a list of <URI>")
        uris.append(match.group(1))
        position = match.end()
    if not uris:
        raise Unconvertible("List-Unsubscribe is empty")
    return uris


def _headers(extra_headers: Any, fields: dict[str, Any]) -> None:
    headers: list[tuple[str, str]] = []
    for raw_name, raw_value in dict(extra_headers or {}).items():
        name, value = str(raw_name), str(raw_value)
        lower = name.lower()
        if lower == "message-id":
            fields["message_id"] = value.strip()
        elif lower == "date":
            try:
                date = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                raise Unconvertible("the Date header is not an RFC 5322 date") from None
            if date.tzinfo is None:
                raise Unconvertible("the Date header has no time zone")
            fields["date"] = date
        elif lower == "list-unsubscribe":
            fields["list_unsubscribe"] = _list_unsubscribe(value)
        elif lower == "list-unsubscribe-post":
            if value.strip().lower() != "list-unsubscribe=one-click":
                raise Unconvertible("List-Unsubscribe-Post is not List-Unsubscribe=One-Click")
            fields["list_unsubscribe_post"] = True
        elif lower == "auto-submitted":
            fields["auto_submitted"] = value.strip()
        elif lower in _RESERVED or lower.startswith(_RESERVED_PREFIXES):
            # From/To/Cc/Reply-To here replace Django's header (not the envelope), and the
            # others are headers smtpkit writes itself: only Django's bytes say that.
            raise Unconvertible(f"the {name} header is set in headers")
        else:
            headers.append((name, value))
    if "list_unsubscribe_post" in fields and "list_unsubscribe" not in fields:
        raise Unconvertible("List-Unsubscribe-Post without List-Unsubscribe")
    fields["headers"] = headers


def convert(message: Any, *, default_charset: str, django_classes: tuple[type, ...]) -> Message:
    """The smtpkit :class:`Message` for a Django ``EmailMessage``.

    Args:
        message: a ``django.core.mail.EmailMessage`` (or ``EmailMultiAlternatives``).
        default_charset: Django's ``DEFAULT_CHARSET`` (used when ``message.encoding`` is unset).
        django_classes: Django's message classes, most derived first; a subclass that overrides
            one of their MIME-building methods is not converted.

    Raises:
        Unconvertible: smtpkit cannot express the message exactly (the caller sends Django's
            own bytes instead).
        MessageError: the message content is invalid (a bad address, a header injection).
    """
    _check_methods(message, django_classes)
    charset = str(getattr(message, "encoding", None) or default_charset).lower()
    if charset not in _UTF8:
        raise Unconvertible(f"the charset is {charset}, not UTF-8")
    if getattr(message, "mixed_subtype", "mixed") != "mixed":
        raise Unconvertible(f"mixed_subtype is {message.mixed_subtype}")
    if getattr(message, "alternative_subtype", "alternative") != "alternative":
        raise Unconvertible(f"alternative_subtype is {message.alternative_subtype}")

    body = _text(message.body or "", "the body")
    subtype = getattr(message, "content_subtype", "plain")
    text: str | None
    html: str | None
    calendar: str | None = None
    if subtype == "plain":
        text, html = body or None, None
    elif subtype == "html":
        # smtpkit adds a text alternative derived from the HTML (spam filters want one).
        text, html = None, body
    else:
        raise Unconvertible(f"the body is text/{subtype}")

    for index, alternative in enumerate(getattr(message, "alternatives", None) or ()):
        try:
            content, mimetype = alternative
        except (TypeError, ValueError):
            raise Unconvertible(f"alternatives[{index}] is not (content, mimetype)") from None
        mimetype = str(mimetype).lower()
        if mimetype == "text/html" and html is None:
            html = _text(content, "the HTML alternative")
        elif mimetype == "text/calendar" and calendar is None:
            calendar = _text(content, "the calendar alternative")
        else:
            raise Unconvertible(f"alternatives[{index}] is {mimetype}")

    attachments: list[Attachment] = []
    inline: list[InlineImage] = []
    for index, item in enumerate(getattr(message, "attachments", None) or ()):
        if isinstance(item, email.message.Message):
            converted = _part_attachment(item, index, html)
            if isinstance(converted, InlineImage):
                inline.append(converted)
            else:
                attachments.append(converted)
        else:
            attachments.append(_tuple_attachment(item, index))

    fields: dict[str, Any] = {}
    _headers(getattr(message, "extra_headers", None), fields)
    return Message(
        sender=_mailbox(message.from_email),
        to=_mailboxes(message.to),
        cc=_mailboxes(message.cc),
        bcc=_mailboxes(message.bcc),
        reply_to=_mailboxes(getattr(message, "reply_to", None)),
        subject=str(message.subject or ""),
        text=text,
        html=html,
        calendar=calendar,
        attachments=attachments,
        inline=inline,
        **fields,
    )
