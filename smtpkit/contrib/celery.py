"""Send mail from Celery workers: a JSON payload, a task factory and :func:`send_later`.

The web process serialises the message (Bcc stays out of the bytes and in the envelope) and
puts it on the broker as JSON, never pickle; a worker process delivers it with a
:class:`~smtpkit.Mailer` it builds once, from a DSN or the ``SMTPKIT_*`` variables.

Worker side (``celery -A mailapp worker``)::

    from celery import Celery
    from smtpkit.contrib.celery import json_only_config, make_send_task

    app = Celery("mailapp", broker="redis://127.0.0.1:6379/0")
    app.conf.update(json_only_config())
    send_email = make_send_task(app)             # the task "smtpkit.send"

App side (needs the broker URL only, not the SMTP settings)::

    from smtpkit.contrib.celery import send_later

    async_result = send_later(message, app=app)  # a celery AsyncResult

Retries are Celery's: smtpkit's own retry is switched off in the worker's mailer, a transient
failure becomes ``self.retry()`` with an exponential, jittered countdown, and a failure that no
retry can fix ends the task at once. The task's result is :meth:`SendResult.to_dict`; its
failures are :class:`SendFailed` (not delivered) and :class:`DeliveryOutcomeUnknown` (the
connection dropped after the end of data; never retried silently), both rebuilt from Celery's
JSON result backend with their :attr:`~SendTaskError.details`.

Needs the ``celery`` extra: ``pip install 'smtpkit[celery]'``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

try:
    from celery import Celery, signals  # type: ignore[import-untyped, unused-ignore]
    from celery.result import AsyncResult  # type: ignore[import-untyped, unused-ignore]
except ImportError as _missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "smtpkit.contrib.celery needs Celery: pip install 'smtpkit[celery]'"
    ) from _missing

from smtpkit._config import RetryPolicy
from smtpkit._envelope import Envelope
from smtpkit._exceptions import (
    AllTransportsFailed,
    ConfigError,
    DeliveryUnknown,
    ExtensionUnsupported,
    MessageError,
    RecipientsRefused,
    ReplyError,
    SmtpkitError,
    TransportError,
)
from smtpkit._message import Message
from smtpkit._replies import Reply
from smtpkit._sync import Mailer

__all__ = [
    "DEFAULT_TASK_NAME",
    "PAYLOAD_FORMAT",
    "DeliveryOutcomeUnknown",
    "MessagePayload",
    "SendDeferred",
    "SendFailed",
    "SendTaskError",
    "json_only_config",
    "make_send_task",
    "send_later",
]

_log = logging.getLogger("smtpkit.contrib.celery")

#: The name :func:`make_send_task` registers and :func:`send_later` sends to by default.
DEFAULT_TASK_NAME = "smtpkit.send"

#: The ``format`` field of a payload; a worker refuses payloads of any other format.
PAYLOAD_FORMAT = "smtpkit.message/1"

# Content types that let a broker message run code when decoded.
_UNSAFE_CONTENT = frozenset({"pickle", "application/x-python-serialize", "yaml"})


def json_only_config() -> dict[str, Any]:
    """Celery settings that make an app send and accept JSON only (never pickle).

    >>> app.conf.update(json_only_config())  # doctest: +SKIP
    """
    return {
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
    }


# ------------------------------------------------------------------------------------------
# The payload
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessagePayload:
    """A message as the task receives it: envelope, serialised bytes and Message-ID.

    The worker does not rebuild the :class:`~smtpkit.Message`: it sends exactly the bytes the
    app made, so Bcc (only in the envelope) never reaches the bytes, and the Message-ID stays
    the same across Celery retries.

    >>> payload = MessagePayload.from_message(message)               # doctest: +SKIP
    >>> MessagePayload.from_json(payload.to_json()) == payload       # doctest: +SKIP
    True
    """

    envelope: Envelope
    data: bytes = field(repr=False)
    message_id: str | None = None

    @classmethod
    def from_message(
        cls, message: Message, /, *, envelope: Envelope | None = None
    ) -> MessagePayload:
        """Serialise ``message``; the envelope is derived from it (Bcc included) unless given."""
        if envelope is None:
            envelope = Envelope.from_message(message)
        return cls(envelope, message.to_bytes(), message.message_id)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (the bytes in base64)."""
        sender = self.envelope.sender
        return {
            "format": PAYLOAD_FORMAT,
            "message_id": self.message_id,
            "envelope": {
                "sender": None if sender is None else str(sender),
                "recipients": [str(r) for r in self.envelope.recipients],
            },
            "data": base64.b64encode(self.data).decode("ascii"),
        }

    @classmethod
    def from_json(cls, value: object, /) -> MessagePayload:
        """Read a payload made by :meth:`to_json`; addresses are validated again.

        Raises:
            MessageError: the value is not a payload of this format (or an address is invalid).
        """
        if not isinstance(value, Mapping):
            raise MessageError(f"celery payload: expected an object, not {type(value).__name__}")
        if value.get("format") != PAYLOAD_FORMAT:
            raise MessageError(
                f"celery payload: format {value.get('format')!r} is not {PAYLOAD_FORMAT!r}"
            )
        envelope = value.get("envelope")
        data = value.get("data")
        message_id = value.get("message_id")
        if not isinstance(envelope, Mapping):
            raise MessageError("celery payload: 'envelope' must be an object")
        sender = envelope.get("sender")
        recipients = envelope.get("recipients")
        if sender is not None and not isinstance(sender, str):
            raise MessageError("celery payload: 'envelope.sender' must be a string or null")
        if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
            raise MessageError("celery payload: 'envelope.recipients' must be a list of strings")
        if message_id is not None and not isinstance(message_id, str):
            raise MessageError("celery payload: 'message_id' must be a string or null")
        if not isinstance(data, str):
            raise MessageError("celery payload: 'data' must be a base64 string")
        try:
            raw = base64.b64decode(data.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise MessageError("celery payload: 'data' is not valid base64") from None
        return cls(Envelope(sender, recipients), raw, message_id)


# ------------------------------------------------------------------------------------------
# Errors the task ends with
# ------------------------------------------------------------------------------------------


class SendTaskError(Exception):
    """Base of the errors the send task raises.

    The arguments are a one-line-or-so ``summary`` (error class, message and hint; never a
    secret) and a JSON-ready ``details`` mapping, so that Celery's JSON result backend stores
    them and rebuilds the same class on the caller's side::

        {"state": "failed" | "deferred" | "unknown", "error": "SenderRefused",
         "message": "...", "transient": false, "stage": "mail",
         "reply": {"code": 550, "enhanced_code": "5.7.1", "text": "..."},
         "hint": "..." | null, "message_id": "<...>", "attempts": 1}

    RecipientsRefused adds ``"rejected": {address: reply}``; a failure after a partial delivery
    adds ``"delivered"``: the result of the transaction that reached the other recipients.
    """

    def __init__(self, summary: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(summary, dict(details) if details is not None else {})

    @property
    def summary(self) -> str:
        """The error class, its message and hint, as one string."""
        return str(self.args[0])

    @property
    def details(self) -> dict[str, Any]:
        """The JSON-ready details (see the class docstring)."""
        details = self.args[1] if len(self.args) > 1 else {}
        return dict(details) if isinstance(details, Mapping) else {}

    def __str__(self) -> str:
        return self.summary


class SendFailed(SendTaskError):
    """The message was not delivered and will not be retried.

    Either the failure is permanent for this message (a 5xx refusal, an invalid payload, an
    extension the server lacks), or it was transient and the task ran out of retries
    (``details["transient"]`` is then true).
    """


class SendDeferred(SendTaskError):
    """A transient failure; the task is retried (the exception of a task in state RETRY)."""


class DeliveryOutcomeUnknown(SendTaskError):
    """The connection dropped after the end of data: the server may have queued the message.

    The task is not retried, because a retry could deliver a second copy. Check with the
    recipient (the Message-ID is in ``details["message_id"]``) before sending it again.
    """


def _message_text(error: BaseException) -> str:
    # The message without the hint that TransportError.__str__ appends (it is kept apart).
    return Exception.__str__(error)


def _details(
    error: SmtpkitError, *, state: str, message_id: str | None, attempts: int
) -> dict[str, Any]:
    details: dict[str, Any] = {
        "state": state,
        "error": type(error).__name__,
        "message": _message_text(error),
        "transient": error.is_transient,
        "stage": None,
        "reply": None,
        "hint": None,
        "message_id": message_id,
        "attempts": attempts,
    }
    if isinstance(error, TransportError):
        details["stage"] = error.stage
        details["reply"] = error.reply.to_dict() if error.reply is not None else None
        details["hint"] = error.hint
    if isinstance(error, RecipientsRefused):
        details["rejected"] = {address: r.to_dict() for address, r in error.rejected.items()}
    return details


def _summary(error: BaseException, prefix: str = "") -> str:
    return f"{prefix}{type(error).__name__}: {error}"


def _is_unknown(error: SmtpkitError) -> bool:
    if isinstance(error, DeliveryUnknown):
        return True
    return isinstance(error, AllTransportsFailed) and any(
        isinstance(e, DeliveryUnknown) for e in error.errors
    )


def _permanent_for_message(error: SmtpkitError) -> bool:
    """Whether no retry can send this message as it is.

    A permanent error about the worker's side (refused credentials, a TLS or configuration
    problem) is retried instead, on the task's schedule: fixing the worker must not require
    sending every message it failed meanwhile again. (The outbox decides the same way.)
    """
    if isinstance(error, MessageError | ExtensionUnsupported):
        return True
    if isinstance(error, AllTransportsFailed):
        return bool(error.errors) and all(_permanent_for_message(e) for e in error.errors)
    if isinstance(error, ReplyError):
        return not error.is_transient
    return False


# ------------------------------------------------------------------------------------------
# The task
# ------------------------------------------------------------------------------------------


def _default_mailer(dsn: str | None) -> Callable[[], Mailer]:
    def build() -> Mailer:
        # Celery retries; a second retry loop inside the mailer would multiply the attempts
        # and hold the worker for the mailer's backoff.
        no_retry = RetryPolicy(retries=0)
        if dsn is not None:
            return Mailer.from_dsn(dsn, retry=no_retry)
        return Mailer.from_env(retry=no_retry)

    return build


class _WorkerMailer:
    """The one mailer of a worker process, built on first use and closed at shutdown."""

    def __init__(self, factory: Callable[[], Mailer]) -> None:
        self._factory = factory
        self._mailer: Mailer | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def get(self) -> Mailer:
        with self._lock:
            pid = os.getpid()
            if self._mailer is None or self._pid != pid:
                # A mailer inherited through fork() has no event-loop thread in this process:
                # it is dropped (not closed, which would wait for that thread) and built anew.
                self._mailer = self._factory()
                self._pid = pid
            return self._mailer

    def close(self, *args: Any, **kwargs: Any) -> None:
        """Close this process's mailer (a Celery signal receiver; arguments ignored)."""
        with self._lock:
            mailer, self._mailer = self._mailer, None
            if mailer is not None and self._pid == os.getpid():
                mailer.close()


def _countdown(retries: int, base: float, maximum: float, jitter: bool) -> float:
    delay = min(maximum, base * 2.0 ** min(retries, 60))
    if jitter:
        # Spreads the retries of many messages that failed together; not a security use.
        delay = random.uniform(delay / 2, delay)  # noqa: S311
    return delay


def _merge(
    delivered: Mapping[str, Any] | None,
    result: dict[str, Any],
) -> dict[str, Any]:
    """The first transaction's result with the later statuses of the retried recipients."""
    if delivered is None:
        return result
    merged = dict(delivered)
    latest = {r["address"]: r for r in result["recipients"]}
    merged["recipients"] = [latest.get(r["address"], r) for r in delivered["recipients"]]
    merged["elapsed"] = float(delivered.get("elapsed", 0.0)) + float(result["elapsed"])
    return merged


def _refuse_pending(
    delivered: Mapping[str, Any], pending: MessagePayload, reply: Reply | None
) -> dict[str, Any]:
    """``delivered`` with the still pending recipients given ``reply`` (their last answer)."""
    if reply is None:
        return dict(delivered)
    addresses = {str(r) for r in pending.envelope.recipients}
    merged = dict(delivered)
    merged["recipients"] = [
        {"address": r["address"], "accepted": False, "reply": reply.to_dict()}
        if r["address"] in addresses
        else r
        for r in delivered["recipients"]
    ]
    return merged


@dataclass(frozen=True)
class _Schedule:
    max_retries: int | None
    backoff: float
    backoff_max: float
    jitter: bool


class _SendTask:
    """The body of the task: one delivery attempt and what it means."""

    def __init__(self, mailer: _WorkerMailer, schedule: _Schedule) -> None:
        self._mailer = mailer
        self._schedule = schedule
        self._checked_content = False

    def __call__(
        self, task: Any, payload: object, delivered: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        attempt = int(task.request.retries) + 1
        try:
            message = MessagePayload.from_json(payload)
        except MessageError as exc:
            raise SendFailed(
                _summary(exc),
                _details(exc, state="failed", message_id=None, attempts=attempt),
            ) from exc
        self._warn_if_unsafe(task)
        try:
            result = self._mailer.get().send_raw(message.envelope, message.data)
        except SmtpkitError as exc:
            return self._failed(task, exc, message, delivered, attempt)
        outcome = result.to_dict()
        if outcome["message_id"] is None:
            outcome["message_id"] = message.message_id
        merged = _merge(delivered, outcome)
        merged["attempts"] = attempt
        waiting = [s for s in result.recipients if s.reply.is_transient]
        if waiting and not self._exhausted(task):
            # Greylisted next to accepted recipients: only those are tried again, under the
            # same bytes and Message-ID, so the others never get a second copy.
            narrowed = MessagePayload(
                Envelope(message.envelope.sender, [s.address for s in waiting]),
                message.data,
                message.message_id,
            )
            reply = waiting[0].reply
            error = SendDeferred(
                f"{len(waiting)} recipient(s) refused for now: {reply}",
                {
                    "state": "deferred",
                    "error": "RecipientsRefused",
                    "message": f"refused for now: {', '.join(s.address for s in waiting)}",
                    "transient": True,
                    "stage": "rcpt",
                    "reply": reply.to_dict(),
                    "hint": None,
                    "message_id": message.message_id,
                    "attempts": attempt,
                    "rejected": {s.address: s.reply.to_dict() for s in waiting},
                },
            )
            raise task.retry(
                args=(narrowed.to_json(), merged),
                kwargs={},
                exc=error,
                countdown=self._countdown(task),
            )
        _log.info(
            "sent %s to %d recipient(s) (attempt %d)",
            merged["message_id"],
            sum(1 for r in merged["recipients"] if r["accepted"]),
            attempt,
        )
        return merged

    def _failed(
        self,
        task: Any,
        error: SmtpkitError,
        message: MessagePayload,
        delivered: Mapping[str, Any] | None,
        attempt: int,
    ) -> dict[str, Any]:
        message_id = message.message_id
        if _is_unknown(error):
            details = _details(error, state="unknown", message_id=message_id, attempts=attempt)
            if delivered is not None:
                details["delivered"] = dict(delivered)
            raise DeliveryOutcomeUnknown(
                _summary(error, "delivery outcome unknown, not retried: "), details
            ) from error
        permanent = _permanent_for_message(error)
        if delivered is not None and (permanent or self._exhausted(task)):
            # The message reached the other recipients: these ones end refused, as the
            # mailer reports a partial refusal, and the task succeeds with that result.
            reply = error.reply if isinstance(error, TransportError) else None
            merged = _refuse_pending(delivered, message, reply)
            merged["attempts"] = attempt
            _log.warning(
                "gave up on %d recipient(s) of %s", len(message.envelope.recipients), message_id
            )
            return merged
        if permanent or self._exhausted(task):
            details = _details(error, state="failed", message_id=message_id, attempts=attempt)
            prefix = "" if permanent else f"gave up after {attempt} attempt(s): "
            raise SendFailed(_summary(error, prefix), details) from error
        details = _details(error, state="deferred", message_id=message_id, attempts=attempt)
        raise task.retry(
            exc=SendDeferred(_summary(error), details), countdown=self._countdown(task)
        )

    def _exhausted(self, task: Any) -> bool:
        limit = task.max_retries
        return limit is not None and int(task.request.retries) >= int(limit)

    def _countdown(self, task: Any) -> float:
        s = self._schedule
        return _countdown(int(task.request.retries), s.backoff, s.backoff_max, s.jitter)

    def _warn_if_unsafe(self, task: Any) -> None:
        if self._checked_content:
            return
        self._checked_content = True
        accepted = {str(c) for c in (task.app.conf.accept_content or ())}
        unsafe = sorted(accepted & _UNSAFE_CONTENT)
        if unsafe:
            _log.warning(
                "this Celery app accepts %s: anyone who can write to the broker can run code "
                "in the worker; use app.conf.update(json_only_config())",
                ", ".join(unsafe),
            )


def make_send_task(
    app: Celery,
    *,
    dsn: str | None = None,
    mailer_factory: Callable[[], Mailer] | None = None,
    name: str = DEFAULT_TASK_NAME,
    max_retries: int | None = 8,
    retry_backoff: float = 60.0,
    retry_backoff_max: float = 1800.0,
    retry_jitter: bool = True,
    **task_options: Any,
) -> Any:
    """Register the send task on ``app`` and return it.

    Args:
        app: the worker's Celery app.
        dsn: the SMTP server (``smtps://user:pass@host``); by default ``SMTPKIT_DSN`` or the
            other ``SMTPKIT_*`` variables, read when the worker sends its first message.
        mailer_factory: builds the worker's :class:`~smtpkit.Mailer` instead of ``dsn`` (for
            hooks, a rate limit or another transport). Give it ``retry=RetryPolicy(retries=0)``,
            or smtpkit's retries run inside each of Celery's.
        name: the task name; :func:`send_later` must use the same.
        max_retries: retries after the first attempt (``None``: forever). Then the task fails
            with :class:`SendFailed`.
        retry_backoff: seconds before the first retry; doubles each time, up to
            ``retry_backoff_max``. Keep the maximum below the broker's visibility timeout
            (Redis: one hour by default), or a waiting retry is delivered twice.
        retry_jitter: wait a random 50-100 % of each delay, so that a burst of failures does
            not retry in lockstep.
        task_options: more ``app.task()`` options. By default ``acks_late=True`` and
            ``reject_on_worker_lost=True``: a message whose worker died mid-send is sent
            again (at least once, same Message-ID).

    The mailer is built once per worker process, on its first message, and closed when the
    worker shuts down. Each task call makes one delivery attempt:

    * success: returns :meth:`SendResult.to_dict` (``attempts`` counts Celery's attempts);
      recipients refused with 4xx next to accepted ones are retried on their own;
    * a transient failure: ``self.retry()`` after the backoff (task state RETRY,
      :class:`SendDeferred`);
    * permanent for the message (5xx refusal, invalid payload), or out of retries:
      :class:`SendFailed`; a permanent error of the worker's own (refused credentials, TLS,
      configuration) is retried, so that fixing the worker delivers the backlog;
    * dropped after the end of data: :class:`DeliveryOutcomeUnknown`, never retried.
    """
    if dsn is not None and mailer_factory is not None:
        raise ConfigError("give make_send_task either dsn or mailer_factory, not both")
    if task_options.get("serializer", "json") != "json":
        raise ConfigError("the smtpkit send task is JSON only: do not set its serializer")
    if max_retries is not None and max_retries < 0:
        raise ConfigError("max_retries must be at least 0 (or None)")
    if not 0 < retry_backoff <= retry_backoff_max:
        raise ConfigError("retry_backoff must be positive and at most retry_backoff_max")
    mailer = _WorkerMailer(mailer_factory if mailer_factory is not None else _default_mailer(dsn))
    body = _SendTask(mailer, _Schedule(max_retries, retry_backoff, retry_backoff_max, retry_jitter))

    def send(self: Any, payload: object, delivered: Mapping[str, Any] | None = None) -> Any:
        return body(self, payload, delivered)

    send.__doc__ = "Deliver one smtpkit message payload (see smtpkit.contrib.celery)."
    # shared=False: registered on this app only, not on every app the process creates later.
    options: dict[str, Any] = {
        "acks_late": True,
        "reject_on_worker_lost": True,
        "shared": False,
        **task_options,
    }
    options.update(bind=True, name=name, serializer="json", max_retries=max_retries)
    task = app.task(**options)(send)
    # Close the connections politely when the worker (or a pool process) stops.
    signals.worker_process_shutdown.connect(mailer.close, weak=False)
    signals.worker_shutdown.connect(mailer.close, weak=False)
    return task


# ------------------------------------------------------------------------------------------
# The app side
# ------------------------------------------------------------------------------------------


def send_later(
    message: Message,
    /,
    *,
    app: Celery | None = None,
    envelope: Envelope | None = None,
    task_name: str = DEFAULT_TASK_NAME,
    **options: Any,
) -> AsyncResult:
    """Queue ``message`` for a worker's send task and return its ``AsyncResult``.

    The message is serialised here (so it is checked here; Bcc goes only into the envelope)
    and sent as JSON to the task ``task_name`` of ``app`` (default: Celery's current app).
    The app needs the broker settings only; the task need not be registered on it.
    ``options`` go to ``app.send_task()``: ``countdown``, ``eta``, ``queue``, ``priority``...

    >>> send_later(message, app=app, queue="mail").id  # doctest: +SKIP
    'c6a2e1b0-...'
    """
    if options.get("serializer", "json") != "json":
        raise ConfigError("smtpkit sends its task payloads as JSON only")
    options["serializer"] = "json"
    payload = MessagePayload.from_message(message, envelope=envelope)
    if app is None:
        from celery import current_app  # type: ignore[import-untyped, unused-ignore]

        app = current_app
    return app.send_task(task_name, args=(payload.to_json(),), **options)
