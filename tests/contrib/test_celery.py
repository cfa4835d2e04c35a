"""smtpkit.contrib.celery end to end: a real Redis broker, a real Celery worker process, and
a DevServer the worker delivers into (fixtures in conftest.py)."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import pytest
from celery_support import PASSWORD, Worker

from smtpkit import Message
from smtpkit.contrib.celery import DeliveryOutcomeUnknown, SendFailed, send_later
from smtpkit.devserver import DevServer
from smtpkit.testing import Drop, Respond

RESULT_TIMEOUT = 15.0


def _message(**fields: Any) -> Message:
    values: dict[str, Any] = {
        "sender": "App <app@example.com>",
        "to": ["ann@example.com"],
        "subject": "Your receipt",
        "text": "Thanks for your order.",
    }
    values.update(fields)
    return Message(**values)


def _wait(result: Any, worker: Worker) -> Any:
    """The finished task's value (or exception); the worker log on a timeout."""
    try:
        return result.get(timeout=RESULT_TIMEOUT, propagate=False)
    except Exception as exc:
        pytest.fail(f"no result ({type(exc).__name__}: {exc}); worker log:\n{worker.log_text()}")


def _verbs(server: DevServer, verb: str) -> int:
    return sum(1 for c in server.commands if c.verb == verb)


def _accepted(value: dict[str, Any]) -> list[str]:
    return [r["address"] for r in value["recipients"] if r["accepted"]]


def test_success_returns_the_result_as_json_and_delivers_the_same_bytes(
    celery_worker: Worker, celery_client: Any, smtp: DevServer
) -> None:
    message = _message(cc=["cid@example.com"], bcc=["hidden@example.com"])

    result = send_later(message, app=celery_client, queue=celery_worker.queue)
    value = _wait(result, celery_worker)

    assert result.state == "SUCCESS", celery_worker.log_text()
    assert isinstance(value, dict)
    assert json.loads(json.dumps(value)) == value
    assert _accepted(value) == ["ann@example.com", "cid@example.com", "hidden@example.com"]
    assert value["message_id"] == message.message_id
    assert value["attempts"] == 1
    assert value["reply"]["code"] == 250
    (captured,) = smtp.wait_for(1)
    assert captured.header("Message-ID") == message.message_id
    assert captured.subject == "Your receipt"
    assert captured.rcpt_tos == ("ann@example.com", "cid@example.com", "hidden@example.com")
    assert b"hidden@example.com" not in captured.data
    assert captured.auth_login == "user"
    assert PASSWORD not in json.dumps(value)


def test_a_permanent_refusal_fails_the_task_without_a_retry(
    celery_worker: Worker, celery_client: Any, smtp: DevServer
) -> None:
    smtp.set_faults(Respond("MAIL", 550, "5.7.1 Sender blocked"))
    message = _message()

    result = send_later(message, app=celery_client, queue=celery_worker.queue)
    error = _wait(result, celery_worker)

    assert result.state == "FAILURE"
    assert isinstance(error, SendFailed)
    assert error.details["state"] == "failed"
    assert error.details["error"] == "SenderRefused"
    assert error.details["stage"] == "mail"
    assert error.details["reply"] == {
        "code": 550,
        "enhanced_code": "5.7.1",
        "text": "Sender blocked",
    }
    assert error.details["transient"] is False
    assert error.details["message_id"] == message.message_id
    assert error.details["attempts"] == 1
    assert str(error).startswith("SenderRefused: ")
    assert "550" in str(error)
    assert _verbs(smtp, "MAIL") == 1
    assert smtp.messages == []
    assert PASSWORD not in str(error)
    assert PASSWORD not in (result.traceback or "")


def test_a_transient_refusal_is_retried_by_celery_then_succeeds(
    celery_worker: Worker, celery_client: Any, smtp: DevServer
) -> None:
    smtp.set_faults(Respond("RCPT", 450, "4.7.1 Greylisted, try again", times=1))
    message = _message()

    result = send_later(message, app=celery_client, queue=celery_worker.queue)
    value = _wait(result, celery_worker)

    assert result.state == "SUCCESS", celery_worker.log_text()
    assert _accepted(value) == ["ann@example.com"]
    assert value["attempts"] == 2
    (captured,) = smtp.wait_for(1)
    assert captured.header("Message-ID") == message.message_id
    assert _verbs(smtp, "MAIL") == 2
    assert _verbs(smtp, "RCPT") == 2


