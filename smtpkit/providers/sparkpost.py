"""SparkPost (US and EU accounts use different hosts)."""

from __future__ import annotations

from dataclasses import replace

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

SPARKPOST = Provider(
    name="sparkpost",
    host="smtp.sparkpostmail.com",
    port=587,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("PLAIN", "LOGIN"),
    default_username="SMTP_Injection",
    note=(
        "The user name is 'SMTP_Injection' (set for you) and the password an API key with the "
        "'Send via SMTP' permission. EU accounts use sparkpost-eu. Port 2525 also works where "
        "587 is blocked."
    ),
    docs_url="https://developers.sparkpost.com/api/smtp/",
)

# EU accounts: the same service on another host.
SPARKPOST_EU = replace(SPARKPOST, name="sparkpost-eu", host="smtp.eu.sparkpostmail.com")

PRESETS: tuple[Provider, ...] = (SPARKPOST, SPARKPOST_EU)
