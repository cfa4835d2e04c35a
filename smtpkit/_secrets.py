"""A string that never shows itself: passwords, API keys, SMTP keys.

``Secret`` prints as ``***`` everywhere (``repr``, ``str``, f-strings, logging, tracebacks that
show locals); only :meth:`Secret.reveal` returns the value, so every place that needs the real
value says so in the code.

>>> password = Secret("hunter2")
>>> password
***
>>> f"password={password}"
'password=***'
>>> password.reveal()
'hunter2'
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

__all__ = ["REDACTED", "Secret"]

#: What a secret looks like when printed.
REDACTED = "***"


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret string (password, API key) with a redacted ``repr`` and ``str``.

    Two secrets are equal when their values are equal (compared in constant time); the hash
    is that of the value, so secrets can live in frozen configuration objects.

    >>> Secret("s3cret") == Secret("s3cret"), str(Secret("s3cret"))
    (True, '***')
    """

    _value: str = field(repr=False)

    def __post_init__(self) -> None:
        value: object = self._value
        if isinstance(value, Secret):
            # Secret(Secret("x")) is a harmless mistake: unwrap it instead of nesting.
            object.__setattr__(self, "_value", value.reveal())
        elif not isinstance(value, str):
            raise TypeError(f"Secret() takes a str, not {type(value).__name__}")

    def reveal(self) -> str:
        """Return the secret value. Call it only where the value goes on the wire."""
        return self._value

    def __repr__(self) -> str:
        return REDACTED

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, format_spec: str) -> str:
        return format(REDACTED, format_spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)
