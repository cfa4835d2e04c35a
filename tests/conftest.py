"""Suite-wide settings."""

from __future__ import annotations

import os

import email_validator
from hypothesis import HealthCheck, settings

# The documented switch for special-use domains: email-validator's own TEST_ENVIRONMENT lets
# tests use addresses under the reserved ``.test`` domain.
email_validator.TEST_ENVIRONMENT = True

settings.register_profile(
    "default", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("ci", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
