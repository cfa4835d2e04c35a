"""DSN strings and ``SMTPKIT_*`` environment variables, to and from :class:`SMTPConfig`.

A DSN names one SMTP server, with the user name and password percent-encoded::

    smtps://USER:PASSWORD@HOST[:PORT][?OPTION=VALUE&...]      implicit TLS, port 465
    smtp://USER:PASSWORD@HOST[:PORT][?OPTION=VALUE&...]       STARTTLS required, port 587
    PROVIDER://USER:PASSWORD@default[?OPTION=VALUE&...]       a preset: gmail, ses, sendgrid...
    failover(DSN DSN ...), roundrobin(DSN ...)                several servers (AsyncMailer)

Examples::

    smtps://u:p@mail.example.com                    implicit TLS on 465, certificate verified
    smtp://u:p@mail.example.com                     STARTTLS on 587, required (no fallback)
    smtp://u:p@[2001:db8::1]:2525                   IPv6 host in brackets, any port
    smtp://relay.example.com:25?tls=opportunistic   STARTTLS if offered (explicit opt-in)
    smtp://127.0.0.1:1025?tls=none                  plaintext, e.g. a local test server
    smtp://u:p@127.0.0.1:1025?tls=none&allow_insecure_auth=true     AUTH without TLS (opt-in)
    gmail://me%40gmail.com:app-password@default     the Gmail preset, with credentials
    ses://USER:PASS@default?region=eu-west-1        Amazon SES in a region
    sendgrid://apikey:SG.key@default                SendGrid (user name ``apikey``)
    failover(smtps://a.example smtps://b.example)   try servers in order

Options (query string; values percent-encoded where needed; an unknown option is an error):

=================================  ==========================================================
Option                             Effect
=================================  ==========================================================
``tls=implicit|starttls|``         the TLS mode; ``opportunistic`` and ``none`` are the explicit
``opportunistic|none``             opt-in to weaker transport security
``allow_insecure_auth=true``       allow AUTH without TLS (needed with credentials and ``tls=none``)
``verify=false``                   do not verify certificates (explicit, insecure opt-out)
``ca_file=PATH`` ``ca_path=DIR``   trust these CA certificates instead of the system store
``client_cert=PATH``               client certificate chain (PEM); ``client_key=PATH`` its key
``min_tls=1.2|1.3``                oldest TLS version accepted (default 1.2)
``timeout=SECONDS``                connect, command and data timeouts at once
``connect_timeout=``,              one timeout each (override ``timeout``)
``command_timeout=``,
``data_timeout=``
``ehlo=NAME``                      the EHLO name (a host name or an address literal)
``auth=XOAUTH2,PLAIN,LOGIN``       SASL mechanisms in order of preference
``retries=N``                      retries after the first attempt (0 = off; default 2)
``pool_size=N`` or                 at most N connections at once (default 4)
``max_connections=N``
``max_messages_per_connection=N``  messages per connection before it is replaced (default 100)
``idle_timeout=SECONDS``           idle connections are closed after this (default 30)
``max_recipients=N``               RCPT TO per transaction (default 100)
``on_partial_rejection=abort``     abort when some recipients are refused (default ``deliver``)
``transcript=true``                keep a redacted protocol transcript
``region=NAME``                    region of a regional provider (``ses://...``)
=================================  ==========================================================

Booleans are ``true``/``false`` (also ``1``/``0``, ``yes``/``no``). ``smtp://host:465`` and
``smtps://host:587`` are refused unless ``tls=`` is written: that port and that TLS mode do not
go together, and the mismatch otherwise shows up as a confusing failure at connect time.

Credentials: percent-encode the user name and password (``quote(password, safe="")``), which
always works. Everything up to the last ``@`` is user and password, so an unencoded ``@``,
``/``, ``?`` or ``#`` there is still read correctly, but a ``%`` must be written ``%25``, and a
``@`` in an option value ``%40``. ``tls=none`` with
credentials is a :class:`ConfigError` unless ``allow_insecure_auth=true``. With
``tls=opportunistic`` the configuration is accepted, but AUTH is refused at send time if the
server did not offer STARTTLS, again unless ``allow_insecure_auth=true``.

No error message of this module contains a password: nothing before the last ``@`` is ever
quoted in one.

Environment (:func:`config_from_env`): ``SMTPKIT_DSN`` alone, or ``SMTPKIT_HOST`` /
``SMTPKIT_PROVIDER`` with ``SMTPKIT_PORT``, ``SMTPKIT_TLS``, ``SMTPKIT_USERNAME``,
``SMTPKIT_PASSWORD``, ``SMTPKIT_TIMEOUT``, ``SMTPKIT_EHLO``, ``SMTPKIT_CA_FILE``,
``SMTPKIT_ALLOW_INSECURE_AUTH`` and ``SMTPKIT_REGION``. Empty variables count as unset.

>>> parse_dsn("smtps://ann:p%40ss@mail.example.com?timeout=5").timeouts
Timeouts(connect=5.0, command=5.0, data=5.0)
>>> parse_dsn("failover(smtps://a.example smtps://b.example)").kind
'failover'
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import quote, unquote

from smtpkit._config import (
    DEFAULT_AUTH_MECHANISMS,
    Credentials,
    PoolLimits,
    RetryPolicy,
    SMTPConfig,
    Timeouts,
    TLSMode,
    check_ehlo_name,
    normalize_mechanisms,
    port_tls_conflict,
)
from smtpkit._exceptions import ConfigError
from smtpkit._secrets import REDACTED, Secret

__all__ = ["GroupKind", "TransportGroup", "config_from_env", "format_dsn", "parse_dsn"]

#: How a group of transports is used: in order until one works, or in turn.
GroupKind = Literal["failover", "roundrobin"]

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_GROUP_RE = re.compile(r"(failover|roundrobin)\((.*)\)\Z", re.DOTALL)
_INT_RE = re.compile(r"[0-9]{1,9}\Z")
_FLOAT_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?\Z")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_TLS_NAMES = "implicit, starttls, opportunistic, none"
_MIN_TLS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_QUERY_SAFE = "/:,"


@dataclass(frozen=True)
class TransportGroup:
    """Several server configurations used together: ``failover`` tries them in order until
    one accepts the message; ``roundrobin`` spreads messages over them (moving on to the next
    when one fails).

    >>> group = parse_dsn("roundrobin(smtps://a.example smtps://b.example)")
    >>> [c.host for c in group.configs]
    ['a.example', 'b.example']
    """

    kind: GroupKind
    configs: tuple[SMTPConfig, ...]

    def __post_init__(self) -> None:
        if self.kind not in ("failover", "roundrobin"):
            raise ConfigError(f"group kind must be 'failover' or 'roundrobin', not {self.kind!r}")
        object.__setattr__(self, "configs", tuple(self.configs))
        if not self.configs:
            raise ConfigError(f"{self.kind}(): needs at least one DSN")
        for config in self.configs:
            if not isinstance(config, SMTPConfig):
                raise ConfigError(f"{self.kind}: expected SMTPConfig, got {type(config).__name__}")

    def to_dsn(self, *, reveal: bool = False) -> str:
        """The group as a DSN, passwords as ``***`` unless ``reveal``."""
        return f"{self.kind}({' '.join(c.to_dsn(reveal=reveal) for c in self.configs)})"

    def redacted_dsn(self) -> str:
        """The group's DSN with every password shown as ``***``."""
        return self.to_dsn(reveal=False)


