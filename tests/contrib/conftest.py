"""A real Redis broker, a real Celery worker process and a DevServer, shared by a module.

``redis_url``: a ``redis-server`` on a free loopback port with persistence off, in a temporary
directory (skips the tests when ``redis-server`` is not installed; ``.ci/run`` installs it).
``mail_server``: a DevServer (STARTTLS, AUTH) the worker delivers into; faults and captures
are reset before each test. ``celery_worker``: ``python -m celery -A celery_worker_app worker`` with
the solo pool on a queue of its own, ``SMTPKIT_DSN`` pointing to ``mail_server``.
``celery_client``: the app-side Celery app the tests send with (broker and result backend
only; the task is not registered on it, as in a web process).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

celery = pytest.importorskip("celery", reason="Celery is not installed (smtpkit[celery])")
redis = pytest.importorskip("redis", reason="redis-py is not installed (smtpkit[celery])")

from celery_support import PASSWORD, Worker  # noqa: E402

from smtpkit.devserver import DevServer  # noqa: E402

HERE = Path(__file__).resolve().parent
STARTUP_TIMEOUT = 20.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on loopback, stopped after the session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian package redis-server; .ci/run has it)")
    directory = tmp_path_factory.mktemp("redis")
    port = _free_port()
    with (directory / "redis.log").open("wb") as output:
        # The child keeps its own copy of the file descriptor.
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(directory)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (directory / "redis.log").read_text(errors="replace")
                    pytest.fail(f"redis-server did not start:\n{log}")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        _stop(process)


@pytest.fixture(scope="module")
def mail_server() -> Iterator[DevServer]:
    """The SMTP server the worker delivers into (STARTTLS, AUTH ``user``/PASSWORD)."""
    with DevServer(tls="starttls", auth={"user": PASSWORD}) as server:
        yield server


@pytest.fixture
def smtp(mail_server: DevServer) -> DevServer:
    """``mail_server`` with no faults and nothing captured yet."""
    mail_server.set_faults()
    mail_server.clear()
    return mail_server


@pytest.fixture(scope="module")
def celery_worker(
    redis_url: str, mail_server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    """``python -m celery -A celery_worker_app worker --pool=solo`` on a queue of its own."""
    directory = tmp_path_factory.mktemp("worker")
    queue = f"smtpkit-test-{uuid.uuid4().hex[:8]}"
    log = directory / "worker.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "SMTPKIT_TEST_BROKER": redis_url,
        "SMTPKIT_DSN": mail_server.dsn,
    }
    command = [
        sys.executable, "-m", "celery", "-A", "celery_worker_app", "worker",
        "--pool=solo", "--concurrency=1", "-Q", queue, "-n", f"{queue}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=directory, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    worker = Worker(queue, log, process)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while " ready." not in worker.log_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Celery worker did not start:\n{worker.log_text()}")
            time.sleep(0.05)
        yield worker
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def celery_client(redis_url: str) -> Iterator[Any]:
    """The app side: broker and result backend, JSON only, no task registered."""
    from smtpkit.contrib.celery import json_only_config

    app = celery.Celery("smtpkit-tests-client")
    app.conf.update(json_only_config(), broker_url=redis_url, result_backend=redis_url)
    try:
        yield app
    finally:
        app.close()
