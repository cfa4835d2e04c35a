"""Amazon SES (one endpoint per AWS region: pass ``region=``)."""

from __future__ import annotations

from smtpkit._config import TLSMode
from smtpkit.providers._preset import Provider

SES = Provider(
    name="ses",
    aliases=("amazon-ses", "aws-ses"),
    host="email-smtp.{region}.amazonaws.com",
    port=587,
    tls=TLSMode.STARTTLS,
    auth_mechanisms=("PLAIN", "LOGIN"),
    note=(
        "Needs region= and SES SMTP credentials, created in the SES console for that region "
        "(they are not your IAM access key and secret). New accounts are in the sandbox: they "
        "can only send to verified addresses until production access is granted."
    ),
    docs_url="https://docs.aws.amazon.com/ses/latest/dg/smtp-connect.html",
)

PRESETS: tuple[Provider, ...] = (SES,)
