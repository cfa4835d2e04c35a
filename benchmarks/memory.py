"""Peak memory of sending one message with a large attachment: smtpkit next to the stdlib.

For each path a fresh Python process (so its resident set starts clean) imports what it needs,
generates the attachment's random bytes, notes its peak RSS so far (the baseline), then builds
the message and sends it over loopback SMTP to the sink (benchmarks/_sink.py, in a process of
its own), and reports its peak RSS again. The difference is the extra memory of building and
sending; it is printed as a multiple of the attachment size.

* ``smtpkit``: ``Mailer(SMTPConfig(...)).send(Message(..., attachments=[Attachment(...)]))``;
* ``stdlib``: ``email.message.EmailMessage`` with ``add_attachment`` (policy ``SMTP``), sent with
  ``smtplib.SMTP.send_message``.

    /work/venv/bin/python benchmarks/memory.py               # 25 MB attachment
    /work/venv/bin/python benchmarks/memory.py --size-mb 10  # quicker

The project's goal: smtpkit's extra peak at most 3x the attachment size. Linux only
(``ru_maxrss`` is in KiB there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
SENDER = "bench@example.com"
RECIPIENT = "sink@example.com"
PATHS = ("smtpkit", "stdlib")
GOAL = 3.0
# The sink advertises SIZE 32 MiB; a 25 MB attachment is about 35 MB once base64-encoded, and
# smtpkit (rightly) refuses to send more than the server's SIZE. The sink is started with a
# larger limit instead: it keeps nothing, so the limit is only what it announces.
SINK_SIZE = 256 * 2**20
SINK_RUNNER = (
    "import sys; sys.path.insert(0, sys.argv[1]); import _sink; "
    "_sink.MAX_SIZE = int(sys.argv[2]); sys.argv[1:] = []; _sink.main()"
)


def _maxrss() -> int:
    """Peak resident set size of this process so far, in octets (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- the child: one message, one path ---------------------------------------------------------


def child(path: str, port: int, size: int) -> None:
    """Build and send one message on ``path``; print a JSON line with the figures."""
    sys.path.insert(0, str(ROOT))
    # Every import before the baseline, so that the figure is the work, not the code.
    import smtplib
    from email.message import EmailMessage
    from email.policy import SMTP

    from smtpkit import Attachment, Mailer, Message, SMTPConfig, TLSMode

    attachment = os.urandom(size)
    baseline = _maxrss()
    if path == "smtpkit":
        message = Message(
            sender=SENDER,
            to=[RECIPIENT],
            subject="Your large report",
            text="The report is attached.\n",
            attachments=[Attachment("report.bin", attachment, "application/octet-stream")],
        )
        config = SMTPConfig(host=HOST, port=port, tls=TLSMode.NONE, local_hostname="localhost")
        with Mailer(config) as mailer:
            result = mailer.send(message)
        ok = bool(result.accepted)
    else:
        email = EmailMessage(policy=SMTP)
        email["From"] = SENDER
        email["To"] = RECIPIENT
        email["Subject"] = "Your large report"
        email.set_content("The report is attached.\n")
        email.add_attachment(
            attachment, maintype="application", subtype="octet-stream", filename="report.bin"
        )
        with smtplib.SMTP(HOST, port, local_hostname="localhost") as client:
            refused = client.send_message(email)
        ok = not refused
    peak = _maxrss()
    print(json.dumps({"size": size, "baseline": baseline, "peak": peak, "ok": ok}))


# -- the parent -------------------------------------------------------------------------------


@contextmanager
def running_sink() -> Iterator[int]:
    """The sink in its own process; yields its plain port. Always stopped afterwards."""
    command = [sys.executable, "-c", SINK_RUNNER, str(HERE), str(SINK_SIZE)]
    # stdin is the sink's lifeline: it exits when the pipe closes, even if we are killed.
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 15.0)
        line = process.stdout.readline().decode() if ready else ""
        if not line.startswith("READY "):
            raise RuntimeError(f"the sink did not start (got {line!r})")
        yield int(line.split()[1])
    finally:
        if process.stdin is not None:
            with suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def run_child(path: str, port: int, size: int) -> dict[str, int]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", path]
    command += ["--port", str(port), "--size", str(size)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{path}: the child failed:\n{done.stderr}")
    figures: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    if not figures["ok"]:
        raise RuntimeError(f"{path}: the sink refused the message")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=25.0, help="attachment size (MiB)")
    parser.add_argument("--only", action="append", choices=PATHS, help="run only this path")
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.port, args.size)
        return
    if not sys.platform.startswith("linux"):
        sys.exit("memory.py reads ru_maxrss as KiB: Linux only")

    size = int(args.size_mb * 2**20)
    paths = args.only or list(PATHS)
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"attachment {size:,} octets ({size / 2**20:g} MiB), one fresh process per path"
    )
    results: dict[str, dict[str, int]] = {}
    with running_sink() as port:
        for path in paths:
            results[path] = run_child(path, port, size)
    print(
        f"\n{'path':<10} {'baseline MB':>12} {'peak MB':>10} {'extra MB':>10} {'x attachment':>13}"
    )
    for path, figures in results.items():
        extra = figures["peak"] - figures["baseline"]
        print(
            f"{path:<10} {figures['baseline'] / 2**20:>12.1f} {figures['peak'] / 2**20:>10.1f} "
            f"{extra / 2**20:>10.1f} {extra / size:>12.2f}x"
        )
    if "smtpkit" in results:
        figures = results["smtpkit"]
        ratio = (figures["peak"] - figures["baseline"]) / size
        verdict = "met" if ratio <= GOAL else "MISSED"
        print(f"\ngoal: smtpkit extra peak <= {GOAL:g}x the attachment: {ratio:.2f}x, {verdict}")


if __name__ == "__main__":
    main()
