"""AsyncMailer: the one implementation of sending.

Everything that sends (the blocking :class:`~smtpkit.Mailer`, the CLI, the outbox worker,
framework integrations) goes through :class:`AsyncMailer`, which runs hooks, derives the
envelope, serialises the message once, applies the rate limit, retries transient failures and
hands the bytes to a transport.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import AsyncIterable, Iterable, Mapping
from types import TracebackType
from typing import Self

from smtpkit._config import RetryPolicy, SMTPConfig
from smtpkit._dsn import TransportGroup, config_from_env, parse_dsn
from smtpkit._envelope import Envelope
from smtpkit._exceptions import ConfigError, SmtpkitError, TransportError
from smtpkit._hooks import Hooks
from smtpkit._message import Message
from smtpkit._ratelimit import RateLimiter
from smtpkit._replies import RecipientStatus, SendResult
from smtpkit._retry import is_retryable, run_with_retry
from smtpkit._transports.base import AsyncTransport
from smtpkit._transports.multi import FailoverTransport, RoundRobinTransport
from smtpkit._transports.smtp import SMTPTransport

__all__ = ["AsyncMailer", "MailerConstructors", "SendOutcome"]

_log = logging.getLogger("smtpkit.mailer")

#: One entry of :meth:`AsyncMailer.send_many`'s result: the result, or the error that ended it.
SendOutcome = SendResult | SmtpkitError


def _transport_for(target: SMTPConfig | TransportGroup) -> tuple[AsyncTransport, RetryPolicy]:
    if isinstance(target, SMTPConfig):
        return SMTPTransport(target), target.retry
    members: list[AsyncTransport] = [SMTPTransport(config) for config in target.configs]
    group: AsyncTransport
    if target.kind == "failover":
        group = FailoverTransport(members)
    else:
        group = RoundRobinTransport(members)
    return group, target.configs[0].retry


class MailerConstructors:
    """The ways to build a mailer, shared by :class:`AsyncMailer` and the blocking ``Mailer``.

    Both take the same arguments; the alternative constructors are written once, here.
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
        raise NotImplementedError

    @classmethod
    def from_dsn(
        cls,
        dsn: str,
        /,
        *,
        hooks: Hooks | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: float | None = None,
    ) -> Self:
        """A mailer from a DSN such as ``smtps://user:pass@host:465`` or ``failover(dsn dsn)``."""
        return cls(parse_dsn(dsn), hooks=hooks, retry=retry, rate_limit=rate_limit)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        /,
        *,
        hooks: Hooks | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: float | None = None,
    ) -> Self:
        """A mailer from ``SMTPKIT_DSN`` or ``SMTPKIT_*`` variables (default: ``os.environ``)."""
        target = config_from_env(environ if environ is not None else os.environ)
        return cls(target, hooks=hooks, retry=retry, rate_limit=rate_limit)


