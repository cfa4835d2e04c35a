"""Fixtures for the outbox tests: a plain development server, a fake clock, quick workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from smtpkit import AsyncMailer, Message, RetryPolicy
from smtpkit.devserver import DevServer


class FakeClock:
    """A settable wall clock (Unix seconds) for due times, leases and give-up."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "outbox.db"


@pytest.fixture
def server() -> Iterator[DevServer]:
    with DevServer(tls="none") as running:
        yield running


def mailer_for(server: DevServer) -> AsyncMailer:
    """A mailer that makes one attempt per send: the outbox's schedule does the retrying."""
    return AsyncMailer(server.config(), retry=RetryPolicy(retries=0))


def message(n: int = 0, **fields: object) -> Message:
    values: dict[str, object] = {
        "sender": "app@example.com",
        "to": [f"user{n}@example.com"],
        "subject": f"n{n}",
        "text": f"message {n}",
    }
    values.update(fields)
    return Message(**values)  # type: ignore[arg-type]
