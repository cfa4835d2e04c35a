"""Helpers shared by the SMTPTransport tests against loopback servers (plain functions, not
fixtures, because each test opens its own server and transport inside ``async with``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from smtpkit._config import SMTPConfig, Timeouts
from smtpkit._transports.smtp import SMTPTransport
from smtpkit.devserver import DevServer

__all__ = ["FAST", "transport_for", "verbs"]

#: Generous enough for a loaded CI machine, short enough that a hang fails the test quickly.
FAST = Timeouts(connect=2.0, command=2.0, data=2.0)


@asynccontextmanager
async def transport_for(config: SMTPConfig) -> AsyncIterator[SMTPTransport]:
    """An :class:`SMTPTransport` for ``config``, closed (pool included) on the way out."""
    transport = SMTPTransport(config)
    try:
        yield transport
    finally:
        await transport.aclose()


def verbs(server: DevServer) -> list[str]:
    """The verbs of every command ``server`` received, in order."""
    return [command.verb for command in server.commands]
