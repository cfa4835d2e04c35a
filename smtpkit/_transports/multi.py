"""Several transports as one: failover and round-robin.

Both try their transports in turn and move on when one fails in a way another server could
fix: a connection, TLS, timeout or authentication failure, or any transient reply. They stop
at once on a permanent refusal of the message itself (the next server would refuse it too) and
on :class:`~smtpkit.DeliveryUnknown` (the message may already be queued: trying another server
could deliver it twice).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from smtpkit._exceptions import (
    AllTransportsFailed,
    ConfigError,
    DeliveryUnknown,
    ReplyError,
    TransportError,
)

if TYPE_CHECKING:
    from smtpkit._envelope import Envelope
    from smtpkit._replies import SendResult
    from smtpkit._transports.base import AsyncTransport

__all__ = ["FailoverTransport", "RoundRobinTransport", "should_fail_over"]

_log = logging.getLogger("smtpkit.transport")


def should_fail_over(error: TransportError) -> bool:
    """Whether another transport may succeed where this one failed.

    >>> from smtpkit._exceptions import ConnectError, DeliveryUnknown
    >>> should_fail_over(ConnectError("refused")), should_fail_over(DeliveryUnknown("lost"))
    (True, False)
    """
    if isinstance(error, DeliveryUnknown):
        return False
    if isinstance(error, ReplyError):
        # 5xx to MAIL/RCPT/DATA is about the message; 4xx is about this server right now.
        return error.is_transient
    # Connect, TLS, timeout, disconnect, AUTH, missing extension: all specific to one server.
    return True


class FailoverTransport:
    """Send with the first transport; on a failure another server could fix, try the next.

    Raises :class:`~smtpkit.AllTransportsFailed` (with every error, in order) when all fail.

    >>> mailer_transport = FailoverTransport([primary, backup])  # doctest: +SKIP
    """

    _kind = "failover"

    def __init__(self, transports: Sequence[AsyncTransport], /) -> None:
        if not transports:
            raise ConfigError(f"{self._kind}: needs at least one transport")
        self._transports: tuple[AsyncTransport, ...] = tuple(transports)

    @property
    def transports(self) -> tuple[AsyncTransport, ...]:
        """The transports, in configured order."""
        return self._transports

    @property
    def description(self) -> str:
        """``failover(a b ...)`` with each transport's own (redacted) description."""
        return f"{self._kind}({' '.join(t.description for t in self._transports)})"

    def _order(self) -> Sequence[AsyncTransport]:
        return self._transports

    async def send_raw(self, envelope: Envelope, data: bytes, /) -> SendResult:
        """Send with each transport in turn until one succeeds."""
        errors: list[TransportError] = []
        for transport in self._order():
            try:
                return await transport.send_raw(envelope, data)
            except TransportError as error:
                if not should_fail_over(error):
                    raise
                _log.info("%s failed (%s); trying the next transport", transport.description, error)
                errors.append(error)
        # Exception.__str__: the bare message, without each error's hint paragraph.
        summary = "; ".join(f"{type(e).__name__}: {Exception.__str__(e)}" for e in errors)
        raise AllTransportsFailed(f"all {len(errors)} transports failed: {summary}", errors=errors)

    async def aclose(self) -> None:
        """Close every transport (errors while closing are ignored)."""
        await asyncio.gather(*(t.aclose() for t in self._transports), return_exceptions=True)


class RoundRobinTransport(FailoverTransport):
    """Spread messages over the transports: each send starts with the next one in turn,
    then falls over to the others like :class:`FailoverTransport`."""

    _kind = "roundrobin"

    def __init__(self, transports: Sequence[AsyncTransport], /) -> None:
        super().__init__(transports)
        self._next = 0

    def _order(self) -> Sequence[AsyncTransport]:
        start = self._next
        self._next = (start + 1) % len(self._transports)
        return self._transports[start:] + self._transports[:start]
