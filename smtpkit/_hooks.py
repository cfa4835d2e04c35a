"""Hooks around sending: ``before_send`` (may change or reject), ``sent`` and ``failed``.

Each hook may be a plain function or a coroutine function. A ``before_send`` hook returns a
replacement :class:`~smtpkit.Message`, or ``None`` to keep the message as it is, or raises
:class:`~smtpkit.MessageRejected` to stop it; nothing goes on the wire after a rejection.

>>> def tag(message):
...     return message.replace(headers=[*message.headers, ("X-Stream", "transactional")])
>>> hooks = Hooks(before_send=(tag,))
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias, TypeVar

if TYPE_CHECKING:
    from smtpkit._envelope import Envelope
    from smtpkit._exceptions import SmtpkitError
    from smtpkit._message import Message
    from smtpkit._replies import SendResult

__all__ = ["BeforeSend", "Failed", "Hooks", "Sent"]

_log = logging.getLogger("smtpkit.hooks")

T = TypeVar("T")

BeforeSend: TypeAlias = "Callable[[Message], Message | Awaitable[Message | None] | None]"
Sent: TypeAlias = "Callable[[SendResult], Awaitable[None] | None]"
Failed: TypeAlias = "Callable[[Envelope, SmtpkitError], Awaitable[None] | None]"


async def _maybe_await(value: T | Awaitable[T]) -> T:
    if inspect.isawaitable(value):
        return await value
    return value


@dataclass(frozen=True, slots=True)
class Hooks:
    """The hooks a mailer runs for every message.

    Attributes:
        before_send: run in order before sending; each sees the previous one's output.
        sent: run after a successful send with its :class:`~smtpkit.SendResult`.
        failed: run after a failed send (retries exhausted) with the envelope and the error.

    Errors raised by ``sent`` and ``failed`` hooks are logged and swallowed: a hook must not turn
    a delivered message into a reported failure.
    """

    before_send: tuple[BeforeSend, ...] = ()
    sent: tuple[Sent, ...] = ()
    failed: tuple[Failed, ...] = ()

    async def run_before_send(self, message: Message) -> Message:
        """Pass the message through every ``before_send`` hook and return the result."""
        for hook in self.before_send:
            replacement = await _maybe_await(hook(message))
            if replacement is not None:
                message = replacement
        return message

    async def run_sent(self, result: SendResult) -> None:
        """Run every ``sent`` hook; their own errors are logged, not raised."""
        for hook in self.sent:
            try:
                await _maybe_await(hook(result))
            except Exception:
                _log.exception("sent hook %r failed", hook)

    async def run_failed(self, envelope: Envelope, error: SmtpkitError) -> None:
        """Run every ``failed`` hook; their own errors are logged, not raised."""
        for hook in self.failed:
            try:
                await _maybe_await(hook(envelope, error))
            except Exception:
                _log.exception("failed hook %r failed", hook)
