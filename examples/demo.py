"""The main job: a real send, end to end, against the embedded development server.

Run it with ``bash scripts/demo.sh`` (which sets up the virtual environment), or directly with
``python examples/demo.py`` once smtpkit[devserver] is installed.

It starts :class:`smtpkit.devserver.DevServer` on loopback (STARTTLS with a certificate it makes
at start, AUTH required), renders the ``welcome`` template into a message, sends it with
:class:`smtpkit.Mailer` through the full stack (MIME, STARTTLS, AUTH, DATA) and prints the
structured result and the message as the server received it.

With ``SMTPKIT_DSN`` set (for example ``smtps://me%40example.com:app-password@smtp.example.com``)
and ``SMTPKIT_DEMO_TO`` naming a recipient, it sends the same message through that server.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from smtpkit import Mailer, Templates

HERE = Path(__file__).resolve().parent


def main() -> int:
    templates = Templates(HERE / "templates")
    context = {
        "name": "Ann Lee",
        "product": "smtpkit",
        "confirm_url": "https://app.example.com/confirm?token=abc123",
    }
    dsn = os.environ.get("SMTPKIT_DSN")
    if dsn:
        to = os.environ.get("SMTPKIT_DEMO_TO")
        sender = os.environ.get("SMTPKIT_DEMO_FROM", to)
        if not to or not sender:
            print(
                "set SMTPKIT_DEMO_TO (and SMTPKIT_DEMO_FROM) to send with SMTPKIT_DSN",
                file=sys.stderr,
            )
            return 2
        message = templates.message("welcome", context, sender=sender, to=[to])
        with Mailer.from_dsn(dsn) as mailer:
            result = mailer.send(message)
        print(json.dumps(result.to_dict(), indent=2))
        return 0

    from smtpkit.devserver import DevServer

    message = templates.message(
        "welcome",
        context,
        sender="smtpkit demo <no-reply@app.example.com>",
        to=["Ann Lee <ann@example.com>"],
        bcc=["audit@example.com"],
    )
    with DevServer(tls="starttls", auth={"demo": "demo-password"}, require_auth=True) as server:
        config = server.config()
        print(f"development server on {server.host}:{server.port} (STARTTLS, AUTH required)")
        print(f"sending with {config.redacted_dsn()}\n")
        with Mailer(config) as mailer:
            result = mailer.send(message)
        print("== result")
        print(json.dumps(result.to_dict(), indent=2))
        (captured,) = server.wait_for(1)
        print("\n== what the server received")
        print(f"MAIL FROM: {captured.mail_from}  RCPT TO: {', '.join(captured.rcpt_tos)}")
        print(f"over TLS: {captured.tls}  authenticated as: {captured.auth_login}\n")
        print(captured.data.decode("utf-8", "replace"))
    ok = result.accepted == ("ann@example.com", "audit@example.com") and not result.rejected
    print("demo:", "OK" if ok else "UNEXPECTED RESULT")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
