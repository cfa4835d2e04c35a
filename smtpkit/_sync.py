"""Mailer: the blocking API, a facade over :class:`~smtpkit.AsyncMailer`.

There is no second implementation of sending here. A :class:`Mailer` owns a private event loop
running in a daemon thread; each blocking call submits the matching :class:`AsyncMailer`
coroutine to that loop and waits for it. The loop (and so the connection pool) lives as long as
the mailer, so connections are reused across calls, and the facade works the same from a plain
script, a WSGI worker thread, or a thread that is itself running an event loop (the call then
blocks that loop until it returns; prefer :class:`AsyncMailer` there).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self, TypeVar

from smtpkit._config import RetryPolicy, SMTPConfig
from smtpkit._dsn import TransportGroup
from smtpkit._envelope import Envelope
from smtpkit._exceptions import ConfigError
from smtpkit._hooks import Hooks
from smtpkit._mailer import AsyncMailer, MailerConstructors, SendOutcome
from smtpkit._message import Message
from smtpkit._replies import SendResult
from smtpkit._transports.base import AsyncTransport

__all__ = ["Mailer"]

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread, until :meth:`stop`."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="smtpkit-mailer", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        self._loop.run_forever()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError(
                "a blocking Mailer method was called from the mailer's own event-loop thread "
                "(e.g. from a hook); use the AsyncMailer API there"
            )
        if not self._thread.is_alive():
            # After fork() only the forking thread exists in the child: waiting on the loop
            # thread would block forever.
            coroutine.close()
            raise RuntimeError(
                "this Mailer's event-loop thread is not running (was the process forked after "
                "the Mailer was made?); create the Mailer in the process that uses it"
            )
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


class Mailer(MailerConstructors):
    """Send messages, blocking: the same API as :class:`~smtpkit.AsyncMailer`, for scripts and WSGI.

    >>> with Mailer.from_dsn("smtp://user:pass@smtp.example.com:587") as mailer:  # doctest: +SKIP
    ...     result = mailer.send(message)
    ...     print(result.message_id, result.accepted)
    """

    def __init__(
        self,
        config_or_transport: SMTPConfig | TransportGroup | AsyncTransport,
        /,
        *,
        hooks: Hooks | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: float | None = None,
    ) -> None:
        self._runner = _LoopThread()

        async def build() -> AsyncMailer:
            # Built inside the loop so that every asyncio object binds to it.
            return AsyncMailer(config_or_transport, hooks=hooks, retry=retry, rate_limit=rate_limit)

        try:
            self._mailer = self._runner.run(build())
        except BaseException:
            self._runner.stop()
            raise
        self._closed = False

    @property
    def transport(self) -> AsyncTransport:
        """The transport messages are handed to."""
        return self._mailer.transport

    def __repr__(self) -> str:
        return f"<Mailer {self._mailer.transport.description}>"

    def send(self, message: Message, /, *, envelope: Envelope | None = None) -> SendResult:
        """Send one message; see :meth:`AsyncMailer.send`."""
        return self._call().run(self._mailer.send(message, envelope=envelope))

    def send_raw(self, envelope: Envelope, data: bytes, /) -> SendResult:
        """Send serialised bytes with an explicit envelope; see :meth:`AsyncMailer.send_raw`."""
        return self._call().run(self._mailer.send_raw(envelope, data))

    def send_many(
        self, messages: Iterable[Message], /, *, concurrency: int | None = None
    ) -> list[SendOutcome]:
        """Send many messages concurrently; see :meth:`AsyncMailer.send_many`."""
        return self._call().run(self._mailer.send_many(messages, concurrency=concurrency))

    def close(self) -> None:
        """Close connections and stop the private event loop. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if not self._runner.running:
            return  # a forked child: the connections belong to the parent's loop
        try:
            self._runner.run(self._mailer.aclose())
        finally:
            self._runner.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self) -> _LoopThread:
        if self._closed:
            raise ConfigError("this mailer is closed; create a new one")
        return self._runner
