"""The minimal Django settings the backend tests run with (no database, no apps).

Each test points the backend at its own DevServer with ``override_settings``.
"""

from __future__ import annotations

SECRET_KEY = "smtpkit-tests-not-secret"
USE_TZ = True
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, object] = {}
EMAIL_BACKEND = "smtpkit.contrib.django.EmailBackend"
DEFAULT_FROM_EMAIL = "Site <site@example.com>"
SERVER_EMAIL = "errors@example.com"
ADMINS = [("Ann Admin", "ann@example.com"), ("Bob Admin", "bob@example.com")]
MANAGERS = [("Meg Manager", "meg@example.com")]
