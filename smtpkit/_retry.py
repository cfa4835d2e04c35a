"""Retrying transient failures: the only module that imports tenacity.

A send is retried only when its error is transient (4xx replies, connection failures,
timeouts), with exponential backoff and jitter, bounded by a number of attempts and a total time.
:class:`~smtpkit.DeliveryUnknown` is never retried here: the server may already have queued the
message, and a silent resend would deliver it twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

from smtpkit._config import RetryPolicy
from smtpkit._exceptions import DeliveryUnknown, SmtpkitError

__all__ = ["Retried", "is_retryable", "run_with_retry"]

T = TypeVar("T")

_log = logging.getLogger("smtpkit.retry")


@dataclass(frozen=True, slots=True)
class Retried(Generic[T]):
    """A value together with the number of attempts it took."""

    value: T
    attempts: int


def is_retryable(error: BaseException) -> bool:
    """True for smtpkit errors that are transient and safe to repeat.

    >>> from smtpkit._exceptions import ConnectError, DeliveryUnknown
    >>> is_retryable(ConnectError("refused")), is_retryable(DeliveryUnknown("dropped"))
    (True, False)
    """
    if isinstance(error, DeliveryUnknown):
        return False
    return isinstance(error, SmtpkitError) and error.is_transient


def _log_retry(state: RetryCallState) -> None:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    # Only the class and the classified reply are logged: never message data or credentials.
    reply = getattr(error, "reply", None)
    _log.info(
        "attempt %d failed with %s%s; retrying in %.2fs",
        state.attempt_number,
        type(error).__name__,
        f" ({reply.code} {reply.enhanced_code or ''})".rstrip() if reply is not None else "",
        wait,
    )


async def run_with_retry(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
) -> Retried[T]:
    """Run ``operation`` and retry it on transient smtpkit errors as ``policy`` says.

    Returns the value with the number of attempts made. On failure the last error is raised
    as it was (never a tenacity type) with an ``attempts`` attribute added.
    """
    started = time.monotonic()
    # Most sends succeed at once: the first attempt runs outside tenacity, whose machinery
    # costs more per call than the rest of smtpkit's client-side work on a fast relay.
    try:
        return Retried(await operation(), 1)
    except SmtpkitError as exc:
        if policy.retries == 0 or not is_retryable(exc):
            exc.attempts = 1
            raise
        first_failure = exc
    replayed = False

    async def attempt_again() -> T:
        # Tenacity sees attempt 1 as it happened (the same error, at once), so its backoff,
        # stop rules and logging apply unchanged from there on.
        nonlocal replayed
        if not replayed:
            replayed = True
            raise first_failure
        return await operation()

    remaining = max(0.0, policy.max_elapsed - (time.monotonic() - started))
    wait: wait_base
    if policy.jitter:
        wait = wait_exponential_jitter(
            multiplier=policy.initial_backoff, max=policy.max_backoff, jitter=policy.initial_backoff
        )
    else:
        wait = wait_exponential(multiplier=policy.initial_backoff, max=policy.max_backoff)
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.retries + 1) | stop_after_delay(remaining),
        wait=wait,
        retry=retry_if_exception(is_retryable),
        before_sleep=_log_retry,
        reraise=True,
    )
    attempts = 0
    try:
        async for attempt in retrying:
            with attempt:
                attempts = attempt.retry_state.attempt_number
                value = await attempt_again()
                return Retried(value, attempts)
    except BaseException as exc:
        if isinstance(exc, SmtpkitError):
            exc.attempts = attempts
        raise
    raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover
