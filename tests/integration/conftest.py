"""The real-MTA tier: a private Postfix + Dovecot on loopback, shared by the whole session.

``mta`` starts them once (about 2.5 s) from a configuration written into a temporary directory
(see ``_mta.py``) and stops them at the end, failing the teardown if any of their processes or
listening ports is left. When Postfix or Dovecot is not installed, or the tests do not run as
root, every test here is skipped with the reason; set ``SMTPKIT_REQUIRE_POSTFIX=1`` (CI does) to
turn that skip into a failure.

``config(mode, ...)`` builds the ``SMTPConfig`` for one of the listeners.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest
from _mta import MTA, PASSWORD, USERNAME, MTAUnavailable, unavailable_reason

from smtpkit import Credentials, RetryPolicy, Secret, SMTPConfig, Timeouts, TLSMode

Mode = Literal["submission", "smtps", "plain", "opportunistic", "nosize"]


@pytest.fixture(scope="session")
def mta() -> Iterator[MTA]:
    """The running private Postfix + Dovecot (skips the test when they cannot run here)."""
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("SMTPKIT_REQUIRE_POSTFIX"):
            pytest.fail(f"SMTPKIT_REQUIRE_POSTFIX is set but: {reason}", pytrace=False)
        pytest.skip(reason)
    try:
        server = MTA.start()
    except MTAUnavailable as exc:  # pragma: no cover - unavailable_reason() caught it above
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


def smtp_config(
    mta: MTA,
    mode: Mode,
    *,
    password: str | None = PASSWORD,
    mechanisms: tuple[str, ...] | None = None,
    **overrides: Any,
) -> SMTPConfig:
    """A config for one listener: ``submission`` (STARTTLS + AUTH), ``smtps`` (implicit TLS +
    AUTH), ``plain`` (no TLS, no AUTH), ``opportunistic`` (STARTTLS if offered, on the plain
    port), ``nosize`` (plain port that does not advertise SIZE). ``password=None`` means no
    credentials. Retries are off so that a failure shows on the first attempt."""
    port = {
        "submission": mta.ports.submission,
        "smtps": mta.ports.smtps,
        "plain": mta.ports.plain,
        "opportunistic": mta.ports.plain,
        "nosize": mta.ports.nosize,
    }[mode]
    tls = {
        "submission": TLSMode.STARTTLS,
        "smtps": TLSMode.IMPLICIT,
        "plain": TLSMode.NONE,
        "opportunistic": TLSMode.STARTTLS_OPPORTUNISTIC,
        "nosize": TLSMode.NONE,
    }[mode]
    credentials = None
    if mode in ("submission", "smtps") and password is not None:
        credentials = Credentials(USERNAME, Secret(password))
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "tls": tls,
        "ca_file": mta.ca_file,
        "credentials": credentials,
        "retry": RetryPolicy(retries=0),
        "timeouts": Timeouts(connect=5.0, command=10.0, data=20.0),
    }
    if mechanisms is not None:
        settings["auth_mechanisms"] = mechanisms
    settings.update(overrides)
    return SMTPConfig(**settings)


@pytest.fixture
def config(mta: MTA) -> Callable[..., SMTPConfig]:
    """``config(mode, password=..., mechanisms=..., **overrides)``: see :func:`smtp_config`."""

    def make(mode: Mode, **kwargs: Any) -> SMTPConfig:
        return smtp_config(mta, mode, **kwargs)

    return make
