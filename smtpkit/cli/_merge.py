"""Mail merge: one templated message per CSV row, sent concurrently, with a resumable report.

The guarantees, and how they are kept:

* **Nothing is sent twice on a rerun.** Each row's outcome is written to the report (CSV or
  JSON lines) and flushed as soon as its send ends, so a crash loses at most the rows in
  flight. ``--resume REPORT`` skips every row the report records as ``accepted`` or
  ``unknown`` (the connection dropped after the data: the server may have queued it), and
  refuses to run when the CSV no longer matches the report (a row now names another
  recipient), because row numbers would then point at the wrong people.
* **Nothing is skipped.** Rows that failed or were refused are sent again on resume; rows
  never reached (after Ctrl-C, or after a connection-level failure stopped the run) have no
  entry and are sent.
* **One bad row does not stop the rest.** A malformed row (wrong number of fields), an
  invalid address or a template error is reported as ``failed`` for that row with the reason.
  A failure that every row would hit (cannot connect, TLS, authentication) stops the run.

Sending is :class:`~smtpkit.AsyncMailer`'s: its pool carries the concurrent sends and its rate
limiter spaces them.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import signal
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from smtpkit._config import SMTPConfig
from smtpkit._dsn import TransportGroup
from smtpkit._exceptions import (
    ConfigError,
    DeliveryUnknown,
    RecipientsRefused,
    SmtpkitError,
    TransportError,
)
from smtpkit._mailer import AsyncMailer
from smtpkit._message import Attachment, Message
from smtpkit._replies import Reply, SendResult
from smtpkit._templates import Templates
from smtpkit.cli._common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    clean,
    error_dict,
    exit_code_for,
    print_error,
    stderr_console,
    stdout_console,
)

__all__ = ["REPORT_FIELDS", "MergeJob", "ReportEntry", "read_report", "run_merge"]

#: The columns of a report, in order (also the keys of a JSON-lines report).
REPORT_FIELDS = (
    "row",
    "recipient",
    "status",
    "code",
    "enhanced_code",
    "text",
    "message_id",
    "error",
)
#: Statuses a resumed run does not send again.
DONE_STATUSES = frozenset({"accepted", "unknown"})
# Failures at these stages are about the server or the configuration, not the row: every
# other row would fail the same way, so the run stops instead of burning through the list.
_CONNECTION_STAGES = frozenset({"connect", "greeting", "ehlo", "tls", "auth"})


@dataclass(frozen=True)
class ReportEntry:
    """One row's outcome as written to the report."""

    row: int
    recipient: str
    status: str  # accepted | refused | failed | unknown
    code: int | None = None
    enhanced_code: str | None = None
    text: str = ""
    message_id: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry as a JSON-ready mapping with the report's keys."""
        return {name: getattr(self, name) for name in REPORT_FIELDS}

    @classmethod
    def from_reply(
        cls, row: int, recipient: str, status: str, reply: Reply | None, **extra: Any
    ) -> ReportEntry:
        """An entry carrying the server's reply."""
        if reply is None:
            return cls(row, recipient, status, **extra)
        return cls(row, recipient, status, reply.code, reply.enhanced_code, reply.text, **extra)


@dataclass(frozen=True)
class _Row:
    number: int
    values: dict[str, str] | None
    problem: str | None = None


def read_report(path: Path) -> dict[int, ReportEntry]:
    """The last entry for each row in a CSV or JSON-lines report.

    A line cut short by a crash (the last one) is ignored: its row is sent again.

    Raises:
        ConfigError: the file is not a report.
    """
    entries: dict[int, ReportEntry] = {}
    text = path.read_text(encoding="utf-8")
    records: list[Mapping[str, Any]] = []
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number == len(text.splitlines()):
                    break  # a last line cut short by a crash
                raise ConfigError(f"--resume {path}: line {number} is not JSON") from None
            if isinstance(record, dict):
                records.append(record)
    else:
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or not {"row", "recipient", "status"} <= set(
            reader.fieldnames
        ):
            raise ConfigError(f"--resume {path}: not a smtpkit report (no row/recipient/status)")
        records.extend(reader)
    for record in records:
        try:
            row = int(record["row"])
            recipient = str(record["recipient"])
            status = str(record["status"])
        except (KeyError, TypeError, ValueError):
            continue  # a torn last line or a foreign line: not a record of a sent row
        entries[row] = ReportEntry(row, recipient, status)
    return entries


