"""Background sending with Celery: JSON payloads only, Celery's own retries.

Worker (the machine that talks SMTP; it reads ``SMTPKIT_DSN`` on its first message)::

    export CELERY_BROKER_URL=redis://127.0.0.1:6379/0
    export SMTPKIT_DSN='smtp://me%40example.com:app-password@smtp.example.com:587'
    celery -A celery_app worker --loglevel=INFO

Web app (needs the broker only, never the SMTP password)::

    from celery_app import send_welcome
    send_welcome("ann@example.com")        # returns at once; a worker sends it

``python examples/celery_app.py ann@example.com`` queues one message; with
``CELERY_RESULT_BACKEND`` set (e.g. the same Redis URL) it also waits for the result and prints
it (:meth:`smtpkit.SendResult.to_dict`, as JSON).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from celery import Celery

from smtpkit import Message
from smtpkit.contrib.celery import json_only_config, make_send_task, send_later

app = Celery("mailapp")
app.conf.update(
    # Task arguments, results and accepted content: JSON, never pickle.
    json_only_config(),
    broker_url=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
    result_backend=os.environ.get("CELERY_RESULT_BACKEND") or None,
    # Redis hands an unacknowledged task to another worker after this many seconds; it must
    # exceed the longest retry countdown below, or a waiting retry is sent twice.
    broker_transport_options={"visibility_timeout": 2 * 3600},
)

# The task "smtpkit.send": 1 minute before the first retry, doubling up to 30 minutes, at most
# 8 retries (up to about two hours in all) before the task fails with SendFailed.
send_email = make_send_task(app, max_retries=8, retry_backoff=60, retry_backoff_max=1800)


def send_welcome(address: str) -> Any:
    """Queue a welcome message for ``address``; returns the Celery ``AsyncResult``."""
    message = Message(
        sender="Example App <no-reply@example.com>",
        to=[address],
        subject="Welcome to Example App",
        text="Hello! Your account is ready.",
    )
    # Built and checked here (a bad address raises now, in the web request); sent by a worker.
    return send_later(message, app=app)


def main(argv: list[str]) -> int:
    """Queue one welcome message and, with a result backend, print its result."""
    result = send_welcome(argv[1] if len(argv) > 1 else "ann@example.com")
    print(f"queued task {result.id}")
    if app.conf.result_backend:
        print(json.dumps(result.get(timeout=60), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
