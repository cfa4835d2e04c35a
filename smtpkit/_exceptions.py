"""Every error smtpkit raises, in one tree.

::

    SmtpkitError
      ConfigError (ValueError)                   P  bad DSN, unknown option or provider, unsafe TLS
      MessageError (ValueError)                  P
        InvalidAddress                              an address email-validator refuses
        InvalidHeader                               control characters, bad header names, too long
        NoRecipients                                a message or envelope with nobody to send to
        TemplateError                               missing template or variable, bad template
        MessageTooLarge (.limit, .size)             ours, or the server's SIZE (before MAIL FROM)
        MessageRejected                             a before_send hook refused the message
        ContactFormError (.field)                   a contact-form field is missing or too long
          SpamSubmission                            the honeypot field was filled in (a bot)
          RateLimited                               the rate limiter refused this client
      TransportError (.stage .reply .is_transient .hint .transcript)
        ConnectError (ConnectionError)           T
        TransportTimeout (TimeoutError)          T
        ServerDisconnected (ConnectionError)     T
        DeliveryUnknown                          T  dropped after the end-of-data dot: maybe queued
        TLSError                                 P  handshake, certificate, STARTTLS not offered
        AuthenticationError                      P on 5xx, T on 4xx
          NoCommonAuthMechanism                  P
        ExtensionUnsupported                     P  SMTPUTF8 / 8BITMIME needed, server lacks it
        ReplyError                               T iff 4xx
          SenderRefused                             MAIL FROM refused
          RecipientsRefused (.rejected)             RCPT TO refused (all, or any with abort)
          DataRefused                               DATA or end of data refused
        AllTransportsFailed (.errors)            T iff any is T

``T`` errors are transient (a retry may succeed), ``P`` permanent. Transience of an error with
a reply is decided from the reply's numeric code, never from its text.

No error message ever contains a password, a token or an AUTH payload: errors are built from
classified replies and redacted transcripts only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from smtpkit._replies import Reply

__all__ = [
    "AllTransportsFailed",
    "AuthenticationError",
    "ConfigError",
    "ConnectError",
    "ContactFormError",
    "DataRefused",
    "DeliveryUnknown",
    "ExtensionUnsupported",
    "InvalidAddress",
    "InvalidHeader",
    "MessageError",
    "MessageRejected",
    "MessageTooLarge",
    "NoCommonAuthMechanism",
    "NoRecipients",
    "RateLimited",
    "RecipientsRefused",
    "ReplyError",
    "SenderRefused",
    "ServerDisconnected",
    "SmtpkitError",
    "SpamSubmission",
    "Stage",
    "TLSError",
    "TemplateError",
    "TransportError",
    "TransportTimeout",
]

#: Where in an SMTP conversation an error happened.
Stage = Literal["connect", "greeting", "ehlo", "tls", "auth", "mail", "rcpt", "data", "quit"]


class SmtpkitError(Exception):
    """Base class of every error smtpkit raises."""

    #: How many times the failed operation was tried (set by the retry layer).
    attempts: int = 1

    @property
    def is_transient(self) -> bool:
        """Whether retrying the same operation later may succeed (false unless overridden)."""
        return False


class ConfigError(SmtpkitError, ValueError):
    """A configuration (DSN, environment, preset or object) is invalid or unsafe.

    >>> from smtpkit import SMTPConfig
    >>> SMTPConfig.from_dsn("smtp://host?tls=sometimes")  # doctest: +SKIP
    Traceback (most recent call last):
    smtpkit.ConfigError: tls: unknown mode 'sometimes' (implicit, starttls, opportunistic, none)
    """


class MessageError(SmtpkitError, ValueError):
    """A message cannot be built or sent as given; nothing was put on the wire."""


class InvalidAddress(MessageError):
    """An email address was refused by the validator (the message says which field and why)."""


class InvalidHeader(MessageError):
    """A header name or value is unsafe or malformed (control characters, bad name, too long)."""


class NoRecipients(MessageError):
    """A message or envelope has no recipient at all."""


class TemplateError(MessageError):
    """A template is missing, malformed, or uses a variable the context does not define."""


class MessageRejected(MessageError):
    """A ``before_send`` hook refused the message; it was not sent."""


class ContactFormError(MessageError):
    """A contact-form submission was refused before any message was built (``smtpkit.contact``).

    The text names the field first (``"message: 12000 characters, more than 10000"``); the
    field name is also in :attr:`field`, for showing the error beside the form field.

    Attributes:
        field: the form field at fault (``"name"``, ``"email"``, ``"subject"``, ``"message"``),
            or ``None`` when the refusal is not about one field.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field: str | None = field


class SpamSubmission(ContactFormError):
    """The honeypot field was filled in: a bot sent the form.

    Sites usually swallow it and answer as if the message had been sent, so that the bot learns
    nothing.
    """


class RateLimited(ContactFormError):
    """The contact form's rate limiter refused this client key: too many submissions."""


