"""Mailtrap: live sending, and the sandbox that captures mail without delivering it."""

from __future__ import annotations

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

MAILTRAP = Provider(
    name="mailtrap",
    aliases=("mailtrap-live",),
    host="live.smtp.mailtrap.io",
    port=587,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("PLAIN", "LOGIN"),
    default_username="api",
    note=(
        "Live (transactional) sending: the user name is 'api' (set for you) and the password an "
        "API token; the From domain must be verified. Bulk mail uses bulk.smtp.mailtrap.io."
    ),
    docs_url="https://docs.mailtrap.io/",
)

MAILTRAP_SANDBOX = Provider(
    name="mailtrap-sandbox",
    aliases=("mailtrap-testing",),
    host="sandbox.smtp.mailtrap.io",
    port=2525,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("PLAIN", "LOGIN", "CRAM-MD5"),
    note=(
        "Captures mail in a test inbox and never delivers it. Use the user name and password "
        "from that inbox's SMTP settings."
    ),
    docs_url="https://docs.mailtrap.io/",
)

PRESETS: tuple[Provider, ...] = (MAILTRAP, MAILTRAP_SANDBOX)
