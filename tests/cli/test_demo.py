"""``smtpkit demo`` and ``python -m smtpkit``: the main job end to end."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import Invoke


def test_demo_sends_through_the_full_stack(cli: Invoke) -> None:
    result = cli("demo")
    assert result.exit_code == 0, result.output
    assert "demo: OK" in result.stdout
    assert "Subject: Welcome to smtpkit, Ann Lee!" in result.stdout
    assert "over TLS: True  authenticated as: demo" in result.stdout
    assert "demo-password" not in result.stdout


def test_demo_json_via_python_m() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "smtpkit", "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is True
    assert data["received"]["tls"] is True
    assert data["received"]["auth_login"] == "demo"
    assert "audit@example.com" in data["received"]["rcpt_tos"]
    assert "audit@example.com" not in data["received"]["data"]  # Bcc never in the bytes
