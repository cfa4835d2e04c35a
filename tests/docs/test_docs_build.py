"""The documentation site builds with ``mkdocs build --strict``: no broken link or anchor, no
missing nav page, and every API reference page imports and renders smtpkit's docstrings."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_MISSING = [
    name
    for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
    if importlib.util.find_spec(name.split(".")[0]) is None
]
pytestmark = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"docs toolchain not installed ({', '.join(_MISSING)}): pip install -e '.[docs]'",
)

KEY_PAGES = [
    "index.html",
    "testing/index.html",
    "security/index.html",
    "sending/index.html",
    "background/index.html",
    "integrations/index.html",
    "contact-form/index.html",
    "migration/phpmailer/index.html",
    "migration/django/index.html",
    "migration/fastapi-mail/index.html",
    "migration/flask-mail/index.html",
    "reference/index.html",
    "reference/messages/index.html",
    "reference/errors/index.html",
    "reference/testing/index.html",
    "reference/devserver/index.html",
    "reference/outbox/index.html",
    "reference/celery/index.html",
    "reference/integrations/index.html",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out), "-f", "mkdocs.yml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    problems = [line for line in proc.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert proc.returncode == 0, "mkdocs build --strict failed:\n" + (
        "\n".join(problems) or proc.stderr[-4000:]
    )
    return out


def test_build_is_strict_clean_and_has_key_pages(site: Path) -> None:
    missing = [page for page in KEY_PAGES if not (site / page).is_file()]
    assert not missing, f"pages missing from the built site: {missing}"


def test_reference_renders_docstrings(site: Path) -> None:
    messages = (site / "reference/messages/index.html").read_text(encoding="utf-8")
    # mkdocstrings found the public names through the smtpkit package...
    for anchor in ('id="smtpkit.Message"', 'id="smtpkit.Address.parse"', 'id="smtpkit.Envelope"'):
        assert anchor in messages
    # ...and the griffe extension turned doctest examples into highlighted pycon blocks
    # (without it they render as nested block quotes) and Sphinx roles into code spans.
    assert 'class="gp"' in messages
    assert "<blockquote>" not in messages
    assert ":class:" not in messages
    errors = (site / "reference/errors/index.html").read_text(encoding="utf-8")
    for name in ("SmtpkitError", "DeliveryUnknown", "RecipientsRefused", "AllTransportsFailed"):
        assert f'id="smtpkit.{name}"' in errors


def test_site_makes_no_external_requests(site: Path) -> None:
    # theme.font is off: no Google Fonts (or any other remote stylesheet or script) on view.
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "fonts.googleapis.com" not in index
    assert 'src="http' not in index
    assert "<link" in index
    for line in index.splitlines():
        if "<link" in line and "stylesheet" in line:
            assert "//" not in line.split("href=", 1)[1].split(">", 1)[0], line