# -- parsing --------------------------------------------------------------------------------


def parse_dsn(text: str, /) -> SMTPConfig | TransportGroup:
    """Parse a DSN (see the module documentation) into a configuration or a group.

    Raises :class:`ConfigError` for anything invalid or unsafe; the message never contains
    the password.

    >>> parse_dsn("smtp://mail.example.com:2525?tls=starttls&ehlo=app.example").local_hostname
    'app.example'
    """
    if not isinstance(text, str):
        raise ConfigError(f"DSN: expected a string, got {type(text).__name__}")
    text = text.strip()
    if not text:
        raise ConfigError("DSN: empty")
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in text):
        raise ConfigError("DSN: contains a control character (percent-encode it; not shown)")
    group = _GROUP_RE.match(text)
    if group is not None:
        kind = cast(GroupKind, group.group(1))
        members = group.group(2).split()
        if not members:
            raise ConfigError(f"{kind}(): needs at least one DSN, separated by spaces")
        configs = []
        for index, member in enumerate(members, 1):
            if member.startswith(("failover(", "roundrobin(")) or "(" in member.split("://")[0]:
                raise ConfigError(f"{kind}(): groups cannot be nested")
            try:
                configs.append(_parse_one(member))
            except ConfigError as exc:
                raise ConfigError(f"{kind}() DSN {index}: {exc}") from None
        return TransportGroup(kind, tuple(configs))
    if text.startswith(("failover(", "roundrobin(")):
        raise ConfigError("DSN: a failover(...) or roundrobin(...) group must end with ')'")
    if any(ch.isspace() for ch in text):
        raise ConfigError(
            "DSN: contains a space (percent-encode spaces in a user name or password as %20; "
            "separate the DSNs of a group inside failover(...))"
        )
    return _parse_one(text)


