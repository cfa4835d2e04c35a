"""Delivery throughput over loopback SMTP: smtpkit, aiosmtplib, smtplib and Django, in one run.

Every client sends N small messages to the same fast sink (benchmarks/_sink.py, run as a
separate process so it never shares a GIL with the client) on 127.0.0.1, in two scenarios:

* ``plain``: no TLS, no AUTH (smtpkit with ``tls=none``);
* ``starttls+auth``: STARTTLS with certificate verification (a trustme CA), then AUTH PLAIN.

Connections are opened and warmed up before the clock starts, then reused for every message,
so the figures are the steady-state cost of a transaction (MAIL, RCPT, DATA), not of connecting.

    /work/venv/bin/python benchmarks/throughput.py              # 2,000 messages per client
    /work/venv/bin/python benchmarks/throughput.py --n 500      # quicker
    /work/venv/bin/python benchmarks/throughput.py --scenario plain --only smtpkit

Needs aiosmtplib (an smtpkit dependency) and trustme; Django is optional (its rows are skipped
when it is not installed).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import select
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiosmtplib  # noqa: E402

from smtpkit import (  # noqa: E402
    AsyncMailer,
    Credentials,
    Message,
    PoolLimits,
    Secret,
    SMTPConfig,
    TLSMode,
)

HOST = "127.0.0.1"
SENDER = "bench@example.com"
RECIPIENT = "sink@example.com"
USERNAME = "bench"
PASSWORD = "bench-password"
EHLO_NAME = "bench.localhost"
SUBJECT = "Your order A-100042 has shipped"
BODY = (
    "Hello Ann,\n\n"
    "Your order A-100042 left our warehouse today and should arrive within three days.\n"
    "Track it at https://shop.example.com/orders/A-100042\n\n"
    "-- The Example Shop team\n"
)
# A connection carries every message of a run: no client reconnects while it is measured.
MANY = 1_000_000_000


# -- the sink process --------------------------------------------------------------------------


@dataclass
class Sink:
    """The sink process's ports, and the CA file clients trust for its certificate."""

    plain_port: int
    tls_port: int
    ca_file: str

    def stats(self) -> tuple[int, int, float]:
        """(messages received, connections accepted, sink CPU seconds) via the XSTAT verb."""
        with socket.create_connection((HOST, self.plain_port), timeout=10) as sock:
            reader = sock.makefile("rb")
            reader.readline()  # greeting
            sock.sendall(b"XSTAT\r\n")
            line = reader.readline().split()
            sock.sendall(b"QUIT\r\n")
            reader.readline()
        # The XSTAT connection itself is counted: report it as not having happened.
        return int(line[1]), int(line[2]) - 1, float(line[3])


@contextmanager
def running_sink(directory: Path, engine: str = "threads") -> Iterator[Sink]:
    """Start the sink in its own process; it is always stopped when the block ends."""
    import trustme

    ca = trustme.CA(organization_name="smtpkit benchmark")
    leaf = ca.issue_cert(HOST, "localhost")
    ca_file = directory / "ca.pem"
    cert_file = directory / "server.pem"
    key_file = directory / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    with cert_file.open("wb") as out:
        for blob in leaf.cert_chain_pems:
            out.write(blob.bytes())
    command = [
        sys.executable,
        str(Path(__file__).with_name("_sink.py")),
        "--cert",
        str(cert_file),
        "--key",
        str(key_file),
        "--engine",
        engine,
    ]
    # stdin is the sink's lifeline: it exits when the pipe closes, even if we are killed.
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 15.0)
        line = process.stdout.readline().decode() if ready else ""
        if not line.startswith("READY "):
            raise RuntimeError(f"the sink did not start (got {line!r})")
        _, plain, tls = line.split()
        yield Sink(int(plain), int(tls), str(ca_file))
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


# -- what every client gets ---------------------------------------------------------------------


