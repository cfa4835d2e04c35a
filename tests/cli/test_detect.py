"""``smtpkit detect``: probing loopback servers set up with implicit TLS, STARTTLS and none."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from conftest import Invoke, closed_port

from smtpkit.cli._detect import candidates_for
from smtpkit.devserver import DevServer


def _ca_bundle(tmp_path: Path, *servers: DevServer) -> str:
    """One PEM file trusting each server's own CA."""
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(b"".join(server.ca_pem for server in servers))
    return str(bundle)


def _detect(cli: Invoke, ports: list[int], *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = cli(
        "detect",
        "127.0.0.1",
        "--ports",
        ",".join(map(str, ports)),
        "--timeout",
        "2",
        "--json",
        *extra,
    )
    return result.exit_code, json.loads(result.stdout)


def test_prefers_implicit_tls_and_reports_each_port(
    cli: Invoke, smtp_server_factory: Callable[..., DevServer], tmp_path: Path
) -> None:
    start = smtp_server_factory
    implicit = start(tls="implicit", auth=True)
    starttls = start(tls="starttls", auth=True)
    plain = start(tls="none")
    closed = closed_port()
    ca = _ca_bundle(tmp_path, implicit, starttls)
    code, data = _detect(cli, [plain.port, starttls.port, implicit.port, closed], "--ca-file", ca)
    assert code == 0
    by_port = {r["port"]: r for r in data["results"]}
    assert by_port[implicit.port]["tls"] == "implicit"
    assert by_port[starttls.port]["tls"] == "starttls"
    assert by_port[plain.port]["tls"] == "none"
    assert by_port[closed]["reachable"] is False
    assert by_port[closed]["tls"] is None
    assert by_port[implicit.port]["certificate_valid"] is True
    assert by_port[starttls.port]["auth_mechanisms"] == ["PLAIN", "LOGIN", "CRAM-MD5"]
    assert "STARTTLS" in by_port[starttls.port]["extensions"]
    best = data["recommended"]
    assert (best["port"], best["tls"]) == (implicit.port, "implicit")
    assert best["dsn"].startswith(f"smtps://USER:PASSWORD@127.0.0.1:{implicit.port}")


def test_starttls_beats_plaintext(
    cli: Invoke, smtp_server_factory: Callable[..., DevServer], tmp_path: Path
) -> None:
    starttls = smtp_server_factory(tls="starttls")
    plain = smtp_server_factory(tls="none")
    code, data = _detect(
        cli, [plain.port, starttls.port], "--ca-file", _ca_bundle(tmp_path, starttls)
    )
    assert code == 0
    assert data["recommended"]["tls"] == "starttls"
    assert data["recommended"]["dsn"].startswith(f"smtp://127.0.0.1:{starttls.port}")


def test_untrusted_certificate_is_reported_not_hidden(
    cli: Invoke, smtp_server_factory: Callable[..., DevServer]
) -> None:
    server = smtp_server_factory(tls="implicit")
    code, data = _detect(cli, [server.port])
    assert code == 0
    (result,) = data["results"]
    assert result["tls"] == "implicit"
    assert result["certificate_valid"] is False
    assert "certificate verify failed" in result["certificate_error"]
    assert any("ca_file" in w for w in data["recommended"]["warnings"])


def test_plaintext_only_is_recommended_with_a_warning(
    cli: Invoke, smtp_server_factory: Callable[..., DevServer]
) -> None:
    plain = smtp_server_factory(tls="none")
    result = cli("detect", "127.0.0.1", "--ports", str(plain.port), "--timeout", "2")
    assert result.exit_code == 0
    assert f"smtp://127.0.0.1:{plain.port}?tls=none" in result.stdout
    assert "plaintext" in result.stdout


def test_nothing_found_exits_3(cli: Invoke) -> None:
    result = cli("detect", "127.0.0.1", "--ports", str(closed_port()), "--timeout", "1")
    assert result.exit_code == 3
    assert "No working SMTP server found" in result.stdout


def test_bad_ports_are_a_usage_error(cli: Invoke) -> None:
    result = cli("detect", "127.0.0.1", "--ports", "25,notaport")
    assert result.exit_code == 2
    assert "notaport" in result.output


def test_candidates_for_an_address() -> None:
    found = asyncio.run(candidates_for("ann@gmail.com", mx=False))
    assert found[0].host == "smtp.gmail.com"
    assert found[0].provider == "gmail"
    assert [c.host for c in found] == ["smtp.gmail.com", "mail.gmail.com"]
    other = asyncio.run(candidates_for("ann@example.org", mx=False))
    assert [c.host for c in other] == ["smtp.example.org", "mail.example.org"]
    host = asyncio.run(candidates_for("smtp.office365.com"))
    assert [(c.host, c.provider) for c in host] == [("smtp.office365.com", "office365")]
