"""Send through Gmail with OAuth2 (XOAUTH2) instead of a password.

Gmail accepts an app password (it needs 2-Step Verification) or an OAuth2 access token for the
scope ``https://mail.google.com/``. With a token, smtpkit authenticates with XOAUTH2 and asks
your *token provider* (any callable returning the access token, sync or async) for a token each
time it opens a connection, so a provider that refreshes expired tokens is all you need.

Replace :func:`get_access_token` (the PLACEHOLDER below) with your OAuth2 client; the usual one
is ``google-auth``, shown in its docstring. To try the rest of the script first, get a token from
the OAuth 2.0 Playground and put it in ``GMAIL_ACCESS_TOKEN``::

    GMAIL_USER=me@gmail.com GMAIL_ACCESS_TOKEN=ya29.... GMAIL_TO=friend@example.com \\
        python examples/oauth2_gmail.py

A DSN (``SMTPKIT_DSN``) cannot hold a callable, so OAuth2 is configured in Python, as here.
"""

from __future__ import annotations

import os
import sys

from smtpkit import Mailer, Message, SMTPConfig


# --------------------------------------------------------------------------------------------
# PLACEHOLDER: replace this function with your OAuth2 client. Nothing else needs to change.
# --------------------------------------------------------------------------------------------
def get_access_token() -> str:
    """Return a valid OAuth2 access token for the scope ``https://mail.google.com/``.

    A typical implementation with ``google-auth`` (``pip install google-auth``), using the
    ``token.json`` that Google's installed-app flow saved once::

        from google.auth.transport.requests import Request
        from google.oauth2.credentials import Credentials

        creds = Credentials.from_authorized_user_file("token.json", ["https://mail.google.com/"])

        def get_access_token() -> str:
            if not creds.valid:
                creds.refresh(Request())  # uses the refresh token; cached until it expires
            return creds.token

    For a Workspace service account with domain-wide delegation use
    ``google.oauth2.service_account.Credentials.from_service_account_file(...)
    .with_subject("me@your-domain.example")`` in the same way.
    """
    token = os.environ.get("GMAIL_ACCESS_TOKEN")
    if token:
        return token
    raise NotImplementedError(
        "examples/oauth2_gmail.py: get_access_token() is a placeholder; plug in your OAuth2 "
        "client or set GMAIL_ACCESS_TOKEN"
    )


def build_config(username: str) -> SMTPConfig:
    """Gmail's preset (smtp.gmail.com:465, implicit TLS, XOAUTH2 first) with a token provider."""
    # username is the full Gmail or Workspace address the token was issued for.
    return SMTPConfig.from_provider("gmail", username=username, token=get_access_token)


def main() -> int:
    """Send one message to GMAIL_TO from GMAIL_USER."""
    user = os.environ.get("GMAIL_USER")
    to = os.environ.get("GMAIL_TO")
    if not user or not to:
        print("set GMAIL_USER, GMAIL_TO (and GMAIL_ACCESS_TOKEN or edit get_access_token)")
        return 2
    message = Message(
        sender=user,  # Gmail rewrites any other From unless it is a verified "Send mail as" alias
        to=to,
        subject="Hello from smtpkit over OAuth2",
        text="Sent through smtp.gmail.com with XOAUTH2.",
    )
    with Mailer(build_config(user)) as mailer:
        result = mailer.send(message)
    print(f"accepted: {', '.join(result.accepted)}  ({result.message_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