def test_only_the_greylisted_recipient_is_retried(
    celery_worker: Worker, celery_client: Any, smtp: DevServer
) -> None:
    smtp.set_faults(Respond("RCPT", 450, "4.7.1 Greylisted", times=1, match="bob@"))
    message = _message(to=["ann@example.com", "bob@example.com"])

    result = send_later(message, app=celery_client, queue=celery_worker.queue)
    value = _wait(result, celery_worker)

    assert result.state == "SUCCESS", celery_worker.log_text()
    assert _accepted(value) == ["ann@example.com", "bob@example.com"]
    assert value["attempts"] == 2
    first, second = smtp.wait_for(2)
    assert first.rcpt_tos == ("ann@example.com",)
    assert second.rcpt_tos == ("bob@example.com",)
    assert first.data == second.data
    assert second.header("Message-ID") == message.message_id


def test_running_out_of_retries_fails_the_task_as_transient(
    celery_worker: Worker, celery_client: Any, smtp: DevServer
) -> None:
    smtp.set_faults(Respond("RCPT", 451, "4.3.0 Try later"))

    result = send_later(_message(), app=celery_client, queue=celery_worker.queue)
    error = _wait(result, celery_worker)

    assert result.state == "FAILURE"
    assert isinstance(error, SendFailed)
    assert error.details["transient"] is True
    assert error.details["attempts"] == 3  # max_retries=2 in celery_worker_app.py
    assert error.details["rejected"]["ann@example.com"]["code"] == 451
    assert str(error).startswith("gave up after 3 attempt(s): RecipientsRefused")
    assert _verbs(smtp, "MAIL") == 3
    assert smtp.messages == []


def test_a_drop_after_the_end_of_data_is_not_retried(
    celery_worker: Worker, celery_client: Any, smtp: DevServer
) -> None:
    smtp.set_faults(Drop("DATA_END", times=1))
    message = _message()

    result = send_later(message, app=celery_client, queue=celery_worker.queue)
    error = _wait(result, celery_worker)

    assert result.state == "FAILURE"
    assert isinstance(error, DeliveryOutcomeUnknown)
    assert error.details["state"] == "unknown"
    assert error.details["error"] == "DeliveryUnknown"
    assert error.details["message_id"] == message.message_id
    time.sleep(0.6)  # longer than the test worker's retry backoff: nothing else arrives
    (captured,) = smtp.messages
    assert captured.acknowledged is False
    assert _verbs(smtp, "DATA") == 1


def test_a_payload_that_is_not_a_message_fails_at_once(
    celery_worker: Worker, celery_client: Any, smtp: DevServer
) -> None:
    result = celery_client.send_task(
        "smtpkit.send", args=({"format": "something/else"},), queue=celery_worker.queue
    )
    error = _wait(result, celery_worker)

    assert result.state == "FAILURE"
    assert isinstance(error, SendFailed)
    assert error.details["error"] == "MessageError"
    assert "format" in error.details["message"]
    assert smtp.commands == []


def test_the_example_app_queues_a_message_the_worker_sends(
    celery_worker: Worker,
    smtp: DevServer,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", redis_url)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", redis_url)
    path = Path(__file__).resolve().parents[2] / "examples" / "celery_app.py"
    spec = importlib.util.spec_from_file_location("smtpkit_example_celery_app", path)
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    try:
        assert example.app.conf.accept_content == ["json"]
        assert example.app.conf.task_serializer == "json"
        # The example's app routes to Celery's default queue; the test worker has its own.
        example.app.conf.task_default_queue = celery_worker.queue

        assert example.main(["celery_app.py", "ann@example.com"]) == 0
    finally:
        example.app.close()

    printed = capsys.readouterr().out
    value = json.loads(printed.split("\n", 1)[1])
    assert _accepted(value) == ["ann@example.com"]
    (captured,) = smtp.wait_for(1)
    assert captured.subject == "Welcome to Example App"
    assert captured.header("Message-ID") == value["message_id"]
