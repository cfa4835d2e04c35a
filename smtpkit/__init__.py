"""smtpkit: transactional email for Python.

Build a :class:`Message` (or render one from :class:`Templates`), send it with an
:class:`AsyncMailer` or the blocking :class:`Mailer`, and get a :class:`SendResult` or a
classified :class:`TransportError`.

>>> from smtpkit import Mailer, Message
>>> message = Message(sender="App <no-reply@app.example.com>", to=["ann@example.com"],
...                   subject="Hello", text="Hi Ann")
>>> with Mailer.from_dsn("smtp://user:pass@smtp.example.com:587") as mailer:  # doctest: +SKIP
...     result = mailer.send(message)
"""

from smtpkit._address import Address, Mailbox
from smtpkit._config import (
    Credentials,
    PoolLimits,
    RetryPolicy,
    Secret,
    SMTPConfig,
    Timeouts,
    TLSMode,
)
from smtpkit._dsn import TransportGroup, parse_dsn
from smtpkit._envelope import Envelope
from smtpkit._exceptions import (
    AllTransportsFailed,
    AuthenticationError,
    ConfigError,
    ConnectError,
    ContactFormError,
    DataRefused,
    DeliveryUnknown,
    ExtensionUnsupported,
    InvalidAddress,
    InvalidHeader,
    MessageError,
    MessageRejected,
    MessageTooLarge,
    NoCommonAuthMechanism,
    NoRecipients,
    RateLimited,
    RecipientsRefused,
    ReplyError,
    SenderRefused,
    ServerDisconnected,
    SmtpkitError,
    SpamSubmission,
    TemplateError,
    TLSError,
    TransportError,
    TransportTimeout,
)
from smtpkit._hooks import Hooks
from smtpkit._html_text import html_to_text
from smtpkit._mailer import AsyncMailer
from smtpkit._message import Attachment, InlineImage, Message, MessageLimits
from smtpkit._replies import RecipientStatus, Reply, SendResult
from smtpkit._sync import Mailer
from smtpkit._templates import Rendered, Templates
from smtpkit._transports.base import AsyncTransport
from smtpkit._transports.file import FileTransport
from smtpkit._transports.memory import MemoryTransport
from smtpkit._transports.multi import FailoverTransport, RoundRobinTransport
from smtpkit._transports.smtp import SMTPTransport

__version__ = "0.1.0.dev0"

__all__ = [
    "Address",
    "AllTransportsFailed",
    "AsyncMailer",
    "AsyncTransport",
    "Attachment",
    "AuthenticationError",
    "ConfigError",
    "ConnectError",
    "ContactFormError",
    "Credentials",
    "DataRefused",
    "DeliveryUnknown",
    "Envelope",
    "ExtensionUnsupported",
    "FailoverTransport",
    "FileTransport",
    "Hooks",
    "InlineImage",
    "InvalidAddress",
    "InvalidHeader",
    "Mailbox",
    "Mailer",
    "MemoryTransport",
    "Message",
    "MessageError",
    "MessageLimits",
    "MessageRejected",
    "MessageTooLarge",
    "NoCommonAuthMechanism",
    "NoRecipients",
    "PoolLimits",
    "RateLimited",
    "RecipientStatus",
    "RecipientsRefused",
    "Rendered",
    "Reply",
    "ReplyError",
    "RetryPolicy",
    "RoundRobinTransport",
    "SMTPConfig",
    "SMTPTransport",
    "Secret",
    "SendResult",
    "SenderRefused",
    "ServerDisconnected",
    "SmtpkitError",
    "SpamSubmission",
    "TLSError",
    "TLSMode",
    "TemplateError",
    "Templates",
    "Timeouts",
    "TransportError",
    "TransportGroup",
    "TransportTimeout",
    "__version__",
    "html_to_text",
    "parse_dsn",
]
