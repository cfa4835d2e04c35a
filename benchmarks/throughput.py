"""Delivery throughput over loopback SMTP: smtpkit and its peers, in one run.

Peers: aiosmtplib, smtplib, Django, fastapi-mail, and (when installed) Nodemailer and PHPMailer.

Every client sends N small messages to the same fast sink, run as a separate process so it
never shares a GIL with the client, on 127.0.0.1, in three scenarios:

* ``plain``: no TLS, no AUTH (smtpkit with ``tls=none``);
* ``starttls+auth``: STARTTLS with certificate verification (a trustme CA), then AUTH PLAIN;
* ``implicit+auth``: TLS from the first byte (SMTPS) with the same verification, then AUTH PLAIN.

The sink is Postfix's ``smtp-sink`` for the plain scenario when it is installed (``--sink``), and
benchmarks/_sink.py otherwise and for the TLS scenarios (smtp-sink has no TLS).

Connections are opened and warmed up before the clock starts, then reused for every message,
so the figures are the steady-state cost of a transaction (MAIL, RCPT, DATA), not of connecting.

    /work/venv/bin/python benchmarks/throughput.py              # 2,000 messages per client
    /work/venv/bin/python benchmarks/throughput.py --n 500      # quicker
    /work/venv/bin/python benchmarks/throughput.py --scenario plain --only smtpkit
    /work/venv/bin/python benchmarks/throughput.py --latency-ms 20   # through a 20 ms RTT proxy
    /work/venv/bin/python benchmarks/throughput.py --sink builtin    # never Postfix's smtp-sink

Needs aiosmtplib (an smtpkit dependency) and trustme; Django, fastapi-mail, Nodemailer
(benchmarks/peers/node_modules) and PHPMailer (Debian's libphp-phpmailer) are optional: their
rows say "skipped: ..." when they are not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import select
import shutil
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

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
PEERS = Path(__file__).resolve().parent / "peers"
PHPMAILER = Path("/usr/share/php/libphp-phpmailer/autoload.php")
# Where Debian and others install Postfix's test server (not on a normal user's PATH).
SMTP_SINK_PLACES = ("/usr/sbin/smtp-sink", "/usr/lib/postfix/sbin/smtp-sink")
# A peer script that reads the "tls" field of its config ("none", "starttls" or "implicit")
# says so with this marker; older ones only know "secure" (STARTTLS) and skip implicit TLS.
IMPLICIT_TLS_MARKER = "bench-supports: implicit-tls"
# Scenario (tls mode) -> its name in the table.
SCENARIOS = {"none": "plain", "starttls": "starttls+auth", "implicit": "implicit+auth"}


# -- the sink process --------------------------------------------------------------------------


class SinkStats(Protocol):
    """What the harness reads from a sink: counters and its CPU time."""

    name: str

    def stats(self) -> tuple[int, int, float]:
        """(messages received, connections accepted, sink CPU seconds)."""
        ...


@dataclass
class Sink:
    """The builtin sink process's ports, and the CA file clients trust for its certificate."""

    plain_port: int
    starttls_port: int
    implicit_port: int
    ca_file: str
    name: str = "builtin"

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
    with helper_process(command, "the sink") as ports:
        yield Sink(ports[0], ports[1], ports[2], str(ca_file))


def find_smtp_sink() -> str | None:
    """The path of Postfix's smtp-sink, or None when Postfix is not installed."""
    found = shutil.which("smtp-sink")
    if found:
        return found
    return next((path for path in SMTP_SINK_PLACES if os.access(path, os.X_OK)), None)