class _ReportWriter:
    """Appends entries to a CSV or JSON-lines file, flushed after every entry."""

    def __init__(self, path: Path) -> None:
        self._jsonl = path.suffix.lower() == ".jsonl"
        exists = path.exists() and path.stat().st_size > 0
        self._file: IO[str] = path.open("a", encoding="utf-8", newline="")
        self._csv = None if self._jsonl else csv.writer(self._file)
        if self._csv is not None and not exists:
            self._csv.writerow(REPORT_FIELDS)
            self._file.flush()

    def write(self, entry: ReportEntry) -> None:
        record = entry.to_dict()
        if self._csv is not None:
            self._csv.writerow(["" if record[k] is None else record[k] for k in REPORT_FIELDS])
        else:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        # Flushed per row: a crash right after this loses nothing already reported.
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class MergeJob:
    """Everything a mail merge needs besides the server."""

    csv_path: Path
    templates: Templates
    template: str
    base_variables: Mapping[str, Any]
    to_column: str
    sender: str
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()
    reply_to: Sequence[str] = ()
    attachments: tuple[Attachment, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    report: Path | None = None
    resume: Path | None = None
    done: dict[int, ReportEntry] = field(default_factory=dict)

    @property
    def report_path(self) -> Path | None:
        """Where outcomes are written: ``--report``, else the ``--resume`` file."""
        return self.report if self.report is not None else self.resume

    def preflight(self) -> None:
        """Check the files and render the first row, before anything is sent.

        Raises:
            ConfigError: no such column, an existing report without ``--resume``, a CSV that
                no longer matches the report.
            TemplateError: the template is missing or the first row cannot render it.
        """
        if (
            self.report is not None
            and self.report.exists()
            and (self.resume is None or self.report.resolve() != self.resume.resolve())
        ):
            raise ConfigError(
                f"--report {self.report} exists: continue it with --resume {self.report}, "
                "or choose another file"
            )
        header = self._header()
        if self.to_column not in header:
            raise ConfigError(
                f"{self.csv_path}: no column {self.to_column!r} for the recipient (columns: "
                f"{', '.join(header) or 'none'}); choose one with --to-column"
            )
        if self.resume is not None:
            self.done.update(read_report(self.resume))
        for row in self.rows():
            if row.values is not None:
                # Raises TemplateError for a missing variable or a template syntax error.
                self.templates.render(self.template, self._context(row.values))
                break
        self._check_matches_report()

    def _header(self) -> list[str]:
        with self.csv_path.open(encoding="utf-8-sig", newline="") as file:
            try:
                first = next(csv.reader(file), None)
            except (csv.Error, UnicodeDecodeError) as exc:
                raise ConfigError(f"{self.csv_path}: cannot read the header ({exc})") from None
        if not first:
            raise ConfigError(f"{self.csv_path}: empty file (the first line names the columns)")
        return [name.strip() for name in first]

    def _check_matches_report(self) -> None:
        if not self.done:
            return
        for row in self.rows():
            previous = self.done.get(row.number)
            if previous is None or previous.status not in DONE_STATUSES or row.values is None:
                continue
            now = (row.values.get(self.to_column) or "").strip()
            if now != previous.recipient:
                raise ConfigError(
                    f"{self.csv_path} does not match the report: row {row.number} was "
                    f"{clean(previous.recipient)!r}, now {clean(now)!r}; rows must not be "
                    "reordered, inserted or removed between runs"
                )

    def count(self) -> int:
        """The number of data rows (for the progress bar)."""
        return sum(1 for _ in self.rows())

    def rows(self) -> Iterator[_Row]:
        """Every data row, numbered from 1; malformed rows carry the problem instead."""
        header = self._header()
        with self.csv_path.open(encoding="utf-8-sig", newline="") as file:
            reader = csv.reader(file)
            number = 0
            first = True
            while True:
                try:
                    fields = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    number += 1
                    yield _Row(number, None, f"row {number}: malformed CSV ({exc})")
                    continue
                if first:
                    first = False
                    continue
                if not fields:
                    continue  # blank lines are not rows
                number += 1
                if len(fields) != len(header):
                    yield _Row(
                        number,
                        None,
                        f"row {number} (line {reader.line_num}): expected {len(header)} fields "
                        f"({', '.join(header)}), found {len(fields)}",
                    )
                    continue
                yield _Row(number, dict(zip(header, fields, strict=True)))

    def _context(self, values: Mapping[str, str]) -> dict[str, Any]:
        return {**self.base_variables, **values}

    def message_for(self, values: Mapping[str, str]) -> Message:
        """The row's message: the template rendered with the row's columns."""
        recipient = (values.get(self.to_column) or "").strip()
        if not recipient:
            raise ConfigError(f"column {self.to_column!r} is empty")
        return self.templates.message(
            self.template,
            self._context(values),
            sender=self.sender,
            to=[recipient],
            cc=list(self.cc),
            bcc=list(self.bcc),
            reply_to=list(self.reply_to),
            attachments=list(self.attachments),
            headers=list(self.headers) or None,
        )


def _entry_for_result(row: int, recipient: str, result: SendResult) -> ReportEntry:
    message_id = result.message_id
    status = result.recipients[0] if result.recipients else None
    if status is not None and not status.accepted:
        return ReportEntry.from_reply(
            row, recipient, "refused", status.reply, message_id=message_id
        )
    reply = status.reply if status is not None else result.reply
    # The end-of-data reply says the message was queued; the RCPT reply is per recipient.
    final = result.reply if result.reply is not None else reply
    return ReportEntry.from_reply(row, recipient, "accepted", final, message_id=message_id)


def _entry_for_error(row: int, recipient: str, exc: SmtpkitError) -> ReportEntry:
    name = type(exc).__name__
    text = clean(exc.args[0] if exc.args else exc)
    if isinstance(exc, RecipientsRefused):
        reply = next(iter(exc.rejected.values()), exc.reply)
        return ReportEntry.from_reply(row, recipient, "refused", reply, error=name)
    status = "unknown" if isinstance(exc, DeliveryUnknown) else "failed"
    reply = exc.reply if isinstance(exc, TransportError) else None
    if reply is not None:
        return ReportEntry.from_reply(row, recipient, status, reply, error=f"{name}: {text}")
    return ReportEntry(row, recipient, status, text=text, error=name)


def _is_connection_level(exc: SmtpkitError) -> bool:
    return isinstance(exc, TransportError) and exc.stage in _CONNECTION_STAGES


@dataclass
class _Run:
    counts: Counter[str] = field(default_factory=Counter)
    entries: list[ReportEntry] = field(default_factory=list)
    fatal: SmtpkitError | None = None
    interrupted: bool = False


async def _merge(
    job: MergeJob,
    target: SMTPConfig | TransportGroup,
    *,
    concurrency: int,
    rate: float | None,
    writer: _ReportWriter | None,
    progress: Progress,
) -> _Run:
    run = _Run()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def interrupt() -> None:
        # First Ctrl-C: finish the sends in flight (their outcome is recorded), start no more.
        run.interrupted = True
        stop.set()
        loop.remove_signal_handler(signal.SIGINT)

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGINT, interrupt)

    task = progress.add_task("sending", total=job.count())
    slots = asyncio.Semaphore(concurrency)

    def record(entry: ReportEntry) -> None:
        run.counts[entry.status] += 1
        run.entries.append(entry)
        if writer is not None:
            writer.write(entry)
        progress.advance(task)

    async def one(mailer: AsyncMailer, number: int, recipient: str, message: Message) -> None:
        try:
            result = await mailer.send(message)
        except SmtpkitError as exc:
            record(_entry_for_error(number, recipient, exc))
            if _is_connection_level(exc) and run.fatal is None:
                run.fatal = exc
                stop.set()
        else:
            record(_entry_for_result(number, recipient, result))
        finally:
            slots.release()

    try:
        async with AsyncMailer(target, rate_limit=rate) as mailer, asyncio.TaskGroup() as group:
            for row in job.rows():
                if stop.is_set():
                    break
                recipient = ""
                if row.values is not None:
                    recipient = (row.values.get(job.to_column) or "").strip()
                previous = job.done.get(row.number)
                if previous is not None and previous.status in DONE_STATUSES:
                    run.counts["skipped"] += 1
                    progress.advance(task)
                    continue
                if row.values is None:
                    record(ReportEntry(row.number, recipient, "failed", error=row.problem))
                    continue
                try:
                    message = job.message_for(row.values)
                except SmtpkitError as exc:
                    record(_entry_for_error(row.number, recipient, exc))
                    continue
                await slots.acquire()
                if stop.is_set():
                    slots.release()
                    break
                group.create_task(one(mailer, row.number, recipient, message))
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGINT)
    return run


