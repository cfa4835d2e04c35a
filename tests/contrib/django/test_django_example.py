"""examples/django_password_reset runs as a user would run it, against the embedded server.

The project runs in subprocesses (``manage.py`` with its own settings module), so its settings
never meet the ones this test directory configured in-process.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("django", reason="Django is not installed (smtpkit[django])")

from smtpkit.devserver import DevServer

ROOT = Path(__file__).resolve().parents[3]
PROJECT = ROOT / "examples" / "django_password_reset"
LINK = re.compile(r"http://localhost:8000(/accounts/reset/([A-Za-z0-9_-]+)/([A-Za-z0-9-]+)/)")


def _manage(env: dict[str, str], *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_password_reset_link_arrives_and_opens_the_form(
    smtp_server_factory: Callable[..., DevServer], tmp_path: Path
) -> None:
    server = smtp_server_factory(tls="starttls", auth={"demo": "demo-password"})
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "EMAIL_", "SMTPKIT_"))
    }
    env.update(
        SMTPKIT_DSN=server.dsn,
        RESETDEMO_DATABASE=str(tmp_path / "db.sqlite3"),
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
    )

    out = _manage(env, "demo_password_reset", "ann@example.com")

    assert "Password-reset e-mail sent to ann@example.com" in out
    (captured,) = server.wait_for(1)
    assert captured.rcpt_tos == ("ann@example.com",)
    assert captured.mail_from == "no-reply@example.com"
    assert captured.subject == "Reset your password on localhost:8000"
    assert captured.tls is True
    assert captured.auth_login == "demo"
    text_link = LINK.search(captured.text or "")
    html_link = LINK.search(captured.html or "")
    assert text_link is not None
    assert html_link is not None
    assert text_link.group(1) == html_link.group(1)
    uid = text_link.group(2)
    assert base64.urlsafe_b64decode(uid + "=" * (-len(uid) % 4)) == b"1"  # the user's pk

    # The link is valid: Django's confirm view accepts the token and shows the new-password form.
    script = (
        "from django.test import Client;"
        f"r = Client(HTTP_HOST='localhost:8000').get({text_link.group(1)!r}, follow=True);"
        "print(r.status_code, 'Change my password' in r.content.decode())"
    )
    assert _manage(env, "shell", "--verbosity", "0", "-c", script).split()[-2:] == ["200", "True"]
