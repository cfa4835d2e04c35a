"""A contact form that cannot be abused: the site's own From and To, the visitor only in Reply-To.

Contact forms are the classic way a website becomes an open relay or a spam cannon (PHPMailer's
CVE-2012-0796 and CVE-2015-8476, Nodemailer's CVE-2021-23400). :class:`ContactForm` closes every
road a visitor has into the message:

* **No addressing by the visitor.** From and To are fixed when the form is configured; there is no
  parameter for To, Cc, Bcc or From at submission time. The visitor's address, validated as exactly
  one addr-spec, goes only into ``Reply-To`` (so "Reply" in the mail client answers the visitor,
  and SPF/DMARC still pass because From is the site's own address).
* **No header injection.** Name, address and subject are checked for CR, LF and every other
  control character before anything is built; the name stays a display name even when it
  contains ``@`` or ``<``.
* **No HTML from the visitor.** The text part carries the visitor's words literally; the HTML
  part is the same text escaped with :func:`html.escape` (newlines become ``<br>``).
* **Bounded.** Each field has a length limit, checked first; a honeypot field catches naive bots;
  a pluggable rate limiter (in memory by default) caps submissions per client key.

>>> form = ContactForm(sender="Website <web@example.com>", to="support@example.com")
>>> msg = form.build(name="Ann", email="ann@example.org", message="Hi!", client_key="192.0.2.7")
>>> str(msg.reply_to[0]), str(msg.sender), [str(m) for m in msg.to]
('Ann <ann@example.org>', 'Website <web@example.com>', ['support@example.com'])
"""

from __future__ import annotations

import html
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from smtpkit._address import MAX_ADDRESS_LENGTH, Address, Mailbox, MailboxLike, parse_mailboxes
from smtpkit._exceptions import (
    ConfigError,
    ContactFormError,
    RateLimited,
    SpamSubmission,
)
from smtpkit._headers import check_header_value, describe_char
from smtpkit._message import Message

# The errors a site handles around build() are re-exported here for convenience.
__all__ = [
    "ContactForm",
    "ContactFormError",
    "ContactRateLimiter",
    "InMemoryRateLimiter",
    "RateLimited",
    "SpamSubmission",
]

# Control characters a typed message has no use for. TAB, LF and CR are allowed (CR only as part
# of a line break, normalised below); everything else would be invisible or act on a terminal.
_BODY_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# The key shared by every submission that names no client (see ContactForm.build).
_ANONYMOUS = ""


@runtime_checkable
class ContactRateLimiter(Protocol):
    """Decides whether one more submission from a client may go through.

    Implement it over Redis, a database or the web framework's own limiter to share the count
    between processes; :class:`InMemoryRateLimiter` counts within one process.
    """

    def allow(self, key: str, /) -> bool:
        """Return True to let this submission through (and count it), False to refuse it."""
        ...


