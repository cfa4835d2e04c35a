"""A rate limiter for sending: at most N messages per second, evenly spaced."""

from __future__ import annotations

import asyncio
import time

__all__ = ["RateLimiter"]


class RateLimiter:
    """Space calls to :meth:`acquire` so that at most ``per_second`` pass each second.

    Evenly spaced slots (not bursts) suit SMTP providers, whose limits count messages per
    second or per minute and punish bursts with 421 replies.

    >>> limiter = RateLimiter(10.0)   # one slot every 100 ms
    """

    def __init__(self, per_second: float) -> None:
        if not per_second > 0:
            raise ValueError("rate limit must be a positive number of messages per second")
        self._interval = 1.0 / per_second
        self._next = 0.0
        self._lock = asyncio.Lock()

    @property
    def per_second(self) -> float:
        """The configured rate."""
        return 1.0 / self._interval

    async def acquire(self) -> None:
        """Wait until the next slot is free, then take it."""
        async with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
        delay = slot - now
        if delay > 0:
            await asyncio.sleep(delay)