def _parse_one(text: str) -> SMTPConfig:
    match = _SCHEME_RE.match(text)
    if match is None:
        raise ConfigError(
            "DSN: must start with smtp://, smtps:// or a provider name such as gmail://"
        )
    scheme = match.group(1).lower()
    rest = text[match.end() :]
    # Everything up to the last "@" is user and password. Only what follows it is ever
    # quoted in an error message, so a badly encoded password cannot leak into a log.
    at = rest.rfind("@")
    userinfo = rest[:at] if at >= 0 else None
    location = rest[at + 1 :] if at >= 0 else rest
    if "#" in location:
        raise ConfigError("DSN: '#' is not allowed after the host (percent-encode it as %23)")
    location, question, query = location.partition("?")
    authority, _slash, path = location.partition("/")
    if path:
        raise ConfigError(f"DSN: unexpected path {'/' + path!r} (a DSN has none)")
    host, port = _split_host_port(authority)
    options = _parse_query(query) if question else {}
    username, password = _split_userinfo(userinfo)

    if scheme in ("smtp", "smtps"):
        return _plain_config(
            scheme, host, port, username=username, password=password, options=options
        )
    return _provider_config(
        scheme, host, port, username=username, password=password, options=options
    )


def _split_host_port(authority: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ConfigError("DSN: '[' without ']' around an IPv6 address")
        host, after = authority[1:end], authority[end + 1 :]
        if ":" not in host:
            raise ConfigError("DSN: brackets are only for IPv6 addresses, like [2001:db8::1]")
        if after and not after.startswith(":"):
            raise ConfigError(f"DSN: unexpected {after!r} after the IPv6 address")
        port_text = after[1:] if after else None
    else:
        if authority.count(":") > 1:
            raise ConfigError("DSN: an IPv6 host must be written in brackets, like [2001:db8::1]")
        host, colon, port_text_ = authority.partition(":")
        port_text = port_text_ if colon else None
    if not host:
        raise ConfigError("DSN: no host (write smtp://host or smtp://user:password@host)")
    if port_text is None:
        return host, None
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"DSN: port {port_text!r} is not a number from 1 to 65535")
    return host, int(port_text)


def _split_userinfo(userinfo: str | None) -> tuple[str | None, str | None]:
    if userinfo is None:
        return None, None
    user_text, colon, password_text = userinfo.partition(":")
    try:
        username = unquote(user_text, errors="strict")
    except UnicodeDecodeError:
        raise ConfigError("DSN: the user name is not valid percent-encoded UTF-8") from None
    try:
        password = unquote(password_text, errors="strict") if colon else None
    except UnicodeDecodeError:
        raise ConfigError(
            "DSN: the password is not valid percent-encoded UTF-8 (not shown)"
        ) from None
    if not username:
        raise ConfigError("DSN: empty user name before '@' (write user:password@host)")
    if password is None:
        raise ConfigError(
            "DSN: a user name without a password (write user:password@host; "
            "for OAuth2 build Credentials(username, token=...) in code)"
        )
    if not password:
        raise ConfigError("DSN: empty password after ':'")
    return username, password


