"""Postmark."""

from __future__ import annotations

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

POSTMARK = Provider(
    name="postmark",
    aliases=("postmarkapp",),
    host="smtp.postmarkapp.com",
    port=587,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("PLAIN", "LOGIN"),
    note=(
        "User name and password are both the Server API token. Mail goes to the default "
        "transactional stream; broadcast streams use smtp-broadcasts.postmarkapp.com and the "
        "X-PM-Message-Stream header."
    ),
    docs_url="https://postmarkapp.com/developer/user-guide/send-email-with-smtp",
)

PRESETS: tuple[Provider, ...] = (POSTMARK,)
