"""Yahoo Mail."""

from __future__ import annotations

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

YAHOO = Provider(
    name="yahoo",
    aliases=("ymail", "yahoo-mail"),
    host="smtp.mail.yahoo.com",
    port=465,
    tls=TLSMode.IMPLICIT,
    auth_mechanisms=("XOAUTH2", "PLAIN", "LOGIN"),
    note=(
        "Generate an app password in Yahoo's account security settings; the normal account "
        "password is refused. The user name is the full address."
    ),
    docs_url="https://help.yahoo.com/kb/SLN4075.html",
)

PRESETS: tuple[Provider, ...] = (YAHOO,)
