"""The Celery app of the test worker (``celery -A celery_worker_app worker``, see conftest.py).

The broker and result backend come from ``SMTPKIT_TEST_BROKER``, the SMTP server from
``SMTPKIT_DSN`` (read by the task on its first message). Retries are quick so that the
transient cases finish in well under a second.
"""

from __future__ import annotations

import os

from celery import Celery

from smtpkit.contrib.celery import json_only_config, make_send_task

app = Celery("smtpkit-tests")
app.conf.update(
    json_only_config(),
    broker_url=os.environ["SMTPKIT_TEST_BROKER"],
    result_backend=os.environ["SMTPKIT_TEST_BROKER"],
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
)

send = make_send_task(app, max_retries=2, retry_backoff=0.2, retry_backoff_max=0.5)
