"""A Django email backend that sends through smtpkit: ``smtpkit.contrib.django.EmailBackend``.

::

    # settings.py
    EMAIL_BACKEND = "smtpkit.contrib.django.EmailBackend"
    EMAIL_HOST = "smtp.example.com"
    EMAIL_PORT = 587
    EMAIL_HOST_USER = "app@example.com"
    EMAIL_HOST_PASSWORD = os.environ["SMTP_PASSWORD"]
    EMAIL_USE_TLS = True
    # or, instead of the EMAIL_* lines:
    SMTPKIT_DSN = os.environ["SMTPKIT_DSN"]      # "smtp://app%40example.com:pw@smtp.example.com"

``send_mail``, ``send_mass_mail``, ``mail_admins``, ``mail_managers``, ``EmailMessage`` and
``EmailMultiAlternatives`` work as with Django's SMTP backend (same return values, same
``fail_silently`` and connection reuse), with smtpkit underneath: certificates verified, TLS
required by default, transient failures retried, classified errors with hints, and a
:class:`~smtpkit.SendResult` per message (``message.smtpkit_result`` and the
:data:`message_sent` signal).

Settings, in order of precedence: constructor arguments (``get_connection(host=...)``, or a
Django 6.1 ``MAILERS`` entry's ``OPTIONS``), then ``SMTPKIT_DSN`` (complete on its own: the
``EMAIL_*`` connection settings are then ignored), then Django's ``EMAIL_HOST``,
``EMAIL_PORT``, ``EMAIL_HOST_USER``, ``EMAIL_HOST_PASSWORD``, ``EMAIL_USE_TLS``,
``EMAIL_USE_SSL``, ``EMAIL_TIMEOUT``, ``EMAIL_SSL_CERTFILE`` and ``EMAIL_SSL_KEYFILE``.
smtpkit's own: ``SMTPKIT_TLS`` (``"starttls"``, ``"implicit"``, ``"opportunistic"`` or
``"none"``), ``SMTPKIT_CA_FILE`` (the CA to trust instead of the system store; Django's
``EMAIL_SSL_CERTFILE`` is the *client* certificate) and ``SMTPKIT_OPTIONS`` (a dict of further
:class:`~smtpkit.SMTPConfig` fields, plus the mailer's ``rate_limit`` and ``hooks``).

TLS: ``EMAIL_USE_SSL`` is implicit TLS and ``EMAIL_USE_TLS`` is STARTTLS (required). When
both are ``False`` (Django's default, which means *plaintext* to Django) this backend still
requires STARTTLS, smtpkit's secure default; sending in plaintext is an explicit choice:
``SMTPKIT_TLS = "none"`` (or ``"opportunistic"``). A TLS failure under that default carries a
hint saying so.

Needs the ``django`` extra: ``pip install 'smtpkit[django]'``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final

try:
    from django.conf import settings  # type: ignore[import-untyped, unused-ignore]
    from django.core.mail.backends.base import BaseEmailBackend  # type: ignore[import-untyped, unused-ignore]
    from django.core.mail.message import EmailMessage, EmailMultiAlternatives  # type: ignore[import-untyped, unused-ignore]
    from django.dispatch import Signal  # type: ignore[import-untyped, unused-ignore]
except ImportError as _missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "smtpkit.contrib.django needs Django: pip install 'smtpkit[django]'"
    ) from _missing

from smtpkit._address import Mailbox
from smtpkit._config import Credentials, SMTPConfig, Timeouts, TLSMode, port_tls_conflict
from smtpkit._dsn import TransportGroup, parse_dsn
from smtpkit._envelope import Envelope
from smtpkit._exceptions import ConfigError, SmtpkitError, TLSError
from smtpkit._replies import SendResult
from smtpkit._secrets import Secret
from smtpkit._sync import Mailer
from smtpkit.contrib._django_convert import Unconvertible, convert

__all__ = ["EmailBackend", "message_failed", "message_sent"]

_log = logging.getLogger("smtpkit.django")

#: Sent after each message the server accepted (for at least one recipient), with
#: ``sender`` (the backend class), ``message`` (the Django ``EmailMessage``) and ``result``
#: (the :class:`~smtpkit.SendResult`). Receivers run with ``send_robust``: an exception in one
#: is logged by Django (logger ``django.dispatch``) and does not turn a sent message into a
#: failure. Mail sent while a receiver runs (in the same thread) does not emit the signals
#: again: Django's default logging mails that very receiver error to ``ADMINS``, which would
#: otherwise loop.
message_sent: Final = Signal()

#: Sent for each message that could not be sent, with ``sender``, ``message`` and ``error``
#: (the smtpkit error), before the error is raised (or swallowed with ``fail_silently``).
message_failed: Final = Signal()

# Options that configure the Mailer rather than the SMTPConfig.
_MAILER_OPTIONS: Final = frozenset({"rate_limit", "hooks"})
_CONFIG_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(SMTPConfig))
# The Django message classes the converter knows, most derived first.
_DJANGO_CLASSES: Final = (EmailMultiAlternatives, EmailMessage)

_DEFAULT_TLS_HINT: Final = (
    "EMAIL_USE_TLS and EMAIL_USE_SSL are both False, so smtpkit required STARTTLS (its secure "
    "default, where Django's own backend would have sent in plaintext). Set EMAIL_USE_SSL = "
    "True for a server with implicit TLS (port 465), SMTPKIT_CA_FILE for a private CA, or "
    'SMTPKIT_TLS = "none" to send in plaintext to a trusted local relay.'
)


_dispatching = threading.local()


def _dispatch(signal: Any, sender: type, **kwargs: Any) -> None:
    if getattr(_dispatching, "active", False):
        return
    _dispatching.active = True
    try:
        signal.send_robust(sender=sender, **kwargs)
    finally:
        _dispatching.active = False


def _setting(name: str, default: Any = None) -> Any:
    return getattr(settings, name, default)


@dataclasses.dataclass(frozen=True)
class _Resolved:
    target: SMTPConfig | TransportGroup
    mailer_options: Mapping[str, Any]
    tls_defaulted: bool


def _tls_mode(value: object, source: str) -> TLSMode:
    try:
        return TLSMode(str(value).lower())
    except ValueError:
        raise ConfigError(
            f"{source}: unknown TLS mode {str(value)[:40]!r} "
            "(implicit, starttls, opportunistic, none)"
        ) from None


def _split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    unknown = sorted(set(options) - _CONFIG_FIELDS - _MAILER_OPTIONS)
    if unknown:
        raise ConfigError(
            f"SMTPKIT_OPTIONS: unknown option(s) {', '.join(unknown)}; use SMTPConfig fields "
            "(such as verify, local_hostname, pool, retry, allow_insecure_auth) or rate_limit"
            " / hooks"
        )
    config = {k: v for k, v in options.items() if k in _CONFIG_FIELDS}
    mailer = {k: v for k, v in options.items() if k in _MAILER_OPTIONS}
    return config, mailer


def _credentials(username: object, password: object) -> Credentials | None:
    # As Django's SMTP backend: log in only when both are set.
    if username and password:
        return Credentials(str(username), Secret(str(password)))
    return None


def _resolve(explicit: Mapping[str, Any]) -> _Resolved:
    """Build the SMTP target from constructor arguments and Django settings."""
    # Django 6.1's MAILERS: the backend is configured by its OPTIONS (our keyword arguments)
    # only, and the EMAIL_* settings are deprecated there, so they are not read.
    use_settings = not _setting("MAILERS")

    def pick(key: str, setting: str, default: Any = None) -> Any:
        value = explicit.get(key)
        if value is None and use_settings:
            value = _setting(setting, default)
        return value

    options: dict[str, Any] = dict(_setting("SMTPKIT_OPTIONS", None) or {}) if use_settings else {}
    options.update(explicit.get("options") or {})
    config_options, mailer_options = _split_options(options)
    ca_file = pick("ca_file", "SMTPKIT_CA_FILE")
    if ca_file:
        config_options.setdefault("ca_file", str(ca_file))
    dsn = pick("dsn", "SMTPKIT_DSN")
    if dsn:
        return _resolve_dsn(str(dsn), explicit, config_options, mailer_options)

    host = explicit.get("host") or (_setting("EMAIL_HOST", "localhost") if use_settings else None)
    if not host:
        raise ConfigError(
            "Django email: give host= (or dsn=) in the mailer's OPTIONS, or set SMTPKIT_DSN"
        )
    port = explicit.get("port") or (_setting("EMAIL_PORT", 25) if use_settings else None)
    use_tls = bool(pick("use_tls", "EMAIL_USE_TLS", False))
    use_ssl = bool(pick("use_ssl", "EMAIL_USE_SSL", False))
    if use_tls and use_ssl:
        raise ConfigError(
            "EMAIL_USE_TLS/EMAIL_USE_SSL are mutually exclusive, so only set one of those "
            "settings to True"
        )
    chosen = pick("tls", "SMTPKIT_TLS")
    defaulted = False
    if chosen is not None:
        tls = _tls_mode(chosen, "SMTPKIT_TLS")
        if (use_ssl and tls is not TLSMode.IMPLICIT) or (use_tls and tls is not TLSMode.STARTTLS):
            flag = "EMAIL_USE_SSL" if use_ssl else "EMAIL_USE_TLS"
            raise ConfigError(f"{flag} = True contradicts SMTPKIT_TLS = {tls.value!r}")
    else:
        tls = TLSMode.IMPLICIT if use_ssl else TLSMode.STARTTLS
        defaulted = not (use_ssl or use_tls)
        conflict = port_tls_conflict(int(port) if port else None, tls)
        if conflict is not None:
            fix = "EMAIL_USE_SSL = True" if tls is TLSMode.STARTTLS else "EMAIL_USE_TLS = True"
            raise ConfigError(
                f"EMAIL_PORT = {port} does not fit the TLS mode {tls.value}: set {fix}, or "
                f"SMTPKIT_TLS if the server really expects that ({conflict})"
            )
    fields: dict[str, Any] = {
        "host": str(host),
        "port": int(port) if port else None,
        "tls": tls,
        "credentials": _credentials(
            pick("username", "EMAIL_HOST_USER", ""), pick("password", "EMAIL_HOST_PASSWORD", "")
        ),
    }
    timeout = pick("timeout", "EMAIL_TIMEOUT")
    if timeout is not None:
        fields["timeouts"] = Timeouts.uniform(float(timeout))
    certfile = pick("ssl_certfile", "EMAIL_SSL_CERTFILE")
    keyfile = pick("ssl_keyfile", "EMAIL_SSL_KEYFILE")
    if certfile:
        fields["client_cert"] = str(certfile)
    if keyfile:
        fields["client_key"] = str(keyfile)
    if "tls" in config_options:
        defaulted = False
    fields.update(config_options)
    try:
        config = SMTPConfig(**fields)
    except ConfigError as exc:
        raise ConfigError(f"Django email settings: {exc}") from exc
    return _Resolved(config, mailer_options, defaulted)


def _resolve_dsn(
    dsn: str,
    explicit: Mapping[str, Any],
    config_options: dict[str, Any],
    mailer_options: dict[str, Any],
) -> _Resolved:
    # The DSN is complete: only explicit constructor arguments and SMTPKIT_OPTIONS /
    # SMTPKIT_CA_FILE are applied on top of it (never the EMAIL_* settings).
    try:
        target = parse_dsn(dsn)
    except ConfigError as exc:
        raise ConfigError(f"SMTPKIT_DSN: {exc}") from exc
    changes: dict[str, Any] = {}
    if explicit.get("host"):
        changes["host"] = str(explicit["host"])
    if explicit.get("port"):
        changes["port"] = int(explicit["port"])
    if explicit.get("use_tls") and explicit.get("use_ssl"):
        raise ConfigError("use_tls and use_ssl are mutually exclusive")
    if explicit.get("use_ssl"):
        changes["tls"] = TLSMode.IMPLICIT
    elif explicit.get("use_tls"):
        changes["tls"] = TLSMode.STARTTLS
    if explicit.get("tls") is not None:
        changes["tls"] = _tls_mode(explicit["tls"], "tls")
    if explicit.get("timeout") is not None:
        changes["timeouts"] = Timeouts.uniform(float(explicit["timeout"]))
    if explicit.get("ssl_certfile"):
        changes["client_cert"] = str(explicit["ssl_certfile"])
    if explicit.get("ssl_keyfile"):
        changes["client_key"] = str(explicit["ssl_keyfile"])
    username, password = explicit.get("username"), explicit.get("password")
    if username is not None or password is not None:
        current = target.credentials if isinstance(target, SMTPConfig) else None
        if username is None and current is not None:
            username = current.username
        if password is None and current is not None and current.password is not None:
            password = current.password.reveal()
        changes["credentials"] = _credentials(username, password)
    changes.update(config_options)
    if changes:
        if isinstance(target, TransportGroup):
            raise ConfigError(
                f"SMTPKIT_DSN is a {target.kind} group: put {', '.join(sorted(changes))} in "
                "each member's DSN instead of in settings or arguments"
            )
        try:
            target = target.replace(**changes)
        except ConfigError as exc:
            raise ConfigError(f"SMTPKIT_DSN with overrides: {exc}") from exc
    return _Resolved(target, mailer_options, tls_defaulted=False)


def _mailbox(value: Any, field: str) -> Mailbox:
    return Mailbox.parse(value if isinstance(value, tuple) else str(value), field=field)


class EmailBackend(BaseEmailBackend):  # type: ignore[misc, unused-ignore]  # Django is untyped
    """Django's ``EMAIL_BACKEND`` over smtpkit: ``"smtpkit.contrib.django.EmailBackend"``.

    Takes the keyword arguments of Django's SMTP backend (``host``, ``port``, ``username``,
    ``password``, ``use_tls``, ``use_ssl``, ``timeout``, ``ssl_keyfile``, ``ssl_certfile``,
    ``fail_silently``), which override the settings, plus smtpkit's ``dsn``, ``tls``,
    ``ca_file`` and ``options`` (merged over ``SMTPKIT_OPTIONS``). The configuration is
    checked here, so a bad setting is a :class:`~smtpkit.ConfigError` at ``get_connection()``
    whatever ``fail_silently`` says.

    :meth:`open` makes one blocking :class:`~smtpkit.Mailer` (one connection pool) that
    :meth:`close` closes; :meth:`send_messages` opens and closes it around the batch when it
    is not open already, so all messages of one call share one SMTP connection. The password
    is kept only as a :class:`~smtpkit.Secret` inside the configuration: there is no
    ``password`` attribute, and ``repr()`` shows the DSN with ``***``.

    Attributes:
        config: the :class:`~smtpkit.SMTPConfig` (or failover / round-robin group) in use.
        connection: the open :class:`~smtpkit.Mailer`, or ``None`` when closed.
        fail_silently: swallow smtpkit errors while sending (the message counts as not sent).
    """

    def __init__(  # noqa: PLR0917 - Django's SMTP backend signature, positional order kept
        self,
        host: str | None = None,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool | None = None,
        fail_silently: bool = False,
        use_ssl: bool | None = None,
        timeout: float | None = None,
        ssl_keyfile: str | None = None,
        ssl_certfile: str | None = None,
        *,
        dsn: str | None = None,
        tls: str | TLSMode | None = None,
        ca_file: str | None = None,
        options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # fail_silently is handled here (Django 6.1 deprecates it in the base class); any
        # other keyword (such as a MAILERS alias) is the base class's business.
        super().__init__(**kwargs)
        self.fail_silently = fail_silently
        resolved = _resolve(
            {
                "host": host,
                "port": port,
                "username": username,
                "password": password,
                "use_tls": use_tls,
                "use_ssl": use_ssl,
                "timeout": timeout,
                "ssl_keyfile": ssl_keyfile,
                "ssl_certfile": ssl_certfile,
                "dsn": dsn,
                "tls": tls,
                "ca_file": ca_file,
                "options": options,
            }
        )
        self.config: SMTPConfig | TransportGroup = resolved.target
        self._mailer_options = dict(resolved.mailer_options)
        self._tls_defaulted = resolved.tls_defaulted
        self.connection: Mailer | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        state = "open" if self.connection is not None else "closed"
        return f"<{type(self).__name__} {self.config.redacted_dsn()} {state}>"

    def open(self) -> bool | None:
        """Make the mailer: ``True`` if made now, ``False`` if already open, ``None`` on a
        silenced failure (as Django's SMTP backend). Connections are made at the first send."""
        with self._lock:
            if self.connection is not None:
                return False
            try:
                self.connection = Mailer(self.config, **self._mailer_options)
            except SmtpkitError:
                if not self.fail_silently:
                    raise
                return None
            return True

    def close(self) -> None:
        """Close the mailer and its connections (QUIT). Safe to call when closed."""
        with self._lock:
            mailer, self.connection = self.connection, None
            if mailer is None:
                return
            try:
                mailer.close()
            except (SmtpkitError, OSError):
                if not self.fail_silently:
                    raise

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        """Send Django ``EmailMessage`` objects; return how many were sent.

        A message counts as sent when the server accepted it for at least one recipient
        (refused recipients are in ``message.smtpkit_result.rejected``). A message without
        recipients is skipped, as Django does.
        """
        if not email_messages:
            return 0
        with self._lock:
            created = self.open()
            if self.connection is None or created is None:
                return 0  # open() failed silently
            sent = 0
            try:
                for message in email_messages:
                    if self._send(self.connection, message):
                        sent += 1
            finally:
                if created:
                    self.close()
        return sent

    def _send(self, mailer: Mailer, message: Any) -> bool:
        recipients = message.recipients()
        if not recipients:
            return False
        try:
            result = self._deliver(mailer, message, recipients)
        except SmtpkitError as exc:
            if self._tls_defaulted and isinstance(exc, TLSError):
                exc.hint = f"{_DEFAULT_TLS_HINT} {exc.hint}" if exc.hint else _DEFAULT_TLS_HINT
            message.smtpkit_result = None
            _dispatch(message_failed, type(self), message=message, error=exc)
            if not self.fail_silently:
                raise
            _log.warning("message not sent (fail_silently): %s", type(exc).__name__)
            return False
        message.smtpkit_result = result
        _dispatch(message_sent, type(self), message=message, result=result)
        return bool(result.accepted)

    def _deliver(self, mailer: Mailer, message: Any, recipients: Sequence[Any]) -> SendResult:
        # The envelope is Django's: from_email and to + cc + bcc, whatever the headers say.
        envelope = Envelope(
            _mailbox(message.from_email, "from_email"),
            [_mailbox(r, f"recipients[{i}]") for i, r in enumerate(recipients)],
        )
        try:
            converted = convert(
                message,
                default_charset=str(_setting("DEFAULT_CHARSET", "utf-8")),
                django_classes=_DJANGO_CLASSES,
            )
        except Unconvertible as why:
            # Django's own serialisation, byte for byte, as its SMTP backend would send it.
            _log.debug("sending Django's serialisation of the message: %s", why)
            mime = message.message()
            result = mailer.send_raw(envelope, mime.as_bytes(linesep="\r\n"))
            message_id = mime["Message-ID"]
            if result.message_id is None and message_id:
                result = dataclasses.replace(result, message_id=str(message_id).strip())
            return result
        return mailer.send(converted, envelope=envelope)
