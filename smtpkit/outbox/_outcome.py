"""What one attempt's result means for a stored message: a pure decision, no I/O.

The worker hands over the recipients' states before the attempt and what the mailer returned
(a :class:`~smtpkit.SendResult`) or raised; :func:`decide` returns the next state. Kept apart
from the worker and the store so that every branch is tested without a server or a database.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from smtpkit._exceptions import (
    AllTransportsFailed,
    DeliveryUnknown,
    ExtensionUnsupported,
    MessageError,
    RecipientsRefused,
    ReplyError,
    TransportError,
)
from smtpkit._replies import Reply, SendResult
from smtpkit.outbox._records import RecipientPhase, RecipientState, Status
from smtpkit.outbox._schedule import Schedule

__all__ = ["Decision", "decide", "is_permanent_for_message"]

#: RFC 3463 X.4.7: delivery time expired.
EXPIRED_CODE = "4.4.7"


@dataclass(frozen=True, slots=True)
class Decision:
    """The next state of a message after one attempt."""

    status: Status
    recipients: tuple[RecipientState, ...]
    due_at: float | None
    flagged: bool
    last_error: str | None
    last_reply: Reply | None
    result: Mapping[str, Any] | None


def is_permanent_for_message(error: BaseException) -> bool:
    """Whether ``error`` says this *message* can never be sent as it is.

    Only then does the outbox fail it. A permanent error about the worker's side (a bad
    certificate, refused credentials, a configuration error) defers the message instead: fixing
    the worker must not require re-enqueueing everything it failed meanwhile.
    """
    if isinstance(error, MessageError | ExtensionUnsupported):
        return True
    if isinstance(error, AllTransportsFailed):
        return bool(error.errors) and all(is_permanent_for_message(e) for e in error.errors)
    if isinstance(error, ReplyError):
        return not error.is_transient
    return False


def _describe(error: BaseException) -> str:
    text = str(error).split("\nHint:", 1)[0]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def decide(
    recipients: Sequence[RecipientState],
    outcome: SendResult | BaseException,
    *,
    attempts: int,
    first_due: float,
    now: float,
    schedule: Schedule,
    flagged: bool,
    rng: random.Random | None = None,
) -> Decision:
    """The state after an attempt that sent to the ``pending`` ones of ``recipients``.

    ``attempts`` counts this attempt; ``first_due`` is when the message first became due
    (its lifetime is measured from there).
    """
    states = {r.address: r for r in recipients}
    result_json: Mapping[str, Any] | None = None
    last_error: str | None = None
    last_reply: Reply | None = None
    unknown = False

    def refuse_pending(reply: Reply | None, *, permanent: bool) -> None:
        for address, state in states.items():
            if state.state == "pending":
                states[address] = RecipientState(
                    address, "refused" if permanent else "pending", reply
                )

    if isinstance(outcome, SendResult):
        result_json = outcome.to_dict()
        for rcpt in outcome.recipients:
            if rcpt.address not in states:
                continue  # not ours: a transport reporting an address it was not given
            if rcpt.accepted:
                states[rcpt.address] = RecipientState(rcpt.address, "accepted", rcpt.reply)
            else:
                phase: RecipientPhase = "pending" if rcpt.reply.is_transient else "refused"
                states[rcpt.address] = RecipientState(rcpt.address, phase, rcpt.reply)
                last_reply = rcpt.reply
        if last_reply is not None:
            last_error = f"recipient(s) refused: {last_reply}"
    elif isinstance(outcome, DeliveryUnknown):
        # The server may have the message. Nothing is marked accepted or refused: a resend goes
        # to the same recipients, with the same bytes and Message-ID.
        unknown = True
        last_error = _describe(outcome)
        last_reply = outcome.reply
    elif isinstance(outcome, RecipientsRefused) and outcome.rejected:
        for address, reply in outcome.rejected.items():
            if address in states and states[address].state == "pending":
                again: RecipientPhase = "pending" if reply.is_transient else "refused"
                states[address] = RecipientState(address, again, reply)
        last_error = _describe(outcome)
        last_reply = outcome.reply
    else:
        last_error = _describe(outcome)
        last_reply = outcome.reply if isinstance(outcome, TransportError) else None
        # Only pending recipients change; those accepted earlier stay accepted. Anything that
        # is not a permanent verdict on the message (transient, or a worker-side problem such
        # as a certificate or login failure) leaves them pending.
        refuse_pending(last_reply, permanent=is_permanent_for_message(outcome))

    flagged = flagged or unknown
    still_pending = [a for a, s in states.items() if s.state == "pending"]
    if still_pending:
        lifetime_end = first_due + schedule.give_up_after
        if now >= lifetime_end:
            expired = Reply(
                last_reply.code if last_reply is not None and last_reply.code >= 400 else 451,
                EXPIRED_CODE,
                f"delivery time expired after {attempts} attempt(s)"
                + (f"; last error: {last_error}" if last_error else ""),
            )
            for address in still_pending:
                states[address] = RecipientState(address, "refused", states[address].reply)
            last_reply = expired
            last_error = f"gave up: {expired}"
        else:
            status = Status.UNKNOWN if unknown else Status.DEFERRED
            due = min(now + schedule.delay(attempts, rng=rng), lifetime_end)
            return Decision(
                status,
                tuple(states.values()),
                due,
                flagged,
                last_error,
                last_reply,
                result_json,
            )
    any_accepted = any(s.state == "accepted" for s in states.values())
    final = Status.SENT if any_accepted else Status.FAILED
    return Decision(
        final, tuple(states.values()), None, flagged, last_error, last_reply, result_json
    )
