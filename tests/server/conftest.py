"""Fixtures for the tests that talk to real servers on loopback.

``smtp_server`` and ``smtp_server_factory`` come from the ``smtpkit.testing`` plugin (imported
here so this directory works whether or not the top-level conftest loads the plugin).

``scripted_server_factory(script, **kwargs)`` starts a byte-exact
:class:`~smtpkit.devserver.ScriptedServer`; ``client_context(server)`` makes an SSL context that
trusts a server's CA (for stdlib clients); ``plain_server`` and ``implicit_server`` are ready
DevServers. Plain helpers the SMTPTransport tests share (``FAST``, ``transport_for``, ``verbs``)
live in ``helpers.py`` next to this file (``from helpers import ...``: this directory is on
``sys.path`` under pytest's default import mode).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from smtpkit.devserver import DevServer, ScriptedServer, Step
from smtpkit.devserver._scripted import ScriptFunction
from smtpkit.testing import smtp_server, smtp_server_factory

__all__ = ["smtp_server", "smtp_server_factory"]


@pytest.fixture
def scripted_server_factory() -> Iterator[Callable[..., ScriptedServer]]:
    """``factory(script, **kwargs)``: start a ScriptedServer, stopped after the test."""
    # The stack stops the servers in reverse order of start, also when a test fails.
    with contextlib.ExitStack() as started:

        def factory(script: Sequence[Step] | ScriptFunction, **kwargs: Any) -> ScriptedServer:
            return started.enter_context(ScriptedServer(script, **kwargs))

        yield factory


@pytest.fixture
def plain_server(smtp_server_factory: Callable[..., DevServer]) -> DevServer:
    """A DevServer without TLS or AUTH (the simplest sink)."""
    return smtp_server_factory(tls="none")


@pytest.fixture
def implicit_server(smtp_server_factory: Callable[..., DevServer]) -> DevServer:
    """A DevServer with implicit TLS (like port 465) and AUTH ``user``/``pass``."""
    return smtp_server_factory(tls="implicit", auth={"user": "pass"})


@pytest.fixture
def client_context() -> Callable[[DevServer | ScriptedServer], ssl.SSLContext]:
    """``client_context(server)``: a verifying client SSL context trusting ``server``'s CA."""

    def make(server: DevServer | ScriptedServer) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=server.ca_file)

    return make