@dataclass
class Setup:
    """One scenario: where to send, with or without STARTTLS + AUTH, and the message."""

    scenario: str
    secure: bool
    port: int
    ca_file: str
    message: Message
    data: bytes
    context: ssl.SSLContext = field(init=False)

    def __post_init__(self) -> None:
        # One verifying context for every peer client (smtpkit builds its own from ca_file).
        self.context = ssl.create_default_context(cafile=self.ca_file)

    def smtpkit_config(self, connections: int) -> SMTPConfig:
        pool = PoolLimits(max_connections=connections, max_messages_per_connection=MANY)
        if not self.secure:
            return SMTPConfig(
                host=HOST, port=self.port, tls=TLSMode.NONE, local_hostname=EHLO_NAME, pool=pool
            )
        return SMTPConfig(
            host=HOST,
            port=self.port,
            tls=TLSMode.STARTTLS,
            credentials=Credentials(USERNAME, Secret(PASSWORD)),
            auth_mechanisms=("PLAIN",),
            local_hostname=EHLO_NAME,
            ca_file=self.ca_file,
            pool=pool,
        )


def build_message() -> Message:
    return Message(sender=SENDER, to=[RECIPIENT], subject=SUBJECT, text=BODY)


@dataclass
class Client:
    name: str
    family: str  # for --only
    run: Callable[[Setup, int, int, Timer], None]


