"""Settings of the password-reset example: Django's auth views, mail sent by smtpkit.

The one line that matters for smtpkit is ``EMAIL_BACKEND``. Where to send comes from
``SMTPKIT_DSN`` (for the development server, the DSN that ``python -m smtpkit.devserver``
prints, which carries the CA file to trust); without it, Django's usual ``EMAIL_*`` settings
below apply, with smtpkit's secure default of STARTTLS required.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# A fixed key is fine for a demo that runs on loopback; never ship one.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-demo-key-do-not-deploy")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

INSTALLED_APPS = [
    "resetdemo",  # first, so that its registration/ templates win over django.contrib.auth's
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "resetdemo.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("RESETDEMO_DATABASE", str(BASE_DIR / "db.sqlite3")),
    }
}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- mail ---------------------------------------------------------------------------------
EMAIL_BACKEND = "smtpkit.contrib.django.EmailBackend"
DEFAULT_FROM_EMAIL = "Reset Demo <no-reply@example.com>"

# Takes precedence over the EMAIL_* settings when set.
SMTPKIT_DSN = os.environ.get("SMTPKIT_DSN")

# Django's own settings, used when SMTPKIT_DSN is not set (a real submission server).
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = True
EMAIL_TIMEOUT = 30