class MessageTooLarge(MessageError):
    """The message is larger than a limit: smtpkit's own, or the size the server advertised.

    Raised before ``MAIL FROM`` so that no byte of the message goes on the wire.
    """

    def __init__(self, message: str, *, limit: int, size: int | None = None) -> None:
        super().__init__(message)
        #: The limit in octets that was exceeded.
        self.limit = limit
        #: The size of the message in octets, where known.
        self.size = size


class TransportError(SmtpkitError):
    """Sending failed on the way to or at the server.

    Attributes:
        stage: where in the conversation it failed (``connect``, ``tls``, ``auth``, ``mail``,
            ``rcpt``, ``data``, ...), or ``None`` where that does not apply.
        reply: the server's reply that caused it, if there was one.
        hint: a plain-language cause and fix for common failures, or ``None``.
        transcript: the redacted protocol transcript up to the failure (empty unless a
            transcript was requested in the configuration).
    """

    #: Transience when there is no reply to decide from (subclasses override).
    default_transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        stage: Stage | None = None,
        reply: Reply | None = None,
        hint: str | None = None,
        transcript: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.stage: Stage | None = stage
        self.reply: Reply | None = reply
        self.hint: str | None = hint
        self.transcript: tuple[str, ...] = tuple(transcript)

    @property
    def is_transient(self) -> bool:
        """True for 4xx replies and network failures; decided from codes, never text."""
        if self.reply is not None:
            return 400 <= self.reply.code < 500
        return self.default_transient

    def __str__(self) -> str:
        text = super().__str__()
        if self.hint:
            return f"{text}\nHint: {self.hint}"
        return text


class ConnectError(TransportError, ConnectionError):
    """The TCP connection could not be made (refused, unreachable, DNS failure)."""

    default_transient = True


class TransportTimeout(TransportError, TimeoutError):
    """The server did not answer within the configured timeout."""

    default_transient = True


class ServerDisconnected(TransportError, ConnectionError):
    """The server closed the connection before the message was handed over."""

    default_transient = True


class DeliveryUnknown(TransportError):
    """The connection dropped after the end-of-data dot and before the server's reply.

    The server may have queued the message. smtpkit never resends it silently: a caller that
    retries should keep the same Message-ID so that duplicates can be recognised.
    """

    default_transient = True

    @property
    def is_transient(self) -> bool:
        """Always true: the outcome is unknown, so a later retry is the caller's choice."""
        return True


class TLSError(TransportError):
    """TLS could not be established: handshake, certificate, or STARTTLS not offered."""

    @property
    def is_transient(self) -> bool:
        """True only for a 4xx reply to STARTTLS (e.g. 454 TLS temporarily unavailable)."""
        return self.reply is not None and 400 <= self.reply.code < 500


class AuthenticationError(TransportError):
    """The server refused authentication (permanent on 5xx, transient on 4xx)."""


class NoCommonAuthMechanism(AuthenticationError):
    """None of the configured AUTH mechanisms is offered by the server."""

    @property
    def is_transient(self) -> bool:
        """Always false: the server's offer will not change on a retry."""
        return False


class ExtensionUnsupported(TransportError):
    """The message needs an SMTP extension (SMTPUTF8, 8BITMIME) that the server lacks."""

    @property
    def is_transient(self) -> bool:
        """Always false."""
        return False


class ReplyError(TransportError):
    """The server answered a command with an error reply (transient iff 4xx)."""


class SenderRefused(ReplyError):
    """``MAIL FROM`` was refused."""


class RecipientsRefused(ReplyError):
    """``RCPT TO`` was refused: for every recipient, or for any in "abort" mode.

    Attributes:
        rejected: each refused address mapped to the server's reply.
    """

    def __init__(
        self,
        message: str,
        *,
        rejected: Mapping[str, Reply],
        stage: Stage | None = "rcpt",
        reply: Reply | None = None,
        hint: str | None = None,
        transcript: Sequence[str] = (),
    ) -> None:
        if reply is None and rejected:
            reply = next(iter(rejected.values()))
        super().__init__(message, stage=stage, reply=reply, hint=hint, transcript=transcript)
        self.rejected: dict[str, Reply] = dict(rejected)

    @property
    def is_transient(self) -> bool:
        """True when every refusal is a 4xx (a retry may be accepted)."""
        if not self.rejected:
            return super().is_transient
        return all(400 <= r.code < 500 for r in self.rejected.values())


class DataRefused(ReplyError):
    """``DATA`` or the end of data was refused: the message was not accepted."""


class AllTransportsFailed(TransportError):
    """Every transport of a failover or round-robin group failed.

    Attributes:
        errors: the error of each transport, in the order they were tried.
    """

    def __init__(self, message: str, *, errors: Sequence[TransportError]) -> None:
        last = errors[-1] if errors else None
        super().__init__(
            message,
            stage=last.stage if last else None,
            reply=last.reply if last else None,
            hint=last.hint if last else None,
        )
        self.errors: tuple[TransportError, ...] = tuple(errors)

    @property
    def is_transient(self) -> bool:
        """True when any of the underlying errors is transient."""
        return any(e.is_transient for e in self.errors)
