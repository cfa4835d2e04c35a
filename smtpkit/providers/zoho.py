"""Zoho Mail (US data centre and EU data centre)."""

from __future__ import annotations

from dataclasses import replace

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

ZOHO = Provider(
    name="zoho",
    aliases=("zoho-com", "zohomail"),
    host="smtp.zoho.com",
    port=465,
    tls=TLSMode.IMPLICIT,
    auth_mechanisms=("PLAIN", "LOGIN"),
    note=(
        "Accounts on a custom domain (organisation accounts) use smtppro.zoho.com (or "
        "smtppro.zoho.eu) instead: override host=. With two-factor authentication on, use an "
        "application-specific password. Accounts in other data centres use their own host "
        "(smtp.zoho.in, smtp.zoho.com.au, ...)."
    ),
    docs_url="https://www.zoho.com/mail/help/zoho-smtp.html",
)

# The EU data centre: the same service on another host.
ZOHO_EU = replace(ZOHO, name="zoho-eu", aliases=(), host="smtp.zoho.eu")

PRESETS: tuple[Provider, ...] = (ZOHO, ZOHO_EU)
