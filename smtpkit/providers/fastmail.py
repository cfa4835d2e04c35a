"""Fastmail."""

from __future__ import annotations

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

FASTMAIL = Provider(
    name="fastmail",
    host="smtp.fastmail.com",
    port=465,
    tls=TLSMode.IMPLICIT,
    auth_mechanisms=("PLAIN", "LOGIN"),
    note=(
        "Create an app password (Settings > Privacy & Security > App passwords) with SMTP "
        "access; the user name is the full Fastmail address."
    ),
    docs_url="https://www.fastmail.help/hc/en-us/articles/1500000278342-Server-names-and-ports",
)

PRESETS: tuple[Provider, ...] = (FASTMAIL,)
