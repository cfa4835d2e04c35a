"""The embedded development mail server: a real SMTP server on loopback.

:class:`DevServer` runs aiosmtpd in its own thread with STARTTLS or implicit TLS (a certificate
made at start, trusted through ``ca_file``), optional AUTH (PLAIN, LOGIN, CRAM-MD5, XOAUTH2,
OAUTHBEARER), capture of every message (in memory and as ``.eml`` files) and fault injection
per command. :class:`ScriptedServer` answers with exact bytes for byte-level client tests.
``python -m smtpkit.devserver`` runs a server in the foreground.

Needs the ``devserver`` extra: ``pip install 'smtpkit[devserver]'``.

>>> with DevServer(auth={"user": "pass"}) as server:      # doctest: +SKIP
...     config = server.config()                          # an SMTPConfig trusting server.ca_file
...     ...                                               # send something
...     server.wait_for(1)[0].subject
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smtpkit.devserver._faults import (
    BadCertificate,
    Drop,
    Fault,
    Greeting,
    Hang,
    Hide,
    Respond,
)
from smtpkit.devserver._scripted import (
    Close,
    ReadData,
    ScriptedRecord,
    ScriptedServer,
    ScriptedSession,
    Sleep,
    StartTLS,
    Step,
)
from smtpkit.devserver._store import CapturedMessage, ConnectionInfo, ReceivedCommand

if TYPE_CHECKING:
    from smtpkit.devserver._server import DEFAULT_MECHANISMS, MECHANISMS, DevServer, TLSChoice

__all__ = [
    "DEFAULT_MECHANISMS",
    "MECHANISMS",
    "BadCertificate",
    "CapturedMessage",
    "Close",
    "ConnectionInfo",
    "DevServer",
    "Drop",
    "Fault",
    "Greeting",
    "Hang",
    "Hide",
    "ReadData",
    "ReceivedCommand",
    "Respond",
    "ScriptedRecord",
    "ScriptedServer",
    "ScriptedSession",
    "Sleep",
    "StartTLS",
    "Step",
    "TLSChoice",
]

_NEEDS_AIOSMTPD = frozenset({"DEFAULT_MECHANISMS", "MECHANISMS", "DevServer", "TLSChoice"})


def __getattr__(name: str) -> Any:
    # DevServer needs aiosmtpd (the "devserver" extra); the fault rules and records do not,
    # so smtpkit.testing can import them without it.
    if name in _NEEDS_AIOSMTPD:
        from smtpkit.devserver import _server

        return getattr(_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
