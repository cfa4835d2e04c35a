"""A CSV mail merge in Python: one templated message per row, sent concurrently, reported per row.

Each row of the CSV file is one recipient; its columns are the template's variables, and the
``email`` column is the recipient. The messages are rendered with :class:`smtpkit.Templates`
(``templates/merge.subject.txt``, ``merge.txt``, ``merge.html``) and sent with
:meth:`smtpkit.AsyncMailer.send_many` over a pool of connections. A row that cannot become a
message (a bad address, a missing column) and a row the server refuses are both reported and
do not stop the others::

    SMTPKIT_DSN='smtps://me%40example.com:app-password@smtp.example.com' \\
        python examples/bulk_merge.py examples/bulk_merge_recipients.csv \\
        --from 'Example <billing@example.com>' --report report.csv

It prints one line per row and exits with 0 when every row was accepted, 1 otherwise.

No code needed? The command line does the same mail merge, with resumable reports::

    smtpkit send --recipients examples/bulk_merge_recipients.csv --template merge \\
        --templates examples/templates --from billing@example.com --report report.csv
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from smtpkit import AsyncMailer, Mailbox, Message, SendResult, SmtpkitError, Templates

HERE = Path(__file__).resolve().parent


@dataclass
class RowOutcome:
    """What happened to one CSV row."""

    row: int  # the line number in the CSV file (the header is line 1)
    email: str
    status: str  # "sent", "refused" (by the server) or "invalid" (never sent)
    message_id: str = ""
    detail: str = ""


def _messages(
    rows: Iterator[dict[str, str]],
    templates: Templates,
    sender: str,
    outcomes: list[RowOutcome],
    pending: list[RowOutcome],
) -> Iterator[Message]:
    """Yield a message per valid row, lazily; invalid rows are recorded and skipped."""
    for line, row in enumerate(rows, start=2):
        email = (row.get("email") or "").strip()
        outcome = RowOutcome(line, email, "invalid")
        outcomes.append(outcome)
        missing = [column for column, value in row.items() if value is None]
        if missing or None in row:  # csv.DictReader's marks for short and long rows
            outcome.detail = f"row has {'missing' if missing else 'extra'} columns {missing}"
            continue
        try:
            message = templates.message("merge", row, sender=sender, to=[email])
        except SmtpkitError as exc:  # InvalidAddress, TemplateError (missing column), ...
            outcome.detail = f"{type(exc).__name__}: {exc}"
            continue
        pending.append(outcome)  # send_many returns outcomes in the order messages were given
        yield message


async def merge(
    dsn: str,
    csv_path: Path,
    sender: str,
    *,
    templates_dir: Path = HERE / "templates",
    concurrency: int = 4,
) -> list[RowOutcome]:
    """Send one message per row of *csv_path* and return each row's outcome, in file order."""
    Mailbox.parse(sender, field="--from")  # a bad sender would fail every row: fail once, now
    templates = Templates(templates_dir)
    outcomes: list[RowOutcome] = []
    pending: list[RowOutcome] = []
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(handle)
        async with AsyncMailer.from_dsn(dsn) as mailer:
            results = await mailer.send_many(
                _messages(iter(rows), templates, sender, outcomes, pending),
                concurrency=concurrency,
            )
    for outcome, result in zip(pending, results, strict=True):
        if isinstance(result, SendResult):
            outcome.status = "sent"
            outcome.message_id = result.message_id or ""
            outcome.detail = str(result.reply) if result.reply else ""
        else:
            outcome.status = "refused"
            outcome.detail = f"{type(result).__name__}: {result}".replace("\n", " ")
    return outcomes


def write_report(path: Path, outcomes: Sequence[RowOutcome]) -> None:
    """Write the outcomes as CSV (row, email, status, message_id, detail)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "email", "status", "message_id", "detail"])
        for o in outcomes:
            writer.writerow([o.row, o.email, o.status, o.message_id, o.detail])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the merge from the command line; the server comes from --dsn or SMTPKIT_DSN."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, nargs="?", default=HERE / "bulk_merge_recipients.csv")
    parser.add_argument("--from", dest="sender", default="Example <billing@example.com>")
    parser.add_argument("--dsn", default=os.environ.get("SMTPKIT_DSN"))
    parser.add_argument("--templates", type=Path, default=HERE / "templates")
    parser.add_argument("--report", type=Path, help="also write the per-row report as CSV")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    if not args.dsn:
        parser.error("set SMTPKIT_DSN or pass --dsn")

    try:
        outcomes = asyncio.run(
            merge(
                args.dsn,
                args.csv,
                args.sender,
                templates_dir=args.templates,
                concurrency=args.concurrency,
            )
        )
    except SmtpkitError as exc:  # e.g. a bad DSN or sender: nothing was sent
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for o in outcomes:
        print(f"row {o.row:>4}  {o.status:<8} {o.email:<32} {o.message_id or o.detail}")
    sent = sum(o.status == "sent" for o in outcomes)
    print(f"{sent} of {len(outcomes)} rows sent")
    if args.report:
        write_report(args.report, outcomes)
    return 0 if sent == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
