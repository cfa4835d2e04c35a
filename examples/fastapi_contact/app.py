"""A contact form in FastAPI that answers at once and sends the mail in the background.

The visitor's name, address and text go through :class:`smtpkit.contact.ContactForm`: From and To
are the site's own, the visitor's address is only the Reply-To, header injection and oversized
fields are refused (400), a hidden "website" field catches bots (answered like a success, nothing
sent), and each client address may send 5 messages an hour (429). A valid submission is answered
with 202 and sent after the response by :func:`smtpkit.contrib.fastapi.send_in_background`, over
the app's one :class:`~smtpkit.AsyncMailer` (opened and closed by the app's lifespan); a failure
is logged on ``smtpkit.contrib.fastapi``.

Try it against the development mail server (its web inbox shows what was sent)::

    smtpkit serve --tls none --no-auth        # SMTP on 127.0.0.1:1025, inbox on :8025
    SMTPKIT_DSN="smtp://127.0.0.1:1025?tls=none" uvicorn examples.fastapi_contact.app:app

then open http://127.0.0.1:8000/. ``CONTACT_SENDER`` and ``CONTACT_TO`` set the site's
addresses. Behind a reverse proxy, run uvicorn with ``--proxy-headers --forwarded-allow-ips``
so that the client address (the rate-limit key) is the visitor's and not the proxy's.
"""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import BackgroundTasks, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse

from smtpkit import MessageError
from smtpkit.contact import ContactForm, RateLimited, SpamSubmission
from smtpkit.contrib.fastapi import MailerDep, send_in_background, smtpkit_lifespan

FORM_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Contact us</title>
<style>.hp { position: absolute; left: -10000px; }</style></head>
<body>
  <h1>Contact us</h1>
  <form method="post" action="/contact">
    <p><label>Name <input name="name" maxlength="100"></label></p>
    <p><label>Email <input name="email" type="email" required></label></p>
    <p><label>Subject <input name="subject" maxlength="200"></label></p>
    <p><label>Message<br><textarea name="message" rows="8" cols="60" maxlength="10000"
       required></textarea></label></p>
    <p class="hp" aria-hidden="true"><label>Website
       <input name="website" tabindex="-1" autocomplete="off"></label></p>
    <p><button type="submit">Send</button></p>
  </form>
</body>
</html>
"""

#: The answer to an accepted submission, and to a bot's: the same, so that a bot learns nothing.
ACCEPTED = {"status": "accepted", "detail": "Thank you: your message is on its way."}

FormText = Annotated[str, Form()]


def create_app(contact_form: ContactForm | None = None) -> FastAPI:
    """Build the app. The SMTP server is read from ``SMTPKIT_*`` when the app starts."""
    contact = contact_form or ContactForm(
        sender=os.environ.get("CONTACT_SENDER", "Website <website@example.com>"),
        to=os.environ.get("CONTACT_TO", "team@example.com"),
    )
    app = FastAPI(title="Contact form", lifespan=smtpkit_lifespan())

    @app.get("/", response_class=HTMLResponse)
    async def show_form() -> str:
        return FORM_PAGE

    @app.post("/contact", status_code=202)
    async def submit(
        *,
        request: Request,
        mailer: MailerDep,
        tasks: BackgroundTasks,
        email: FormText,
        message: FormText,
        name: FormText = "",
        subject: FormText = "",
        website: FormText = "",  # the honeypot
    ) -> JSONResponse:
        try:
            built = contact.build(
                name=name,
                email=email,
                subject=subject,
                message=message,
                honeypot=website,
                client_key=request.client.host if request.client else None,
            )
        except SpamSubmission:
            return JSONResponse(ACCEPTED, status_code=202)
        except RateLimited:
            detail = "Too many messages from your address; please try again later."
            return JSONResponse({"status": "error", "detail": detail}, status_code=429)
        except MessageError as exc:
            field = getattr(exc, "field", None)
            return JSONResponse(
                {"status": "error", "field": field, "detail": str(exc)}, status_code=400
            )
        # Answer now; the mail goes out after the response (failures are logged, not lost).
        send_in_background(tasks, mailer, built)
        return JSONResponse(ACCEPTED, status_code=202)

    return app


app = create_app()
