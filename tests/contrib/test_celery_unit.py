"""smtpkit.contrib.celery without a broker: the payload, send_later, the task run eagerly
over a MemoryTransport, and the errors' round trip through Celery's JSON result backend."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

celery = pytest.importorskip("celery")

from celery.backends.base import BaseBackend  # noqa: E402

from smtpkit import (  # noqa: E402
    AuthenticationError,
    ConfigError,
    ConnectError,
    DeliveryUnknown,
    Envelope,
    Mailer,
    MemoryTransport,
    Message,
    MessageError,
    RecipientsRefused,
    Reply,
    RetryPolicy,
    SenderRefused,
)
from smtpkit.contrib import celery as contrib  # noqa: E402
from smtpkit.contrib.celery import (  # noqa: E402
    PAYLOAD_FORMAT,
    DeliveryOutcomeUnknown,
    MessagePayload,
    SendDeferred,
    SendFailed,
    json_only_config,
    make_send_task,
    send_later,
)


def _message(**fields: Any) -> Message:
    values: dict[str, Any] = {
        "sender": "App <app@example.com>",
        "to": ["ann@example.com"],
        "bcc": ["hidden@example.com"],
        "subject": "Hi",
        "text": "Hello",
    }
    values.update(fields)
    return Message(**values)


# -- payload ---------------------------------------------------------------------------------


def test_payload_round_trips_through_json_with_bcc_only_in_the_envelope() -> None:
    message = _message()
    payload = MessagePayload.from_message(message)

    wire = json.loads(json.dumps(payload.to_json()))
    back = MessagePayload.from_json(wire)

    assert back == payload
    assert back.data == message.to_bytes()
    assert back.message_id == message.message_id
    assert [str(r) for r in back.envelope.recipients] == ["ann@example.com", "hidden@example.com"]
    assert b"hidden@example.com" not in base64.b64decode(wire["data"])
    assert wire["format"] == PAYLOAD_FORMAT


def test_payload_keeps_a_given_envelope_null_sender_and_unicode_domain() -> None:
    envelope = Envelope(None, ["x@bücher.example"])
    payload = MessagePayload.from_message(_message(), envelope=envelope)

    back = MessagePayload.from_json(json.loads(json.dumps(payload.to_json())))

    assert back.envelope.sender is None
    assert back.envelope == envelope
    assert back.envelope.recipients[0].ascii_domain == "xn--bcher-kva.example"


def _valid() -> dict[str, Any]:
    return MessagePayload.from_message(_message()).to_json()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda p: ["not", "an", "object"], "expected an object"),
        (lambda p: {**p, "format": "smtpkit.message/0"}, "format"),
        (lambda p: {k: v for k, v in p.items() if k != "format"}, "format"),
        (lambda p: {**p, "envelope": "ann@example.com"}, "'envelope'"),
        (lambda p: {**p, "envelope": {"sender": 1, "recipients": []}}, "sender"),
        (lambda p: {**p, "envelope": {"sender": None, "recipients": "a@x.example"}}, "recipi"),
        (lambda p: {**p, "envelope": {"sender": None, "recipients": []}}, "no recipients"),
        (lambda p: {**p, "envelope": {"sender": None, "recipients": ["no-at"]}}, "no-at"),
        (lambda p: {**p, "data": "!!! not base64"}, "base64"),
        (lambda p: {**p, "data": 12}, "base64"),
        (lambda p: {**p, "data": "é"}, "base64"),
        (lambda p: {**p, "message_id": 5}, "message_id"),
    ],
)
def test_payload_refuses_what_it_did_not_make(change: Any, says: str) -> None:
    with pytest.raises(MessageError, match=says):
        MessagePayload.from_json(change(_valid()))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


@given(
    st.fixed_dictionaries(
        {"format": st.just(PAYLOAD_FORMAT) | JSON, "envelope": JSON, "data": JSON},
        optional={"message_id": JSON},
    )
    | JSON
)
def test_payload_reader_raises_only_message_errors(value: Any) -> None:
    with contextlib.suppress(MessageError):
        MessagePayload.from_json(value)


@given(st.binary(max_size=200))
def test_any_bytes_survive_the_payload(data: bytes) -> None:
    payload = MessagePayload(Envelope("a@example.com", ["b@example.com"]), data, None)
    assert MessagePayload.from_json(json.loads(json.dumps(payload.to_json()))).data == data


# -- send_later ------------------------------------------------------------------------------


class FakeApp:
    """Records send_task calls, as a Celery app would send them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def send_task(self, name: str, args: tuple[Any, ...], **options: Any) -> str:
        self.calls.append((name, args, options))
        return "async-result"


