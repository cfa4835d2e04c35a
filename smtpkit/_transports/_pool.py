"""A small asyncio connection pool: bounded, LIFO reuse, idle expiry, polite shutdown.

The pool knows nothing about SMTP. It bounds how many connections are *in use* with a
semaphore (which is also the backpressure: a caller beyond the limit waits for a slot), keeps
released connections on an idle stack, and retires a connection that is broken, used up or
idle for too long. The owner opens connections itself, inside a slot, so that a failed connect
frees the slot again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Generic, Protocol, TypeVar

__all__ = ["ConnectionPool", "Poolable", "Slot"]


class Poolable(Protocol):
    """What the pool needs from a connection."""

    @property
    def reusable(self) -> bool:
        """Connected, and not in the middle of anything: safe to hand to the next caller."""
        ...

    @property
    def uses(self) -> int:
        """How many messages were sent on this connection."""
        ...

    async def aclose(self) -> None:
        """Close politely (QUIT where possible); never raises."""
        ...

    def abort(self) -> None:
        """Close at once, without a word to the server."""
        ...


C = TypeVar("C", bound=Poolable)


class Slot:
    """One of the pool's ``max_connections`` slots, held from :meth:`ConnectionPool.slot`.

    It can be given up before the block ends (:meth:`ConnectionPool.hand_on`), so that a
    waiting caller takes over the connection while its last holder still reads a reply.
    """

    __slots__ = ("_release", "held")

    def __init__(self, release: Callable[[], None]) -> None:
        self._release = release
        #: False once the slot was given up.
        self.held = True

    def release(self) -> None:
        """Give the slot up (idempotent)."""
        if self.held:
            self.held = False
            self._release()


class ConnectionPool(Generic[C]):
    """Idle connections plus a limit on the ones in use.

    Args:
        max_connections: connections in use at the same time (and so open at the same time).
        max_uses: a connection is closed once it has sent this many messages.
        idle_timeout: an idle connection is closed after this many seconds.
    """

    def __init__(self, *, max_connections: int, max_uses: int, idle_timeout: float) -> None:
        self._slots = asyncio.Semaphore(max(1, max_connections))
        self._max_uses = max(1, max_uses)
        self._idle_timeout = idle_timeout
        # (connection, loop time it became idle); the right end is the most recently used.
        self._idle: deque[tuple[C, float]] = deque()
        self._closing: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._in_use = 0
        self._waiting = 0

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` was called."""
        return self._closed

    @property
    def idle_count(self) -> int:
        """Connections waiting on the idle stack."""
        return len(self._idle)

    @property
    def in_use(self) -> int:
        """Slots currently held."""
        return self._in_use

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot."""
        return self._waiting

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        """Hold one of the ``max_connections`` slots for the block (or until given up)."""
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        self._in_use += 1
        slot = Slot(self._free)
        try:
            yield slot
        finally:
            slot.release()

    def _free(self) -> None:
        self._in_use -= 1
        self._slots.release()

    def checkout(self) -> C | None:
        """The most recently used idle connection that is still reusable, or ``None``.

        Connections found broken or expired on the way are retired.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._idle:
            conn, since = self._idle.pop()
            if conn.reusable and now - since < self._idle_timeout:
                return conn
            self._retire(conn)
        return None

    async def checkin(self, conn: C) -> None:
        """Give a connection back: kept for reuse when it is healthy, otherwise closed.

        A healthy connection that is used up, or returned after :meth:`aclose`, is closed
        politely here (QUIT), so that no close is left running in the background.
        """
        if not conn.reusable:
            conn.abort()
            return
        if self._closed or conn.uses >= self._max_uses:
            await conn.aclose()
            return
        loop = asyncio.get_running_loop()
        self._idle.append((conn, loop.time()))
        if self._timer is None:
            self._timer = loop.call_later(self._idle_timeout, self._reap)

    def hand_on(self, conn: C, slot: Slot) -> bool:
        """Pass ``conn`` to a waiting caller before its holder is done with it.

        For a connection whose last transaction is complete on the client's side and only
        awaits the server's final reply (``conn.reusable`` already true): it goes back on the
        idle stack and ``slot`` is given up, so that a caller waiting for a slot takes it
        over and can write its own commands at once. False, with nothing done, when no one
        waits, the pool is closed, or the connection is used up (the holder then checks it
        in as usual).
        """
        if self._waiting <= 0 or self._closed or conn.uses >= self._max_uses:
            return False
        if not conn.reusable or not slot.held:
            return False
        loop = asyncio.get_running_loop()
        self._idle.append((conn, loop.time()))
        if self._timer is None:
            self._timer = loop.call_later(self._idle_timeout, self._reap)
        slot.release()
        return True

    def _reap(self) -> None:
        """Close connections idle for ``idle_timeout``; re-arm for the next one to expire."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        # The left end holds the oldest entries: stop at the first one still fresh.
        while self._idle and now - self._idle[0][1] >= self._idle_timeout:
            conn, _ = self._idle.popleft()
            self._retire(conn)
        if self._idle:
            delay = self._idle_timeout - (now - self._idle[0][1])
            self._timer = loop.call_later(max(delay, 0.0), self._reap)

    def _retire(self, conn: C) -> None:
        if not conn.reusable:
            conn.abort()
            return
        task = asyncio.get_running_loop().create_task(conn.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close every idle connection (QUIT) and wait for closes in progress. Idempotent.

        Connections still in use are closed when they are given back.
        """
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._idle:
            conn, _ = self._idle.popleft()
            self._retire(conn)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
