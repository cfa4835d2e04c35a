"""Mailgun (US and EU regions are separate: an account exists in one of them)."""

from __future__ import annotations

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

_NOTE = (
    "Use the SMTP credentials of the sending domain (e.g. postmaster@mg.example.com and its "
    "SMTP password), not the API key or the dashboard password. Domains created in the EU "
    "region only work with mailgun-eu (smtp.eu.mailgun.org)."
)
_DOCS = "https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/send-smtp"

MAILGUN = Provider(
    name="mailgun",
    aliases=("mailgun-us",),
    host="smtp.mailgun.org",
    port=587,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("PLAIN", "LOGIN"),
    note=_NOTE,
    docs_url=_DOCS,
)

MAILGUN_EU = Provider(
    name="mailgun-eu",
    host="smtp.eu.mailgun.org",
    port=587,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("PLAIN", "LOGIN"),
    note=_NOTE,
    docs_url=_DOCS,
)

PRESETS: tuple[Provider, ...] = (MAILGUN, MAILGUN_EU)
