"""IONOS (1&1) hosted e-mail: a hosting example."""

from __future__ import annotations

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

IONOS = Provider(
    name="ionos",
    host="smtp.ionos.com",
    port=587,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("PLAIN", "LOGIN"),
    note=(
        "The user name is the full address. Accounts from other IONOS country sites use their "
        "own host (smtp.ionos.de, smtp.ionos.co.uk, smtp.ionos.fr, ...): override host=."
    ),
    docs_url="https://www.ionos.com/help/email/general-topics/settings-for-your-email-programs-imap-pop3/",
)

PRESETS: tuple[Provider, ...] = (IONOS,)