def _parse_query(query: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in query.split("&"):
        if not item:
            continue
        raw_key, equals, raw_value = item.partition("=")
        try:
            key = unquote(raw_key, errors="strict").lower()
            value = unquote(raw_value, errors="strict")
        except UnicodeDecodeError:
            raise ConfigError(f"DSN option {raw_key!r}: not valid percent-encoded UTF-8") from None
        if not equals:
            raise ConfigError(f"DSN option {key!r}: has no value (write {key}=...)")
        if key in options:
            raise ConfigError(f"DSN option {key!r}: given twice")
        options[key] = value
    return options


# -- option values ----------------------------------------------------------------------------


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name}: expected true or false, got {value!r}")


def _int(name: str, value: str) -> int:
    if not _INT_RE.match(value.strip()):
        raise ConfigError(f"{name}: expected a whole number, got {value!r}")
    return int(value)


def _seconds(name: str, value: str) -> float:
    if not _FLOAT_RE.match(value.strip()):
        raise ConfigError(f"{name}: expected a number of seconds, got {value!r}")
    return float(value)


def _tls(name: str, value: str) -> TLSMode:
    try:
        return TLSMode(value.strip().lower())
    except ValueError:
        raise ConfigError(f"{name}: unknown mode {value!r} ({_TLS_NAMES})") from None


def _min_tls(name: str, value: str) -> ssl.TLSVersion:
    try:
        return _MIN_TLS[value.strip().lower().removeprefix("tlsv")]
    except KeyError:
        raise ConfigError(f"{name}: expected 1.2 or 1.3, got {value!r}") from None


def _partial(name: str, value: str) -> str:
    if value not in ("deliver", "abort"):
        raise ConfigError(f"{name}: expected deliver or abort, got {value!r}")
    return value


def _text(name: str, value: str) -> str:
    if not value:
        raise ConfigError(f"{name}: empty")
    return value


# Simple options: DSN name -> (SMTPConfig field, converter).
_SIMPLE: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "tls": ("tls", _tls),
    "ca_file": ("ca_file", _text),
    "ca_path": ("ca_path", _text),
    "client_cert": ("client_cert", _text),
    "client_key": ("client_key", _text),
    "min_tls": ("min_tls_version", _min_tls),
    "ehlo": ("local_hostname", lambda _n, v: check_ehlo_name(v)),
    "auth": ("auth_mechanisms", lambda _n, v: normalize_mechanisms(v)),
    "allow_insecure_auth": ("allow_insecure_auth", _bool),
    "verify": ("verify", _bool),
    "transcript": ("transcript", _bool),
    "max_recipients": ("max_recipients_per_transaction", _int),
    "on_partial_rejection": ("on_partial_rejection", _partial),
}
_TIMEOUTS = {"connect_timeout": "connect", "command_timeout": "command", "data_timeout": "data"}
_POOL = {
    "pool_size": "max_connections",
    "max_connections": "max_connections",
    "max_messages_per_connection": "max_messages_per_connection",
    "idle_timeout": "idle_timeout",
}
_KNOWN_OPTIONS = sorted({*_SIMPLE, *_TIMEOUTS, *_POOL, "timeout", "retries", "region"})


