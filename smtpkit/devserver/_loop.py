"""An asyncio event loop running in its own daemon thread (what both test servers run on)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread", "close_everything"]

T = TypeVar("T")

_TASK_GRACE = 1.0


class LoopThread:
    """Own one event loop in one thread: start it, run coroutines on it, stop it.

    Stopping cancels every task still pending and closes the loop, so nothing outlives
    :meth:`stop` (tests check that no thread leaks).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (only valid between :meth:`start` and :meth:`stop`)."""
        if self._loop is None:
            raise RuntimeError("the server is not running")
        return self._loop

    def start(self) -> None:
        """Start the thread and wait until its loop is running."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                _finish(loop)

        thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._loop, self._thread = loop, thread
        thread.start()
        ready.wait()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run ``coro`` on the loop from another thread and return its result."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("cannot block the server's own thread waiting for itself")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop, cancel what is left, close the loop and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._loop = self._thread = None


def _finish(loop: asyncio.AbstractEventLoop) -> None:
    try:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


async def close_everything(server: asyncio.Server, abort_connections: Callable[[], None]) -> None:
    """Stop accepting, then abort connections and cancel tasks until nothing is left.

    Connections the loop has already accepted must reach ``connection_made`` (where the
    servers register them) before ``server.close()``: on Python 3.11 an accept task that
    first runs after the close fails inside asyncio and leaks its socket. So the loop runs a
    few iterations first; then each round aborts what is registered and cancels what is left,
    until no task remains. Otherwise a socket would be left for the garbage collector (a
    ResourceWarning, an error under ``-W error``).
    """
    await _spin()
    server.close()
    current = asyncio.current_task()
    for _ in range(50):
        abort_connections()
        await _spin()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        if not pending:
            break
        # Connection tasks end by themselves once their transport is gone; cancel only
        # what is still running after that (a script sleeping, say).
        _done, running = await asyncio.wait(pending, timeout=_TASK_GRACE)
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
    abort_connections()
    await _spin()  # let the aborted transports run connection_lost()
    await server.wait_closed()


async def _spin(iterations: int = 3) -> None:
    # Each sleep(0) lets every ready callback and task step run once.
    for _ in range(iterations):
        await asyncio.sleep(0)
