"""``smtpkit serve``: the development mail server with a web inbox.

It starts the embedded SMTP server (:class:`~smtpkit.devserver.DevServer`) writing every message
as an ``.eml`` file into a directory, and the web inbox
(:class:`~smtpkit.devserver._inbox.InboxServer`) reading that directory, both on loopback, and
runs until Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import NoReturn

import click
from rich.text import Text

from smtpkit.cli._common import clean, fail, stderr_console, stdout_console
from smtpkit.devserver._inbox import InboxServer
from smtpkit.devserver._storage import MailDirectory
from smtpkit.devserver._store import CapturedMessage

__all__ = ["serve"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _users(pairs: tuple[str, ...]) -> dict[str, str]:
    users: dict[str, str] = {}
    for pair in pairs:
        user, sep, password = pair.partition(":")
        if not sep or not user:
            raise click.BadParameter(f"expected USER:PASSWORD, not {pair!r}", param_hint="--auth")
        users[user] = password
    return users


def _summary(message: CapturedMessage) -> str:
    subject = message.subject or "(no subject)"
    return (
        f"{message.received_at:%H:%M:%S} {message.mail_from or '<>'} -> "
        f"{', '.join(message.rcpt_tos)} | {subject} | {len(message.data)} bytes"
        f"{' | TLS' if message.tls else ''}"
    )


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    # A service manager (or a test) stops the server with SIGTERM: end as cleanly as Ctrl-C.
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _bind_failed(what: str, host: str, port: int, exc: OSError, option: str) -> NoReturn:
    fail(
        f"cannot listen for {what} on {host}:{port}: {exc.strerror or exc}",
        hint=f"is another mail catcher running? Choose another port with {option} "
        "(0 picks a free one).",
    )


@click.command("serve")
@click.option(
    "--smtp-port",
    type=click.IntRange(0, 65535),
    default=1025,
    show_default=True,
    help="SMTP port (0: any free port).",
)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=8025,
    show_default=True,
    help="Web inbox port (0: any free port).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address both servers listen on. Anything but loopback lets other machines send "
    "mail here and read every message: the inbox has no login.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the .eml files (created if missing; kept). Default: a temporary "
    "directory, deleted on exit.",
)
@click.option(
    "--tls",
    type=click.Choice(["starttls", "implicit", "none"]),
    default="starttls",
    show_default=True,
    help="starttls: plain connection that offers STARTTLS; implicit: TLS from the first byte "
    "(like port 465); none: no TLS. The certificate is made at start (see 'CA certificate').",
)
@click.option(
    "--auth",
    "auth_pairs",
    multiple=True,
    metavar="USER:PASSWORD",
    help="Accept only this login (repeatable). Default: any user name and password.",
)
@click.option("--no-auth", is_flag=True, help="Offer no AUTH at all.")
@click.option(
    "--plaintext-auth",
    is_flag=True,
    help="Offer AUTH before STARTTLS too (for clients that do not use TLS). Always on with "
    "--tls none.",
)
@click.option("--quiet", "-q", is_flag=True, help="Do not print a line per message.")
def serve(
    *,
    smtp_port: int,
    http_port: int,
    host: str,
    directory: Path | None,
    tls: str,
    auth_pairs: tuple[str, ...],
    no_auth: bool,
    plaintext_auth: bool,
    quiet: bool,
) -> None:
    """Run a development mail server with a web inbox (for development only).

    Every message sent to the SMTP server is kept as an .eml file and shown at
    http://127.0.0.1:8025: the list, each message's HTML (sandboxed: no scripts, no remote
    content), text, headers, attachments and raw source, and a JSON API (/api/messages).
    Nothing is delivered anywhere. Stop it with Ctrl-C.
    """
    from smtpkit.devserver._server import DevServer

    if no_auth and auth_pairs:
        raise click.UsageError("--auth and --no-auth contradict each other")
    users = _users(auth_pairs)
    auth: bool | dict[str, str] = False if no_auth else (users or True)
    out = stdout_console()
    err = stderr_console()
    exposed = not is_loopback(host)

    with contextlib.ExitStack() as stack:
        temporary = directory is None
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="smtpkit-")))
        store = MailDirectory(directory)
        holder: list[DevServer] = []

        def received(message: CapturedMessage) -> None:
            store.record(message)
            if not quiet:
                out.print(Text(clean(_summary(message))), soft_wrap=True)
            # The files are the store; the server's own in-memory list would only grow.
            if holder:
                holder[0].clear()

        cert_hostnames = ["localhost", "127.0.0.1", "::1"]
        if host not in cert_hostnames:
            cert_hostnames.append(host.strip("[]"))
        server = DevServer(
            host=host,
            port=smtp_port,
            tls=tls,  # type: ignore[arg-type]  # click.Choice guarantees the literal
            auth=auth,
            auth_require_tls=tls == "starttls" and not plaintext_auth,
            maildir=directory,
            cert_hostnames=cert_hostnames,
            on_message=received,
        )
        holder.append(server)
        try:
            stack.enter_context(server)
        except OSError as exc:
            _bind_failed("SMTP", host, smtp_port, exc, "--smtp-port")
        smtp_where = f"{server.host}:{server.port}"
        inbox = InboxServer(store, host=host, port=http_port, smtp_info=f"SMTP {smtp_where}")
        try:
            stack.enter_context(inbox)
        except OSError as exc:
            _bind_failed("the web inbox", host, http_port, exc, "--http-port")

        if exposed:
            err.print(
                Text(
                    f"WARNING: listening on {host}, not loopback. Anyone who can reach this "
                    "machine can send mail to this server and read every message in the web "
                    "inbox (it has no login). Use this only on a network you trust.",
                    style="bold red",
                )
            )
        if tls == "none":
            tls_text = "no TLS"
        elif tls == "implicit":
            tls_text = "implicit TLS"
        else:
            tls_text = "STARTTLS available"
        if auth is False:
            auth_text = "no AUTH"
        elif auth is True:
            auth_text = "AUTH: any user name and password"
        else:
            auth_text = f"AUTH: {', '.join(sorted(auth))}"
        where = (
            f"{directory} (temporary, deleted on exit; --dir to keep)" if temporary else directory
        )
        out.print(
            Text(
                "smtpkit development mail server: for development only. Nothing is delivered; "
                "every message is kept and shown in the inbox.",
                style="bold",
            ),
            soft_wrap=True,
        )
        rows = [
            ("SMTP", f"{smtp_where} ({tls_text}; {auth_text})"),
            ("Web inbox", inbox.url),
            ("Messages", str(where)),
            ("CA certificate", server.ca_file),
            ("DSN", server.dsn),
        ]
        for label, value in rows:
            out.print(Text(f"  {label:<15}") + Text(clean(value)), soft_wrap=True)
        out.print("Press Ctrl-C to stop.")
        try:
            with _sigterm_stops():
                threading.Event().wait()
        except KeyboardInterrupt:
            out.print("Stopping…")
    out.print("Stopped.")
