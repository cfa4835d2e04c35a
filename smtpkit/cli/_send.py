"""``smtpkit send``: one message from flags or a template, or a mail merge from a CSV file.

Sending is :class:`~smtpkit.AsyncMailer`'s job; this module only turns the command line into
a :class:`~smtpkit.Message` and the :class:`~smtpkit.SendResult` into a table or JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from smtpkit._config import SMTPConfig
from smtpkit._dsn import TransportGroup
from smtpkit._exceptions import ConfigError
from smtpkit._mailer import AsyncMailer
from smtpkit._message import Attachment, Message
from smtpkit._replies import SendResult
from smtpkit._templates import Templates
from smtpkit.cli._common import (
    EXIT_CODES_HELP,
    EXIT_OK,
    EXIT_PARTIAL,
    ServerOptions,
    clean,
    cli_errors,
    describe_target,
    resolve_target,
    server_options,
    stdout_console,
)

__all__ = ["build_message", "parse_variables", "print_result", "send", "with_pool_size"]


def parse_variables(pairs: Sequence[str], vars_file: str | None) -> dict[str, Any]:
    """Template variables from ``--vars file.json`` then ``--var k=v`` (later ones win).

    Raises:
        ConfigError: a ``--var`` without ``=``, or a file that is not a JSON object.
    """
    variables: dict[str, Any] = {}
    if vars_file is not None:
        try:
            loaded = json.loads(Path(vars_file).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--vars {vars_file}: not valid JSON ({exc})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"--vars {vars_file}: expected a JSON object of variables")
        variables.update(loaded)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--var {pair!r}: expected NAME=VALUE")
        variables[name.strip()] = value
    return variables


def _headers(values: Sequence[str]) -> list[tuple[str, str]]:
    headers = []
    for value in values:
        name, sep, text = value.partition(":")
        if not sep:
            raise ConfigError(f"--header {value!r}: expected 'Name: value'")
        headers.append((name.strip(), text.strip()))
    return headers


def build_message(
    *,
    sender: str,
    to: Sequence[str],
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    reply_to: Sequence[str] = (),
    subject: str | None = None,
    text: str | None = None,
    html: str | None = None,
    attachments: Sequence[Attachment] = (),
    headers: Sequence[tuple[str, str]] = (),
    templates: Templates | None = None,
    template: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> Message:
    """The message the options describe: from a template when ``template`` is set."""
    fields: dict[str, Any] = {
        "sender": sender,
        "to": list(to),
        "cc": list(cc),
        "bcc": list(bcc),
        "reply_to": list(reply_to),
        "attachments": list(attachments),
        "headers": list(headers) or None,
    }
    if template is not None:
        assert templates is not None
        return templates.message(template, dict(variables or {}), **fields)
    return Message(subject=subject or "", text=text, html=html, **fields)


def with_pool_size(
    target: SMTPConfig | TransportGroup, concurrency: int
) -> SMTPConfig | TransportGroup:
    """The target with enough pooled connections for ``concurrency`` sends at once."""
    from smtpkit._config import PoolLimits

    def grow(config: SMTPConfig) -> SMTPConfig:
        if config.pool.max_connections >= concurrency:
            return config
        pool = PoolLimits(
            max_connections=concurrency,
            max_messages_per_connection=config.pool.max_messages_per_connection,
            idle_timeout=config.pool.idle_timeout,
        )
        return config.replace(pool=pool)

    if isinstance(target, TransportGroup):
        return TransportGroup(target.kind, tuple(grow(c) for c in target.configs))
    return grow(target)


def _status_text(accepted: bool) -> Text:
    return Text("accepted", style="green") if accepted else Text("refused", style="red")


def print_result(result: SendResult) -> None:
    """The result as a table: one row per recipient, then the message's details."""
    console = stdout_console()
    table = Table(title="Recipients", title_justify="left")
    table.add_column("Recipient")
    table.add_column("Status")
    table.add_column("Reply")
    for status in result.recipients:
        table.add_row(
            Text(clean(status.address)), _status_text(status.accepted), Text(clean(status.reply))
        )
    console.print(table)
    details = Table(show_header=False, box=None, pad_edge=False)
    details.add_column(style="bold")
    details.add_column()
    rows = [
        ("Message-ID", result.message_id or "-"),
        ("Queued as", result.queue_id or "-"),
        ("Reply", str(result.reply) if result.reply else "-"),
        ("Attempts", str(result.attempts)),
        ("Elapsed", f"{result.elapsed:.3f} s"),
        ("Transport", result.transport or "-"),
    ]
    for name, value in rows:
        details.add_row(name, Text(clean(value)))
    console.print(details)


async def _send_one(target: SMTPConfig | TransportGroup, message: Message) -> SendResult:
    async with AsyncMailer(target) as mailer:
        return await mailer.send(message)


SEND_EPILOG = f"""
\b
Examples:
  smtpkit send --dsn smtps://me:pw@smtp.example.com --from me@example.com \\
      --to ann@example.com --subject Hello --text "Hi Ann"
  smtpkit send --template welcome --templates ./templates --var name=Ann \\
      --from app@example.com --to ann@example.com
  smtpkit send --recipients list.csv --template welcome --from app@example.com \\
      --report report.csv
  smtpkit send --recipients list.csv --template welcome --from app@example.com \\
      --resume report.csv

{EXIT_CODES_HELP}
"""


