"""Gmail (consumer accounts and Google Workspace mailboxes)."""

from __future__ import annotations

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

GMAIL = Provider(
    name="gmail",
    aliases=("google", "googlemail"),
    host="smtp.gmail.com",
    port=465,
    tls=TLSMode.IMPLICIT,
    auth_mechanisms=("XOAUTH2", "OAUTHBEARER", "PLAIN", "LOGIN"),
    note=(
        "Use an app password (needs 2-Step Verification) or OAuth2 (XOAUTH2 with a token "
        "provider); the account password is refused with 535 5.7.8. The user name is the full "
        "address, and Gmail rewrites From to that account unless the address is one of its "
        "verified 'Send mail as' aliases."
    ),
    docs_url="https://support.google.com/mail/answer/7126229",
)

PRESETS: tuple[Provider, ...] = (GMAIL,)
