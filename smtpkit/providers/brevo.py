"""Brevo (formerly Sendinblue)."""

from __future__ import annotations

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

BREVO = Provider(
    name="brevo",
    aliases=("sendinblue",),
    host="smtp-relay.brevo.com",
    port=587,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("PLAIN", "LOGIN"),
    note=(
        "The user name is the SMTP login shown under Settings > SMTP & API (not necessarily "
        "your account address) and the password is an SMTP key, not an API key."
    ),
    docs_url="https://developers.brevo.com/docs/smtp-integration",
)

PRESETS: tuple[Provider, ...] = (BREVO,)