def run_merge(
    job: MergeJob,
    target: SMTPConfig | TransportGroup,
    *,
    concurrency: int,
    rate: float | None,
    as_json: bool,
) -> int:
    """Run the merge and print its summary; the exit code."""
    err = stderr_console()
    report_path = job.report_path
    if report_path is None and not as_json:
        err.print(
            Text(
                "Note: no --report file; a rerun will not know which rows were sent.",
                style="yellow",
            )
        )
    writer = _ReportWriter(report_path) if report_path is not None else None
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
        transient=False,
    )
    try:
        with progress:
            run = asyncio.run(
                _merge(
                    job,
                    target,
                    concurrency=concurrency,
                    rate=rate,
                    writer=writer,
                    progress=progress,
                )
            )
    finally:
        if writer is not None:
            writer.close()
    _print_summary(job, run, as_json=as_json)
    if run.fatal is not None:
        print_error(run.fatal)
        _resume_note(report_path)
        return exit_code_for(run.fatal)
    if run.interrupted:
        err.print("Interrupted: the sends in flight were finished and recorded.")
        _resume_note(report_path)
        return EXIT_INTERRUPTED
    problems = sum(run.counts[s] for s in ("refused", "failed", "unknown"))
    return EXIT_PARTIAL if problems else EXIT_OK


