"""OVHcloud hosted e-mail (MX Plan / web hosting mailboxes): a hosting example."""

from __future__ import annotations

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

OVH = Provider(
    name="ovh",
    aliases=("ovhcloud",),
    host="ssl0.ovh.net",
    port=465,
    tls=TLSMode.IMPLICIT,
    auth_mechanisms=("PLAIN", "LOGIN"),
    note=(
        "For MX Plan and web-hosting mailboxes; the user name is the full address. Exchange "
        "and Email Pro offers use another host, shown in the OVHcloud control panel."
    ),
    docs_url="https://help.ovhcloud.com/",
)

PRESETS: tuple[Provider, ...] = (OVH,)
