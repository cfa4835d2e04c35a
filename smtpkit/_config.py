"""SMTP configuration: one immutable value that says where and how to send.

Build it in code, from a DSN, from the environment, or from a provider preset::

    SMTPConfig(host="smtp.example.com", credentials=Credentials("me", Secret("pw")))
    SMTPConfig.from_dsn("smtps://me:pw@smtp.example.com")           # implicit TLS, port 465
    SMTPConfig.from_env()                                           # SMTPKIT_DSN or SMTPKIT_*
    SMTPConfig.from_provider("gmail", username="me@gmail.com", password="app-password")

Everything is checked when the value is built, so a bad setting is a :class:`ConfigError` at
start-up rather than a failure at the first send. Security is the default: STARTTLS is
*required* (never opportunistic unless asked for), certificates and host names are verified,
and AUTH without TLS is refused unless ``allow_insecure_auth=True`` says otherwise. No
``repr``, ``str`` or error message of these values shows a password or a token.

>>> config = SMTPConfig.from_dsn("smtp://ann:s3cret@smtp.example.com")
>>> config.tls, config.effective_port
(<TLSMode.STARTTLS: 'starttls'>, 587)
>>> "s3cret" in repr(config)
False
>>> config.redacted_dsn()
'smtp://ann:***@smtp.example.com'
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from smtpkit._exceptions import ConfigError
from smtpkit._secrets import REDACTED, Secret

if TYPE_CHECKING:
    from smtpkit._dsn import TransportGroup

__all__ = [
    "DEFAULT_AUTH_MECHANISMS",
    "KNOWN_AUTH_MECHANISMS",
    "Credentials",
    "PoolLimits",
    "RetryPolicy",
    "SMTPConfig",
    "Secret",
    "TLSMode",
    "Timeouts",
]

#: The SASL mechanisms smtpkit implements.
KNOWN_AUTH_MECHANISMS: frozenset[str] = frozenset(
    {"PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "OAUTHBEARER"}
)
#: Default preference: tokens first (when a token provider is configured), then the password
#: mechanisms, strongest first. Only mechanisms the server offers and the credentials allow
#: are tried.
DEFAULT_AUTH_MECHANISMS: tuple[str, ...] = ("XOAUTH2", "OAUTHBEARER", "CRAM-MD5", "PLAIN", "LOGIN")

_TOKEN_MECHANISMS = frozenset({"XOAUTH2", "OAUTHBEARER"})

# Ports whose TLS convention is unambiguous (RFC 8314): 465 is implicit TLS, 587 is
# submission with STARTTLS. The front ends (DSN, environment, presets) refuse the other
# combination unless the TLS mode was written out, because the mismatch otherwise surfaces
# as an obscure "wrong version number" or a hang at connect time.
_IMPLICIT_PORTS = frozenset({465})
_STARTTLS_PORTS = frozenset({587})

_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_MAX_ECHO = 80


class TLSMode(StrEnum):
    """How the connection is encrypted.

    ``IMPLICIT``
        TLS from the first byte (SMTPS, port 465). The most robust choice (RFC 8314).
    ``STARTTLS``
        Plain connect, then STARTTLS, which is *required*: if the server does not offer it or
        the upgrade fails, nothing else is sent and :class:`~smtpkit.TLSError` is raised.
    ``STARTTLS_OPPORTUNISTIC``
        Upgrade if the server offers STARTTLS, otherwise continue in plaintext. An active
        attacker can strip the offer, so this is an explicit opt-in to weaker security; AUTH
        over the resulting plaintext is still refused unless ``allow_insecure_auth``.
    ``NONE``
        Plaintext only (local test servers, relays on a trusted network).

    >>> TLSMode("starttls") is TLSMode.STARTTLS
    True
    """

    IMPLICIT = "implicit"
    STARTTLS = "starttls"
    STARTTLS_OPPORTUNISTIC = "opportunistic"
    NONE = "none"


def _echo(value: str) -> str:
    """Quote a non-secret value for an error message, escaped and shortened."""
    text = repr(value)
    return text if len(text) <= _MAX_ECHO else text[: _MAX_ECHO - 4] + "...'"


def _has_control(text: str) -> bool:
    return any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029" for ch in text)


def check_host(host: object, *, what: str = "host") -> str:
    """Validate a server host name or IP address and return it (IPv6 without brackets).

    >>> check_host("[::1]"), check_host("smtp.example.com")
    ('::1', 'smtp.example.com')
    """
    if not isinstance(host, str):
        raise ConfigError(f"{what}: expected a string, got {type(host).__name__}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ConfigError(f"{what}: empty (give the SMTP server's name or address)")
    if _has_control(host) or any(ch.isspace() for ch in host):
        raise ConfigError(f"{what}: {_echo(host)} contains a control character or a space")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"{what}: {_echo(host)} is not a valid IPv6 address") from None
        if "%" in host:
            raise ConfigError(f"{what}: IPv6 zone identifiers are not supported")
        return host
    if len(host) > 253 or any(not (ch.isalnum() or ch in "-_.") for ch in host):
        raise ConfigError(
            f"{what}: {_echo(host)} is not a valid host name (letters, digits, '-', '_', '.')"
        )
    if any(not label for label in host.removesuffix(".").split(".")):
        raise ConfigError(f"{what}: {_echo(host)} has an empty label")
    return host


def check_ehlo_name(name: object) -> str:
    """Validate the name sent with EHLO/HELO (RFC 5321 §4.1.1.1) and return it.

    A domain name (letter/digit/hyphen labels) or an address literal such as
    ``[192.0.2.1]`` or ``[IPv6:2001:db8::1]``.

    >>> check_ehlo_name("mail.example.com")
    'mail.example.com'
    >>> check_ehlo_name("bad name")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    smtpkit._exceptions.ConfigError: ehlo: 'bad name' is not a valid host name ...
    """
    if not isinstance(name, str):
        raise ConfigError(f"ehlo: expected a string, got {type(name).__name__}")
    if name.startswith("[") and name.endswith("]"):
        inner = name[1:-1]
        try:
            if inner[:5].lower() == "ipv6:":
                ipaddress.IPv6Address(inner[5:])
            else:
                ipaddress.IPv4Address(inner)
        except ValueError:
            raise ConfigError(
                f"ehlo: {_echo(name)} is not a valid address literal "
                "(like [192.0.2.1] or [IPv6:2001:db8::1])"
            ) from None
        if "%" in inner:
            raise ConfigError("ehlo: IPv6 zone identifiers are not allowed in an address literal")
        return name
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL_RE.match(label) for label in labels):
        raise ConfigError(
            f"ehlo: {_echo(name)} is not a valid host name (letters, digits and hyphens in "
            "dot-separated labels, or an address literal like [192.0.2.1])"
        )
    return name


def normalize_mechanisms(value: object) -> tuple[str, ...]:
    """Upper-case, de-duplicate and check a preference list of SASL mechanism names.

    >>> normalize_mechanisms("plain, login")
    ('PLAIN', 'LOGIN')
    """
    if isinstance(value, str):
        items: list[object] = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, (tuple, list)):
        items = list(value)
    else:
        raise ConfigError(f"auth: expected a list of mechanism names, got {type(value).__name__}")
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"auth: mechanism names are strings, got {type(item).__name__}")
        name = item.strip().upper()
        if name not in KNOWN_AUTH_MECHANISMS:
            known = ", ".join(sorted(KNOWN_AUTH_MECHANISMS))
            raise ConfigError(f"auth: unknown mechanism {_echo(item)} (known: {known})")
        if name not in names:
            names.append(name)
    if not names:
        raise ConfigError("auth: the mechanism list is empty")
    return tuple(names)


def _check_number(value: object, what: str, *, integer: bool = False, minimum: float = 0) -> None:
    """Raise ConfigError unless value is a finite number (an int if asked) >= minimum.

    ``minimum=0`` means strictly positive for floats; integers use ``>= minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what}: expected a number, got {type(value).__name__}")
    if integer:
        if not isinstance(value, int):
            raise ConfigError(f"{what}: expected a whole number, got {value!r}")
        if value < minimum:
            raise ConfigError(f"{what}: must be at least {int(minimum)}, got {value}")
        return
    if not math.isfinite(value) or value <= minimum:
        raise ConfigError(f"{what}: must be a positive number of seconds, got {value!r}")


