"""Google Workspace SMTP relay (smtp-relay.gmail.com), for whole domains."""

from __future__ import annotations

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

GOOGLE_WORKSPACE = Provider(
    name="google-workspace",
    aliases=("google-relay", "gmail-relay", "workspace-relay"),
    host="smtp-relay.gmail.com",
    port=587,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("PLAIN", "LOGIN"),
    note=(
        "A Workspace administrator must enable the SMTP relay service (Admin console > Apps > "
        "Google Workspace > Gmail > Routing > SMTP relay) and allow your IP addresses and/or "
        "SMTP authentication. Senders must be in the organisation's domains. Without SMTP AUTH, "
        "configure no credentials and rely on the IP allow-list."
    ),
    docs_url="https://support.google.com/a/answer/2956491",
)

PRESETS: tuple[Provider, ...] = (GOOGLE_WORKSPACE,)
