"""SparkPost (US and EU accounts use different hosts)."""

from __future__ import annotations

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

_NOTE = (
    "The user name is 'SMTP_Injection' (set for you) and the password an API key with the "
    "'Send via SMTP' permission. EU accounts use sparkpost-eu. Port 2525 also works where 587 "
    "is blocked."
)

SPARKPOST = Provider(
    name="sparkpost",
    host="smtp.sparkpostmail.com",
    port=587,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("PLAIN", "LOGIN"),
    default_username="SMTP_Injection",
    note=_NOTE,
    docs_url="https://developers.sparkpost.com/api/smtp/",
)

SPARKPOST_EU = Provider(
    name="sparkpost-eu",
    host="smtp.eu.sparkpostmail.com",
    port=587,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("PLAIN", "LOGIN"),
    default_username="SMTP_Injection",
    note=_NOTE,
    docs_url="https://developers.sparkpost.com/api/smtp/",
)

PRESETS: tuple[Provider, ...] = (SPARKPOST, SPARKPOST_EU)
