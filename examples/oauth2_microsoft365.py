"""Send through Microsoft 365 (Exchange Online) with OAuth2 (XOAUTH2).

Basic authentication (a password) is disabled for most Microsoft 365 tenants, and an app password
does not bring it back: SMTP AUTH needs an OAuth2 access token for the scope
``https://outlook.office365.com/.default`` (app-only) or ``https://outlook.office.com/SMTP.Send``
(delegated, on behalf of a signed-in user). An administrator must also enable "Authenticated
SMTP" for the mailbox. smtpkit calls your *token provider* (any callable returning the access
token, sync or async) each time it opens a connection.

Replace :func:`get_access_token` (the PLACEHOLDER below) with your OAuth2 client; the usual one
is MSAL, shown in its docstring. To try the rest of the script with a token you already have::

    M365_USER=me@contoso.example M365_ACCESS_TOKEN=eyJ0... M365_TO=friend@example.com \\
        python examples/oauth2_microsoft365.py

Errors you may meet (each comes with a ``.hint``): ``535 5.7.139`` basic authentication is
disabled (you sent a password), ``535 5.7.3`` the token or user is wrong, ``554 5.2.252
SendAsDenied`` the From is not the mailbox (or one it may send as). For personal Outlook.com
accounts use the ``"outlook"`` preset instead of ``"office365"``.
"""

from __future__ import annotations

import os
import sys

from smtpkit import Mailer, Message, SMTPConfig


# --------------------------------------------------------------------------------------------
# PLACEHOLDER: replace this function with your OAuth2 client. Nothing else needs to change.
# --------------------------------------------------------------------------------------------
def get_access_token() -> str:
    """Return a valid OAuth2 access token that Exchange Online accepts for SMTP AUTH.

    A typical app-only implementation with MSAL (``pip install msal``); the app registration
    needs the ``SMTP.SendAsApp`` permission and an Exchange service principal with access to
    the mailbox (Microsoft's guide: ``smtpkit.providers.get_provider("office365").docs_url``)::

        import msal

        app = msal.ConfidentialClientApplication(
            client_id="00000000-0000-0000-0000-000000000000",
            authority="https://login.microsoftonline.com/<tenant-id>",
            client_credential=os.environ["M365_CLIENT_SECRET"],
        )

        def get_access_token() -> str:
            # MSAL caches the token and fetches a new one shortly before it expires.
            result = app.acquire_token_for_client(
                scopes=["https://outlook.office365.com/.default"]
            )
            if "access_token" not in result:
                raise RuntimeError(result.get("error_description", "no token"))
            return result["access_token"]

    For a user's own mailbox (delegated), use ``msal.PublicClientApplication`` with
    ``acquire_token_silent`` / ``acquire_token_interactive`` and the scope
    ``https://outlook.office.com/SMTP.Send``.
    """
    token = os.environ.get("M365_ACCESS_TOKEN")
    if token:
        return token
    raise NotImplementedError(
        "examples/oauth2_microsoft365.py: get_access_token() is a placeholder; plug in your "
        "OAuth2 client (MSAL) or set M365_ACCESS_TOKEN"
    )


def build_config(username: str) -> SMTPConfig:
    """The office365 preset (smtp.office365.com:587, STARTTLS, XOAUTH2) with a token provider."""
    # username is the mailbox the token may send as (its primary SMTP address).
    return SMTPConfig.from_provider("office365", username=username, token=get_access_token)


def main() -> int:
    """Send one message to M365_TO from the M365_USER mailbox."""
    user = os.environ.get("M365_USER")
    to = os.environ.get("M365_TO")
    if not user or not to:
        print("set M365_USER, M365_TO (and M365_ACCESS_TOKEN or edit get_access_token)")
        return 2
    message = Message(
        sender=user,  # must be the mailbox itself or an address it has Send As rights for
        to=to,
        subject="Hello from smtpkit over OAuth2",
        text="Sent through smtp.office365.com with XOAUTH2.",
    )
    with Mailer(build_config(user)) as mailer:
        result = mailer.send(message)
    print(f"accepted: {', '.join(result.accepted)}  ({result.message_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