@dataclass
class PostfixSink:
    """Postfix's smtp-sink on a loopback port; counters from its ``-c`` output (a file)."""

    port: int
    counters: Path
    pid: int
    name: str = "smtp-sink"

    def stats(self) -> tuple[int, int, float]:
        # smtp-sink -c writes "sess=N quit=N msg=N\r" whenever a message or a session ends.
        # Wait until the file has stopped growing, so the last transaction has been counted.
        size = -1
        for _ in range(100):
            now = self.counters.stat().st_size
            if now == size:
                break
            size = now
            time.sleep(0.02)
        with self.counters.open("rb") as counters:
            counters.seek(max(0, size - 256))
            tail = counters.read().split(b"\r")
        fields = {}
        for record in reversed(tail):
            if b"mesg=" in record:
                fields = dict(item.split(b"=", 1) for item in record.split() if b"=" in item)
                break
        # utime and stime, in clock ticks (fields 14 and 15 of /proc/PID/stat; the command
        # name, field 2, is in parentheses and may hold spaces).
        stat = Path(f"/proc/{self.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        return int(fields.get(b"mesg", 0)), int(fields.get(b"sess", 0)), cpu


@contextmanager
def running_postfix_sink(executable: str, directory: Path) -> Iterator[PostfixSink]:
    """Start smtp-sink on a free loopback port; it is always stopped when the block ends."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    command = [executable, "-c", "-4", "-h", "sink.localhost"]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]  # it refuses to run as root without a user to switch to
    command += [f"{HOST}:{port}", "128"]
    counters = directory / "smtp-sink.counters"
    with counters.open("wb") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((HOST, port), timeout=5) as sock:
                    if sock.recv(512).startswith(b"220"):
                        sock.sendall(b"QUIT\r\n")
                        sock.recv(512)
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"smtp-sink did not start ({' '.join(command)})")
            time.sleep(0.05)
        yield PostfixSink(port, counters, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def helper_process(command: list[str], what: str) -> Iterator[list[int]]:
    """Run a helper that prints "READY <port> ..." and exits when its stdin closes.

    Yields the ports; the process is always stopped (stdin closed, then terminate, then kill).
    """
    # stdin is the helper's lifeline: it exits when the pipe closes, even if we are killed.
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 15.0)
        line = process.stdout.readline().decode() if ready else ""
        if not line.startswith("READY "):
            raise RuntimeError(f"{what} did not start (got {line!r})")
        yield [int(port) for port in line.split()[1:]]
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Close the pipes of ``process`` and make sure it has ended."""
    if process.stdin is not None:
        with suppress(OSError):
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


@contextmanager
def latency_proxy(ports: list[int], rtt_ms: float) -> Iterator[list[int]]:
    """benchmarks/_latency_proxy.py in its own process: one proxy port per target port."""
    command = [
        sys.executable,
        str(Path(__file__).with_name("_latency_proxy.py")),
        "--rtt-ms",
        str(rtt_ms),
        *(str(port) for port in ports),
    ]
    with helper_process(command, "the latency proxy") as proxied:
        yield proxied


# -- what every client gets ---------------------------------------------------------------------


@dataclass
class Setup:
    """One scenario: where to send, how (plain, STARTTLS or implicit TLS), and the message."""

    scenario: str
    tls: str  # "none", "starttls" or "implicit"; AUTH PLAIN with either TLS
    port: int
    ca_file: str
    message: Message
    data: bytes
    sink: SinkStats
    context: ssl.SSLContext = field(init=False)

    def __post_init__(self) -> None:
        # One verifying context for every peer client (smtpkit builds its own from ca_file).
        self.context = ssl.create_default_context(cafile=self.ca_file)

    @property
    def secure(self) -> bool:
        """TLS (either kind) and AUTH."""
        return self.tls != "none"

    @property
    def starttls(self) -> bool:
        return self.tls == "starttls"

    @property
    def implicit(self) -> bool:
        return self.tls == "implicit"

    def smtpkit_config(self, connections: int) -> SMTPConfig:
        pool = PoolLimits(max_connections=connections, max_messages_per_connection=MANY)
        if not self.secure:
            return SMTPConfig(
                host=HOST, port=self.port, tls=TLSMode.NONE, local_hostname=EHLO_NAME, pool=pool
            )
        return SMTPConfig(
            host=HOST,
            port=self.port,
            tls=TLSMode.IMPLICIT if self.implicit else TLSMode.STARTTLS,
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
    skipped: str | None = None  # why this peer cannot run here
    # Why it cannot run a given scenario (by tls mode), when it can run the others.
    unsupported: dict[str, str] = field(default_factory=dict)


class Timer:
    """Clock readings around the measured part of one client's run."""

    def __init__(self, sink: SinkStats) -> None:
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


def smtpkit_pooled(
    connections: int, concurrency: int | None = None
) -> Callable[[Setup, int, int, Timer], None]:
    """send_many over a pool; more concurrent sends than connections chain messages (RFC 2920)."""
    concurrency = concurrency or connections

    def run(setup: Setup, warmup: int, n: int, timer: Timer) -> None:
        async def main() -> None:
            async with AsyncMailer(setup.smtpkit_config(connections)) as mailer:
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
        use_tls=setup.implicit,
        start_tls=setup.starttls,
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
    if setup.implicit:
        opened: smtplib.SMTP = smtplib.SMTP_SSL(
            HOST, setup.port, local_hostname=EHLO_NAME, timeout=30, context=setup.context
        )
    else:
        opened = smtplib.SMTP(HOST, setup.port, local_hostname=EHLO_NAME, timeout=30)
    with opened as smtp:
        smtp.ehlo()
        if setup.starttls:
            smtp.starttls(context=setup.context)
            smtp.ehlo()
        if setup.secure:
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
        use_tls=setup.starttls,
        use_ssl=setup.implicit,
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


# -- fastapi-mail (aiosmtplib underneath; a new connection for every message) ----------------------


def fastapi_mail_missing() -> str | None:
    try:
        import fastapi_mail  # noqa: F401
    except ImportError:
        return "fastapi-mail is not installed (pip install fastapi-mail)"
    return None


def fastapi_mail_one(setup: Setup, warmup: int, n: int, timer: Timer) -> None:
    from fastapi_mail import ConnectionConfig, FastMail, MessageSchema, MessageType
    from pydantic import NameEmail, SecretStr

    config = ConnectionConfig(
        MAIL_USERNAME=USERNAME if setup.secure else "",
        MAIL_PASSWORD=SecretStr(PASSWORD if setup.secure else ""),
        MAIL_FROM=SENDER,
        MAIL_PORT=setup.port,
        MAIL_SERVER=HOST,
        MAIL_STARTTLS=setup.starttls,
        MAIL_SSL_TLS=setup.implicit,
        USE_CREDENTIALS=setup.secure,
        VALIDATE_CERTS=True,
        CERT_BUNDLE=setup.ca_file if setup.secure else None,
        LOCAL_HOSTNAME=EHLO_NAME,
        TIMEOUT=30,
    )
    mailer = FastMail(config)
    # Its documented use: a MessageSchema per send, which it turns into MIME and sends on a
    # connection it opens (and QUITs) for that one message: it has no way to keep one open.
    message = MessageSchema(
        subject=SUBJECT, recipients=[NameEmail("", RECIPIENT)], body=BODY, subtype=MessageType.plain
    )

    async def main() -> None:
        for _ in range(warmup):
            await mailer.send_message(message)
        timer.start()
        for _ in range(n):
            await mailer.send_message(message)
        timer.stop()

    asyncio.run(main())


# -- peers in other languages (benchmarks/peers/) -------------------------------------------------


def nodemailer_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (PEERS / "node_modules" / "nodemailer").is_dir():
        return "nodemailer is not installed (cd benchmarks/peers && npm install)"
    return None


def phpmailer_missing() -> str | None:
    if shutil.which("php") is None:
        return "php is not installed (apt-get install php-cli libphp-phpmailer)"
    if not PHPMAILER.is_file():
        return "PHPMailer is not installed (apt-get install libphp-phpmailer)"
    return None


def peer_lacks_implicit_tls(script: Path) -> dict[str, str]:
    """{"implicit": why} unless ``script`` declares that it reads the "tls" config field."""
    with suppress(OSError):
        if IMPLICIT_TLS_MARKER in script.read_text():
            return {}
    return {"implicit": f"peers/{script.name} knows only plain and STARTTLS (no implicit TLS)"}


def external_peer(command: list[str], connections: int) -> Callable[[Setup, int, int, Timer], None]:
    """A peer script: warms up, prints WARM, waits for a line, sends, prints DONE wall cpu."""

    def run(setup: Setup, warmup: int, n: int, timer: Timer) -> None:
        with tempfile.NamedTemporaryFile(prefix="smtpkit-bench-", suffix=".eml") as raw:
            raw.write(setup.data)
            raw.flush()
            config = {
                "host": HOST,
                "port": setup.port,
                # "secure" (STARTTLS + AUTH) for peer scripts that predate "tls".
                "secure": setup.secure,
                "tls": setup.tls,
                "ca_file": setup.ca_file,
                "username": USERNAME,
                "password": PASSWORD,
                "sender": SENDER,
                "recipient": RECIPIENT,
                "subject": SUBJECT,
                "body": BODY,
                "raw": raw.name,
                "warmup": warmup,
                "n": n,
                "connections": connections,
            }
            process = subprocess.Popen(
                [*command, json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=PEERS,
            )
            try:
                assert process.stdin is not None
                assert process.stdout is not None
                if process.stdout.readline().strip() != b"WARM":
                    raise RuntimeError(f"{command[0]} peer failed during its warm-up")
                timer.start()
                process.stdin.write(b"GO\n")
                process.stdin.flush()
                done = process.stdout.readline().split()
                timer.stop()
                if len(done) != 3 or done[0] != b"DONE":
                    raise RuntimeError(f"{command[0]} peer failed: {done!r}")
                # The peer's own clocks: the timed part only, without the pipe round trip and
                # (for CPU) in the peer's process, where the client work happens.
                timer.wall, timer.cpu = float(done[1]), float(done[2])
            finally:
                stop(process)

    return run


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
    found: list[Client] = [
        Client("smtpkit, 1 connection", "smtpkit", smtpkit_one(per_send_build=False)),
        Client("smtpkit, 1 conn, new Message each", "smtpkit", smtpkit_one(per_send_build=True)),
        Client("smtpkit, 1 connection, send_many 4", "smtpkit", smtpkit_pooled(1, 4)),
        Client("smtpkit, pool 4 (send_many 4)", "smtpkit", smtpkit_pooled(4)),
        Client("smtpkit, pool 8 (send_many 8)", "smtpkit", smtpkit_pooled(8)),
        Client("smtpkit, pool 8 (send_many 16)", "smtpkit", smtpkit_pooled(8, 16)),
        Client("aiosmtplib, 1 connection", "aiosmtplib", aiosmtplib_clients(1)),
        Client("aiosmtplib, 8 connections", "aiosmtplib", aiosmtplib_clients(8)),
        Client("smtplib, 1 connection", "smtplib", smtplib_one),
    ]
    if include_django:
        found.append(Client("Django SMTP backend, 1 connection", "django", django_one))
    found.append(
        Client(
            "fastapi-mail, connection per message",
            "fastapi-mail",
            fastapi_mail_one,
            skipped=fastapi_mail_missing(),
        )
    )
    found.append(
        Client(
            "Nodemailer, pool 8",
            "nodemailer",
            external_peer(["node", str(PEERS / "nodemailer_pool.js")], 8),
            skipped=nodemailer_missing(),
            unsupported=peer_lacks_implicit_tls(PEERS / "nodemailer_pool.js"),
        )
    )
    found.append(
        Client(
            "PHPMailer, keep-alive, 1 connection",
            "phpmailer",
            external_peer(["php", str(PEERS / "phpmailer_keepalive.php")], 1),
            skipped=phpmailer_missing(),
            unsupported=peer_lacks_implicit_tls(PEERS / "phpmailer_keepalive.php"),
        )
    )
    return found


def chosen_modes(args: argparse.Namespace) -> list[str]:
    """The scenarios asked for, as tls modes in table order."""
    wanted = set(args.scenario or ["all"])
    if "all" in wanted:
        wanted |= {"plain", "starttls", "implicit"}
    if "both" in wanted:  # the older spelling: plain and STARTTLS
        wanted |= {"plain", "starttls"}
    wanted |= {"none"} if "plain" in wanted else set()
    return [mode for mode in SCENARIOS if mode in wanted]


def run_all(args: argparse.Namespace, scenarios: list[Setup]) -> list[Row]:
    """Run every chosen client in every scenario."""
    chosen = []
    for c in clients(include_django=not args.skip_django and django_available()):
        if args.only and c.family not in args.only:
            continue
        if c.skipped is not None:
            print(f"{c.name}: skipped: {c.skipped}", file=sys.stderr)
            continue
        chosen.append(c)
    for s in scenarios:
        for c in chosen:
            if s.tls in c.unsupported:
                print(f"{c.name} [{s.scenario}]: skipped: {c.unsupported[s.tls]}", file=sys.stderr)
    rows = {
        (s.scenario, c.name): Row(s.scenario, c.name)
        for s in scenarios
        for c in chosen
        if s.tls not in c.unsupported
    }
    rounds = max(1, min(args.rounds, args.n))
    # Interleaved rounds: a change in machine load affects every client alike.
    for r in range(rounds):
        share = args.n // rounds + (1 if r < args.n % rounds else 0)
        for setup in scenarios:
            for client in chosen:
                if setup.tls in client.unsupported:
                    continue
                before = setup.sink.stats()[0]
                timer = Timer(setup.sink)
                client.run(setup, args.warmup, share, timer)
                received = setup.sink.stats()[0] - before
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


def describe_sinks(scenarios: list[Setup]) -> str:
    """Which sink served which scenario, for the report's first lines."""
    by_sink: dict[str, list[str]] = {}
    for setup in scenarios:
        by_sink.setdefault(setup.sink.name, []).append(setup.scenario)
    return "; ".join(f"{name} for {', '.join(names)}" for name, names in by_sink.items())


def report(rows: list[Row], args: argparse.Namespace, size: int, sinks: str) -> None:
    latency = f", through a {args.latency_ms:g} ms RTT proxy" if args.latency_ms else ""
    print(
        f"python {platform.python_version()}, aiosmtplib {aiosmtplib.__version__}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, {args.n} messages per client "
        f"({size} octets each), {args.rounds} rounds, loopback sink in a separate process"
        f"{latency}\nsinks: {sinks}\n"
    )
    header = (
        f"{'scenario':18} {'client':36} {'msgs/s':>8} {'vs 1-conn':>9}"
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
                f"{scenario:18} {row.client:36} {row.rate:8.0f} {ratio}"
                f" {row.cpu / row.messages * 1e3:10.3f} {spread:6.0%}"
                f" {row.sink_cpu / row.wall:8.0%}"
            )
        print()
    check_goals(by_scenario, args.latency_ms)


def check_goals(by_scenario: dict[str, list[Row]], latency_ms: float) -> None:
    """The delivery issue's goals (issue 3) and the benchmark issue's (issue 7), per scenario."""
    for scenario, group in by_scenario.items():
        rates = {r.client: r.rate for r in group}
        best = max((r for n, r in rates.items() if n.startswith("smtpkit")), default=None)
        others = {n: r for n, r in rates.items() if not n.startswith("smtpkit")}
        if best is not None and others:
            name = max(others, key=lambda n: others[n])
            verdict = "met" if best >= 1.5 * others[name] else "NOT met"
            print(
                f"{scenario}: smtpkit best / best peer ({name}) = {best / others[name]:.2f}"
                f" (goal >= 1.5: {verdict})"
            )
        if latency_ms:
            for client, goal in (("smtpkit, 1 connection", 35), ("smtpkit, pool 8", 250)):
                rate = max((r for n, r in rates.items() if n.startswith(client)), default=None)
                if rate is not None:
                    verdict = "met" if rate >= goal else "NOT met"
                    print(f"{scenario}: {client} = {rate:.0f} msgs/s (goal >= {goal}: {verdict})")
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
    parser.add_argument(
        "--scenario",
        action="append",
        choices=("plain", "starttls", "implicit", "both", "all"),
        help="plain, starttls (+ AUTH), implicit (TLS + AUTH); repeatable; default all"
        " (both = plain and starttls)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=(
            "smtpkit",
            "aiosmtplib",
            "smtplib",
            "django",
            "fastapi-mail",
            "nodemailer",
            "phpmailer",
        ),
        help="run only these clients (repeatable)",
    )
    parser.add_argument("--skip-django", action="store_true")
    smtp_sink = find_smtp_sink()
    parser.add_argument(
        "--sink",
        choices=("smtp-sink", "builtin"),
        default="smtp-sink" if smtp_sink else "builtin",
        help="the sink for the plain scenario: Postfix's smtp-sink (the default when installed;"
        " it has no TLS, so the TLS scenarios always use the builtin _sink.py) or the builtin",
    )
    parser.add_argument(
        "--sink-engine",
        choices=("threads", "asyncio"),
        default="threads",
        help="the sink's engine (threads answers faster; see _sink.py)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="send every client through benchmarks/_latency_proxy.py adding this RTT"
        " (then the defaults are n 100, rounds 2, warmup 16)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print each round")
    args = parser.parse_args()
    if args.latency_ms and "--n" not in sys.argv:
        args.n = 100  # a single-connection peer manages about 11 msgs/s at 20 ms
    if args.latency_ms and "--rounds" not in sys.argv:
        args.rounds = 2
    if args.latency_ms and "--warmup" not in sys.argv:
        args.warmup = 16
    if args.n < 1 or args.warmup < 8:
        parser.error("--n must be >= 1 and --warmup >= 8 (enough to open 8 connections)")
    if args.sink == "smtp-sink" and smtp_sink is None:
        parser.error("--sink smtp-sink: Postfix's smtp-sink is not installed")
    modes = chosen_modes(args)
    message = build_message()
    data = message.to_bytes()
    suffix = f" {args.latency_ms:g}ms" if args.latency_ms else ""
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="smtpkit-bench-")))
        builtin = stack.enter_context(running_sink(tmp, args.sink_engine))
        # (sink, port) per tls mode; smtp-sink can only serve the plain scenario.
        targets: dict[str, tuple[SinkStats, int]] = {
            "none": (builtin, builtin.plain_port),
            "starttls": (builtin, builtin.starttls_port),
            "implicit": (builtin, builtin.implicit_port),
        }
        if args.sink == "smtp-sink" and "none" in modes:
            assert smtp_sink is not None
            postfix = stack.enter_context(running_postfix_sink(smtp_sink, tmp))
            targets["none"] = (postfix, postfix.port)
            if len(modes) > 1:
                print(
                    f"plain: Postfix smtp-sink ({smtp_sink}); the TLS scenarios use the builtin"
                    " sink (smtp-sink has no TLS)",
                    file=sys.stderr,
                )
        ports = [targets[mode][1] for mode in modes]
        if args.latency_ms:
            ports = stack.enter_context(latency_proxy(ports, args.latency_ms))
        scenarios = [
            Setup(SCENARIOS[mode] + suffix, mode, port, builtin.ca_file, message, data, sink)
            for mode, port, sink in zip(
                modes, ports, (targets[mode][0] for mode in modes), strict=True
            )
        ]
        rows = run_all(args, scenarios)
    report(rows, args, len(data), describe_sinks(scenarios))


if __name__ == "__main__":
    main()
