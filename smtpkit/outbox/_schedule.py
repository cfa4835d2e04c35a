"""When a deferred message is tried again, and when the outbox gives up on it.

RFC 5321 4.5.4.1 asks a client to queue mail that cannot go out at once, to wait before each
retry (at least 30 minutes is suggested once the first quick tries are over), to make the
intervals configurable, and to give up only after 4-5 days. :class:`Schedule` encodes that.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DEFAULT_DELAYS", "Schedule"]

#: Seconds to wait after the 1st, 2nd, ... failed attempt: two quick tries in the first hour
#: (greylisting usually clears within minutes), then every few hours as RFC 5321 suggests.
DEFAULT_DELAYS: tuple[float, ...] = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0)


@dataclass(frozen=True, slots=True)
class Schedule:
    """The retry schedule of deferred (and unknown) messages.

    Attributes:
        delays: seconds to wait after each failed attempt; the last one repeats.
        give_up_after: seconds after a message first became due; a transient failure later
            than that fails it for good, with the enhanced status code ``4.4.7`` (delivery time
            expired, RFC 3463). Four days by default.
        jitter: each delay is spread by up to this fraction either way, so that messages
            deferred together (a server outage) do not all come back in the same second.
        retry_unknown: retry messages whose outcome is unknown (the connection dropped after
            the end of data, or a worker died while sending). They are resent with the same
            bytes and Message-ID, so a duplicate can be recognised; with ``False`` they wait
            for :meth:`Outbox.retry <smtpkit.outbox.Outbox.retry>`.

    >>> Schedule(delays=(10, 60), jitter=0).delay(1), Schedule(delays=(10, 60), jitter=0).delay(5)
    (10.0, 60.0)
    """

    delays: Sequence[float] = DEFAULT_DELAYS
    give_up_after: float = 4 * 86400.0
    jitter: float = 0.1
    retry_unknown: bool = True

    def __post_init__(self) -> None:
        delays = tuple(float(d) for d in self.delays)
        if not delays or any(d < 0 for d in delays):
            raise ValueError("delays must be a non-empty sequence of non-negative seconds")
        if self.give_up_after < 0:
            raise ValueError("give_up_after must not be negative")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be a fraction in [0, 1)")
        object.__setattr__(self, "delays", delays)

    def delay(self, attempts: int, /, *, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``attempts`` failed attempts (1 after the first failure)."""
        base = float(self.delays[min(max(attempts, 1), len(self.delays)) - 1])
        if self.jitter == 0 or base == 0:
            return base
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return base * (1.0 + spread)
