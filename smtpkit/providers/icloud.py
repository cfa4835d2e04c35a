"""iCloud Mail (Apple)."""

from __future__ import annotations

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

ICLOUD = Provider(
    name="icloud",
    aliases=("apple", "me-com"),
    host="smtp.mail.me.com",
    port=587,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("PLAIN", "LOGIN"),
    note=(
        "Needs two-factor authentication on the Apple Account and an app-specific password "
        "(account.apple.com); the user name is the iCloud Mail address."
    ),
    docs_url="https://support.apple.com/en-us/102525",
)

PRESETS: tuple[Provider, ...] = (ICLOUD,)
