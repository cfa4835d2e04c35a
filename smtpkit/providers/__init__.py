"""Provider presets: the real host, port, TLS mode and AUTH mechanisms of common mail services.

One small module per provider defines its :class:`Provider` value(s); :mod:`._registry`
collects them. Use a preset through :meth:`smtpkit.SMTPConfig.from_provider` or as a DSN scheme::

    SMTPConfig.from_provider("gmail", username="me@gmail.com", password="app-password")
    SMTPConfig.from_provider("ses", region="eu-west-1", username="...", password="...")
    SMTPConfig.from_dsn("sendgrid://apikey:SG.key@default")

=====================  ================================  =====  ========  ========================
Name (aliases)         Host                              Port   TLS       Note
=====================  ================================  =====  ========  ========================
gmail                  smtp.gmail.com                    465    implicit  app password or OAuth2
google-workspace       smtp-relay.gmail.com              587    starttls  admin enables the relay
outlook (hotmail)      smtp-mail.outlook.com             587    starttls  OAuth2 (XOAUTH2)
office365 (m365)       smtp.office365.com                587    starttls  basic auth mostly off
yahoo                  smtp.mail.yahoo.com               465    implicit  app password
icloud                 smtp.mail.me.com                  587    starttls  app-specific password
zoho / zoho-eu         smtp.zoho.com / smtp.zoho.eu      465    implicit  smtppro for custom domains
fastmail               smtp.fastmail.com                 465    implicit  app password
sendgrid               smtp.sendgrid.net                 587    starttls  user ``apikey``
mailgun / mailgun-eu   smtp.mailgun.org / smtp.eu...     587    starttls  per-domain SMTP login
ses (amazon-ses)       email-smtp.REGION.amazonaws.com   587    starttls  region=, SES SMTP creds
postmark               smtp.postmarkapp.com              587    starttls  server token as both
brevo (sendinblue)     smtp-relay.brevo.com              587    starttls  SMTP key, not API key
mailjet                in-v3.mailjet.com                 587    starttls  API key / secret key
mailtrap               live.smtp.mailtrap.io             587    starttls  user ``api``
mailtrap-sandbox       sandbox.smtp.mailtrap.io          2525   starttls  test inbox, no delivery
sparkpost / -eu        smtp(.eu).sparkpostmail.com       587    starttls  user ``SMTP_Injection``
ovh                    ssl0.ovh.net                      465    implicit  hosting example
ionos                  smtp.ionos.com                    587    starttls  hosting example
=====================  ================================  =====  ========  ========================

>>> get_provider("office365").auth_mechanisms
('XOAUTH2', 'LOGIN')
"""

from __future__ import annotations

from smtpkit.providers._preset import Provider
from smtpkit.providers._registry import (
    all_providers,
    config_from_provider,
    find_provider,
    get_provider,
    provider_for_host,
    provider_names,
)

__all__ = [
    "Provider",
    "all_providers",
    "config_from_provider",
    "find_provider",
    "get_provider",
    "provider_for_host",
    "provider_names",
]
