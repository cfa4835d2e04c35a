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
# CI explores a fixed, larger set of examples: a rare input must fail a developer's run (random
# by default) rather than make a submission's CI pass or fail by chance.
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
