"""The mail-merge, OAuth2 and PHPMailer-migration examples.

The runnable ones run as a user runs them (a subprocess with ``SMTPKIT_DSN``) against the
embedded server; the OAuth2 ones are only imported and inspected (they would need a real
provider and a real token), and must not touch the network.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from smtpkit import testing as _testing
from smtpkit._config import SMTPConfig, TLSMode
from smtpkit.devserver import DevServer
from smtpkit.testing import Respond

# The plugin's fixture, registered here under its own name, smtp_server_factory.
_server_factory_fixture = _testing.smtp_server_factory

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MIGRATION = EXAMPLES / "phpmailer_migration"
ServerFactory = Callable[..., DevServer]


def _run(script: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SMTPKIT_", "SMTP_"))}
    clean.update(env)
    return subprocess.run(
        [sys.executable, str(script), *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


# --------------------------------------------------------------------------- bulk merge


def test_bulk_merge_sends_one_message_per_row(
    smtp_server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = smtp_server_factory(tls="starttls", auth={"billing": "pw"})
    report = tmp_path / "report.csv"
    done = _run(
        EXAMPLES / "bulk_merge.py",
        "--report",
        str(report),
        env={"SMTPKIT_DSN": server.dsn},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 of 3 rows sent" in done.stdout
    by_rcpt = {m.rcpt_tos: m for m in server.messages}
    assert set(by_rcpt) == {("ann@example.com",), ("bob@example.org",), ("chloe@example.net",)}
    chloe = by_rcpt[("chloe@example.net",)]
    assert chloe.subject == "Chloé, your Team plan renews on 2027-02-01"
    assert chloe.text is not None
    assert "Hello Chloé," in chloe.text
    assert chloe.html is not None
    assert "<strong>Team</strong>" in chloe.html
    assert all(m.tls and m.auth_login == "billing" for m in server.messages)
    rows = list(csv.DictReader(report.read_text(encoding="utf-8").splitlines()))
    assert [(r["row"], r["email"], r["status"]) for r in rows] == [
        ("2", "ann@example.com", "sent"),
        ("3", "bob@example.org", "sent"),
        ("4", "chloe@example.net", "sent"),
    ]
    ids = {m.header("Message-ID") for m in server.messages}
    assert {r["message_id"] for r in rows} == ids


def test_bulk_merge_reports_bad_and_refused_rows_and_sends_the_rest(
    smtp_server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = smtp_server_factory(
        tls="none",
        faults=[Respond("RCPT", 550, "5.1.1 No such user", match="gone@example.org")],
    )
    source = tmp_path / "list.csv"
    source.write_text(
        "email,first_name,plan,renewal_date\n"
        "ok@example.com,Ok,Pro,2027-01-01\n"
        '"a@example.com, b@example.com",Two,Pro,2027-01-01\n'
        "gone@example.org,Gone,Pro,2027-01-01\n"
        "nocol@example.com,NoPlan\n"
        "also@example.com,Also,Pro,2027-01-02\n"
        "var@example.com,Var,{{ plan }},2027-01-03\n",
        encoding="utf-8",
    )
    report = tmp_path / "report.csv"
    done = _run(
        EXAMPLES / "bulk_merge.py",
        str(source),
        "--report",
        str(report),
        env={"SMTPKIT_DSN": server.dsn},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "3 of 6 rows sent" in done.stdout
    assert sorted(m.rcpt_tos for m in server.messages) == [
        ("also@example.com",),
        ("ok@example.com",),
        ("var@example.com",),
    ]
    rows = {r["row"]: r for r in csv.DictReader(report.read_text(encoding="utf-8").splitlines())}
    assert [rows[n]["status"] for n in ("2", "3", "4", "5", "6", "7")] == [
        "sent",
        "invalid",
        "refused",
        "invalid",
        "sent",
        "sent",
    ]
    assert rows["3"]["detail"].startswith("InvalidAddress:")
    assert "550 5.1.1" in rows["4"]["detail"]
    assert rows["5"]["detail"] == "row has missing columns ['plan', 'renewal_date']"
    # A CSV value is data, never template code.
    (var,) = [m for m in server.messages if m.rcpt_tos == ("var@example.com",)]
    assert var.subject == "Var, your {{ plan }} plan renews on 2027-01-03"


def test_bulk_merge_without_a_server_is_a_usage_error() -> None:
    done = _run(EXAMPLES / "bulk_merge.py", env={})
    assert done.returncode == 2
    assert "SMTPKIT_DSN" in done.stderr


def test_the_cli_mail_merge_named_in_the_docstring_sends_the_same_rows(
    smtp_server_factory: ServerFactory, tmp_path: Path
) -> None:
    module = _load(EXAMPLES / "bulk_merge.py", "smtpkit_example_bulk_merge")
    assert module.__doc__ is not None
    assert "smtpkit send --recipients" in module.__doc__
    server = smtp_server_factory(tls="none")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "smtpkit",
            "send",
            "--dsn",
            server.dsn,
            "--recipients",
            str(EXAMPLES / "bulk_merge_recipients.csv"),
            "--template",
            "merge",
            "--templates",
            str(EXAMPLES / "templates"),
            "--from",
            "billing@example.com",
            "--report",
            str(tmp_path / "report.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("SMTPKIT_")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(m.subject or "" for m in server.messages) == [
        "Ann, your Pro plan renews on 2027-01-15",
        "Bob, your Starter plan renews on 2027-01-20",
        "Chloé, your Team plan renews on 2027-02-01",
    ]


# --------------------------------------------------------------------------- OAuth2


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt fails the test: the OAuth2 examples are checked offline."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the OAuth2 examples must not touch the network in tests")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(params=["gmail", "microsoft365"])
def oauth_example(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> tuple[str, ModuleType]:
    for name in ("GMAIL_ACCESS_TOKEN", "GMAIL_USER", "GMAIL_TO"):
        monkeypatch.delenv(name, raising=False)
    for name in ("M365_ACCESS_TOKEN", "M365_USER", "M365_TO"):
        monkeypatch.delenv(name, raising=False)
    name = str(request.param)
    return name, _load(EXAMPLES / f"oauth2_{name}.py", f"smtpkit_example_oauth2_{name}")


EXPECTED_OAUTH = {
    "gmail": ("smtp.gmail.com", 465, TLSMode.IMPLICIT, "GMAIL"),
    "microsoft365": ("smtp.office365.com", 587, TLSMode.STARTTLS, "M365"),
}


def test_oauth2_example_builds_a_token_config(
    oauth_example: tuple[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, module = oauth_example
    host, port, tls, env = EXPECTED_OAUTH[name]
    assert module.__doc__
    assert "PLACEHOLDER" in (module.get_access_token.__doc__ or "") or "PLACEHOLDER" in (
        Path(module.__file__).read_text(encoding="utf-8")
    )
    config = module.build_config("me@example.com")
    assert isinstance(config, SMTPConfig)
    assert (config.host, config.effective_port, config.tls) == (host, port, tls)
    assert config.auth_mechanisms[0] == "XOAUTH2"
    assert config.credentials is not None
    assert config.credentials.username == "me@example.com"
    assert config.credentials.password is None
    assert config.credentials.token is module.get_access_token
    # The placeholder says so loudly instead of sending a wrong token...
    with pytest.raises(NotImplementedError, match="placeholder"):
        module.get_access_token()
    # ...and a token from the environment lets the rest of the script be tried as it is.
    monkeypatch.setenv(f"{env}_ACCESS_TOKEN", "tok-123")
    assert module.get_access_token() == "tok-123"


def test_oauth2_example_main_needs_its_settings(
    oauth_example: tuple[str, ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    _, module = oauth_example
    assert module.main() == 2
    assert "set " in capsys.readouterr().out


# --------------------------------------------------------------------------- PHPMailer

PHP_OPTIONS = [
    "isSMTP",
    "Host",
    "SMTPAuth",
    "Username",
    "Password",
    "SMTPSecure",
    "Port",
    "setFrom",
    "addAddress",
    "addReplyTo",
    "addCC",
    "addBCC",
    "addAttachment",
    "isHTML",
    "Subject",
    "Body",
    "AltBody",
    "send",
    "ErrorInfo",
]


def test_the_php_script_uses_every_option_and_the_readme_maps_each() -> None:
    php = (MIGRATION / "phpmailer_script.php").read_text(encoding="utf-8")
    used = set(re.findall(r"\$mail->(\w+)", php))
    assert set(PHP_OPTIONS) <= used
    readme = (MIGRATION / "README.md").read_text(encoding="utf-8")
    mapped = set(re.findall(r"\$mail->(\w+)", readme))
    assert used <= mapped, f"not in README.md: {sorted(used - mapped)}"
    python = (MIGRATION / "smtpkit_equivalent.py").read_text(encoding="utf-8")
    commented = set(re.findall(r"\$mail->(\w+)", python))
    assert set(PHP_OPTIONS) <= commented, sorted(set(PHP_OPTIONS) - commented)
    for note in ("ENCRYPTION_STARTTLS", "ENCRYPTION_SMTPS", "SMTPAutoTLS", "SMTPDebug"):
        assert note in readme
    for target in ("smtps://", "465", "587", "transcript=True", ".hint", "opportunistic"):
        assert target in readme


def test_phpmailer_config_matches_the_php_script() -> None:
    module = _load(MIGRATION / "smtpkit_equivalent.py", "smtpkit_example_phpmailer")
    config = module.phpmailer_config("secret")
    assert (config.host, config.effective_port, config.tls) == (
        "smtp.example.com",
        587,
        TLSMode.STARTTLS,
    )
    assert config.credentials is not None
    assert config.credentials.username == "orders@example.com"
    assert config.credentials.password is not None
    assert config.credentials.password.reveal() == "secret"


def test_the_smtpkit_equivalent_without_a_password_says_what_to_set() -> None:
    done = _run(MIGRATION / "smtpkit_equivalent.py", env={})
    assert done.returncode == 2
    assert "SMTP_PASSWORD" in done.stderr


def test_the_smtpkit_equivalent_sends_what_the_php_script_sends(
    smtp_server_factory: ServerFactory,
) -> None:
    server = smtp_server_factory(tls="starttls", auth={"orders@example.com": "secret"})
    done = _run(MIGRATION / "smtpkit_equivalent.py", env={"SMTPKIT_DSN": server.dsn})
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Message sent")
    (captured,) = server.messages
    assert captured.tls
    assert captured.auth_login == "orders@example.com"
    assert captured.mail_from == "orders@example.com"
    assert captured.rcpt_tos == ("ann@example.org", "accounts@example.com", "archive@example.com")
    assert captured.header("From") == "Example Shop <orders@example.com>"
    assert captured.header("To") == "Ann Lee <ann@example.org>"
    assert captured.header("Reply-To") == "Example Support <support@example.com>"
    assert captured.header("Cc") == "accounts@example.com"
    assert captured.header("Bcc") is None
    assert b"archive@example.com" not in captured.data
    assert captured.subject == "Your order #1001"
    assert captured.html is not None
    assert "<b>#1001</b>" in captured.html
    assert captured.text is not None
    assert "thanks for your order #1001." in captured.text
    names = [part.get_filename() for part in captured.attachments]
    assert names == ["terms.txt", "terms-2027.txt"]
    terms = (MIGRATION / "terms.txt").read_bytes()
    assert all(part.get_payload(decode=True) == terms for part in captured.attachments)


def test_the_smtpkit_equivalent_reports_errors_like_error_info(
    smtp_server_factory: ServerFactory,
) -> None:
    server = smtp_server_factory(tls="starttls", auth={"orders@example.com": "secret"})
    wrong = server.dsn.replace(":secret@", ":wrong-password@")
    assert wrong != server.dsn
    done = _run(MIGRATION / "smtpkit_equivalent.py", env={"SMTPKIT_DSN": wrong, "SMTP_DEBUG": "1"})
    assert done.returncode == 1
    assert done.stdout.startswith("Message could not be sent. Mailer Error: authentication")
    assert "Hint: " in done.stdout
    # SMTPDebug -> transcript=True: the conversation, with the AUTH payload redacted.
    assert "C: STARTTLS" in done.stdout
    assert "C: AUTH PLAIN ***" in done.stdout
    assert "wrong-password" not in done.stdout + done.stderr
    assert server.messages == []
