"""``smtpkit outbox``: run the outbox worker and look after the queue from the shell.

::

    smtpkit outbox work   --db outbox.db --dsn smtps://user:pass@smtp.example.com
    smtpkit outbox status --db outbox.db
    smtpkit outbox list   --db outbox.db --status deferred
    smtpkit outbox show 42 --db outbox.db
    smtpkit outbox retry 42 --db outbox.db
    smtpkit outbox purge  --db outbox.db --sent-before 2026-01-01

``--db`` defaults to ``$SMTPKIT_OUTBOX`` and ``--dsn`` to ``$SMTPKIT_DSN``. Every command but
``work`` has ``--json`` for scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from smtpkit._dsn import parse_dsn
from smtpkit._exceptions import SmtpkitError
from smtpkit._mailer import AsyncMailer
from smtpkit.outbox import AsyncOutbox, Outbox, OutboxEntry, Schedule, Status

__all__ = ["outbox"]

F = TypeVar("F", bound=Callable[..., Any])

_STATUSES = [s.value for s in Status]


def _db_option(function: F) -> F:
    decorator = click.option(
        "--db",
        "db",
        envvar="SMTPKIT_OUTBOX",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="The outbox SQLite file [env: SMTPKIT_OUTBOX].",
    )
    return decorator(function)


def _json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(function)


def _open(db: Path, *, must_exist: bool = True) -> Outbox:
    if must_exist and not db.exists():
        # Inspection commands must not create an empty outbox under a mistyped name.
        raise click.ClickException(f"no outbox at {db}")
    return Outbox(db)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


@click.group()
def outbox() -> None:
    """The durable outbox: run a worker, inspect and manage queued messages."""


@outbox.command()
@_db_option
@click.option(
    "--dsn",
    envvar="SMTPKIT_DSN",
    required=True,
    help="Where to send, e.g. smtps://user:pass@smtp.example.com [env: SMTPKIT_DSN].",
)
@click.option("--concurrency", default=4, show_default=True, help="Messages in flight at once.")
@click.option(
    "--lease",
    default=60.0,
    show_default=True,
    help="Seconds a crashed worker's messages stay claimed before another worker retries them.",
)
@click.option(
    "--poll-interval", default=1.0, show_default=True, help="Seconds between looks when idle."
)
@click.option(
    "--until-idle", is_flag=True, help="Exit once nothing is due (messages deferred to later wait)."
)
@click.option(
    "--no-retry-unknown",
    is_flag=True,
    help="Park messages whose outcome is unknown instead of resending them.",
)
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
def work(
    *,
    db: Path,
    dsn: str,
    concurrency: int,
    lease: float,
    poll_interval: float,
    until_idle: bool,
    no_retry_unknown: bool,
    verbose: int,
) -> None:
    """Send due messages until stopped (SIGINT/SIGTERM finish the sends in flight first)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        target = parse_dsn(dsn)
    except SmtpkitError as exc:
        raise click.ClickException(f"--dsn: {exc}") from None
    schedule = Schedule(retry_unknown=not no_retry_unknown)

    async def main() -> dict[str, int]:
        # The mailer is made on the worker's loop, so its pool binds to that loop.
        async with (
            AsyncOutbox(db, schedule=schedule, lease=lease) as box,
            AsyncMailer(target) as mailer,
        ):
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, box.stop)
            stats = await box.run(
                mailer,
                concurrency=concurrency,
                stop_when_idle=until_idle,
                poll_interval=poll_interval,
            )
            return stats.to_dict()

    try:
        counts = asyncio.run(main())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(" ".join(f"{name}={count}" for name, count in counts.items()))


@outbox.command()
@_db_option
@_json_option
def status(db: Path, as_json: bool) -> None:
    """How many messages are in each state."""
    with _open(db) as box:
        stats = box.status()
    if as_json:
        _echo_json(stats.to_dict())
        return
    for state, count in stats.counts.items():
        click.echo(f"{state.value:<9} {count}")
    click.echo(f"{'flagged':<9} {stats.flagged}  (outcome was unknown: may have been sent twice)")
    if stats.next_due is not None:
        click.echo(f"next due  {stats.next_due.isoformat(timespec='seconds')}")


def _line(entry: OutboxEntry) -> str:
    flag = "!" if entry.flagged else " "
    to = ", ".join(r.address for r in entry.recipients[:2])
    if len(entry.recipients) > 2:
        to += f" +{len(entry.recipients) - 2}"
    due = entry.due_at.isoformat(timespec="seconds")
    return f"{entry.id:>7} {flag}{entry.status.value:<9} {entry.attempts:>3} {due}  {to}"


@outbox.command(name="list")
@_db_option
@click.option("--status", "state", type=click.Choice(_STATUSES), help="Only this state.")
@click.option("--flagged", is_flag=True, help="Only messages whose outcome was ever unknown.")
@click.option("--limit", default=100, show_default=True)
@click.option("--offset", default=0, show_default=True)
@_json_option
def list_(
    *, db: Path, state: str | None, flagged: bool, limit: int, offset: int, as_json: bool
) -> None:
    """List messages, oldest first (! marks flagged ones)."""
    with _open(db) as box:
        entries = box.list(state, flagged=True if flagged else None, limit=limit, offset=offset)
    if as_json:
        _echo_json([e.to_dict() for e in entries])
        return
    click.echo(f"{'id':>7}  {'status':<9} {'try':>3} {'due (UTC)':<25}  recipients")
    for entry in entries:
        click.echo(_line(entry))


@outbox.command()
@click.argument("message_id", metavar="ID", type=int)
@_db_option
@click.option("--raw", is_flag=True, help="Print the stored message bytes instead.")
def show(message_id: int, db: Path, raw: bool) -> None:
    """Show one message's record as JSON (or its bytes with --raw)."""
    with _open(db) as box:
        if raw:
            data = box.message_bytes(message_id)
            if data is None:
                raise click.ClickException(f"no message {message_id}")
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        entry = box.get(message_id)
    if entry is None:
        raise click.ClickException(f"no message {message_id}")
    _echo_json(entry.to_dict())


@outbox.command()
@click.argument("message_id", metavar="ID", type=int)
@_db_option
@_json_option
def retry(message_id: int, db: Path, as_json: bool) -> None:
    """Make a deferred, unknown or failed message due now."""
    with _open(db) as box:
        try:
            entry = box.retry(message_id)
        except KeyError:
            raise click.ClickException(f"no message {message_id}") from None
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        _echo_json(entry.to_dict())
    else:
        click.echo(f"message {entry.id} is {entry.status.value}, due now")


def _parse_when(text: str) -> datetime:
    """An ISO date or datetime; without a zone it is UTC (a date is its midnight, UTC)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise click.BadParameter(f"{text!r} is not an ISO date or datetime") from None
        when = datetime(day.year, day.month, day.day)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@outbox.command()
@_db_option
@click.option(
    "--sent-before",
    required=True,
    help="Delete messages sent before this ISO date or datetime (UTC unless it says).",
)
@click.option("--include-failed", is_flag=True, help="Also delete failed messages.")
@_json_option
def purge(db: Path, sent_before: str, include_failed: bool, as_json: bool) -> None:
    """Delete messages sent before a date."""
    when = _parse_when(sent_before)
    with _open(db) as box:
        count = box.purge(sent_before=when, include_failed=include_failed)
    if as_json:
        _echo_json({"deleted": count})
    else:
        click.echo(f"deleted {count} message(s)")
