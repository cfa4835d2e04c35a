"""``python -m smtpkit.devserver`` as a user runs it: a process that prints where to connect."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from smtpkit import Mailer, Message


@pytest.fixture
def devserver_process() -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "smtpkit.devserver", "--port", "0", "--auth", "ann:pw"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()
        process.stderr.close()


def test_module_entry_point_serves_and_prints_each_message(
    devserver_process: subprocess.Popen[str],
) -> None:
    assert devserver_process.stdout is not None
    dsn = ""
    for _ in range(10):
        line = devserver_process.stdout.readline()
        if line.startswith("DSN: "):
            dsn = line.removeprefix("DSN: ").strip()
            break
    assert dsn.startswith("smtp://ann:pw@127.0.0.1:")
    with Mailer.from_dsn(dsn) as mailer:
        mailer.send(Message(sender="a@example.com", to=["b@example.com"], subject="Ping", text="x"))
    while True:
        line = devserver_process.stdout.readline()
        if "Ping" in line or not line:
            break
    assert "a@example.com -> b@example.com | Ping" in line
    assert "TLS" in line
    devserver_process.send_signal(signal.SIGINT)
    assert devserver_process.wait(timeout=10) == 0
