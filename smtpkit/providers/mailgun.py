"""Mailgun (US and EU regions are separate: an account exists in one of them)."""

from __future__ import annotations

from dataclasses import replace

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

MAILGUN = Provider(
    name="mailgun",
    aliases=("mailgun-us",),
    host="smtp.mailgun.org",
    port=587,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("PLAIN", "LOGIN"),
    note=(
        "Use the SMTP credentials of the sending domain (e.g. postmaster@mg.example.com and its "
        "SMTP password), not the API key or the dashboard password. Domains created in the EU "
        "region only work with mailgun-eu (smtp.eu.mailgun.org)."
    ),
    docs_url=(
        "https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/send-smtp"
    ),
)

# The EU region is the same service on another host.
MAILGUN_EU = replace(MAILGUN, name="mailgun-eu", aliases=(), host="smtp.eu.mailgun.org")

PRESETS: tuple[Provider, ...] = (MAILGUN, MAILGUN_EU)
