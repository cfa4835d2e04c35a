"""``python manage.py demo_password_reset [EMAIL]``: ask for a password reset as a visitor would.

Creates the database and a user with that address if needed, then submits Django's password
reset form (``PasswordResetView``) through Django's test client, exactly as a browser posting
the form would. The view renders the e-mail and sends it with ``EMAIL_BACKEND``, i.e. smtpkit.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import Client
from django.urls import reverse


class Command(BaseCommand):
    """Request a password-reset e-mail for EMAIL (default ann@example.com)."""

    help = "Create the demo user if needed and request a password-reset e-mail for it."

    def add_arguments(self, parser: CommandParser) -> None:
        """EMAIL, and the host name the link in the e-mail should use."""
        parser.add_argument("email", nargs="?", default="ann@example.com")
        parser.add_argument("--host", default="localhost:8000", help="host in the reset link")

    def handle(self, *args: Any, **options: Any) -> None:
        """Migrate, make the user, post the reset form."""
        email: str = options["email"]
        call_command("migrate", verbosity=0, interactive=False)
        user, created = get_user_model().objects.get_or_create(
            username=email.split("@", maxsplit=1)[0], defaults={"email": email}
        )
        if created:
            # Only users with a usable password get a reset e-mail.
            user.set_password(secrets.token_urlsafe(24))
            user.save()
        response = Client(HTTP_HOST=options["host"]).post(
            reverse("password_reset"), {"email": email}
        )
        if response.status_code != 302:
            raise CommandError(f"the reset form answered {response.status_code}, not a redirect")
        self.stdout.write(f"Password-reset e-mail sent to {email}.")