def _resume_note(report_path: Path | None) -> None:
    if report_path is not None:
        stderr_console().print(
            Text(f"Rerun with --resume {report_path} to continue where this run stopped.")
        )


def _print_summary(job: MergeJob, run: _Run, *, as_json: bool) -> None:
    names = ("accepted", "refused", "failed", "unknown", "skipped")
    if as_json:
        summary: dict[str, Any] = {name: run.counts[name] for name in names}
        summary["report"] = str(job.report_path) if job.report_path else None
        summary["stopped"] = error_dict(run.fatal) if run.fatal is not None else None
        summary["interrupted"] = run.interrupted
        summary["results"] = [entry.to_dict() for entry in sorted(run.entries, key=_by_row)]
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    console = stdout_console()
    problems = [e for e in sorted(run.entries, key=_by_row) if e.status != "accepted"]
    if problems:
        table = Table(title="Rows not accepted", title_justify="left")
        for column in ("Row", "Recipient", "Status", "Reply / reason"):
            table.add_column(column)
        for entry in problems[:50]:
            reply = " ".join(
                str(part) for part in (entry.code, entry.enhanced_code, entry.text) if part
            )
            reason = reply if not entry.error else f"{entry.error} {reply}".strip()
            table.add_row(
                str(entry.row), Text(clean(entry.recipient)), entry.status, Text(clean(reason))
            )
        console.print(table)
        if len(problems) > 50:
            console.print(f"... and {len(problems) - 50} more (see the report)")
    parts = [
        f"{name} {run.counts[name]}" for name in names if run.counts[name] or name == "accepted"
    ]
    line = Text("Mail merge: " + ", ".join(parts), style="bold")
    if job.report_path is not None:
        line.append(f"  (report: {clean(job.report_path)})", style="dim")
    console.print(line)


def _by_row(entry: ReportEntry) -> int:
    return entry.row
