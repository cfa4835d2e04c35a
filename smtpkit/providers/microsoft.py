"""Microsoft: Outlook.com (consumer) and Microsoft 365 / Exchange Online."""

from __future__ import annotations

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

OUTLOOK = Provider(
    name="outlook",
    aliases=("hotmail", "live", "msn", "outlook-com"),
    host="smtp-mail.outlook.com",
    port=587,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("XOAUTH2", "LOGIN"),
    note=(
        "Microsoft is retiring password (basic) authentication for Outlook.com accounts; use "
        "OAuth2 (XOAUTH2 with a token provider). '535 5.7.139 basic authentication is disabled' "
        "means exactly that, and an app password does not help."
    ),
    docs_url=(
        "https://support.microsoft.com/en-us/office/"
        "pop-imap-and-smtp-settings-for-outlook-com-d088b986-291d-42b8-9564-9c414e2aa040"
    ),
)

OFFICE365 = Provider(
    name="office365",
    aliases=("microsoft365", "m365", "o365", "exchange-online"),
    host="smtp.office365.com",
    port=587,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("XOAUTH2", "LOGIN"),
    note=(
        "Basic authentication (a password) is disabled for most tenants: use OAuth2 (XOAUTH2) "
        "with an access token for the https://outlook.office365.com/.default scope, and have an "
        "administrator enable 'Authenticated SMTP' for the mailbox. 535 5.7.139 = basic auth "
        "disabled; 535 5.7.3 = wrong credentials; 554 5.2.252 SendAsDenied = From is not the "
        "mailbox or one it may send as."
    ),
    docs_url=(
        "https://learn.microsoft.com/en-us/exchange/client-developer/legacy-protocols/"
        "how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth"
    ),
)

PRESETS: tuple[Provider, ...] = (OUTLOOK, OFFICE365)
