"""Mail merge: ``smtpkit send --recipients list.csv --template NAME`` with a resumable report.

The list has a few hundred rows with invalid addresses, a malformed row and recipients the
server refuses; runs are interrupted (a crash that left a partial report, Ctrl-C in a real
process, a failure every row would hit) and resumed: nothing is sent twice, nothing skipped.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Invoke, closed_port, fast

from smtpkit.devserver import DevServer
from smtpkit.testing import Respond

ROWS = 240
FROM = "News <news@example.com>"


def _templates(tmp_path: Path) -> Path:
    directory = tmp_path / "templates"
    directory.mkdir()
    (directory / "hello.subject.txt").write_text("Hello {{ name }}")
    (directory / "hello.txt").write_text("Hi {{ name }}, your plan is {{ plan }}.")
    return directory


def _csv(tmp_path: Path, rows: int = ROWS) -> tuple[Path, dict[str, str]]:
    """rows data rows; every 50th address is invalid, row 7 is malformed, 'refuse' ones get 550.

    Returns the path and the outcome each row's recipient should end with.
    """
    path = tmp_path / "list.csv"
    expected: dict[str, str] = {}
    lines = ["email,name,plan"]
    for number in range(1, rows + 1):
        if number == 7:
            lines.append("row7@example.com,Seven")  # one field short
            expected["7"] = "failed"
            continue
        if number % 50 == 0:
            address = f"broken {number}@@example.com"
            expected[str(number)] = "failed"
        elif number % 40 == 0:
            address = f"refuse{number}@example.com"
            expected[str(number)] = "refused"
        else:
            address = f"user{number}@example.com"
            expected[str(number)] = "accepted"
        lines.append(f'{address},"Name {number}",basic')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, expected


def _server(factory: Callable[..., DevServer]) -> DevServer:
    return factory(tls="none", faults=[Respond("RCPT", 550, "5.1.1 No such user", match="refuse")])


def _report(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def _delivered(server: DevServer) -> Counter[str]:
    return Counter(address for message in server.messages for address in message.rcpt_tos)


def _args(server: DevServer, tmp_path: Path, csv_path: Path, *extra: str) -> list[str]:
    return [
        "send",
        "--dsn",
        fast(server.dsn),
        "--from",
        FROM,
        "--recipients",
        str(csv_path),
        "--template",
        "hello",
        "--templates",
        str(tmp_path / "templates"),
        *extra,
    ]


def test_merge_reports_every_row(
    cli: Invoke, smtp_server_factory: Callable[..., DevServer], tmp_path: Path
) -> None:
    _templates(tmp_path)
    csv_path, expected = _csv(tmp_path)
    server = _server(smtp_server_factory)
    report = tmp_path / "report.csv"
    result = cli(*_args(server, tmp_path, csv_path, "--report", str(report), "--concurrency", "8"))
    assert result.exit_code == 1, result.output  # some rows refused or failed
    rows = _report(report)
    assert {r["row"]: r["status"] for r in rows} == expected
    assert len(rows) == ROWS
    malformed = next(r for r in rows if r["row"] == "7")
    assert "expected 3 fields" in malformed["error"]
    assert "found 2" in malformed["error"]
    refused = next(r for r in rows if r["row"] == "40")
    assert (refused["code"], refused["enhanced_code"]) == ("550", "5.1.1")
    invalid = next(r for r in rows if r["row"] == "50")
    assert invalid["error"] == "InvalidAddress"
    accepted = [r for r in rows if r["status"] == "accepted"]
    assert all(r["message_id"].startswith("<") for r in accepted)
    delivered = _delivered(server)
    assert set(delivered) == {r["recipient"] for r in accepted}
    assert max(delivered.values()) == 1
    message = next(m for m in server.messages if m.rcpt_tos == ("user3@example.com",))
    assert message.subject == "Hello Name 3"
    assert "Mail merge: accepted" in result.stdout


def test_resume_after_a_crash_sends_only_the_rest(
    cli: Invoke, smtp_server_factory: Callable[..., DevServer], tmp_path: Path
) -> None:
    _templates(tmp_path)
    csv_path, expected = _csv(tmp_path, rows=120)
    server = _server(smtp_server_factory)
    report = tmp_path / "report.csv"
    first = cli(*_args(server, tmp_path, csv_path, "--report", str(report)))
    assert first.exit_code == 1
    # Simulate a crash after 60 rows: keep the header and the first 60 entries, plus a line
    # cut off in the middle of being written. The server "forgets" nothing it received.
    lines = report.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = lines[:61]
    report.write_text("".join(kept) + "61,user6", encoding="utf-8")
    done_before = {
        r["recipient"] for r in _report(tmp_path / "report.csv") if r["status"] == "accepted"
    }
    server.clear()

    second = cli(*_args(server, tmp_path, csv_path, "--resume", str(report)))
    assert second.exit_code == 1, second.output
    assert "skipped" in second.stdout
    delivered = _delivered(server)
    assert not (set(delivered) & done_before), "a row accepted before was sent again"
    final = {}
    for row in _report(report):
        if row["row"].isdigit():
            final[row["row"]] = row["status"]
    assert final == expected  # nothing skipped: every row has its outcome


def test_ctrl_c_finishes_in_flight_rows_and_resume_completes(
    smtp_server_factory: Callable[..., DevServer], tmp_path: Path
) -> None:
    _templates(tmp_path)
    csv_path, expected = _csv(tmp_path, rows=200)
    server = _server(smtp_server_factory)
    report = tmp_path / "report.jsonl"
    command = [sys.executable, "-m", "smtpkit", *_args(server, tmp_path, csv_path)]
    process = subprocess.Popen(
        [*command, "--report", str(report), "--rate", "100", "--concurrency", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    try:
        server.wait_for(30, timeout=20)
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "--resume" in err
    entries = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    assert 30 <= len(entries) < 200
    first_run = _delivered(server)
    # Every message the server received was recorded as accepted: nothing in limbo.
    assert set(first_run) == {e["recipient"] for e in entries if e["status"] == "accepted"}

    resumed = subprocess.run(
        [*command, "--resume", str(report), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert resumed.returncode == 1, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["skipped"] == len([e for e in entries if e["status"] == "accepted"])
    total = _delivered(server)
    assert max(total.values()) == 1  # nothing sent twice
    final = {}
    for line in report.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        final[str(entry["row"])] = entry["status"]
    assert final == expected  # nothing skipped


def test_unreachable_server_stops_the_run(cli: Invoke, tmp_path: Path) -> None:
    _templates(tmp_path)
    csv_path, _ = _csv(tmp_path, rows=60)
    report = tmp_path / "report.csv"
    dsn = fast(f"smtp://127.0.0.1:{closed_port()}?tls=none")
    result = cli(
        "send",
        "--dsn",
        dsn,
        "--from",
        FROM,
        "--recipients",
        str(csv_path),
        "--template",
        "hello",
        "--templates",
        str(tmp_path / "templates"),
        "--report",
        str(report),
        "--concurrency",
        "2",
    )
    assert result.exit_code == 3, result.output
    assert "ConnectError" in result.stderr
    assert f"--resume {report}" in result.stderr
    rows = _report(report)
    assert 1 <= len(rows) <= 10  # stopped early, not 60 failures
    assert all(r["status"] == "failed" for r in rows)


def test_missing_variable_stops_before_sending(
    cli: Invoke, smtp_server_factory: Callable[..., DevServer], tmp_path: Path
) -> None:
    _templates(tmp_path)
    (tmp_path / "templates" / "hello.txt").write_text("Hi {{ name }}, code {{ coupon }}")
    csv_path, _ = _csv(tmp_path, rows=5)
    server = _server(smtp_server_factory)
    report = tmp_path / "report.csv"
    result = cli(*_args(server, tmp_path, csv_path, "--report", str(report)))
    assert result.exit_code == 2
    assert "TemplateError" in result.stderr
    assert "coupon" in result.stderr
    assert server.messages == []
    assert not report.exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("existing-report", "exists: continue it with --resume"),
        ("no-column", "no column 'email'"),
        ("changed-csv", "does not match the report"),
        ("no-template", "needs --template"),
    ],
)
def test_merge_usage_errors(
    cli: Invoke,
    smtp_server_factory: Callable[..., DevServer],
    tmp_path: Path,
    setup: str,
    message: str,
) -> None:
    _templates(tmp_path)
    csv_path, _ = _csv(tmp_path, rows=5)
    server = _server(smtp_server_factory)
    report = tmp_path / "report.csv"
    args = _args(server, tmp_path, csv_path)
    if setup == "existing-report":
        report.write_text("row,recipient,status\n")
        args += ["--report", str(report)]
    elif setup == "no-column":
        args += ["--to-column", "email"]
        csv_path.write_text("mail,name,plan\nann@example.com,Ann,basic\n")
    elif setup == "changed-csv":
        report.write_text("row,recipient,status\n1,someone@example.com,accepted\n")
        args += ["--resume", str(report)]
    else:
        args = [a for a in args if a not in ("--template", "hello")]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert server.messages == []
