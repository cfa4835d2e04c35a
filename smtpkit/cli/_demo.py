"""``smtpkit demo``: the main job end to end, with nothing to set up.

Starts the embedded development server on loopback (STARTTLS with a certificate made at start,
AUTH required), renders the ``welcome`` template shipped in ``smtpkit/cli/templates/``, sends it
through the full stack (:class:`~smtpkit.AsyncMailer`: MIME, STARTTLS, AUTH, DATA) and prints
the result and the message exactly as the server received it. The same as ``examples/demo.py``.
"""

from __future__ import annotations

import asyncio
import json

import click
from rich.rule import Rule
from rich.text import Text

from smtpkit._config import SMTPConfig
from smtpkit._mailer import AsyncMailer
from smtpkit._message import Message
from smtpkit._replies import SendResult
from smtpkit._templates import Templates
from smtpkit.cli._common import EXIT_OK, EXIT_PARTIAL, clean, cli_errors, stdout_console
from smtpkit.cli._send import print_result

__all__ = ["DEMO_CONTEXT", "demo"]

#: The template variables of the demo message.
DEMO_CONTEXT = {
    "name": "Ann Lee",
    "product": "smtpkit",
    "confirm_url": "https://app.example.com/confirm?token=abc123",
}
_EXPECTED = ("ann@example.com", "audit@example.com")


async def _send(message: Message, config: SMTPConfig) -> SendResult:
    async with AsyncMailer(config) as mailer:
        return await mailer.send(message)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result and message as JSON.")
@cli_errors
def demo(*, as_json: bool) -> None:
    """Send a templated message through a local development server and show it.

    Nothing leaves this machine: the server listens on 127.0.0.1 and is stopped at the end.
    """
    try:
        from smtpkit.devserver import DevServer
    except ImportError:
        raise click.UsageError(
            "the demo needs the development server: pip install 'smtpkit[devserver]'"
        ) from None
    templates = Templates("package:smtpkit.cli/templates")
    message = templates.message(
        "welcome",
        DEMO_CONTEXT,
        sender="smtpkit demo <no-reply@app.example.com>",
        to=["Ann Lee <ann@example.com>"],
        bcc=["audit@example.com"],
    )
    console = stdout_console()
    with DevServer(tls="starttls", auth={"demo": "demo-password"}, require_auth=True) as server:
        config = server.config()
        if not as_json:
            console.print(
                Text(
                    f"Development server on {server.host}:{server.port} (STARTTLS, AUTH required)"
                    f"\nSending with {config.redacted_dsn()}",
                    style="bold",
                )
            )
        result = asyncio.run(_send(message, config))
        (captured,) = server.wait_for(1)
    ok = result.accepted == _EXPECTED and not result.rejected
    received = captured.data.decode("utf-8", "replace")
    if as_json:
        out = {
            "ok": ok,
            "result": result.to_dict(),
            "received": {
                "mail_from": captured.mail_from,
                "rcpt_tos": list(captured.rcpt_tos),
                "tls": captured.tls,
                "auth_login": captured.auth_login,
                "data": received,
            },
        }
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print_result(result)
        console.print(Rule("What the server received"))
        console.print(
            Text(
                f"MAIL FROM: {captured.mail_from}  RCPT TO: {', '.join(captured.rcpt_tos)}\n"
                f"over TLS: {captured.tls}  authenticated as: {captured.auth_login}\n"
            )
        )
        # Printed as is (no wrapping), with the wire's CRLF shown as plain line ends.
        click.echo(clean(received.replace("\r\n", "\n")))
        console.print(
            Text("demo: OK", style="bold green")
            if ok
            else Text("demo: UNEXPECTED RESULT", style="bold red")
        )
    raise SystemExit(EXIT_OK if ok else EXIT_PARTIAL)
