"""Fixtures for the ``smtpkit`` command tests: loopback DevServers and a CLI runner.

``cli(*args, env=..., input=...)`` runs the real ``smtpkit`` click group in-process with
click's CliRunner and checks what every command must guarantee: no traceback, ever.
``smtp_server`` / ``smtp_server_factory`` come from the ``smtpkit.testing`` plugin.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import pytest
from click.testing import CliRunner, Result

from smtpkit.cli import main
from smtpkit.testing import smtp_server, smtp_server_factory

__all__ = ["smtp_server", "smtp_server_factory"]

Invoke = Callable[..., Result]


@pytest.fixture(autouse=True)
def _no_smtpkit_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests configure the server explicitly; a developer's SMTPKIT_* must not leak in."""
    for name in list(os.environ):
        if name.startswith("SMTPKIT_"):
            monkeypatch.delenv(name)


@pytest.fixture
def cli() -> Invoke:
    """``cli(*args, env=None, input=None) -> Result`` through the real entry point."""
    runner = CliRunner()

    def invoke(
        *args: str, env: Mapping[str, str] | None = None, input: str | None = None
    ) -> Result:
        result = runner.invoke(main, list(args), env=dict(env or {}), input=input)
        assert "Traceback" not in result.output, result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


def fast(dsn: str) -> str:
    """``dsn`` with short timeouts and no retries: failures show up at once."""
    separator = "&" if "?" in dsn else "?"
    return f"{dsn}{separator}timeout=3&retries=0"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