def test_send_later_sends_the_json_payload_to_the_task() -> None:
    app = FakeApp()
    message = _message()

    assert send_later(message, app=app, queue="mail", countdown=5) == "async-result"

    ((name, args, options),) = app.calls
    assert name == "smtpkit.send"
    assert options == {"queue": "mail", "countdown": 5, "serializer": "json"}
    assert MessagePayload.from_json(json.loads(json.dumps(args[0]))).data == message.to_bytes()


def test_send_later_uses_the_given_task_name_and_envelope() -> None:
    app = FakeApp()
    send_later(_message(), app=app, task_name="mail.send", envelope=Envelope(None, ["b@x.test"]))
    ((name, args, _),) = app.calls
    assert name == "mail.send"
    assert args[0]["envelope"] == {"sender": None, "recipients": ["b@x.test"]}


def test_send_later_refuses_another_serializer_and_checks_the_message_first() -> None:
    app = FakeApp()
    with pytest.raises(ConfigError, match="JSON only"):
        send_later(_message(), app=app, serializer="pickle")
    with pytest.raises(MessageError):
        send_later(_message(to=[], cc=[], bcc=[]), app=app)
    assert app.calls == []


# -- the task, run eagerly -------------------------------------------------------------------


@pytest.fixture
def app() -> Iterator[Any]:
    application = celery.Celery("smtpkit-unit", set_as_current=False)
    application.conf.update(json_only_config())
    try:
        yield application
    finally:
        # What a stopping worker sends: closes the mailers the tasks built (their loop threads).
        celery.signals.worker_shutdown.send(sender=None)
        application.close()


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


def _task(app: Any, transport: MemoryTransport, **options: Any) -> Any:
    def factory() -> Mailer:
        return Mailer(transport, retry=RetryPolicy(retries=0))

    return make_send_task(app, mailer_factory=factory, retry_jitter=False, **options)


def _payload(**fields: Any) -> dict[str, Any]:
    return MessagePayload.from_message(_message(**fields)).to_json()


def test_the_task_is_registered_json_only_with_late_acks(app: Any, transport: Any) -> None:
    task = _task(app, transport, max_retries=3)
    assert app.tasks["smtpkit.send"].name == task.name == "smtpkit.send"
    assert task.serializer == "json"
    assert task.acks_late is True
    assert task.reject_on_worker_lost is True
    assert task.max_retries == 3


def test_the_task_sends_once_and_returns_the_result_dict(app: Any, transport: Any) -> None:
    task = _task(app, transport)
    payload = _payload()

    value = task.apply(args=(payload,)).get()

    assert value["message_id"] == payload["message_id"]
    assert value["attempts"] == 1
    assert [r["address"] for r in value["recipients"]] == ["ann@example.com", "hidden@example.com"]
    assert json.loads(json.dumps(value)) == value
    (sent,) = transport.outbox
    assert sent.data == base64.b64decode(payload["data"])


def test_the_mailer_is_built_once_per_process(app: Any, transport: Any) -> None:
    built: list[Mailer] = []

    def factory() -> Mailer:
        built.append(Mailer(transport, retry=RetryPolicy(retries=0)))
        return built[-1]

    task = make_send_task(app, mailer_factory=factory)
    task.apply(args=(_payload(),)).get()
    task.apply(args=(_payload(),)).get()
    assert len(built) == 1
    assert len(transport.outbox) == 2


def test_the_mailer_is_closed_when_the_worker_stops(app: Any, transport: Any) -> None:
    task = _task(app, transport)
    task.apply(args=(_payload(),)).get()
    assert not transport.closed

    celery.signals.worker_process_shutdown.send(sender=None, pid=0, exitcode=0)

    assert transport.closed


def test_a_permanent_error_fails_with_details(app: Any, transport: Any) -> None:
    task = _task(app, transport)
    reply = Reply(550, "5.7.1", "Sender blocked")
    transport.fail_next(SenderRefused("the server refused the sender", stage="mail", reply=reply))

    outcome = task.apply(args=(_payload(),))

    assert outcome.state == "FAILURE"
    error = outcome.result
    assert isinstance(error, SendFailed)
    assert error.details["error"] == "SenderRefused"
    assert error.details["reply"] == reply.to_dict()
    assert error.details["transient"] is False
    assert transport.outbox == []


