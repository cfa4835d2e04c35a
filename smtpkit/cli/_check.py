"""``smtpkit check``: connect as a configuration says and report every step.

DNS, TCP, TLS and EHLO are inspected by :mod:`smtpkit.cli._probe` (the standard library, so the
certificate and the EHLO offer can be shown); AUTH and the optional test message go through the
real :class:`~smtpkit.SMTPTransport` and :class:`~smtpkit.AsyncMailer`, so a passing check means
the library itself can log in and send.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from smtpkit._config import RetryPolicy, SMTPConfig, TLSMode
from smtpkit._exceptions import ConfigError, SmtpkitError, TransportError
from smtpkit._mailer import AsyncMailer
from smtpkit._message import Message
from smtpkit._replies import SendResult
from smtpkit._transports.smtp import SMTPTransport
from smtpkit.cli._common import (
    EXIT_CODES_HELP,
    EXIT_OK,
    EXIT_PERMANENT,
    EXIT_TRANSIENT,
    ServerOptions,
    clean,
    cli_errors,
    error_hint,
    resolve_target,
    server_options,
    single_config,
    stdout_console,
)
from smtpkit.cli._probe import NOTABLE_EXTENSIONS, ProbeReport, probe

__all__ = ["CheckStep", "check"]


@dataclass
class CheckStep:
    """One line of the check's report: ``status`` is ``ok``, ``failed`` or ``skipped``."""

    name: str
    status: str
    summary: str
    hint: str | None = None
    transient: bool = False


async def _check_auth(config: SMTPConfig) -> CheckStep:
    """Log in with the real transport: connect, TLS, EHLO, AUTH, QUIT."""
    assert config.credentials is not None
    transport = SMTPTransport(config)
    try:
        # The same session setup (TLS policy + AUTH) as a send, then QUIT with nothing sent.
        await transport.verify()
    except TransportError as exc:
        text = clean(exc.args[0] if exc.args else exc)
        hint = error_hint(exc, host=config.host, port=config.effective_port)
        return CheckStep("auth", "failed", f"{type(exc).__name__}: {text}", hint, exc.is_transient)
    finally:
        await transport.aclose()
    return CheckStep("auth", "ok", f"logged in as {config.credentials.username!r}")