class AsyncMailer(MailerConstructors):
    """Send messages over a transport, asynchronously.

    Args:
        config_or_transport: an :class:`~smtpkit.SMTPConfig` (an SMTP transport with a pool is
            made from it) or any transport, e.g. :class:`~smtpkit.MemoryTransport`.
        hooks: ``before_send``, ``sent`` and ``failed`` hooks.
        retry: the retry policy; by default the configuration's, or a few quick retries.
        rate_limit: at most this many messages per second (evenly spaced); ``None`` for no limit.

    >>> async with AsyncMailer.from_dsn("smtp://user:pass@smtp.example.com:587") as mailer:
    ...     result = await mailer.send(message)          # doctest: +SKIP
    ...     result.accepted
    ('ann@example.com',)
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
        default_retry = RetryPolicy()
        if isinstance(config_or_transport, SMTPConfig | TransportGroup):
            transport, default_retry = _transport_for(config_or_transport)
            # Twice the pool: a sender waiting for a connection lets the one in use pipeline the
            # next message right behind the previous one's end of data (RFC 2920).
            self._concurrency = 2 * _pool_size(config_or_transport)
        else:
            transport = config_or_transport
            self._concurrency = 4
        self._transport = transport
        self._retry = retry if retry is not None else default_retry
        self._hooks = hooks if hooks is not None else Hooks()
        self._rate = RateLimiter(rate_limit) if rate_limit is not None else None
        self._closed = False

    @property
    def transport(self) -> AsyncTransport:
        """The transport messages are handed to."""
        return self._transport

    def __repr__(self) -> str:
        return f"<AsyncMailer {self._transport.description}>"

    async def send(self, message: Message, /, *, envelope: Envelope | None = None) -> SendResult:
        """Send one message and return its :class:`~smtpkit.SendResult`.

        The envelope is derived from the message (Bcc included, never in the bytes) unless
        given. Transient failures are retried as the retry policy says; a partial refusal is
        reported in the result (see :meth:`SendResult.raise_for_rejections`).

        Raises:
            MessageError: the message cannot be sent as it is (nothing was sent).
            TransportError: sending failed; ``is_transient`` says whether a later retry may work.
        """
        started = time.monotonic()
        self._check_open()
        message = await self._hooks.run_before_send(message)
        if envelope is None:
            envelope = Envelope.from_message(message)
        data = message.to_bytes()
        return await self._deliver(envelope, data, started, message_id=message.message_id)

    async def send_raw(self, envelope: Envelope, data: bytes, /) -> SendResult:
        """Send already-serialised message bytes with an explicit envelope.

        ``data`` should use CRLF line ends; the SMTP layer dot-stuffs and normalises stray CR/LF.
        """
        started = time.monotonic()
        self._check_open()
        return await self._deliver(envelope, data, started)

    async def send_many(
        self,
        messages: Iterable[Message] | AsyncIterable[Message],
        /,
        *,
        concurrency: int | None = None,
    ) -> list[SendOutcome]:
        """Send many messages concurrently over the pool; one outcome per message, in order.

        At most ``concurrency`` messages are in flight at once (by default twice the pool size), and
        messages are taken from ``messages`` only as slots free up, so a long generator is not
        read into memory ahead of sending. A failure does not stop the others: its error takes
        its place in the list.
        """
        self._check_open()
        limit = concurrency if concurrency is not None else self._concurrency
        if limit < 1:
            raise ValueError("concurrency must be at least 1")
        outcomes: dict[int, SendOutcome] = {}
        slots = asyncio.Semaphore(limit)

        async def one(index: int, message: Message) -> None:
            try:
                outcomes[index] = await self.send(message)
            except SmtpkitError as exc:
                outcomes[index] = exc
            except Exception as exc:
                # A bug must not lose the message silently: it is reported in its place.
                error = TransportError(f"unexpected {type(exc).__name__} while sending")
                error.__cause__ = exc
                _log.exception("unexpected error sending message %d", index)
                outcomes[index] = error
            finally:
                slots.release()

        count = 0
        async with asyncio.TaskGroup() as group:
            if isinstance(messages, AsyncIterable):
                async for message in messages:
                    await slots.acquire()
                    group.create_task(one(count, message))
                    count += 1
            else:
                for message in messages:
                    await slots.acquire()
                    group.create_task(one(count, message))
                    count += 1
        return [outcomes[i] for i in range(count)]

    async def aclose(self) -> None:
        """Close the transport's connections (QUIT). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError("this mailer is closed; create a new one")

    async def _deliver(
        self, envelope: Envelope, data: bytes, started: float, *, message_id: str | None = None
    ) -> SendResult:
        if self._rate is not None:
            await self._rate.acquire()
        delivery = _Delivery(self._transport, envelope, data)
        try:
            retried = await run_with_retry(delivery.attempt, self._retry)
            value, attempts = retried.value, retried.attempts
        except SmtpkitError as exc:
            if delivery.first is None:
                await self._hooks.run_failed(envelope, exc)
                raise
            # Delivered to some recipients; the rest stay refused with their last reply.
            value, attempts = delivery.first, exc.attempts
        result = dataclasses.replace(
            delivery.merged(value),
            attempts=attempts,
            elapsed=time.monotonic() - started,
            message_id=message_id if message_id is not None else value.message_id,
        )
        await self._hooks.run_sent(result)
        return result


class _PendingRecipients(TransportError):
    """Some recipients were refused with a 4xx reply while others were accepted."""


class _Delivery:
    """One message's attempts: the whole envelope first, then only transiently refused recipients.

    A greylisted (4xx) recipient among accepted ones is retried on its own, under the same
    bytes and Message-ID, so the accepted recipients never get a second copy.
    """

    def __init__(self, transport: AsyncTransport, envelope: Envelope, data: bytes) -> None:
        self._transport = transport
        self._sender = envelope.sender
        self._data = data
        self.pending = envelope
        self._addresses = {str(address): address for address in envelope.recipients}
        self.first: SendResult | None = None
        self.statuses: dict[str, RecipientStatus] = {}

    async def attempt(self) -> SendResult:
        try:
            result = await self._transport.send_raw(self.pending, self._data)
        except SmtpkitError as exc:
            if self.first is None or is_retryable(exc):
                raise
            # A later attempt for the remaining recipients failed for good. The message was
            # delivered to the others, so this is a refusal of these recipients, not of the send.
            reply = exc.reply if isinstance(exc, TransportError) else None
            if reply is not None:
                for address in self.pending.recipients:
                    key = str(address)
                    self.statuses[key] = RecipientStatus(key, reply)
            _log.warning("retrying refused recipients ended with %s", type(exc).__name__)
            return self.first
        if self.first is None:
            self.first = result
        for status in result.recipients:
            self.statuses[status.address] = status
        waiting = [s for s in result.recipients if s.reply.is_transient]
        if waiting and len(waiting) < len(self.statuses) and result.accepted:
            self.pending = Envelope(
                self._sender, [self._addresses.get(s.address, s.address) for s in waiting]
            )
            raise _PendingRecipients(
                f"{len(waiting)} recipient(s) refused for now: {waiting[0].reply}",
                stage="rcpt",
                reply=waiting[0].reply,
            )
        return result

    def merged(self, result: SendResult) -> SendResult:
        """The first transaction's result with every recipient's latest status."""
        first = self.first if self.first is not None else result
        recipients = tuple(self.statuses.get(s.address, s) for s in first.recipients)
        return dataclasses.replace(first, recipients=recipients)


def _pool_size(target: SMTPConfig | TransportGroup) -> int:
    if isinstance(target, SMTPConfig):
        return target.pool.max_connections
    return sum(config.pool.max_connections for config in target.configs)
