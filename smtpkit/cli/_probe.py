"""A step-by-step SMTP connection probe: DNS, TCP, TLS, greeting, EHLO, STARTTLS.

``smtpkit check`` and ``smtpkit detect`` need what the transport deliberately hides: the
resolved addresses, the TLS version and cipher, the certificate's subject, issuer and expiry,
and the exact EHLO offer before and after STARTTLS. This module gets them with the standard
library only (``asyncio`` streams and ``ssl``); it never sends credentials or a message (AUTH
and the test send go through the real :class:`~smtpkit.SMTPTransport`).

Every step records whether it worked, what it saw and, on failure, the same plain-language
hint the library's errors carry (:func:`smtpkit._hints.hint_for`). Server text is kept as
received; the CLI cleans it of control characters when printing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from smtpkit._config import TLSMode
from smtpkit._hints import hint_for
from smtpkit._replies import Reply

__all__ = [
    "ProbeReport",
    "ProbeStep",
    "TLSInfo",
    "probe",
    "unverified_context",
]

StepName = Literal["dns", "tcp", "tls", "greeting", "ehlo", "starttls"]

# Limits that keep a hostile or broken server from holding the probe: replies are bounded in
# lines and length like a real client's.
_MAX_REPLY_LINES = 100
_MAX_LINE = 4096
_REPLY_LINE = re.compile(r"(\d{3})([ -]?)(.*)")
#: The EHLO keywords worth showing on their own.
NOTABLE_EXTENSIONS = ("SIZE", "PIPELINING", "SMTPUTF8", "8BITMIME", "STARTTLS", "AUTH")


@dataclass
class ProbeStep:
    """One step of the probe.

    Attributes:
        name: ``dns``, ``tcp``, ``tls``, ``greeting``, ``ehlo`` or ``starttls``.
        ok: whether it worked.
        summary: one line for a person.
        hint: on failure, the cause and fix (the library's hints).
        transient: on failure, whether trying again later may work.
        elapsed: seconds the step took.
    """

    name: StepName
    ok: bool
    summary: str
    hint: str | None = None
    transient: bool = False
    elapsed: float = 0.0


@dataclass
class TLSInfo:
    """What the TLS handshake established.

    ``verified`` is true when the certificate chain and the host name were checked and
    passed; ``error`` holds the verifier's reason when they did not. The certificate fields
    are only known for a verified certificate (the standard library decodes no other).
    """

    version: str | None = None
    cipher: str | None = None
    bits: int | None = None
    verified: bool = False
    hostname_match: bool | None = None
    subject: str | None = None
    issuer: str | None = None
    not_after: str | None = None
    days_left: int | None = None
    alt_names: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class ProbeReport:
    """Everything one probe of ``host:port`` found."""

    host: str
    port: int
    mode: str
    steps: list[ProbeStep] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    greeting: str | None = None
    tls: TLSInfo | None = None
    extensions: dict[str, str] = field(default_factory=dict)
    #: ``starttls`` when the server offered STARTTLS on the plaintext connection.
    starttls_offered: bool = False

    @property
    def ok(self) -> bool:
        """True when every step worked."""
        return all(step.ok for step in self.steps)

    @property
    def failed(self) -> ProbeStep | None:
        """The step that failed, if any (the probe stops there)."""
        return next((step for step in self.steps if not step.ok), None)

    @property
    def auth_mechanisms(self) -> list[str]:
        """The AUTH mechanisms of the last EHLO (after TLS when TLS was used)."""
        return [m.upper() for m in self.extensions.get("AUTH", "").split()]

    @property
    def secure(self) -> bool:
        """Whether the session ended up encrypted."""
        return self.tls is not None and self.tls.version is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        data = asdict(self)
        data["ok"] = self.ok
        data["auth_mechanisms"] = self.auth_mechanisms
        return data


class _Closed(Exception):
    """The server closed the connection."""


class _Failed(Exception):
    """A step failed; the report already says why."""


def unverified_context() -> ssl.SSLContext:
    """A client context that completes a handshake whatever the certificate.

    Used only to learn whether TLS works at all after verification failed, never to send.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _name(parts: Any) -> str | None:
    """``subject``/``issuer`` from ``getpeercert()`` as ``CN=..., O=...``."""
    if not parts:
        return None
    short = {"commonName": "CN", "organizationName": "O", "countryName": "C"}
    items = [
        f"{short.get(key, key)}={value}" for rdn in parts for key, value in rdn if key in short
    ]
    return ", ".join(items) or None


def _tls_info(writer: asyncio.StreamWriter, context: ssl.SSLContext) -> TLSInfo:
    ssl_object = writer.get_extra_info("ssl_object")
    info = TLSInfo()
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return info
    info.version = ssl_object.version()
    cipher = ssl_object.cipher()
    if cipher is not None:
        info.cipher, _, info.bits = cipher
    info.verified = context.verify_mode == ssl.CERT_REQUIRED
    info.hostname_match = True if context.check_hostname else None
    cert = ssl_object.getpeercert()
    if cert:
        info.subject = _name(cert.get("subject"))
        info.issuer = _name(cert.get("issuer"))
        not_after = cert.get("notAfter")
        if isinstance(not_after, str):
            expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
            info.not_after = expires.isoformat()
            info.days_left = (expires - datetime.now(UTC)).days
        alt_names: Any = cert.get("subjectAltName", ())
        info.alt_names = [str(entry[1]) for entry in alt_names if len(entry) == 2]
    return info


def _failure_text(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, _Closed):
        return "the server closed the connection"
    if isinstance(exc, socket.gaierror):
        return f"name resolution failed: {exc.strerror or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or type(exc).__name__


async def _read_reply(reader: asyncio.StreamReader) -> Reply:
    lines: list[str] = []
    code = 0
    while len(lines) < _MAX_REPLY_LINES:
        raw = await reader.readline()
        if not raw:
            raise _Closed
        line = raw[:_MAX_LINE].decode("utf-8", "replace").rstrip("\r\n")
        match = _REPLY_LINE.fullmatch(line)
        if match is None:
            raise ValueError(f"not an SMTP reply: {line[:80]!r}")
        code = int(match.group(1))
        lines.append(match.group(3))
        if match.group(2) != "-":
            return Reply.parse(code, "\n".join(lines))
    raise ValueError(f"reply longer than {_MAX_REPLY_LINES} lines")


def _parse_ehlo(reply: Reply) -> dict[str, str]:
    extensions: dict[str, str] = {}
    for line in reply.text.split("\n")[1:]:
        keyword, _, params = line.strip().partition(" ")
        if keyword:
            # "AUTH=PLAIN LOGIN" is an old form some servers still send beside "AUTH".
            keyword = keyword.upper().split("=", 1)[0]
            extensions.setdefault(keyword, params.strip())
    return extensions


class _Session:
    """One probe conversation; each method adds its step to the report."""

    def __init__(
        self,
        report: ProbeReport,
        context: ssl.SSLContext,
        *,
        timeout: float,
        ehlo_name: str,
        server_hostname: str,
    ) -> None:
        self.report = report
        self.context = context
        self.timeout = timeout
        self.ehlo_name = ehlo_name
        self.server_hostname = server_hostname
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def _fail(self, name: StepName, exc: BaseException, *, stage: str) -> _Failed:
        text = _failure_text(exc)
        reply = exc.args[0] if isinstance(exc, _ReplyFailure) else None
        if isinstance(reply, Reply):
            text = f"{reply}"
        hint = hint_for(
            stage=stage,
            reply=reply if isinstance(reply, Reply) else None,
            error_text=text,
            host=self.report.host,
            port=self.report.port,
        )
        transient = (
            reply.is_transient
            if isinstance(reply, Reply)
            else isinstance(exc, OSError | TimeoutError | _Closed)
            and not isinstance(exc, ssl.SSLError)
        )
        self.report.steps.append(ProbeStep(name, False, text, hint, transient))
        return _Failed(text)

    def _ok(self, name: StepName, summary: str, started: float) -> None:
        self.report.steps.append(
            ProbeStep(name, True, summary, elapsed=round(time.monotonic() - started, 4))
        )

    async def resolve(self) -> None:
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                infos = await loop.getaddrinfo(
                    self.report.host, self.report.port, type=socket.SOCK_STREAM
                )
        except (OSError, TimeoutError) as exc:
            raise self._fail("dns", exc, stage="connect") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        self.report.addresses = addresses
        self._ok("dns", ", ".join(addresses), started)

    async def connect(self) -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                self.reader, self.writer = await asyncio.open_connection(
                    self.report.host, self.report.port, limit=_MAX_LINE * 4
                )
        except (OSError, TimeoutError) as exc:
            raise self._fail("tcp", exc, stage="connect") from None
        peer = self.writer.get_extra_info("peername")
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "connected"
        self._ok("tcp", f"connected to {where}", started)

    async def handshake(self) -> None:
        assert self.writer is not None
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                await self.writer.start_tls(self.context, server_hostname=self.server_hostname)
        except (OSError, TimeoutError, ssl.SSLError, ConnectionError) as exc:
            self.report.tls = TLSInfo(error=_failure_text(exc))
            raise self._fail("tls", exc, stage="tls") from None
        info = _tls_info(self.writer, self.context)
        self.report.tls = info
        summary = f"{info.version} {info.cipher}"
        if info.verified:
            summary += f", certificate valid for {self.server_hostname}"
            if info.days_left is not None:
                summary += f" until {(info.not_after or '')[:10]} ({info.days_left} days)"
        else:
            summary += ", certificate NOT verified"
        self._ok("tls", summary, started)

    async def command(self, line: str | None) -> Reply:
        assert self.reader is not None
        assert self.writer is not None
        async with asyncio.timeout(self.timeout):
            if line is not None:
                self.writer.write(line.encode("ascii") + b"\r\n")
                await self.writer.drain()
            return await _read_reply(self.reader)

    async def greeting(self) -> None:
        started = time.monotonic()
        try:
            reply = await self.command(None)
        except (OSError, TimeoutError, ValueError, _Closed, ssl.SSLError) as exc:
            raise self._fail("greeting", exc, stage="greeting") from None
        self.report.greeting = reply.text.split("\n")[0]
        if reply.code != 220:
            raise self._fail("greeting", _ReplyFailure(reply), stage="greeting")
        self._ok("greeting", f"{reply.code} {self.report.greeting}", started)

    async def ehlo(self) -> None:
        started = time.monotonic()
        try:
            reply = await self.command(f"EHLO {self.ehlo_name}")
            if reply.code in (500, 502):
                reply = await self.command(f"HELO {self.ehlo_name}")
        except (OSError, TimeoutError, ValueError, _Closed, ssl.SSLError) as exc:
            raise self._fail("ehlo", exc, stage="ehlo") from None
        if reply.code != 250:
            raise self._fail("ehlo", _ReplyFailure(reply), stage="ehlo")
        self.report.extensions = _parse_ehlo(reply)
        if "STARTTLS" in self.report.extensions and not self.report.secure:
            self.report.starttls_offered = True
        offered = [k for k in NOTABLE_EXTENSIONS if k in self.report.extensions]
        where = "after TLS" if self.report.secure else "plaintext"
        self._ok("ehlo", f"{where}: {' '.join(offered) or 'no notable extensions'}", started)

    async def starttls(self, *, required: bool) -> bool:
        """Upgrade with STARTTLS; False when not offered and not ``required``."""
        started = time.monotonic()
        if "STARTTLS" not in self.report.extensions:
            if required:
                raise self._fail(
                    "starttls",
                    ValueError("the server did not offer STARTTLS (not advertised in EHLO)"),
                    stage="tls",
                )
            return False
        try:
            reply = await self.command("STARTTLS")
        except (OSError, TimeoutError, ValueError, _Closed) as exc:
            raise self._fail("starttls", exc, stage="tls") from None
        if reply.code != 220:
            raise self._fail("starttls", _ReplyFailure(reply), stage="tls")
        self._ok("starttls", f"{reply.code} {reply.text}", started)
        await self.handshake()
        return True

    async def close(self) -> None:
        writer = self.writer
        if writer is None:
            return
        with contextlib.suppress(Exception):
            if not writer.is_closing():
                writer.write(b"QUIT\r\n")
                async with asyncio.timeout(min(self.timeout, 1.0)):
                    await writer.drain()
                    if self.reader is not None:
                        await _read_reply(self.reader)
        # Abort rather than close: a graceful TLS shutdown can wait on the server for long.
        writer.transport.abort()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()


class _ReplyFailure(Exception):
    """A step got an error reply (``args[0]`` is the :class:`Reply`)."""


async def probe(
    host: str,
    port: int,
    mode: TLSMode,
    *,
    context: ssl.SSLContext | None = None,
    step_timeout: float = 10.0,
    ehlo_name: str = "localhost",
    resolve: bool = True,
) -> ProbeReport:
    """Probe ``host:port`` as ``mode`` says; stops at the first failing step.

    ``IMPLICIT`` handshakes right after TCP; ``STARTTLS`` requires the upgrade;
    ``STARTTLS_OPPORTUNISTIC`` upgrades when offered; ``NONE`` stays in plaintext.
    """
    report = ProbeReport(host=host, port=port, mode=mode.value)
    if context is None:
        context = ssl.create_default_context()
    session = _Session(
        report, context, timeout=step_timeout, ehlo_name=ehlo_name, server_hostname=host
    )
    try:
        if resolve:
            await session.resolve()
        await session.connect()
        if mode is TLSMode.IMPLICIT:
            await session.handshake()
        await session.greeting()
        await session.ehlo()
        if mode in (TLSMode.STARTTLS, TLSMode.STARTTLS_OPPORTUNISTIC) and await session.starttls(
            required=mode is TLSMode.STARTTLS
        ):
            await session.ehlo()
    except _Failed:
        pass
    finally:
        await session.close()
    return report
