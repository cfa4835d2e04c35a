"""The ``smtpkit`` command: send, mail merge, check, detect, demo, and the development server.

``smtpkit`` (the console script) and ``python -m smtpkit`` both run :func:`main`. Every
command goes through the library (:class:`~smtpkit.AsyncMailer` sends); the CLI only turns
options into values and results into tables or JSON. Needs the ``cli`` extra:
``pip install 'smtpkit[cli]'``.
"""

from __future__ import annotations

import click

from smtpkit.cli._check import check
from smtpkit.cli._common import EXIT_CODES_HELP
from smtpkit.cli._demo import demo
from smtpkit.cli._detect import detect
from smtpkit.cli._outbox import outbox
from smtpkit.cli._send import send
from smtpkit.cli._serve import serve

__all__ = ["main"]

_MAIN_EPILOG = f"""
\b
Configuration (send, check): --dsn DSN, --provider NAME, or the environment:
  SMTPKIT_DSN, or SMTPKIT_HOST / SMTPKIT_PROVIDER with SMTPKIT_PORT, SMTPKIT_TLS,
  SMTPKIT_USERNAME, SMTPKIT_PASSWORD, SMTPKIT_CA_FILE, ...

{EXIT_CODES_HELP}

Documentation: docs/cli.md
"""


@click.group(
    epilog=_MAIN_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="smtpkit", prog_name="smtpkit")
def main() -> None:
    """smtpkit: transactional email from the command line.

    Send a message or a mail merge, check a server configuration, detect the settings for an
    address, or run a development mail server with a web inbox.
    """


main.add_command(send)
main.add_command(check)
main.add_command(detect)
main.add_command(demo)
main.add_command(serve)
main.add_command(outbox)
