"""``python -m smtpkit.devserver``: run the development mail server in the foreground.

Prints where to connect (a DSN with the CA file to trust) and one line per captured message.
Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence

from smtpkit.devserver._server import DEFAULT_MECHANISMS, MECHANISMS, DevServer
from smtpkit.devserver._store import CapturedMessage


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m smtpkit.devserver",
        description="Run smtpkit's development SMTP server and print every message it gets.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=1025, help="port (0: any free port)")
    parser.add_argument("--tls", choices=("starttls", "implicit", "none"), default="starttls")
    parser.add_argument(
        "--auth",
        action="append",
        metavar="USER:PASSWORD",
        help="accept this login (repeatable); without it the server offers no AUTH",
    )
    parser.add_argument(
        "--mechanisms",
        default=",".join(DEFAULT_MECHANISMS),
        help=f"comma-separated AUTH mechanisms, from {','.join(MECHANISMS)}",
    )
    parser.add_argument("--maildir", help="also write each message as an .eml file here")
    parser.add_argument("--size", type=int, help="advertise and enforce SIZE (bytes)")
    parser.add_argument("--hostname", default="localhost", help="name in greeting and EHLO")
    return parser


def _summary(message: CapturedMessage) -> str:
    subject = message.subject or "(no subject)"
    where = f" -> {message.path}" if message.path else ""
    return (
        f"{message.received_at:%H:%M:%S} {message.mail_from or '<>'} -> "
        f"{', '.join(message.rcpt_tos)} | {subject} | {len(message.data)} bytes"
        f"{' TLS' if message.tls else ''}{where}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run until interrupted; return the process exit status."""
    args = _parser().parse_args(argv)
    users: dict[str, str] = {}
    for item in args.auth or ():
        user, sep, password = item.partition(":")
        if not sep or not user:
            _parser().error(f"--auth needs USER:PASSWORD, not {item!r}")
        users[user] = password

    def show(message: CapturedMessage) -> None:
        print(_summary(message), flush=True)

    server = DevServer(
        host=args.host,
        port=args.port,
        tls=args.tls,
        auth=users or False,
        mechanisms=[m for m in args.mechanisms.split(",") if m],
        auth_require_tls=args.tls != "none",
        maildir=args.maildir,
        hostname=args.hostname,
        data_size_limit=args.size,
        on_message=show,
    )
    with server:
        print(f"smtpkit devserver listening on {server.host}:{server.port} (tls={server.tls})")
        print(f"CA certificate: {server.ca_file}")
        print(f"DSN: {server.dsn}")
        print("Ctrl-C to stop.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
