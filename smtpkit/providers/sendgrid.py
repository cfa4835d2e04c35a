"""Twilio SendGrid."""

from __future__ import annotations

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

SENDGRID = Provider(
    name="sendgrid",
    host="smtp.sendgrid.net",
    port=587,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("PLAIN", "LOGIN"),
    default_username="apikey",
    note=(
        "The user name is literally 'apikey' (set for you) and the password is an API key with "
        "the Mail Send permission. From must be a verified sender or on an authenticated domain."
    ),
    docs_url=(
        "https://www.twilio.com/docs/sendgrid/for-developers/sending-email/"
        "integrating-with-the-smtp-api"
    ),
)

PRESETS: tuple[Provider, ...] = (SENDGRID,)
