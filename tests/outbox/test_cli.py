"""``smtpkit outbox ...`` through click's test runner, against a real outbox file and server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from smtpkit.cli._outbox import outbox as outbox_command
from smtpkit.devserver import DevServer, Respond
from smtpkit.outbox import Outbox, Status

from .conftest import message


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def filled(db: Path) -> list[int]:
    with Outbox(db) as outbox:
        return [outbox.enqueue(message(n)) for n in range(3)]


def _run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(outbox_command, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_work_until_idle_sends_everything(
    runner: CliRunner, db: Path, filled: list[int], server: DevServer
) -> None:
    server.set_faults(Respond("RCPT", 550, "5.1.1 No such user", match="user2@"))
    dsn = f"smtp://{server.host}:{server.port}?tls=none"
    out = _run(runner, "work", "--db", str(db), "--dsn", dsn, "--until-idle")
    assert "sent=2" in out
    assert "failed=1" in out
    assert len(server.messages) == 2


def test_status_and_list(runner: CliRunner, db: Path, filled: list[int]) -> None:
    out = _run(runner, "status", "--db", str(db))
    assert "queued    3" in out
    stats = json.loads(_run(runner, "status", "--db", str(db), "--json"))
    assert stats["counts"]["queued"] == 3
    assert stats["waiting"] == 3
    listed = _run(runner, "list", "--db", str(db))
    assert "user0@example.com" in listed
    assert len(listed.splitlines()) == 4
    entries = json.loads(_run(runner, "list", "--db", str(db), "--status", "sent", "--json"))
    assert entries == []
    entries = json.loads(_run(runner, "list", "--db", str(db), "--limit", "1", "--json"))
    assert [e["id"] for e in entries] == filled[:1]


def test_db_from_the_environment(runner: CliRunner, db: Path, filled: list[int]) -> None:
    result = runner.invoke(outbox_command, ["status", "--json"], env={"SMTPKIT_OUTBOX": str(db)})
    assert result.exit_code == 0
    assert json.loads(result.output)["total"] == 3


def test_show_and_raw(runner: CliRunner, db: Path, filled: list[int]) -> None:
    shown = json.loads(_run(runner, "show", str(filled[0]), "--db", str(db)))
    assert shown["status"] == "queued"
    assert shown["recipients"][0]["state"] == "pending"
    raw = runner.invoke(outbox_command, ["show", str(filled[0]), "--db", str(db), "--raw"])
    assert raw.exit_code == 0
    assert raw.stdout_bytes.startswith(b"From: ") or b"\r\nSubject: n0\r\n" in raw.stdout_bytes
    missing = runner.invoke(outbox_command, ["show", "999", "--db", str(db)])
    assert missing.exit_code == 1
    assert "no message 999" in missing.output


def test_retry_and_its_errors(runner: CliRunner, db: Path, filled: list[int]) -> None:
    out = _run(runner, "retry", str(filled[0]), "--db", str(db))
    assert "due now" in out
    missing = runner.invoke(outbox_command, ["retry", "999", "--db", str(db)])
    assert missing.exit_code == 1
    assert "no message 999" in missing.output


def test_purge_sent_before(
    runner: CliRunner, db: Path, filled: list[int], server: DevServer
) -> None:
    with Outbox(db) as outbox:
        outbox.run(server.config(), stop_when_idle=True, poll_interval=0.02)
    kept = json.loads(
        _run(runner, "purge", "--db", str(db), "--sent-before", "2000-01-01", "--json")
    )
    assert kept == {"deleted": 0}
    out = _run(runner, "purge", "--db", str(db), "--sent-before", "2999-01-01T00:00:00+00:00")
    assert "deleted 3" in out
    with Outbox(db) as outbox:
        assert outbox.status().counts[Status.SENT] == 0
    bad = runner.invoke(outbox_command, ["purge", "--db", str(db), "--sent-before", "soon"])
    assert bad.exit_code == 2
    assert "ISO" in bad.output


def test_inspection_never_creates_a_missing_outbox(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    result = runner.invoke(outbox_command, ["status", "--db", str(path)])
    assert result.exit_code == 1
    assert "no outbox" in result.output
    assert not path.exists()


def test_work_rejects_a_bad_dsn(runner: CliRunner, db: Path) -> None:
    result = runner.invoke(outbox_command, ["work", "--db", str(db), "--dsn", "smtp://h?tls=x"])
    assert result.exit_code == 1
    assert "--dsn" in result.output