def _options_to_fields(options: Mapping[str, str], *, where: str = "DSN option ") -> dict[str, Any]:
    """Turn DSN options into SMTPConfig keyword arguments (``region`` is left to the caller)."""
    fields: dict[str, Any] = {}
    timeouts: dict[str, float] = {}
    pool: dict[str, Any] = {}
    for key, value in options.items():
        name = f"{where}{key}"
        if key in _SIMPLE:
            field_name, convert = _SIMPLE[key]
            fields[field_name] = convert(name, value)
        elif key == "timeout":
            seconds = _seconds(name, value)
            for step in _TIMEOUTS.values():
                timeouts.setdefault(step, seconds)
        elif key in _TIMEOUTS:
            # A specific timeout wins over timeout=, whatever the order they are written in.
            timeouts[_TIMEOUTS[key]] = _seconds(name, value)
        elif key in _POOL:
            target = _POOL[key]
            if target in pool:
                raise ConfigError(f"{where}pool_size and max_connections: give only one")
            pool[target] = _seconds(name, value) if target == "idle_timeout" else _int(name, value)
        elif key == "retries":
            fields["retry"] = RetryPolicy(retries=_int(name, value))
        elif key != "region":
            raise ConfigError(f"{name}: unknown (known options: {', '.join(_KNOWN_OPTIONS)})")
    if timeouts:
        fields["timeouts"] = Timeouts(**timeouts)
    if pool:
        fields["pool"] = PoolLimits(**pool)
    return fields


def _plain_config(
    scheme: str,
    host: str,
    port: int | None,
    *,
    username: str | None,
    password: str | None,
    options: Mapping[str, str],
) -> SMTPConfig:
    if "region" in options:
        raise ConfigError("DSN option 'region': only for regional providers, like ses://")
    fields = _options_to_fields(options)
    implied = TLSMode.IMPLICIT if scheme == "smtps" else TLSMode.STARTTLS
    tls = fields.setdefault("tls", implied)
    if scheme == "smtps" and tls is not TLSMode.IMPLICIT:
        raise ConfigError(
            f"DSN: smtps:// means implicit TLS; write smtp://...?tls={tls.value} instead"
        )
    if "tls" not in options:
        conflict = port_tls_conflict(port, tls)
        if conflict:
            raise ConfigError(f"DSN: {conflict}")
    credentials = None
    if username is not None and password is not None:
        credentials = Credentials(username, Secret(password))
    return SMTPConfig(host=host, port=port, credentials=credentials, **fields)


def _provider_config(
    scheme: str,
    host: str,
    port: int | None,
    *,
    username: str | None,
    password: str | None,
    options: Mapping[str, str],
) -> SMTPConfig:
    from smtpkit.providers import config_from_provider, find_provider, provider_names

    preset = find_provider(scheme)
    if preset is None:
        raise ConfigError(
            f"DSN: unknown scheme {scheme!r} (smtp, smtps, or a provider: "
            f"{', '.join(provider_names())})"
        )
    if host.lower() != "default":
        raise ConfigError(
            f"DSN: a {preset.name}:// DSN uses the host 'default' "
            f"({preset.name}://user:password@default); use smtp:// or smtps:// for another host"
        )
    overrides = _options_to_fields(options)
    if port is not None:
        overrides["port"] = port
    return config_from_provider(
        preset.name,
        region=options.get("region"),
        username=username,
        password=password,
        **overrides,
    )


# -- formatting -----------------------------------------------------------------------------


def _number(value: float) -> str:
    number = float(value)
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


