"""Configure Django once for this directory, from ``django_test_settings``.

``settings.configure()`` (not ``DJANGO_SETTINGS_MODULE``) so that nothing outside this
directory sees Django settings, and so that the top-level ``pytest`` run needs no environment.
The example project's test runs the project in a subprocess with its own settings.
"""

from __future__ import annotations

import pytest

pytest.importorskip("django", reason="Django is not installed (smtpkit[django])")

import django
import django_test_settings
from django.conf import settings

from smtpkit.testing import smtp_server_factory  # noqa: F401 - the fixture

if not settings.configured:
    settings.configure(
        **{name: getattr(django_test_settings, name) for name in dir(django_test_settings)
           if name.isupper()}
    )  # fmt: skip
    django.setup()
