"""The value every provider module defines: a :class:`Provider` preset."""

from __future__ import annotations

import re
from dataclasses import dataclass

from smtpkit._config import DEFAULT_AUTH_MECHANISMS, TLSMode, normalize_mechanisms
from smtpkit._exceptions import ConfigError

__all__ = ["Provider"]

# AWS region names: "us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1", ...
_REGION_RE = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}\Z")
_NAME_RE = re.compile(r"[a-z][a-z0-9-]*\Z")


@dataclass(frozen=True, slots=True)
class Provider:
    """The SMTP settings of a mail provider, and what a user must know to use them.

    Attributes:
        name: the canonical name, also usable as a DSN scheme (``gmail://user:pw@default``).
        host: the submission host; a host containing ``{region}`` needs a region
            (``email-smtp.{region}.amazonaws.com``).
        port: the port to use (with ``tls``, the provider's recommended pair).
        tls: the TLS mode for that port.
        auth_mechanisms: the SASL mechanisms the provider accepts, in smtpkit's preference.
        note: what trips users up (app passwords, OAuth2, special user names, sandboxes).
        docs_url: the provider's own page about SMTP settings.
        aliases: other names accepted for it.
        default_username: the fixed user name some providers use (SendGrid ``apikey``).

    >>> p = Provider("example", "smtp.example.com", 587, TLSMode.STARTTLS, ("PLAIN",), "", "")
    >>> p.host_for(None)
    'smtp.example.com'
    """

    name: str
    host: str
    port: int
    tls: TLSMode
    auth_mechanisms: tuple[str, ...]
    note: str
    docs_url: str
    aliases: tuple[str, ...] = ()
    default_username: str | None = None

    def __post_init__(self) -> None:
        for name in (self.name, *self.aliases):
            if not _NAME_RE.match(name):
                raise ValueError(f"provider name {name!r}: lower-case letters, digits, '-'")
        mechanisms = normalize_mechanisms(self.auth_mechanisms)
        # Keep smtpkit's preference order; the preset only says which ones apply.
        ordered = tuple(m for m in DEFAULT_AUTH_MECHANISMS if m in mechanisms)
        object.__setattr__(self, "auth_mechanisms", ordered)

    @property
    def regional(self) -> bool:
        """Whether a region must be given (the host has a ``{region}`` placeholder)."""
        return "{region}" in self.host

    @property
    def names(self) -> tuple[str, ...]:
        """The canonical name followed by the aliases."""
        return (self.name, *self.aliases)

    def host_for(self, region: str | None) -> str:
        """The host to connect to, for ``region`` when the provider is regional.

        >>> from smtpkit.providers import get_provider
        >>> get_provider("ses").host_for("eu-west-1")
        'email-smtp.eu-west-1.amazonaws.com'
        """
        if not self.regional:
            if region is not None:
                raise ConfigError(f"{self.name}: has no regions (region={region!r} given)")
            return self.host
        if region is None:
            raise ConfigError(
                f"{self.name}: needs a region, e.g. from_provider({self.name!r}, "
                f"region='eu-west-1') or {self.name}://user:pass@default?region=eu-west-1"
            )
        if not _REGION_RE.match(region):
            shown = repr(region)[:40]
            raise ConfigError(f"{self.name}: {shown} is not a region name like 'eu-west-1'")
        return self.host.replace("{region}", region)
