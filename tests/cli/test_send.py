"""``smtpkit send``: one message from flags or a template, against real loopback servers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import Invoke, closed_port, fast

from smtpkit.devserver import DevServer
from smtpkit.testing import Respond

FROM = "App <app@example.com>"


def test_send_from_flags_prints_each_recipient(cli: Invoke, smtp_server: DevServer) -> None:
    result = cli(
        "send",
        "--dsn",
        smtp_server.dsn,
        "--from",
        FROM,
        "--to",
        "ann@example.com",
        "--cc",
        "cat@example.com",
        "--bcc",
        "audit@example.com",
        "--subject",
        "Hello",
        "--text",
        "Hi Ann",
        "--html",
        "<p>Hi <b>Ann</b></p>",
    )
    assert result.exit_code == 0, result.output
    (message,) = smtp_server.wait_for(1)
    assert message.subject == "Hello"
    assert set(message.rcpt_tos) == {"ann@example.com", "cat@example.com", "audit@example.com"}
    assert b"audit@example.com" not in message.data  # Bcc stays out of the bytes
    assert "ann@example.com" in result.stdout
    assert "accepted" in result.stdout
    assert "pass" not in result.output  # the DSN's password is never printed


def test_send_json_result_and_attachment(
    cli: Invoke, smtp_server: DevServer, tmp_path: Path
) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.7 fake")
    result = cli(
        "send",
        "--dsn",
        smtp_server.dsn,
        "--from",
        FROM,
        "--to",
        "ann@example.com",
        "--subject",
        "Report",
        "--text",
        "attached",
        "--attach",
        str(report),
        "--header",
        "X-Campaign: q3",
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["recipients"] == [
        {"address": "ann@example.com", "accepted": True, "reply": data["recipients"][0]["reply"]}
    ]
    (message,) = smtp_server.wait_for(1)
    assert data["message_id"] == message.header("Message-ID")
    assert [a.get_filename() for a in message.attachments] == ["report.pdf"]
    assert message.header("X-Campaign") == "q3"


def test_send_from_template_with_vars(cli: Invoke, smtp_server: DevServer, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "receipt.subject.txt").write_text("Receipt {{ number }} for {{ name }}")
    (templates / "receipt.html").write_text("<p>Total: {{ total }}</p>")
    variables = tmp_path / "vars.json"
    variables.write_text(json.dumps({"name": "Ann", "total": "12.50"}))
    result = cli(
        "send",
        "--dsn",
        smtp_server.dsn,
        "--from",
        FROM,
        "--to",
        "ann@example.com",
        "--template",
        "receipt",
        "--templates",
        str(templates),
        "--vars",
        str(variables),
        "--var",
        "number=42",
        "--var",
        "name=Ann Lee",
    )
    assert result.exit_code == 0, result.output
    (message,) = smtp_server.wait_for(1)
    assert message.subject == "Receipt 42 for Ann Lee"
    assert "Total: 12.50" in (message.text or "")


def test_missing_template_variable_is_a_usage_error(
    cli: Invoke, smtp_server: DevServer, tmp_path: Path
) -> None:
    (tmp_path / "hi.subject.txt").write_text("Hi {{ name }}")
    (tmp_path / "hi.txt").write_text("Hello {{ name }}, your code is {{ code }}")
    result = cli(
        "send",
        "--dsn",
        smtp_server.dsn,
        "--from",
        FROM,
        "--to",
        "ann@example.com",
        "--template",
        "hi",
        "--templates",
        str(tmp_path),
        "--var",
        "name=Ann",
    )
    assert result.exit_code == 2
    assert "TemplateError" in result.stderr
    assert "code" in result.stderr
    assert smtp_server.messages == []


def test_partial_refusal_exits_1(
    cli: Invoke, smtp_server_factory: Callable[..., DevServer]
) -> None:
    server = smtp_server_factory(
        tls="none", faults=[Respond("RCPT", 550, "5.1.1 No such user", match="bob@")]
    )
    result = cli(
        "send",
        "--dsn",
        fast(server.dsn),
        "--from",
        FROM,
        "--to",
        "ann@example.com",
        "--to",
        "bob@example.com",
        "--subject",
        "Hi",
        "--text",
        "x",
    )
    assert result.exit_code == 1, result.output
    assert "refused" in result.stdout
    assert "5.1.1" in result.stdout
    assert server.wait_for(1)[0].rcpt_tos == ("ann@example.com",)


def test_every_recipient_refused_is_permanent(
    cli: Invoke, smtp_server_factory: Callable[..., DevServer]
) -> None:
    server = smtp_server_factory(tls="none", faults=[Respond("RCPT", 550, "5.1.1 No such user")])
    result = cli(
        "send",
        "--dsn",
        fast(server.dsn),
        "--from",
        FROM,
        "--to",
        "bob@example.com",
        "--subject",
        "Hi",
        "--text",
        "x",
    )
    assert result.exit_code == 4
    assert "RecipientsRefused" in result.stderr
    assert "Hint:" in result.stderr  # 5.1.1 has a hint: the address does not exist


def test_unreachable_server_is_transient(cli: Invoke) -> None:
    port = closed_port()
    result = cli(
        "send",
        "--dsn",
        fast(f"smtp://127.0.0.1:{port}?tls=none"),
        "--from",
        FROM,
        "--to",
        "ann@example.com",
        "--subject",
        "Hi",
        "--text",
        "x",
    )
    assert result.exit_code == 3
    assert "ConnectError" in result.stderr
    assert "Hint:" in result.stderr
    assert f"127.0.0.1:{port}" in result.stderr


def test_wrong_password_is_permanent_and_not_echoed(cli: Invoke, smtp_server: DevServer) -> None:
    dsn = fast(smtp_server.dsn.replace("user:pass@", "user:Sup3rSecret@"))
    result = cli(
        "send",
        "--dsn",
        dsn,
        "--from",
        FROM,
        "--to",
        "ann@example.com",
        "--subject",
        "Hi",
        "--text",
        "x",
    )
    assert result.exit_code == 4
    assert "AuthenticationError" in result.stderr
    assert "Hint:" in result.stderr
    assert "Sup3rSecret" not in result.output


def test_username_with_password_from_environment(cli: Invoke, smtp_server: DevServer) -> None:
    dsn = f"smtp://127.0.0.1:{smtp_server.port}?ca_file={smtp_server.ca_file}"
    result = cli(
        "send",
        "--dsn",
        dsn,
        "--username",
        "user",
        "--from",
        FROM,
        "--to",
        "ann@example.com",
        "--subject",
        "Hi",
        "--text",
        "x",
        env={"SMTPKIT_PASSWORD": "pass"},
    )
    assert result.exit_code == 0, result.output
    assert smtp_server.wait_for(1)[0].auth_login == "user"


def test_configuration_from_environment(cli: Invoke, smtp_server: DevServer) -> None:
    result = cli(
        "send",
        "--to",
        "ann@example.com",
        "--subject",
        "Hi",
        "--text",
        "-",
        env={"SMTPKIT_DSN": smtp_server.dsn, "SMTPKIT_FROM": FROM},
        input="body from stdin\n",
    )
    assert result.exit_code == 0, result.output
    (message,) = smtp_server.wait_for(1)
    assert message.mail_from == "app@example.com"
    assert "body from stdin" in (message.text or "")


def test_bad_inputs_are_usage_errors(cli: Invoke, smtp_server: DevServer) -> None:
    base = ["send", "--from", FROM, "--subject", "Hi", "--text", "x"]
    nothing = cli(*base, "--to", "ann@example.com")
    assert nothing.exit_code == 2
    assert "no SMTP server configured" in nothing.stderr
    invalid = cli(*base, "--dsn", smtp_server.dsn, "--to", "not an address")
    assert invalid.exit_code == 2
    assert "InvalidAddress" in invalid.stderr
    provider = cli(*base, "--provider", "gmial", "--to", "ann@example.com")
    assert provider.exit_code == 2
    assert "did you mean gmail" in provider.stderr
    bad_dsn = cli(*base, "--dsn", "smtp://host?tls=sometimes", "--to", "ann@example.com")
    assert bad_dsn.exit_code == 2
    assert "ConfigError" in bad_dsn.stderr
    no_to = cli(*base, "--dsn", smtp_server.dsn)
    assert no_to.exit_code == 2
    assert "--to" in no_to.output
    header = cli(*base, "--dsn", smtp_server.dsn, "--to", "a@example.com", "--header", "X-A: b\rc")
    assert header.exit_code == 2
    assert "InvalidHeader" in header.stderr
    assert smtp_server.messages == []


def test_console_script_runs(smtp_server: DevServer) -> None:
    script = Path(sys.executable).with_name("smtpkit")
    done = subprocess.run(
        [
            str(script),
            "send",
            "--dsn",
            smtp_server.dsn,
            "--from",
            FROM,
            "--to",
            "ann@example.com",
            "--subject",
            "From the script",
            "--text",
            "x",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["recipients"][0]["accepted"] is True
    assert smtp_server.wait_for(1)[0].subject == "From the script"


def test_help_documents_exit_codes(cli: Invoke) -> None:
    result = cli("send", "--help")
    assert result.exit_code == 0
    assert "Exit codes" in result.stdout
    assert "transient" in result.stdout
    assert "--recipients" in result.stdout
    version = cli("--version")
    assert version.exit_code == 0
    assert "smtpkit" in version.stdout
