"""``smtpkit serve`` in a real process: it prints where to connect, stores, serves, stops."""

from __future__ import annotations

import json
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from smtpkit.cli._serve import is_loopback, serve

# The real entry point, in its own process (Ctrl-C and SIGTERM are real signals).
COMMAND = [sys.executable, "-m", "smtpkit", "serve"]


@dataclass
class Running:
    process: subprocess.Popen[str]
    banner: str

    def field(self, label: str) -> str:
        match = re.search(rf"^\s+{label}\s+(\S+)", self.banner, re.MULTILINE)
        assert match, self.banner
        return match.group(1)

    @property
    def smtp_port(self) -> int:
        return int(self.field("SMTP").rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        return self.field("Web inbox")

    def stop(self, sig: int = signal.SIGINT) -> tuple[str, str]:
        self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=15)
        return out, err


def start(*args: str) -> Running:
    process = subprocess.Popen(
        [*COMMAND, "--smtp-port", "0", "--http-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if "Ctrl-C" in line:
            break
    else:
        out, err = process.communicate(timeout=5)
        pytest.fail(f"serve ended early:\n{''.join(lines)}{out}\n{err}")
    return Running(process, "".join(lines))


@pytest.fixture
def running() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for item in started:
        if item.process.poll() is None:
            item.process.kill()
            item.process.communicate(timeout=5)


def send(port: int, ca_file: str, subject: str, login: tuple[str, str] | None) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.starttls(context=ssl.create_default_context(cafile=ca_file))
        if login:
            client.login(*login)
        client.sendmail(
            "app@example.com",
            ["dev@example.com"],
            f"From: app@example.com\r\nTo: dev@example.com\r\nSubject: {subject}\r\n\r\nhi\r\n",
        )


def test_serve_stores_and_shows_mail_and_stops_cleanly_on_ctrl_c(
    running: list[Running], tmp_path: Path
) -> None:
    store = tmp_path / "mail"
    server = start("--dir", str(store))
    running.append(server)
    banner = server.banner
    assert "for development only" in banner
    assert server.url.startswith("http://127.0.0.1:")
    assert str(store) in banner
    assert server.field("DSN").startswith("smtp://")
    # Any user name and password is accepted by default.
    send(server.smtp_port, server.field("CA certificate"), "From the app", ("any", "thing"))
    with urllib.request.urlopen(server.url + "api/messages", timeout=5) as response:
        listing = json.load(response)
    assert [m["subject"] for m in listing["messages"]] == ["From the app"]
    assert len(list(store.glob("*.eml"))) == 1

    out, err = server.stop()
    assert server.process.returncode == 0, err
    assert "From the app" in out  # one line per message
    assert out.rstrip().endswith("Stopped.")
    assert "Traceback" not in err
    assert len(list(store.glob("*.eml"))) == 1  # --dir is kept


def test_the_default_directory_is_temporary_and_sigterm_also_stops(
    running: list[Running],
) -> None:
    server = start("--no-auth", "--quiet")
    running.append(server)
    directory = Path(server.field("Messages"))
    assert "temporary" in server.banner
    assert directory.is_dir()
    assert "no AUTH" in server.banner
    send(server.smtp_port, server.field("CA certificate"), "quiet", None)
    out, err = server.stop(signal.SIGTERM)
    assert server.process.returncode == 0, err
    assert "quiet" not in out
    assert not directory.exists()


def test_only_the_given_logins_are_accepted(running: list[Running]) -> None:
    server = start("--auth", "dev:s3cret")
    running.append(server)
    ca = server.field("CA certificate")
    assert "dev:s3cret@" in server.field("DSN")
    with pytest.raises(smtplib.SMTPAuthenticationError):
        send(server.smtp_port, ca, "refused", ("dev", "wrong"))
    send(server.smtp_port, ca, "accepted", ("dev", "s3cret"))
    server.stop()


def test_a_busy_port_is_a_clear_error_not_a_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*COMMAND, "--smtp-port", "0", "--http-port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 2
    assert f"cannot listen for the web inbox on 127.0.0.1:{port}" in result.stderr
    assert "--http-port" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--auth", "nocolon"], "expected USER:PASSWORD"),
        (["--auth", "a:b", "--no-auth"], "contradict"),
        (["--tls", "ssl"], "Invalid value for '--tls'"),
        (["--smtp-port", "70000"], "Invalid value for '--smtp-port'"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(serve, args)
    assert result.exit_code == 2
    assert message in result.output


def test_help_says_development_only() -> None:
    result = CliRunner().invoke(serve, ["--help"])
    assert result.exit_code == 0
    assert "for development only" in result.output
    assert "--http-port" in result.output


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
