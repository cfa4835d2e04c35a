"""Mailjet."""

from __future__ import annotations

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

MAILJET = Provider(
    name="mailjet",
    host="in-v3.mailjet.com",
    port=587,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("PLAIN", "LOGIN"),
    note=(
        "The user name is the API key and the password the secret key; the sender address or "
        "domain must be validated in Mailjet first."
    ),
    docs_url="https://dev.mailjet.com/smtp-relay/configuration/",
)

PRESETS: tuple[Provider, ...] = (MAILJET,)
