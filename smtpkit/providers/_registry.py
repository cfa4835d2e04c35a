"""All provider presets, looked up by name or alias, and turned into SMTPConfig values."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

from smtpkit._config import Credentials, SMTPConfig, port_tls_conflict
from smtpkit._exceptions import ConfigError
from smtpkit._secrets import Secret
from smtpkit.providers import (
    brevo,
    fastmail,
    gmail,
    google_workspace,
    icloud,
    ionos,
    mailgun,
    mailjet,
    mailtrap,
    microsoft,
    ovh,
    postmark,
    sendgrid,
    ses,
    sparkpost,
    yahoo,
    zoho,
)
from smtpkit.providers._preset import Provider

__all__ = [
    "all_providers",
    "config_from_provider",
    "find_provider",
    "get_provider",
    "provider_for_host",
    "provider_names",
]

_ALL: tuple[Provider, ...] = tuple(
    preset
    for module in (
        gmail,
        google_workspace,
        microsoft,
        yahoo,
        icloud,
        zoho,
        fastmail,
        sendgrid,
        mailgun,
        ses,
        postmark,
        brevo,
        mailjet,
        mailtrap,
        sparkpost,
        ovh,
        ionos,
    )
    for preset in module.PRESETS
)


def _index(presets: tuple[Provider, ...]) -> Mapping[str, Provider]:
    index: dict[str, Provider] = {}
    for preset in presets:
        for name in preset.names:
            if name in index:
                raise RuntimeError(f"provider name {name!r} is used twice")  # a packaging bug
            index[name] = preset
    return MappingProxyType(index)


# Immutable, computed from constants: no I/O and nothing to mutate.
_BY_NAME = _index(_ALL)


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def all_providers() -> tuple[Provider, ...]:
    """Every preset, in a stable order.

    >>> len(all_providers()) >= 20
    True
    """
    return _ALL


def provider_names() -> tuple[str, ...]:
    """The canonical preset names, sorted (aliases are accepted too).

    >>> "gmail" in provider_names()
    True
    """
    return tuple(sorted(preset.name for preset in _ALL))


def find_provider(name: str) -> Provider | None:
    """The preset called ``name`` (or one of its aliases; case and ``_``/``-`` ignored), or None.

    >>> find_provider("Microsoft365").name
    'office365'
    """
    return _BY_NAME.get(_key(name))


def get_provider(name: str) -> Provider:
    """The preset called ``name``; :class:`ConfigError` (with suggestions) if there is none.

    >>> get_provider("gmial")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    smtpkit._exceptions.ConfigError: unknown provider 'gmial' (did you mean gmail...
    """
    preset = find_provider(name)
    if preset is not None:
        return preset
    close = difflib.get_close_matches(_key(name), list(_BY_NAME), n=3)
    suggestion = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise ConfigError(
        f"unknown provider {name!r}{suggestion}; known: {', '.join(provider_names())}"
    )


def provider_for_host(host: str) -> Provider | None:
    """The preset whose host is ``host`` (regional hosts included), or None.

    Useful for hints: an error from ``smtp.office365.com`` can point at the OAuth2 note.

    >>> provider_for_host("email-smtp.us-east-1.amazonaws.com").name
    'ses'
    """
    wanted = host.strip().lower().removesuffix(".")
    for preset in _ALL:
        if preset.regional:
            prefix, _, suffix = preset.host.partition("{region}")
            middle = wanted.removeprefix(prefix).removesuffix(suffix)
            if wanted.startswith(prefix) and wanted.endswith(suffix) and middle:
                try:
                    preset.host_for(middle)
                except ConfigError:
                    continue
                return preset
        elif wanted == preset.host:
            return preset
    return None


_FIELDS = frozenset(f.name for f in dataclasses.fields(SMTPConfig))


def config_from_provider(
    name: str,
    /,
    *,
    region: str | None = None,
    username: str | None = None,
    password: str | Secret | None = None,
    token: Callable[[], str | Awaitable[str]] | None = None,
    **overrides: Any,
) -> SMTPConfig:
    """An :class:`SMTPConfig` from the preset ``name``, with credentials and overrides.

    ``username``/``password``/``token`` build :class:`Credentials` (the preset's fixed user
    name, like SendGrid's ``apikey``, is used when ``username`` is not given). Any other
    keyword is an :class:`SMTPConfig` field. Giving ``port`` without ``tls`` keeps the preset's
    TLS mode, and a port that contradicts it (465 without implicit TLS, 587 with it) is an
    error; giving ``tls`` without ``port`` uses that mode's standard port.

    >>> cfg = config_from_provider("sendgrid", password="SG.xxx")
    >>> cfg.host, cfg.credentials
    ('smtp.sendgrid.net', Credentials(username='apikey', password=***))
    """
    preset = get_provider(name)
    unknown = sorted(set(overrides) - _FIELDS)
    if unknown:
        raise ConfigError(
            f"{preset.name}: unknown setting {', '.join(unknown)} (SMTPConfig fields, or "
            "username, password, token, region)"
        )
    if "host" in overrides:
        if region is not None:
            raise ConfigError(f"{preset.name}: give region or host, not both")
    else:
        overrides["host"] = preset.host_for(region)

    if username is not None or password is not None or token is not None:
        if "credentials" in overrides:
            raise ConfigError(
                f"{preset.name}: give credentials or username/password/token, not both"
            )
        user = username if username is not None else preset.default_username
        if user is None:
            raise ConfigError(f"{preset.name}: username is needed with a password or token")
        secret = Secret(password) if isinstance(password, str) else password
        overrides["credentials"] = Credentials(user, secret, token)

    if "port" in overrides and "tls" not in overrides:
        conflict = port_tls_conflict(overrides["port"], preset.tls)
        if conflict:
            raise ConfigError(f"{preset.name}: {conflict}")
    settings: dict[str, Any] = {
        "port": preset.port if "tls" not in overrides else None,
        "tls": preset.tls,
        "auth_mechanisms": preset.auth_mechanisms,
    }
    settings.update(overrides)
    return SMTPConfig(**settings)