def format_dsn(config: SMTPConfig, *, reveal: bool = False) -> str:
    """Write ``config`` as a DSN; the password is ``***`` unless ``reveal``.

    With ``reveal=True`` the DSN parses back to an equal configuration, and a setting with no
    DSN form (``ssl_context``, a token provider, retry backoff timings) is a
    :class:`ConfigError`; with ``reveal=False`` (display) such settings are left out.

    >>> format_dsn(SMTPConfig(host="::1", port=2525, tls=TLSMode.NONE))
    'smtp://[::1]:2525?tls=none'
    """
    lost = _settings_without_dsn_form(config)
    if reveal and lost:
        raise ConfigError(f"to_dsn: {', '.join(lost)} cannot be written in a DSN")
    tls = config.tls
    scheme = "smtps" if tls is TLSMode.IMPLICIT else "smtp"
    options: list[tuple[str, str]] = []
    if tls not in (TLSMode.IMPLICIT, TLSMode.STARTTLS) or port_tls_conflict(config.port, tls):
        options.append(("tls", tls.value))

    userinfo = ""
    credentials = config.credentials
    if credentials is not None:
        userinfo = quote(credentials.username, safe="")
        if credentials.password is not None:
            secret = quote(credentials.password.reveal(), safe="") if reveal else REDACTED
            userinfo += ":" + secret
        userinfo += "@"
    host = f"[{config.host}]" if ":" in config.host else config.host
    port = f":{config.port}" if config.port is not None else ""

    if config.local_hostname is not None:
        options.append(("ehlo", config.local_hostname))
    if config.auth_mechanisms != DEFAULT_AUTH_MECHANISMS:
        options.append(("auth", ",".join(config.auth_mechanisms)))
    options.extend(_timeout_options(config.timeouts))
    for name in ("ca_file", "ca_path", "client_cert", "client_key"):
        value = getattr(config, name)
        if value is not None:
            options.append((name, value))
    if config.min_tls_version == ssl.TLSVersion.TLSv1_3:
        options.append(("min_tls", "1.3"))
    if not config.verify:
        options.append(("verify", "false"))
    if config.allow_insecure_auth:
        options.append(("allow_insecure_auth", "true"))
    if config.retry.retries != RetryPolicy().retries:
        options.append(("retries", str(config.retry.retries)))
    default_pool = PoolLimits()
    if config.pool.max_connections != default_pool.max_connections:
        options.append(("max_connections", str(config.pool.max_connections)))
    if config.pool.max_messages_per_connection != default_pool.max_messages_per_connection:
        options.append(
            ("max_messages_per_connection", str(config.pool.max_messages_per_connection))
        )
    if config.pool.idle_timeout != default_pool.idle_timeout:
        options.append(("idle_timeout", _number(config.pool.idle_timeout)))
    if config.max_recipients_per_transaction != SMTPConfig.max_recipients_per_transaction:
        options.append(("max_recipients", str(config.max_recipients_per_transaction)))
    if config.on_partial_rejection != "deliver":
        options.append(("on_partial_rejection", config.on_partial_rejection))
    if config.transcript:
        options.append(("transcript", "true"))

    query = "&".join(f"{key}={quote(value, safe=_QUERY_SAFE)}" for key, value in options)
    return f"{scheme}://{userinfo}{host}{port}" + (f"?{query}" if query else "")


def _timeout_options(timeouts: Timeouts) -> list[tuple[str, str]]:
    default = Timeouts()
    if timeouts == default:
        return []
    if timeouts.connect == timeouts.command == timeouts.data:
        return [("timeout", _number(timeouts.connect))]
    return [
        (f"{step}_timeout", _number(getattr(timeouts, step)))
        for step in ("connect", "command", "data")
        if getattr(timeouts, step) != getattr(default, step)
    ]


def _settings_without_dsn_form(config: SMTPConfig) -> list[str]:
    lost = []
    if config.ssl_context is not None:
        lost.append("ssl_context")
    if config.credentials is not None and config.credentials.token is not None:
        lost.append("credentials.token")
    default_retry = RetryPolicy(retries=config.retry.retries)
    if config.retry != default_retry:
        lost.append("retry backoff settings")
    return lost


# -- environment ------------------------------------------------------------------------------

_ENV_PREFIX = "SMTPKIT_"
_ENV_SETTINGS = (
    "HOST",
    "PROVIDER",
    "REGION",
    "PORT",
    "TLS",
    "USERNAME",
    "PASSWORD",
    "TIMEOUT",
    "EHLO",
    "CA_FILE",
    "ALLOW_INSECURE_AUTH",
)
_ENV_HELP = (
    "set SMTPKIT_DSN (e.g. smtps://user:password@smtp.example.com), or SMTPKIT_HOST (with "
    "SMTPKIT_PORT, SMTPKIT_TLS, SMTPKIT_USERNAME, SMTPKIT_PASSWORD, SMTPKIT_TIMEOUT, "
    "SMTPKIT_EHLO, SMTPKIT_CA_FILE, SMTPKIT_ALLOW_INSECURE_AUTH as needed), or "
    "SMTPKIT_PROVIDER (e.g. gmail, with SMTPKIT_USERNAME and SMTPKIT_PASSWORD; SMTPKIT_REGION "
    "for ses)"
)