class Timer:
    """Clock readings around the measured part of one client's run."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self.wall = 0.0
        self.cpu = 0.0
        self.sink_cpu = 0.0

    def start(self) -> None:
        gc.collect()
        self._sink_cpu0 = self._sink.stats()[2]
        self._cpu0 = time.process_time()
        self._wall0 = time.perf_counter()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._wall0
        self.cpu = time.process_time() - self._cpu0
        self.sink_cpu = self._sink.stats()[2] - self._sink_cpu0


# -- smtpkit -------------------------------------------------------------------------------------


def smtpkit_one(per_send_build: bool) -> Callable[[Setup, int, int, Timer], None]:
    def run(setup: Setup, warmup: int, n: int, timer: Timer) -> None:
        async def main() -> None:
            async with AsyncMailer(setup.smtpkit_config(1)) as mailer:
                message = setup.message
                for _ in range(warmup):
                    await mailer.send(message)
                timer.start()
                if per_send_build:
                    for _ in range(n):
                        result = await mailer.send(build_message())
                else:
                    for _ in range(n):
                        result = await mailer.send(message)
                timer.stop()
                assert result.accepted == (RECIPIENT,), result

        asyncio.run(main())

    return run


def smtpkit_pooled(concurrency: int) -> Callable[[Setup, int, int, Timer], None]:
    def run(setup: Setup, warmup: int, n: int, timer: Timer) -> None:
        async def main() -> None:
            async with AsyncMailer(setup.smtpkit_config(concurrency)) as mailer:
                message = setup.message
                # Enough concurrent sends to open every connection of the pool.
                await mailer.send_many([message] * warmup, concurrency=concurrency)
                timer.start()
                outcomes = await mailer.send_many([message] * n, concurrency=concurrency)
                timer.stop()
                failures = [o for o in outcomes if isinstance(o, Exception)]
                assert not failures, failures[:3]

        asyncio.run(main())

    return run


# -- aiosmtplib ----------------------------------------------------------------------------------


async def _aiosmtplib_connect(setup: Setup) -> aiosmtplib.SMTP:
    smtp = aiosmtplib.SMTP(
        hostname=HOST,
        port=setup.port,
        local_hostname=EHLO_NAME,
        start_tls=setup.secure,
        tls_context=setup.context if setup.secure else None,
        timeout=30,
    )
    await smtp.connect()
    if setup.secure:
        await smtp.auth_plain(USERNAME, PASSWORD)
    return smtp


def aiosmtplib_clients(connections: int) -> Callable[[Setup, int, int, Timer], None]:
    def run(setup: Setup, warmup: int, n: int, timer: Timer) -> None:
        async def worker(smtp: aiosmtplib.SMTP, remaining: list[int]) -> None:
            data = setup.data
            while remaining[0] > 0:
                remaining[0] -= 1
                await smtp.sendmail(SENDER, [RECIPIENT], data)

        async def main() -> None:
            smtps = [await _aiosmtplib_connect(setup) for _ in range(connections)]
            try:
                await asyncio.gather(*(worker(s, [max(1, warmup // connections)]) for s in smtps))
                remaining = [n]
                timer.start()
                await asyncio.gather(*(worker(s, remaining) for s in smtps))
                timer.stop()
            finally:
                for smtp in smtps:
                    await smtp.quit()

        asyncio.run(main())

    return run


# -- smtplib and Django (blocking; run directly in the main thread) ------------------------------


def smtplib_one(setup: Setup, warmup: int, n: int, timer: Timer) -> None:
    with smtplib.SMTP(HOST, setup.port, local_hostname=EHLO_NAME, timeout=30) as smtp:
        smtp.ehlo()
        if setup.secure:
            smtp.starttls(context=setup.context)
            smtp.ehlo()
            smtp.login(USERNAME, PASSWORD)  # the sink offers PLAIN and LOGIN: PLAIN is chosen
        data = setup.data
        for _ in range(warmup):
            smtp.sendmail(SENDER, [RECIPIENT], data)
        timer.start()
        for _ in range(n):
            smtp.sendmail(SENDER, [RECIPIENT], data)
        timer.stop()


def django_available() -> bool:
    try:
        import django  # type: ignore[import-untyped,unused-ignore]
        from django.conf import settings  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return False
    if not settings.configured:
        settings.configure(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            DEFAULT_CHARSET="utf-8",
            USE_TZ=True,
        )
        django.setup()
    return True


def django_one(setup: Setup, warmup: int, n: int, timer: Timer) -> None:
    from django.core.mail import (  # type: ignore[import-untyped,unused-ignore]
        EmailMessage,
        get_connection,
    )

    connection = get_connection(
        "django.core.mail.backends.smtp.EmailBackend",
        host=HOST,
        port=setup.port,
        username=USERNAME if setup.secure else "",
        password=PASSWORD if setup.secure else "",
        use_tls=setup.secure,
        timeout=30,
    )
    # Django builds a default context (the system CAs only); trust the sink's CA instead. The
    # property is a cached_property, so an instance value replaces it.
    connection.ssl_context = setup.context
    # Django has no raw-bytes API: the same text message, which it serialises on every send.
    message = EmailMessage(SUBJECT, BODY, SENDER, [RECIPIENT], connection=connection)
    connection.open()
    try:
        for _ in range(warmup):
            assert connection.send_messages([message]) == 1
        timer.start()
        for _ in range(n):
            connection.send_messages([message])
        timer.stop()
    finally:
        connection.close()


# -- the harness ----------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    client: str
    messages: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    sink_cpu: float = 0.0
    samples: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.messages / self.wall if self.wall else 0.0


def clients(include_django: bool) -> list[Client]:
    found = [
        Client("smtpkit, 1 connection", "smtpkit", smtpkit_one(per_send_build=False)),
        Client("smtpkit, 1 conn, new Message each", "smtpkit", smtpkit_one(per_send_build=True)),
        Client("smtpkit, pool 4 (send_many 4)", "smtpkit", smtpkit_pooled(4)),
        Client("smtpkit, pool 8 (send_many 8)", "smtpkit", smtpkit_pooled(8)),
        Client("aiosmtplib, 1 connection", "aiosmtplib", aiosmtplib_clients(1)),
        Client("aiosmtplib, 8 connections", "aiosmtplib", aiosmtplib_clients(8)),
        Client("smtplib, 1 connection", "smtplib", smtplib_one),
    ]
    if include_django:
        found.append(Client("Django SMTP backend, 1 connection", "django", django_one))
    return found


def run_all(args: argparse.Namespace, sink: Sink) -> list[Row]:
    message = build_message()
    data = message.to_bytes()
    scenarios = []
    if args.scenario in ("plain", "both"):
        scenarios.append(Setup("plain", False, sink.plain_port, sink.ca_file, message, data))
    if args.scenario in ("starttls", "both"):
        scenarios.append(Setup("starttls+auth", True, sink.tls_port, sink.ca_file, message, data))
    chosen = [
        c
        for c in clients(include_django=not args.skip_django and django_available())
        if not args.only or c.family in args.only
    ]
    rows = {(s.scenario, c.name): Row(s.scenario, c.name) for s in scenarios for c in chosen}
    rounds = max(1, min(args.rounds, args.n))
    # Interleaved rounds: a change in machine load affects every client alike.
    for r in range(rounds):
        share = args.n // rounds + (1 if r < args.n % rounds else 0)
        for setup in scenarios:
            for client in chosen:
                before = sink.stats()[0]
                timer = Timer(sink)
                client.run(setup, args.warmup, share, timer)
                received = sink.stats()[0] - before
                row = rows[(setup.scenario, client.name)]
                warmup_sent = received - share
                if warmup_sent < 0 or warmup_sent > args.warmup + 8:
                    raise RuntimeError(
                        f"{client.name}: the sink received {received} messages, expected"
                        f" {share} (+ warm-up)"
                    )
                row.messages += share
                row.wall += timer.wall
                row.cpu += timer.cpu
                row.sink_cpu += timer.sink_cpu
                row.samples.append(share / timer.wall)
                if args.verbose:
                    print(
                        f"  round {r + 1} {setup.scenario:14} {client.name:36}"
                        f" {share / timer.wall:8.0f} msgs/s",
                        file=sys.stderr,
                    )
    return list(rows.values())


def report(rows: list[Row], args: argparse.Namespace, size: int) -> None:
    print(
        f"python {platform.python_version()}, aiosmtplib {aiosmtplib.__version__}, "
        f"{os.cpu_count()} CPUs, {args.n} messages per client ({size} octets each), "
        f"{args.rounds} rounds, loopback sink in a separate process\n"
    )
    header = (
        f"{'scenario':14} {'client':36} {'msgs/s':>8} {'vs 1-conn':>9}"
        f" {'CPU ms/msg':>10} {'spread':>7} {'sink CPU':>8}"
    )
    print(header)
    print("-" * len(header))
    by_scenario: dict[str, list[Row]] = {}
    for row in rows:
        by_scenario.setdefault(row.scenario, []).append(row)
    for scenario, group in by_scenario.items():
        base = next((r.rate for r in group if r.client == "smtpkit, 1 connection"), None)
        for row in group:
            ratio = f"{row.rate / base:8.2f}x" if base else f"{'-':>9}"
            # Spread of the per-round rates around their median, and how busy the sink was
            # (well under 100% means the client, not the sink, set the pace).
            spread = (
                (max(row.samples) - min(row.samples)) / statistics.median(row.samples)
                if len(row.samples) > 1
                else 0.0
            )
            print(
                f"{scenario:14} {row.client:36} {row.rate:8.0f} {ratio}"
                f" {row.cpu / row.messages * 1e3:10.3f} {spread:6.0%}"
                f" {row.sink_cpu / row.wall:8.0%}"
            )
        print()
    check_goals(by_scenario)


def check_goals(by_scenario: dict[str, list[Row]]) -> None:
    """The delivery issue's goals, per scenario."""
    for scenario, group in by_scenario.items():
        rates = {r.client: r.rate for r in group}
        one = rates.get("smtpkit, 1 connection")
        django = rates.get("Django SMTP backend, 1 connection")
        pooled = max(
            (rate for name, rate in rates.items() if name.startswith("smtpkit, pool")),
            default=None,
        )
        peers = {n: r for n, r in rates.items() if not n.startswith("smtpkit")}
        if one is not None and django is not None:
            verdict = "met" if one >= django else "NOT met"
            print(
                f"{scenario}: smtpkit 1 connection / Django = {one / django:.2f}"
                f" (goal >= 1: {verdict})"
            )
        if pooled is not None and peers:
            best_name = max(peers, key=lambda name: peers[name])
            verdict = "met" if pooled > peers[best_name] else "NOT met"
            print(
                f"{scenario}: smtpkit best pool / best peer ({best_name}) ="
                f" {pooled / peers[best_name]:.2f} (goal > 1: {verdict})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="timed messages per client")
    parser.add_argument("--warmup", type=int, default=100, help="untimed messages per client run")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (n is split)")
    parser.add_argument("--scenario", choices=("plain", "starttls", "both"), default="both")
    parser.add_argument(
        "--only",
        action="append",
        choices=("smtpkit", "aiosmtplib", "smtplib", "django"),
        help="run only these clients (repeatable)",
    )
    parser.add_argument("--skip-django", action="store_true")
    parser.add_argument(
        "--sink-engine",
        choices=("threads", "asyncio"),
        default="threads",
        help="the sink's engine (threads answers faster; see _sink.py)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print each round")
    args = parser.parse_args()
    if args.n < 1 or args.warmup < 8:
        parser.error("--n must be >= 1 and --warmup >= 8 (enough to open 8 connections)")
    with (
        tempfile.TemporaryDirectory(prefix="smtpkit-bench-") as tmp,
        running_sink(Path(tmp), args.sink_engine) as sink,
    ):
        rows = run_all(args, sink)
    report(rows, args, len(build_message().to_bytes()))


if __name__ == "__main__":
    main()
