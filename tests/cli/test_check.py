"""``smtpkit check``: step-by-step reports against loopback servers in each TLS setup."""

from __future__ import annotations

import json
from collections.abc import Callable

from conftest import Invoke, closed_port, fast

from smtpkit.devserver import DevServer


def _steps(output: str) -> dict[str, str]:
    data = json.loads(output)
    return {step["name"]: step["status"] for step in data["steps"]}


def test_starttls_with_auth_passes_every_step(cli: Invoke, smtp_server: DevServer) -> None:
    result = cli("check", smtp_server.dsn, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert [s["name"] for s in data["steps"]] == [
        "dns",
        "tcp",
        "greeting",
        "ehlo",
        "starttls",
        "tls",
        "ehlo",
        "auth",
    ]
    assert data["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    assert data["tls"]["hostname_match"] is True
    assert data["tls"]["issuer"]
    assert data["tls"]["days_left"] > 0
    assert data["auth_mechanisms"] == ["PLAIN", "LOGIN", "CRAM-MD5"]
    assert "SMTPUTF8" in data["extensions"]
    assert "8BITMIME" in data["extensions"]
    assert "pass" not in result.stdout.replace("passed", "")
    assert smtp_server.messages == []  # a check sends nothing by default


def test_table_output_and_test_message(
    cli: Invoke, smtp_server_factory: Callable[..., DevServer]
) -> None:
    server = smtp_server_factory(tls="implicit", auth={"user": "pass"}, data_size_limit=10_000_000)
    result = cli("check", "--dsn", server.dsn, "--send-to", "me@example.com")
    assert result.exit_code == 0, result.output
    for text in ("dns", "tls", "auth", "logged in as 'user'", "send", "SIZE", "10000000"):
        assert text in result.stdout
    (message,) = server.wait_for(1)
    assert message.rcpt_tos == ("me@example.com",)
    assert message.subject == "smtpkit check: test message"


def test_wrong_password_fails_at_auth_with_hint(cli: Invoke, smtp_server: DevServer) -> None:
    dsn = smtp_server.dsn.replace("user:pass@", "user:n0tIt@")
    result = cli("check", fast(dsn), "--json")
    assert result.exit_code == 4
    data = json.loads(result.stdout)
    auth = data["steps"][-1]
    assert (auth["name"], auth["status"]) == ("auth", "failed")
    assert "535" in auth["summary"]
    assert auth["hint"]
    assert "n0tIt" not in result.output


def test_closed_port_fails_at_tcp(cli: Invoke) -> None:
    port = closed_port()
    result = cli("check", f"smtp://127.0.0.1:{port}?tls=none", "--timeout", "2")
    assert result.exit_code == 3
    assert "FAILED" in result.stdout
    assert "connection refused" in result.stdout
    assert "Nothing accepted the connection" in result.stdout


def test_starttls_required_but_not_offered(
    cli: Invoke, smtp_server_factory: Callable[..., DevServer]
) -> None:
    server = smtp_server_factory(tls="none")
    result = cli("check", f"smtp://127.0.0.1:{server.port}", "--json", "--timeout", "2")
    assert result.exit_code == 4
    data = json.loads(result.stdout)
    failed = data["steps"][-1]
    assert failed["name"] == "starttls"
    assert failed["status"] == "failed"
    assert "STARTTLS" in failed["hint"]


def test_untrusted_certificate_is_explained(
    cli: Invoke, smtp_server_factory: Callable[..., DevServer]
) -> None:
    server = smtp_server_factory(tls="implicit")
    result = cli("check", f"smtps://127.0.0.1:{server.port}", "--json", "--timeout", "2")
    assert result.exit_code == 4
    step = json.loads(result.stdout)["steps"][-1]
    assert step["name"] == "tls"
    assert "certificate verify failed" in step["summary"]
    assert "ca_file" in step["hint"]


def test_plaintext_server_without_credentials(
    cli: Invoke, smtp_server_factory: Callable[..., DevServer]
) -> None:
    server = smtp_server_factory(tls="none")
    result = cli("check", server.dsn, "--json")
    assert result.exit_code == 0, result.output
    steps = _steps(result.stdout)
    assert steps["tls"] == "skipped"
    assert steps["auth"] == "skipped"


def test_group_dsn_is_a_usage_error(cli: Invoke) -> None:
    result = cli("check", "failover(smtps://a.example smtps://b.example)")
    assert result.exit_code == 2
    assert "one server" in result.stderr