def test_a_delivery_unknown_is_its_own_failure(app: Any, transport: Any) -> None:
    task = _task(app, transport)
    transport.fail_next(DeliveryUnknown("connection lost after the end of data", stage="data"))

    outcome = task.apply(args=(_payload(),))

    assert isinstance(outcome.result, DeliveryOutcomeUnknown)
    assert outcome.result.details["state"] == "unknown"
    assert "not retried" in str(outcome.result)


def test_a_transient_error_is_retried_until_the_limit(app: Any, transport: Any) -> None:
    task = _task(app, transport, max_retries=2, retry_backoff=0.01)
    transport.fail_next(ConnectError("connection refused", stage="connect"), times=3)

    outcome = task.apply(args=(_payload(),))

    # Eager retries run at once, nested: the outermost call reports the final error.
    error = outcome.result
    assert isinstance(error, SendFailed), outcome.state
    assert error.details["transient"] is True
    assert error.details["attempts"] == 3
    assert transport.outbox == []


def test_a_permanent_error_of_the_workers_own_is_retried(app: Any, transport: Any) -> None:
    # Fixing the worker's login must deliver the backlog, not require sending it again.
    task = _task(app, transport, max_retries=1, retry_backoff=0.01)
    refused = AuthenticationError("login refused", stage="auth", reply=Reply(535, "5.7.8", "No"))
    transport.fail_next(refused, times=1)

    task.apply(args=(_payload(),))

    assert len(transport.outbox) == 1


def test_a_transient_error_then_success(app: Any, transport: Any) -> None:
    task = _task(app, transport, max_retries=2, retry_backoff=0.01)
    transport.fail_next(ConnectError("connection refused", stage="connect"), times=1)

    task.apply(args=(_payload(),))

    assert len(transport.outbox) == 1


def test_partial_refusal_gives_up_with_the_refusals_in_the_result(app: Any) -> None:
    transport = MemoryTransport(
        refuse=["bob@example.com"], refuse_reply=Reply(450, "4.7.1", "Wait")
    )
    task = _task(app, transport, max_retries=0)

    value = task.apply(args=(_payload(to=["ann@example.com", "bob@example.com"], bcc=[]),)).get()

    statuses = {r["address"]: (r["accepted"], r["reply"]["code"]) for r in value["recipients"]}
    assert statuses == {"ann@example.com": (True, 250), "bob@example.com": (False, 450)}
    assert len(transport.outbox) == 1


