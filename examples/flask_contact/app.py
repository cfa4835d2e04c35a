"""A contact form in Flask that cannot be turned into a spam relay.

The visitor's name, address and text go through :class:`smtpkit.contact.ContactForm`: From and To
are the site's own (fixed here, in the configuration), the visitor's address is only the
Reply-To, header injection and oversized fields are refused, a hidden "website" field catches
bots, and each client address may send 5 messages an hour. The message is sent by the
:class:`smtpkit.contrib.flask.SmtpKit` extension, configured from ``SMTPKIT_*`` settings.

Try it against the development mail server (its web inbox shows what was sent)::

    smtpkit serve --tls none --no-auth        # SMTP on 127.0.0.1:1025, inbox on :8025
    SMTPKIT_DSN="smtp://127.0.0.1:1025?tls=none" flask --app examples/flask_contact/app.py run

``CONTACT_SENDER`` and ``CONTACT_TO`` set the site's addresses. Behind a reverse proxy, wrap
the app in ``werkzeug.middleware.proxy_fix.ProxyFix`` so that ``request.remote_addr`` (the rate
limit key) is the visitor's address and not the proxy's; for CSRF protection add Flask-WTF.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app, render_template, request

from smtpkit import MessageError, TransportError
from smtpkit.contact import ContactForm, RateLimited, SpamSubmission
from smtpkit.contrib.flask import SmtpKit

mail = SmtpKit()
log = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; settings come from the environment, then from ``config``."""
    app = Flask(__name__)
    app.config.update(
        SMTPKIT_DSN=os.environ.get("SMTPKIT_DSN"),
        CONTACT_SENDER=os.environ.get("CONTACT_SENDER", "Website <website@example.com>"),
        CONTACT_TO=os.environ.get("CONTACT_TO", "team@example.com"),
    )
    app.config.update(config or {})
    mail.init_app(app)
    # One form (and so one rate limiter) per app; the addresses are checked here, at start-up.
    app.extensions["contact_form"] = ContactForm(
        sender=app.config["CONTACT_SENDER"], to=app.config["CONTACT_TO"]
    )

    def page(form: Mapping[str, str], error: str | None) -> str:
        contact: ContactForm = current_app.extensions["contact_form"]
        return render_template(
            "contact.html", form=form, error=error, honeypot=contact.honeypot_field
        )

    @app.get("/")
    def show_form() -> str:
        return page({}, None)

    @app.post("/")
    def submit() -> tuple[str, int]:
        contact: ContactForm = current_app.extensions["contact_form"]
        fields = request.form
        try:
            message = contact.build(
                name=fields.get("name", ""),
                email=fields.get("email", ""),
                subject=fields.get("subject", ""),
                message=fields.get("message", ""),
                honeypot=fields.get(contact.honeypot_field, ""),
                client_key=request.remote_addr,
            )
        except SpamSubmission:
            # Answer a bot exactly as a person, so that it learns nothing; send nothing.
            return render_template("thanks.html"), 200
        except RateLimited:
            error = "Too many messages from your address; please try again later."
            return page(fields, error), 429
        except MessageError as exc:
            # The text names the field ("email: ..."); Jinja escapes it in the page.
            return page(fields, str(exc)), 400
        try:
            mail.send(message)
        except TransportError as exc:
            log.error("contact form: sending failed: %s", exc)
            error = "Your message could not be sent just now; please try again later."
            return page(fields, error), 503
        return render_template("thanks.html"), 200

    return app