async def _send_test(config: SMTPConfig, sender: str, recipient: str) -> tuple[CheckStep, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    message = Message(
        sender=sender,
        to=[recipient],
        subject="smtpkit check: test message",
        text=(
            f"This is a test message sent by `smtpkit check` at {now}\n"
            f"through {config.redacted_dsn()}.\n"
        ),
    )
    try:
        async with AsyncMailer(config, retry=RetryPolicy(retries=0)) as mailer:
            result: SendResult = await mailer.send(message)
    except SmtpkitError as exc:
        text = clean(exc.args[0] if exc.args else exc)
        hint = error_hint(exc, host=config.host, port=config.effective_port)
        return CheckStep(
            "send", "failed", f"{type(exc).__name__}: {text}", hint, exc.is_transient
        ), None
    if result.rejected:
        reply = next(iter(result.rejected.values()))
        return CheckStep(
            "send", "failed", f"{recipient} refused: {reply}", None, reply.is_transient
        ), result.to_dict()
    summary = f"accepted for {recipient}: {result.reply or ''} ({result.message_id})"
    return CheckStep("send", "ok", summary), result.to_dict()


def _steps_from_probe(report: ProbeReport) -> list[CheckStep]:
    return [
        CheckStep(s.name, "ok" if s.ok else "failed", s.summary, s.hint, s.transient)
        for s in report.steps
    ]


async def _run_check(
    config: SMTPConfig, *, step_timeout: float, send_to: str | None, sender: str | None
) -> tuple[ProbeReport, list[CheckStep], Any]:
    context = None if config.tls is TLSMode.NONE else config.create_ssl_context()
    report = await probe(
        config.host,
        config.effective_port,
        config.tls,
        context=context,
        step_timeout=step_timeout,
        ehlo_name=config.local_hostname or "localhost",
    )
    steps = _steps_from_probe(report)
    sent: Any = None
    if not report.ok:
        return report, steps, sent
    if config.tls is TLSMode.NONE:
        steps.append(CheckStep("tls", "skipped", "not used (tls=none): everything is plaintext"))
    if config.credentials is not None:
        steps.append(await _check_auth(config))
    else:
        offered = ", ".join(report.auth_mechanisms) or "none"
        steps.append(CheckStep("auth", "skipped", f"no credentials given (offered: {offered})"))
    if send_to is not None and all(s.status != "failed" for s in steps):
        if sender is None:
            username = config.credentials.username if config.credentials else ""
            sender = username if "@" in username else send_to
        step, sent = await _send_test(config, sender, send_to)
        steps.append(step)
    return report, steps, sent


_STATUS_STYLE = {"ok": ("ok", "green"), "failed": ("FAILED", "bold red"), "skipped": ("-", "dim")}


def _print_report(config: SMTPConfig, report: ProbeReport, steps: list[CheckStep]) -> None:
    console = stdout_console()
    console.print(
        Text(f"Checking {clean(config.redacted_dsn())} (tls={config.tls.value})", style="bold")
    )
    table = Table()
    table.add_column("Step")
    table.add_column("Result")
    table.add_column("Details")
    for step in steps:
        label, style = _STATUS_STYLE.get(step.status, (step.status, ""))
        table.add_row(step.name, Text(label, style=style), Text(clean(step.summary)))
    console.print(table)
    tls = report.tls
    if tls is not None and tls.version is not None:
        details = Table(title="TLS", title_justify="left", show_header=False)
        details.add_column(style="bold")
        details.add_column()
        rows = [
            ("Version", tls.version),
            ("Cipher", f"{tls.cipher} ({tls.bits} bits)"),
            ("Subject", tls.subject or "-"),
            ("Issuer", tls.issuer or "-"),
            ("Expires", f"{tls.not_after} ({tls.days_left} days)" if tls.not_after else "-"),
            (
                "Host name matches",
                {True: "yes", False: "no", None: "not checked"}[tls.hostname_match],
            ),
            ("Verified", "yes" if tls.verified else "NO (verify=false)"),
        ]
        for name, value in rows:
            details.add_row(name, Text(clean(value)))
        console.print(details)
    if report.extensions:
        ext = Table(title="EHLO extensions", title_justify="left", show_header=False)
        ext.add_column(style="bold")
        ext.add_column()
        for name in NOTABLE_EXTENSIONS:
            if name == "STARTTLS" and report.secure and config.tls is not TLSMode.IMPLICIT:
                value = "yes (used)"
            elif name in report.extensions:
                value = report.extensions[name] or "yes"
            else:
                value = "no"
            ext.add_row(name, Text(clean(value)))
        others = sorted(set(report.extensions) - set(NOTABLE_EXTENSIONS))
        if others:
            ext.add_row("Other", Text(clean(" ".join(others))))
        console.print(ext)
    for step in steps:
        if step.status == "failed" and step.hint:
            console.print(
                Text(f"Hint ({step.name}): ", style="bold yellow") + Text(clean(step.hint))
            )


CHECK_EPILOG = f"""
\b
Examples:
  smtpkit check smtps://me:app-password@smtp.example.com
  SMTPKIT_DSN=smtp://me:pw@mail.example.com smtpkit check --send-to me@example.com
  smtpkit check --provider gmail --username me@gmail.com --json

{EXIT_CODES_HELP}
"""


@click.command(epilog=CHECK_EPILOG)
@click.argument("dsn_argument", metavar="[DSN]", required=False)
@click.option("--send-to", metavar="ADDRESS", help="Also send a test message to ADDRESS.")
@click.option("--from", "sender", metavar="ADDRESS", help="From address of the test message.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to wait at each step (default: the configuration's connect timeout).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@server_options
@cli_errors
def check(
    *,
    dsn_argument: str | None,
    send_to: str | None,
    sender: str | None,
    timeout: float | None,
    as_json: bool,
    dsn: str | None,
    provider: str | None,
    username: str | None,
    password: str | None,
    ca_file: str | None,
) -> None:
    """Check a server configuration step by step: DNS, TCP, TLS, EHLO, AUTH.

    Connects as the configuration (DSN argument, --dsn, --provider or SMTPKIT_DSN) says,
    shows the TLS version, cipher and certificate, the EHLO extensions and AUTH mechanisms,
    and logs in when credentials are given. Each failure comes with its likely cause and fix.
    Nothing is sent unless --send-to is given.
    """
    if dsn_argument and dsn:
        raise click.UsageError("give the DSN as an argument or with --dsn, not both")
    options = ServerOptions(dsn_argument or dsn, provider, username, password, ca_file)
    config = single_config(resolve_target(options))
    if send_to is not None and "@" not in send_to:
        raise ConfigError(f"--send-to {send_to!r}: expected an email address")
    wait = timeout if timeout is not None else min(config.timeouts.connect, 10.0)
    report, steps, sent = asyncio.run(
        _run_check(config, step_timeout=wait, send_to=send_to, sender=sender)
    )
    failed = next((s for s in steps if s.status == "failed"), None)
    if as_json:
        out = {
            "target": config.redacted_dsn(),
            "host": config.host,
            "port": config.effective_port,
            "tls_mode": config.tls.value,
            "ok": failed is None,
            "steps": [asdict(step) for step in steps],
            "addresses": report.addresses,
            "greeting": report.greeting,
            "tls": asdict(report.tls) if report.tls is not None else None,
            "extensions": report.extensions,
            "auth_mechanisms": report.auth_mechanisms,
            "sent": sent,
        }
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        _print_report(config, report, steps)
    if failed is None:
        raise SystemExit(EXIT_OK)
    raise SystemExit(EXIT_TRANSIENT if failed.transient else EXIT_PERMANENT)