def test_an_unsafe_app_is_reported_in_the_worker_log(
    app: Any, transport: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app.conf.accept_content = ["json", "pickle"]
    task = _task(app, transport)
    with caplog.at_level(logging.WARNING, logger="smtpkit.contrib.celery"):
        task.apply(args=(_payload(),)).get()
    assert "accepts pickle" in caplog.text


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"dsn": "smtp://h", "mailer_factory": lambda: None}, "either dsn or mailer_factory"),
        ({"serializer": "pickle"}, "JSON only"),
        ({"max_retries": -1}, "max_retries"),
        ({"retry_backoff": 0}, "retry_backoff"),
        ({"retry_backoff": 10, "retry_backoff_max": 5}, "retry_backoff"),
    ],
)
def test_make_send_task_refuses_bad_options(app: Any, options: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        make_send_task(app, **options)


# -- errors through the JSON result backend ------------------------------------------------


@pytest.mark.parametrize("cls", [SendFailed, SendDeferred, DeliveryOutcomeUnknown])
def test_errors_survive_celerys_json_result_backend(app: Any, cls: type[Exception]) -> None:
    backend = BaseBackend(app, serializer="json")
    error = cls("RecipientsRefused: nope", {"state": "failed", "reply": {"code": 550}})

    stored = json.loads(json.dumps(backend.prepare_exception(error)))
    back = backend.exception_to_python(stored)

    assert type(back) is cls
    assert str(back) == "RecipientsRefused: nope"
    assert back.details == {"state": "failed", "reply": {"code": 550}}  # type: ignore[attr-defined]


def test_error_details_list_the_refused_recipients() -> None:
    error = RecipientsRefused(
        "every recipient was refused", rejected={"a@example.com": Reply(550, "5.1.1", "No")}
    )
    details = contrib._details(error, state="failed", message_id="<m@x>", attempts=2)
    assert details["rejected"] == {
        "a@example.com": {"code": 550, "enhanced_code": "5.1.1", "text": "No"}
    }
    assert details["message"] == "every recipient was refused"


def test_countdown_doubles_up_to_the_maximum_with_jitter_below_it() -> None:
    assert [contrib._countdown(n, 1.0, 5.0, False) for n in range(5)] == [1, 2, 4, 5, 5]
    assert contrib._countdown(10_000, 1.0, 5.0, False) == 5.0
    for n in range(6):
        assert 0.5 * min(5.0, 2.0**n) <= contrib._countdown(n, 1.0, 5.0, True) <= 5.0


class Greylisting(MemoryTransport):
    """Refuses bob@ with 450 on the first call; then raises the scripted errors, if any."""

    def __init__(self, *later: Exception) -> None:
        super().__init__(refuse=["bob@example.com"], refuse_reply=Reply(450, "4.7.1", "Wait"))
        self.later = list(later)
        self.calls: list[list[str]] = []

    async def send_raw(self, envelope: Envelope, data: bytes, /) -> Any:
        self.calls.append([str(r) for r in envelope.recipients])
        if len(self.calls) == 2:
            self._refused.clear()
            if self.later:
                raise self.later.pop(0)
        return await super().send_raw(envelope, data)


def _message_id(data: bytes) -> str:
    (line,) = [x for x in data.split(b"\r\n") if x.startswith(b"Message-ID: ")]
    return line.removeprefix(b"Message-ID: ").decode()


TWO = {"to": ["ann@example.com", "bob@example.com"], "bcc": []}


def test_a_greylisted_recipient_is_retried_alone_and_merged(app: Any) -> None:
    transport = Greylisting()
    task = _task(app, transport, max_retries=2, retry_backoff=0.01)

    outcome = task.apply(args=(_payload(**TWO),))

    assert transport.calls == [["ann@example.com", "bob@example.com"], ["bob@example.com"]]
    (retried,) = [r for r in transport.outbox if r.recipients == ("bob@example.com",)]
    assert retried.data == transport.outbox[0].data
    value = outcome.get()
    assert [(r["address"], r["accepted"]) for r in value["recipients"]] == [
        ("ann@example.com", True),
        ("bob@example.com", True),
    ]
    assert value["attempts"] == 2
    assert value["message_id"] == _message_id(retried.data)


def test_a_permanent_refusal_of_the_retried_recipient_ends_in_the_result(app: Any) -> None:
    refusal = SenderRefused("refused", stage="mail", reply=Reply(550, "5.7.1", "No"))
    transport = Greylisting(refusal)
    task = _task(app, transport, max_retries=2, retry_backoff=0.01)
    delivered = {
        "recipients": [
            {"address": "ann@example.com", "accepted": True, "reply": {"code": 250}},
            {"address": "bob@example.com", "accepted": False, "reply": {"code": 450}},
        ],
    }
    transport.calls.append([])  # the first transaction happened before this call
    narrowed = MessagePayload.from_message(
        _message(**TWO), envelope=Envelope(None, ["bob@example.com"])
    )

    value = task.apply(args=(narrowed.to_json(), delivered), retries=1).get()

    assert value["recipients"][0]["accepted"] is True
    assert value["recipients"][1] == {
        "address": "bob@example.com",
        "accepted": False,
        "reply": {"code": 550, "enhanced_code": "5.7.1", "text": "No"},
    }
    assert value["attempts"] == 2


def test_a_drop_while_retrying_a_recipient_keeps_what_was_delivered(app: Any) -> None:
    transport = Greylisting(DeliveryUnknown("lost after the dot", stage="data"))
    transport.calls.append([])
    task = _task(app, transport, max_retries=2, retry_backoff=0.01)
    delivered = {"recipients": [{"address": "ann@example.com", "accepted": True, "reply": {}}]}
    narrowed = MessagePayload.from_message(
        _message(**TWO), envelope=Envelope(None, ["bob@example.com"])
    )

    outcome = task.apply(args=(narrowed.to_json(), delivered), retries=1)

    assert isinstance(outcome.result, DeliveryOutcomeUnknown)
    assert outcome.result.details["delivered"] == delivered