def config_from_env(environ: Mapping[str, str]) -> SMTPConfig | TransportGroup:
    """Build a configuration from ``SMTPKIT_*`` variables in ``environ``.

    ``SMTPKIT_DSN`` is used alone (setting it together with the other variables is an error,
    so that no setting is silently ignored); otherwise ``SMTPKIT_HOST`` or
    ``SMTPKIT_PROVIDER`` is required. Empty variables count as unset.

    >>> config_from_env({"SMTPKIT_HOST": "mail.example.com", "SMTPKIT_PORT": "2525"}).port
    2525
    """
    values = {
        key: environ[_ENV_PREFIX + key]
        for key in ("DSN", *_ENV_SETTINGS)
        if environ.get(_ENV_PREFIX + key)
    }
    dsn = values.pop("DSN", None)
    if dsn is not None:
        if values:
            others = ", ".join(_ENV_PREFIX + key for key in values)
            raise ConfigError(f"SMTPKIT_DSN is set together with {others}: use one or the other")
        try:
            return parse_dsn(dsn)
        except ConfigError as exc:
            raise ConfigError(f"SMTPKIT_DSN: {exc}") from None
    provider = values.pop("PROVIDER", None)
    if provider is None and "HOST" not in values:
        raise ConfigError(f"no SMTP server configured: {_ENV_HELP}")

    fields: dict[str, Any] = {}
    if "HOST" in values:
        fields["host"] = values["HOST"]
    if "PORT" in values:
        fields["port"] = _int("SMTPKIT_PORT", values["PORT"])
    if "TLS" in values:
        fields["tls"] = _tls("SMTPKIT_TLS", values["TLS"])
    if "TIMEOUT" in values:
        fields["timeouts"] = Timeouts.uniform(_seconds("SMTPKIT_TIMEOUT", values["TIMEOUT"]))
    if "EHLO" in values:
        fields["local_hostname"] = check_ehlo_name(values["EHLO"])
    if "CA_FILE" in values:
        fields["ca_file"] = values["CA_FILE"]
    if "ALLOW_INSECURE_AUTH" in values:
        fields["allow_insecure_auth"] = _bool(
            "SMTPKIT_ALLOW_INSECURE_AUTH", values["ALLOW_INSECURE_AUTH"]
        )
    username, password = values.get("USERNAME"), values.get("PASSWORD")
    region = values.get("REGION")

    if provider is not None:
        from smtpkit.providers import config_from_provider

        try:
            return config_from_provider(
                provider, region=region, username=username, password=password, **fields
            )
        except ConfigError as exc:
            raise ConfigError(f"SMTPKIT_PROVIDER: {exc}") from None
    if region is not None:
        raise ConfigError("SMTPKIT_REGION: only used with SMTPKIT_PROVIDER (e.g. ses)")
    if (username is None) != (password is None):
        given, missing = ("USERNAME", "PASSWORD") if password is None else ("PASSWORD", "USERNAME")
        raise ConfigError(f"SMTPKIT_{given} is set but SMTPKIT_{missing} is not")
    if username is not None and password is not None:
        fields["credentials"] = Credentials(username, Secret(password))
    tls = fields.get("tls", TLSMode.STARTTLS)
    if "tls" not in fields:
        conflict = port_tls_conflict(fields.get("port"), tls)
        if conflict:
            raise ConfigError(f"SMTPKIT_PORT: {conflict} (set SMTPKIT_TLS)")
    return SMTPConfig(**fields)