@click.command(epilog=SEND_EPILOG)
@click.option(
    "--from",
    "sender",
    metavar="ADDRESS",
    envvar="SMTPKIT_FROM",
    help='The From address, e.g. "App <app@example.com>" (default: SMTPKIT_FROM).',
)
@click.option("--to", multiple=True, metavar="ADDRESS", help="A recipient (repeatable).")
@click.option("--cc", multiple=True, metavar="ADDRESS", help="A Cc recipient (repeatable).")
@click.option(
    "--bcc", multiple=True, metavar="ADDRESS", help="A Bcc recipient, never shown (repeatable)."
)
@click.option("--reply-to", multiple=True, metavar="ADDRESS", help="A Reply-To address.")
@click.option("--subject", metavar="TEXT", help="The subject (not with --template).")
@click.option("--text", metavar="TEXT", help="The text body; '-' reads it from standard input.")
@click.option("--html", metavar="HTML", help="The HTML body (a text part is derived from it).")
@click.option(
    "--attach",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Attach this file (repeatable).",
)
@click.option("--header", multiple=True, metavar="'NAME: VALUE'", help="An extra header.")
@click.option("--template", metavar="NAME", help="Render NAME.subject.txt, NAME.txt, NAME.html.")
@click.option(
    "--templates",
    "templates_dir",
    metavar="DIR",
    default="templates",
    show_default=True,
    help="The template directory (or package:NAME/PATH).",
)
@click.option("--var", "var_pairs", multiple=True, metavar="NAME=VALUE", help="A variable.")
@click.option(
    "--vars",
    "vars_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Template variables from a JSON object file.",
)
@click.option(
    "--recipients",
    type=click.Path(exists=True, dir_okay=False),
    help="Mail merge: a CSV file, one message per row; columns are template variables.",
)
@click.option(
    "--to-column",
    default="email",
    show_default=True,
    metavar="NAME",
    help="Mail merge: the CSV column holding each row's recipient.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False),
    help="Mail merge: write each row's outcome to this .csv or .jsonl file as it happens.",
)
@click.option(
    "--resume",
    type=click.Path(exists=True, dir_okay=False),
    help="Mail merge: skip rows this earlier report records as accepted (and append to it).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Mail merge: messages in flight at once (pooled connections).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="At most this many messages per second.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@server_options
@cli_errors
def send(
    *,
    sender: str | None,
    to: tuple[str, ...],
    cc: tuple[str, ...],
    bcc: tuple[str, ...],
    reply_to: tuple[str, ...],
    subject: str | None,
    text: str | None,
    html: str | None,
    attach: tuple[str, ...],
    header: tuple[str, ...],
    template: str | None,
    templates_dir: str,
    var_pairs: tuple[str, ...],
    vars_file: str | None,
    recipients: str | None,
    to_column: str,
    report: str | None,
    resume: str | None,
    concurrency: int,
    rate: float | None,
    as_json: bool,
    dsn: str | None,
    provider: str | None,
    username: str | None,
    password: str | None,
    ca_file: str | None,
) -> None:
    """Send one message, or a mail merge with --recipients.

    The message comes from flags (--subject, --text, --html) or from a template (--template
    with --var/--vars). The result shows every recipient's reply from the server.
    """
    if not sender:
        raise click.UsageError("--from is required (or set SMTPKIT_FROM)")
    if template is not None and subject is not None:
        raise click.UsageError("--subject comes from the template; give one or the other")
    if template is not None and (text is not None or html is not None):
        raise click.UsageError("--text/--html come from the template; give one or the other")
    if recipients is None and (report or resume):
        raise click.UsageError("--report and --resume are for a mail merge (--recipients)")
    if text == "-":
        text = sys.stdin.read()
    options = ServerOptions(dsn, provider, username, password, ca_file)
    variables = parse_variables(var_pairs, vars_file)
    templates = Templates(templates_dir) if template is not None else None
    attachments = [Attachment.from_path(path) for path in attach]
    headers = _headers(header)

    if recipients is not None:
        from smtpkit.cli._merge import MergeJob, run_merge

        if template is None or templates is None:
            raise click.UsageError("a mail merge (--recipients) needs --template")
        if to:
            raise click.UsageError("with --recipients, each row's --to-column is the recipient")
        job = MergeJob(
            csv_path=Path(recipients),
            templates=templates,
            template=template,
            base_variables=variables,
            to_column=to_column,
            sender=sender,
            cc=cc,
            bcc=bcc,
            reply_to=reply_to,
            attachments=tuple(attachments),
            headers=tuple(headers),
            report=Path(report) if report else None,
            resume=Path(resume) if resume else None,
        )
        # The first row is rendered before anything is sent, so a template error (a missing
        # variable, a syntax error) stops the run with exit 2 and nothing sent.
        job.preflight()
        target = with_pool_size(resolve_target(options), concurrency)
        code = run_merge(job, target, concurrency=concurrency, rate=rate, as_json=as_json)
        raise SystemExit(code)

    if not to and not cc and not bcc:
        raise click.UsageError("give at least one --to (or --cc/--bcc)")
    if template is None and text is None and html is None:
        raise click.UsageError("give --text and/or --html, or --template")
    message = build_message(
        sender=sender,
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=reply_to,
        subject=subject,
        text=text,
        html=html,
        attachments=attachments,
        headers=headers,
        templates=templates,
        template=template,
        variables=variables,
    )
    target = resolve_target(options)
    if not as_json:
        stdout_console().print(Text(f"Sending via {clean(describe_target(target))}", style="dim"))
    result = asyncio.run(_send_one(target, message))
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        print_result(result)
    raise SystemExit(EXIT_PARTIAL if result.rejected else EXIT_OK)