class InMemoryRateLimiter:
    """At most *max_submissions* per client key in any *window* seconds (a sliding window).

    Thread-safe. Memory is bounded: at most *max_keys* keys are remembered, each with at most
    *max_submissions* timestamps; when the table is full the key used least recently is forgotten
    (its entries are the oldest, usually already expired). The count lives in this process only:
    behind several worker processes, use a shared store through :class:`ContactRateLimiter`.

    >>> limiter = InMemoryRateLimiter(max_submissions=2, window=60.0)
    >>> [limiter.allow("198.51.100.7") for _ in range(3)]
    [True, True, False]
    >>> limiter.allow("203.0.113.9")
    True
    """

    def __init__(
        self,
        *,
        max_submissions: int = 5,
        window: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        if isinstance(max_submissions, bool) or not isinstance(max_submissions, int):
            raise ConfigError("max_submissions: expected an int")
        if max_submissions < 1:
            raise ConfigError(f"max_submissions: must be at least 1, not {max_submissions}")
        if isinstance(window, bool) or not isinstance(window, int | float) or not window > 0:
            raise ConfigError(f"window: must be a positive number of seconds, not {window!r}")
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ConfigError(f"max_keys: must be an int of at least 1, not {max_keys!r}")
        self._max = max_submissions
        self._window = float(window)
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        # key -> timestamps of the counted submissions still inside the window, oldest first.
        # Ordered by last use, so the first key is the one to forget when the table is full.
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    @property
    def max_submissions(self) -> int:
        """Submissions allowed per key per window."""
        return self._max

    @property
    def window(self) -> float:
        """The window length in seconds."""
        return self._window

    @property
    def max_keys(self) -> int:
        """The most keys remembered at once."""
        return self._max_keys

    def __len__(self) -> int:
        """The number of keys currently remembered (never more than :attr:`max_keys`)."""
        with self._lock:
            return len(self._hits)

    def allow(self, key: str, /) -> bool:
        """Count a submission for *key* and return True, or return False if it is over the limit.

        A refused submission is not counted, so a client that keeps trying is let through again
        as soon as its oldest counted submission leaves the window.
        """
        if not isinstance(key, str):
            raise TypeError(f"rate-limit key must be a str, not {type(key).__name__}")
        now = self._clock()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                hits = deque()
                self._hits[key] = hits
                while len(self._hits) > self._max_keys:
                    self._hits.popitem(last=False)
            else:
                self._hits.move_to_end(key)
            cutoff = now - self._window
            while hits and hits[0] <= cutoff:
                hits.popleft()
            if len(hits) >= self._max:
                return False
            hits.append(now)
            return True

    def __repr__(self) -> str:
        return (
            f"InMemoryRateLimiter(max_submissions={self._max}, window={self._window},"
            f" max_keys={self._max_keys})"
        )


def _positive(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: must be an int of at least 1, not {value!r}")


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise ContactFormError(f"{name}: expected a str, not {type(value).__name__}", field=name)
    return value


def _bounded(value: str, name: str, limit: int) -> None:
    if len(value) > limit:
        raise ContactFormError(
            f"{name}: {len(value)} characters, more than the limit of {limit}", field=name
        )


@dataclass(frozen=True)
class ContactForm:
    """Turns a visitor's submission into a :class:`~smtpkit.Message` that is safe to send.

    Configure it once with the site's own addresses; call :meth:`build` per submission and send
    the result with a :class:`~smtpkit.Mailer`. There is deliberately no way to pass From, To,
    Cc or Bcc at submission time.

    Attributes:
        sender: the fixed From, an address of the site's own domain (never the visitor's: that
            would be forgery and fail SPF/DMARC).
        to: the fixed recipient or recipients (the site's).
        subject_prefix: put before the visitor's subject, so that filters can find the mail.
        max_name_length, max_subject_length, max_message_length: field limits in characters.
        honeypot_field: the name of the hidden form field bots fill in. Render it in the
            template (hidden with CSS, ``autocomplete="off"``, ``tabindex="-1"``) and pass its
            value as ``honeypot``.
        rate_limiter: counts submissions per client key; ``None`` turns rate limiting off. The
            default is a fresh :class:`InMemoryRateLimiter` (5 per key per hour) per form.
    """

    sender: MailboxLike
    to: MailboxLike | Sequence[MailboxLike]
    subject_prefix: str = "[Contact] "
    max_name_length: int = 100
    max_subject_length: int = 200
    max_message_length: int = 10_000
    honeypot_field: str = "website"
    rate_limiter: ContactRateLimiter | None = field(
        default_factory=InMemoryRateLimiter, compare=False
    )

    def __post_init__(self) -> None:
        # Configuration mistakes surface when the site starts, not at the first visitor.
        Mailbox.parse(self.sender, field="sender")
        if not parse_mailboxes(self.to, field="to"):
            raise ConfigError("to: a contact form needs at least one recipient")
        if not isinstance(self.subject_prefix, str):
            raise ConfigError("subject_prefix: expected a str")
        check_header_value(self.subject_prefix, field="subject_prefix", max_length=200)
        _positive(self.max_name_length, "max_name_length")
        _positive(self.max_subject_length, "max_subject_length")
        _positive(self.max_message_length, "max_message_length")
        if not isinstance(self.honeypot_field, str) or not re.fullmatch(
            r"[A-Za-z_][A-Za-z0-9_\-]*", self.honeypot_field
        ):
            raise ConfigError(
                f"honeypot_field: {self.honeypot_field!r} is not a usable form field name"
            )
        if self.rate_limiter is not None and not callable(
            getattr(self.rate_limiter, "allow", None)
        ):
            raise ConfigError("rate_limiter: expected an object with an allow(key) method")

    def build(
        self,
        *,
        name: str,
        email: str,
        message: str,
        subject: str = "",
        honeypot: str = "",
        client_key: str | None = None,
    ) -> Message:
        """Validate one submission and return the message to send.

        Checks, in this order, each before any work on the next: every field is a str within
        its length limit; the honeypot is empty; name and subject hold no control characters;
        the address is exactly one valid addr-spec; the message is not empty and holds no
        control characters other than line breaks and tabs; the message can be built; the rate
        limiter allows *client_key*. Only a submission that passes all of them is counted by
        the rate limiter.

        Args:
            name: the visitor's name (may be empty; kept as text, never parsed as an address).
            email: the visitor's address; it becomes the only Reply-To.
            message: the visitor's text; line breaks are kept.
            subject: the visitor's subject (optional); it follows :attr:`subject_prefix`.
            honeypot: the value of the :attr:`honeypot_field` form field; must be empty.
            client_key: who is submitting, for rate limiting: usually the client IP address (as
                the web framework reports it behind your proxy), or a session or account id.
                ``None`` puts the submission in one bucket shared by every client that has no
                key, so that forgetting the key still limits the form as a whole.

        Raises:
            ContactFormError: a field is not a str, is too long, or the message is empty or
                holds control characters (``.field`` names it).
            SpamSubmission: the honeypot was filled in. Swallow it and answer as for success.
            InvalidHeader: control characters (CR, LF, ...) in the name or subject.
            InvalidAddress: the address is invalid, or is more than one address.
            RateLimited: the rate limiter refused *client_key*.
            MessageError: any other reason the message cannot be built.
        """
        name = _text(name, "name")
        email = _text(email, "email")
        message = _text(message, "message")
        subject = _text(subject, "subject")
        honeypot = _text(honeypot, self.honeypot_field)
        # Lengths first: every later check costs time in proportion to the input.
        _bounded(name, "name", self.max_name_length)
        _bounded(email, "email", MAX_ADDRESS_LENGTH)
        _bounded(subject, "subject", self.max_subject_length)
        _bounded(message, "message", self.max_message_length)
        if honeypot:
            raise SpamSubmission(
                f"{self.honeypot_field}: the honeypot field was filled in",
                field=self.honeypot_field,
            )

        check_header_value(name, field="name", max_length=self.max_name_length * 4)
        check_header_value(subject, field="subject", max_length=self.max_subject_length * 4)
        check_header_value(email, field="email", max_length=MAX_ADDRESS_LENGTH)
        name = name.strip(" ")
        subject = subject.strip(" ")
        visitor = Mailbox(Address.parse(email.strip(" "), field="email"), name or None)

        body = message.replace("\r\n", "\n").replace("\r", "\n")
        bad = _BODY_CONTROL.search(body)
        if bad is not None:
            raise ContactFormError(
                f"message: control character {describe_char(bad.group())} at position"
                f" {bad.start()}",
                field="message",
            )
        if not body.strip():
            raise ContactFormError("message: the message is empty", field="message")

        shown_name = name or "(no name given)"
        lines = [f"Name: {shown_name}", f"Email: {visitor.address}"]
        if subject:
            lines.append(f"Subject: {subject}")
        text = "\n".join(lines) + "\n\n" + body + "\n"
        built = Message(
            sender=self.sender,
            to=self.to,
            reply_to=visitor,
            subject=self.subject_prefix + (subject or f"Message from {shown_name}"),
            text=text,
            html=_escaped_html(text),
        )

        if self.rate_limiter is not None:
            key = _ANONYMOUS if client_key is None else client_key
            if not isinstance(key, str):
                raise TypeError(f"client_key must be a str or None, not {type(key).__name__}")
            if not self.rate_limiter.allow(key):
                raise RateLimited(
                    "too many contact-form submissions from this client; try again later"
                )
        return built


def _escaped_html(text: str) -> str:
    """The text as HTML: every character escaped, line breaks as ``<br>``; nothing interpreted."""
    escaped = html.escape(text, quote=True).replace("\n", "<br>\n")
    return f"<!DOCTYPE html>\n<html><body><p>{escaped}</p></body></html>\n"