def port_tls_conflict(port: int | None, tls: TLSMode) -> str | None:
    """Explain why ``port`` and ``tls`` look like a mistake, or return None.

    Used by the DSN, environment and preset front ends when the TLS mode was not written out.

    >>> port_tls_conflict(465, TLSMode.STARTTLS) is not None
    True
    """
    if port in _IMPLICIT_PORTS and tls is not TLSMode.IMPLICIT:
        return (
            f"port {port} is for implicit TLS: use smtps:// (tls=implicit), or write "
            f"tls={tls.value} explicitly if the server really expects that on port {port}"
        )
    if port in _STARTTLS_PORTS and tls is TLSMode.IMPLICIT:
        return (
            f"port {port} is for STARTTLS: use smtp:// (tls=starttls), or write "
            f"tls=implicit explicitly if the server really expects implicit TLS on port {port}"
        )
    return None


@dataclass(frozen=True)
class Credentials:
    """A user name with a password, an OAuth2 token provider, or both.

    ``password`` may be given as a plain ``str``; it is wrapped in a :class:`Secret`.
    ``token`` is a callable (sync or async) that returns a fresh OAuth2 access token; the
    transport calls it for every new connection and uses XOAUTH2 or OAUTHBEARER.

    >>> Credentials("ann@example.com", "app-password")
    Credentials(username='ann@example.com', password=***)
    >>> Credentials("ann@example.com", token=lambda: "ya29.token")
    Credentials(username='ann@example.com', token=<provider>)
    """

    username: str
    password: Secret | None = None
    token: Callable[[], str | Awaitable[str]] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.username, str):
            raise ConfigError(f"username: expected a string, got {type(self.username).__name__}")
        if not self.username:
            raise ConfigError("username: empty")
        # NUL separates the fields of AUTH PLAIN and CR/LF end an SMTP line: either one in a
        # user name or password would let it smuggle extra fields or commands.
        if any(ch in self.username for ch in "\x00\r\n"):
            raise ConfigError(f"username: {_echo(self.username)} contains NUL, CR or LF")
        password: object = self.password
        if isinstance(password, str):
            object.__setattr__(self, "password", Secret(password))
        elif password is not None and not isinstance(password, Secret):
            raise ConfigError(f"password: expected str or Secret, got {type(password).__name__}")
        if self.password is not None and not self.password.reveal():
            raise ConfigError("password: empty")
        if self.password is not None and any(ch in self.password.reveal() for ch in "\x00\r\n"):
            raise ConfigError("password: contains NUL, CR or LF (not shown)")
        if self.token is not None and not callable(self.token):
            raise ConfigError(
                "token: expected a callable returning an access token (sync or async)"
            )
        if self.password is None and self.token is None:
            raise ConfigError(
                f"credentials for {_echo(self.username)}: give a password or a token provider"
            )

    def __repr__(self) -> str:
        parts = [f"username={self.username!r}"]
        if self.password is not None:
            parts.append(f"password={REDACTED}")
        if self.token is not None:
            parts.append("token=<provider>")
        return f"Credentials({', '.join(parts)})"


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait: for the TCP (and TLS) connection, for each command's reply, and for
    the reply after the message data (which servers may take a while to give).

    >>> Timeouts(connect=5.0)
    Timeouts(connect=5.0, command=30.0, data=120.0)
    >>> Timeouts.uniform(10)
    Timeouts(connect=10, command=10, data=10)
    """

    connect: float = 10.0
    command: float = 30.0
    data: float = 120.0

    def __post_init__(self) -> None:
        for name in ("connect", "command", "data"):
            _check_number(getattr(self, name), f"{name}_timeout")

    @classmethod
    def uniform(cls, seconds: float, /) -> Timeouts:
        """The same timeout for every step (the DSN's ``timeout=`` option)."""
        return cls(connect=seconds, command=seconds, data=seconds)


@dataclass(frozen=True)
class PoolLimits:
    """Connection pool limits: how many connections at once, how many messages one connection
    carries before it is replaced, and how long an idle connection is kept.

    >>> PoolLimits(max_connections=8).max_messages_per_connection
    100
    """

    max_connections: int = 4
    max_messages_per_connection: int = 100
    idle_timeout: float = 30.0

    def __post_init__(self) -> None:
        _check_number(self.max_connections, "max_connections", integer=True, minimum=1)
        _check_number(
            self.max_messages_per_connection, "max_messages_per_connection", integer=True, minimum=1
        )
        _check_number(self.idle_timeout, "idle_timeout")


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of transient failures: ``retries`` attempts after the first (0 = no retry),
    exponential backoff from ``initial_backoff`` up to ``max_backoff`` seconds, with jitter,
    and never past ``max_elapsed`` seconds in total.

    The defaults are a couple of quick retries, short enough to run inside a web request.

    >>> RetryPolicy(retries=0).retries
    0
    """

    retries: int = 2
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    max_elapsed: float = 30.0
    jitter: bool = True

    def __post_init__(self) -> None:
        _check_number(self.retries, "retries", integer=True, minimum=0)
        _check_number(self.initial_backoff, "initial_backoff")
        _check_number(self.max_backoff, "max_backoff")
        _check_number(self.max_elapsed, "max_elapsed")
        if self.max_backoff < self.initial_backoff:
            raise ConfigError("max_backoff: must not be smaller than initial_backoff")
        if not isinstance(self.jitter, bool):
            raise ConfigError(f"jitter: expected True or False, got {self.jitter!r}")


def _optional_path(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"{what}: expected a path, got {type(value).__name__}")
    path = os.fspath(value)
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{what}: expected a non-empty text path")
    if _has_control(path):
        raise ConfigError(f"{what}: {_echo(path)} contains a control character")
    return path


_ALLOWED_TLS_VERSIONS = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)


@dataclass(frozen=True)
class SMTPConfig:
    """Where and how to connect to an SMTP server. Immutable and validated when built.

    Attributes:
        host: server name or IP address (IPv6 without brackets).
        port: ``None`` means the default of the TLS mode (see :attr:`effective_port`).
        tls: see :class:`TLSMode`; STARTTLS (required) by default.
        credentials: user name with a password and/or an OAuth2 token provider.
        auth_mechanisms: SASL mechanisms in order of preference; only those the server offers
            and the credentials allow are tried.
        local_hostname: the name sent with EHLO (``None``: the transport uses the machine's
            fully qualified name).
        timeouts: connect, command and data timeouts.
        ca_file, ca_path: CA certificates to trust *instead of* the system store.
        ssl_context: a ready context; when given, the other TLS options must stay unset and
            it is used as is.
        client_cert, client_key: a client certificate chain (PEM) for servers that ask for one.
        min_tls_version: TLS 1.2 (default) or TLS 1.3.
        verify: certificate and host-name verification; ``False`` is an explicit, insecure
            opt-out for test servers.
        pool: connection pool limits.
        retry: the retry policy for transient errors.
        allow_insecure_auth: allow AUTH on a connection that is not encrypted (whatever the
            host, loopback included). Needed with credentials and ``tls=NONE``.
        max_recipients_per_transaction: RCPT TO commands per transaction before the rest go in
            another transaction of the same message.
        on_partial_rejection: ``"deliver"`` to the accepted recipients (and record refusals),
            or ``"abort"`` the transaction with :class:`~smtpkit.RecipientsRefused`.
        transcript: keep a redacted protocol transcript for errors and debugging.

    >>> SMTPConfig(host="mail.example.com", tls=TLSMode.IMPLICIT).effective_port
    465
    >>> user = Credentials("u", "p")
    >>> SMTPConfig(host="127.0.0.1", tls="none", credentials=user)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    smtpkit._exceptions.ConfigError: credentials with tls=none would send the password ...
    """

    host: str = "localhost"
    port: int | None = None
    tls: TLSMode = TLSMode.STARTTLS
    credentials: Credentials | None = None
    auth_mechanisms: tuple[str, ...] = DEFAULT_AUTH_MECHANISMS
    local_hostname: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    ca_file: str | None = None
    ca_path: str | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)
    client_cert: str | None = None
    client_key: str | None = None
    min_tls_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    verify: bool = True
    pool: PoolLimits = field(default_factory=PoolLimits)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    allow_insecure_auth: bool = False
    max_recipients_per_transaction: int = 100
    on_partial_rejection: Literal["deliver", "abort"] = "deliver"
    transcript: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise fields in place, once, at construction
        set_(self, "host", check_host(self.host))
        port: object = self.port
        if port is not None and (
            isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535
        ):
            raise ConfigError(f"port: must be a whole number from 1 to 65535, got {port!r}")
        tls: object = self.tls
        if not isinstance(tls, TLSMode):
            try:
                set_(self, "tls", TLSMode(tls if isinstance(tls, str) else repr(tls)))
            except ValueError:
                raise ConfigError(
                    f"tls: unknown mode {_echo(str(tls))} (implicit, starttls, opportunistic, none)"
                ) from None
        credentials: object = self.credentials
        if credentials is not None and not isinstance(credentials, Credentials):
            raise ConfigError(
                f"credentials: expected Credentials, got {type(credentials).__name__}"
            )
        set_(self, "auth_mechanisms", normalize_mechanisms(self.auth_mechanisms))
        if self.local_hostname is not None:
            check_ehlo_name(self.local_hostname)
        for name, kind in (("timeouts", Timeouts), ("pool", PoolLimits), ("retry", RetryPolicy)):
            value = getattr(self, name)
            if not isinstance(value, kind):
                raise ConfigError(f"{name}: expected {kind.__name__}, got {type(value).__name__}")
        for name in ("ca_file", "ca_path", "client_cert", "client_key"):
            set_(self, name, _optional_path(getattr(self, name), name))
        if self.client_key is not None and self.client_cert is None:
            raise ConfigError("client_key: given without client_cert")
        if self.min_tls_version not in _ALLOWED_TLS_VERSIONS:
            raise ConfigError("min_tls_version: must be ssl.TLSVersion.TLSv1_2 or TLSv1_3")
        for name in ("verify", "allow_insecure_auth", "transcript"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: expected True or False, got {getattr(self, name)!r}")
        context: object = self.ssl_context
        if context is not None:
            if not isinstance(context, ssl.SSLContext):
                raise ConfigError(
                    f"ssl_context: expected ssl.SSLContext, got {type(context).__name__}"
                )
            # The context is used as is; other TLS options would be silently ignored.
            conflicting = [
                name
                for name, value in (
                    ("ca_file", self.ca_file),
                    ("ca_path", self.ca_path),
                    ("client_cert", self.client_cert),
                    ("verify=False", not self.verify),
                    ("min_tls_version", self.min_tls_version != ssl.TLSVersion.TLSv1_2),
                )
                if value
            ]
            if conflicting:
                raise ConfigError(
                    f"ssl_context: set {', '.join(conflicting)} on the context itself "
                    "(they are ignored when a context is given)"
                )
        _check_number(
            self.max_recipients_per_transaction,
            "max_recipients_per_transaction",
            integer=True,
            minimum=1,
        )
        if self.on_partial_rejection not in ("deliver", "abort"):
            raise ConfigError(
                f"on_partial_rejection: expected 'deliver' or 'abort', "
                f"got {self.on_partial_rejection!r}"
            )
        if self.credentials is not None:
            self._check_mechanisms_usable(self.credentials)
        if (
            self.credentials is not None
            and self.tls is TLSMode.NONE
            and not self.allow_insecure_auth
        ):
            raise ConfigError(
                "credentials with tls=none would send the password in plaintext: use TLS "
                "(tls=implicit or starttls), or set allow_insecure_auth=True to accept that"
            )

    def _check_mechanisms_usable(self, credentials: Credentials) -> None:
        # A preference list that cannot work with the credentials would only fail at the
        # first send (NoCommonAuthMechanism); say it now.
        usable = [
            m
            for m in self.auth_mechanisms
            if (
                credentials.token is not None
                if m in _TOKEN_MECHANISMS
                else credentials.password is not None
            )
        ]
        if not usable:
            raise ConfigError(
                f"auth: none of {', '.join(self.auth_mechanisms)} can be used with these "
                "credentials (a password needs PLAIN, LOGIN or CRAM-MD5; a token provider "
                "needs XOAUTH2 or OAUTHBEARER)"
            )

    # -- derived values --------------------------------------------------------------------

    @property
    def effective_port(self) -> int:
        """The port to connect to: ``port``, or 465 for implicit TLS, 587 for STARTTLS, else 25.

        >>> SMTPConfig().effective_port, SMTPConfig(tls=TLSMode.NONE).effective_port
        (587, 25)
        """
        if self.port is not None:
            return self.port
        if self.tls is TLSMode.IMPLICIT:
            return 465
        if self.tls is TLSMode.STARTTLS:
            return 587
        return 25

    def create_ssl_context(self) -> ssl.SSLContext:
        """Build the TLS context for this configuration (the transport calls it once).

        Returns ``ssl_context`` when one was given. Otherwise a default client context that
        verifies certificates and host names (unless ``verify=False``), trusts ``ca_file`` /
        ``ca_path`` instead of the system store when set, refuses anything older than
        ``min_tls_version`` and loads the client certificate when configured.

        >>> ctx = SMTPConfig().create_ssl_context()
        >>> ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
        True
        """
        if self.ssl_context is not None:
            return self.ssl_context
        try:
            context = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH, cafile=self.ca_file, capath=self.ca_path
            )
        except (OSError, ssl.SSLError) as exc:
            source = "ca_file" if self.ca_file else "ca_path"
            raise ConfigError(f"{source}: cannot load CA certificates: {exc}") from exc
        context.minimum_version = self.min_tls_version
        if self.verify:
            context.check_hostname = True
            context.verify_mode = ssl.CERT_REQUIRED
        else:
            # check_hostname must be switched off before verify_mode can be CERT_NONE.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert is not None:
            try:
                context.load_cert_chain(self.client_cert, self.client_key)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"client_cert: cannot load the certificate: {exc}") from exc
        return context

    # -- other representations ---------------------------------------------------------------

    def to_dsn(self, *, reveal: bool = False) -> str:
        """This configuration as a DSN string; the password is ``***`` unless ``reveal``.

        With ``reveal=True`` the result parses back to an equal configuration; a setting that
        has no DSN form (an ``ssl_context``, a token provider, retry backoff timings) raises
        :class:`ConfigError` rather than being lost. With ``reveal=False`` (for display) those
        settings are left out.

        >>> SMTPConfig.from_dsn("smtp://u:p%40ss@mail.example.com").to_dsn(reveal=True)
        'smtp://u:p%40ss@mail.example.com'
        """
        from smtpkit._dsn import format_dsn

        return format_dsn(self, reveal=reveal)

    def redacted_dsn(self) -> str:
        """The DSN with the password shown as ``***``: safe to log and print.

        >>> SMTPConfig.from_dsn("smtps://u:secret@mail.example.com").redacted_dsn()
        'smtps://u:***@mail.example.com'
        """
        return self.to_dsn(reveal=False)

    def replace(self, **changes: Any) -> SMTPConfig:
        """A copy with some fields changed (validated again).

        >>> SMTPConfig(host="a.example").replace(port=2525).port
        2525
        """
        return dataclasses.replace(self, **changes)

    # -- constructors --------------------------------------------------------------------------

    @classmethod
    def from_dsn(cls, dsn: str, /) -> SMTPConfig:
        """Parse a DSN such as ``smtps://user:pass@smtp.example.com`` (see :mod:`smtpkit._dsn`).

        A group (``failover(...)`` / ``roundrobin(...)``) is a :class:`ConfigError` here:
        groups are several transports, built by ``AsyncMailer.from_dsn``.

        >>> SMTPConfig.from_dsn("smtp://mail.example.com:2525?tls=none").effective_port
        2525
        """
        from smtpkit._dsn import TransportGroup, parse_dsn

        result = parse_dsn(dsn)
        if isinstance(result, TransportGroup):
            raise _group_error(result)
        return result

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SMTPConfig:
        """Read ``SMTPKIT_DSN``, or ``SMTPKIT_HOST`` / ``SMTPKIT_PROVIDER`` and friends.

        ``environ`` defaults to ``os.environ``. See :func:`smtpkit._dsn.config_from_env` for
        the variables.

        >>> SMTPConfig.from_env({"SMTPKIT_HOST": "mail.example.com"}).host
        'mail.example.com'
        """
        from smtpkit._dsn import TransportGroup, config_from_env

        result = config_from_env(os.environ if environ is None else environ)
        if isinstance(result, TransportGroup):
            raise _group_error(result, source="SMTPKIT_DSN")
        return result

    @classmethod
    def from_provider(cls, name: str, /, **overrides: Any) -> SMTPConfig:
        """A provider preset (host, port, TLS mode, AUTH mechanisms), with overrides.

        Besides any :class:`SMTPConfig` field, ``username=``, ``password=`` (str or
        :class:`Secret`) and ``token=`` build the :class:`Credentials`; ``region=`` picks the
        region of regional providers (Amazon SES). See :mod:`smtpkit.providers`.

        >>> cfg = SMTPConfig.from_provider("ses", region="eu-west-1", username="AKIA", password="x")
        >>> cfg.host, cfg.effective_port
        ('email-smtp.eu-west-1.amazonaws.com', 587)
        """
        from smtpkit.providers import config_from_provider

        return config_from_provider(name, **overrides)


def _group_error(group: TransportGroup, *, source: str = "the DSN") -> ConfigError:
    return ConfigError(
        f"{source} describes a {group.kind} group of {len(group.configs)} servers, not one "
        "SMTPConfig: pass it to AsyncMailer.from_dsn() (or use smtpkit parse_dsn() to get "
        "each configuration)"
    )
