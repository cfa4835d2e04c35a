"""``smtpkit detect``: find the SMTP settings for an address or host, like a mail app's "detect".

For an email address the candidates are the provider presets for its domain (by well-known
domain, by the preset's host, and by the domain's MX hosts), the usual ``smtp.`` and ``mail.``
names, and the MX hosts themselves. Every candidate that resolves is probed on each port
concurrently (465, 587, 25 and 2525 by default) with :mod:`smtpkit.cli._probe`: implicit TLS
first (a plaintext server refuses a TLS handshake at once, while a TLS server would make a
plaintext client wait for its timeout), then plaintext with STARTTLS. The recommendation prefers
a verified certificate, then a server that offers AUTH, then implicit TLS over STARTTLS, and is
never plaintext when any TLS works.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import ssl
from dataclasses import asdict, dataclass, field
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from smtpkit._config import SMTPConfig, TLSMode
from smtpkit._exceptions import ConfigError
from smtpkit.cli._common import (
    EXIT_CODES_HELP,
    EXIT_OK,
    EXIT_TRANSIENT,
    clean,
    cli_errors,
    stdout_console,
)
from smtpkit.cli._probe import NOTABLE_EXTENSIONS, ProbeReport, probe, unverified_context
from smtpkit.providers import find_provider, provider_for_host
from smtpkit.providers._preset import Provider

__all__ = ["Candidate", "PortResult", "candidates_for", "detect", "recommend"]

DEFAULT_PORTS = (465, 587, 25, 2525)
# Submission ports first: port 25 is for server-to-server relay and often blocked outbound.
_PORT_PREFERENCE = (465, 587, 2525, 25)

# Mailbox domains whose submission server is a preset (the preset's host is elsewhere).
_DOMAIN_PRESETS: dict[str, str] = {
    "gmail.com": "gmail",
    "googlemail.com": "gmail",
    "outlook.com": "outlook",
    "hotmail.com": "outlook",
    "live.com": "outlook",
    "msn.com": "outlook",
    "yahoo.com": "yahoo",
    "ymail.com": "yahoo",
    "icloud.com": "icloud",
    "me.com": "icloud",
    "mac.com": "icloud",
    "zoho.com": "zoho",
    "zoho.eu": "zoho-eu",
    "fastmail.com": "fastmail",
    "fastmail.fm": "fastmail",
}
# MX host suffixes of hosted mail: a custom domain whose MX is Google is a Workspace account.
_MX_PRESETS: tuple[tuple[str, str], ...] = (
    ("google.com", "gmail"),
    ("googlemail.com", "gmail"),
    ("protection.outlook.com", "office365"),
    ("zoho.com", "zoho"),
    ("zoho.eu", "zoho-eu"),
    ("messagingengine.com", "fastmail"),
    ("icloud.com", "icloud"),
    ("yahoodns.net", "yahoo"),
    ("mail.ovh.net", "ovh"),
    ("ionos.com", "ionos"),
)


@dataclass(frozen=True)
class Candidate:
    """A host to probe and why it is a candidate."""

    host: str
    source: str
    provider: str | None = None


@dataclass
class PortResult:
    """What works on one ``host:port``."""

    host: str
    port: int
    reachable: bool = False
    tls: str | None = None  # implicit | starttls | none; None when SMTP did not work
    certificate_valid: bool | None = None
    certificate_error: str | None = None
    tls_version: str | None = None
    cipher: str | None = None
    certificate_subject: str | None = None
    certificate_expires: str | None = None
    auth_mechanisms: list[str] = field(default_factory=list)
    extensions: list[str] = field(default_factory=list)
    greeting: str | None = None
    error: str | None = None
    hint: str | None = None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def _preset_for_suffix(host: str, table: tuple[tuple[str, str], ...]) -> str | None:
    host = host.lower().rstrip(".")
    for suffix, name in table:
        if host == suffix or host.endswith("." + suffix):
            return name
    return None


async def _mx_hosts(domain: str, step_timeout: float) -> list[str]:
    """The domain's MX hosts by preference; empty without DNS (no network, no resolver)."""
    try:
        import dns.asyncresolver
        import dns.exception
    except ImportError:  # pragma: no cover - dnspython comes with email-validator
        return []
    try:
        resolver = dns.asyncresolver.Resolver()
        resolver.lifetime = min(step_timeout, 3.0)
        answer = await resolver.resolve(domain, "MX")
    except (dns.exception.DNSException, OSError, ValueError):
        return []
    records = sorted(answer, key=lambda record: int(getattr(record, "preference", 0)))
    hosts = [str(getattr(r, "exchange", "")).rstrip(".").lower() for r in records]
    return [h for h in dict.fromkeys(hosts) if h]


def _preset_candidate(name: str, source: str) -> Candidate | None:
    preset: Provider | None = find_provider(name)
    if preset is None or preset.regional:
        return None
    return Candidate(preset.host, source, preset.name)


async def candidates_for(
    target: str, *, mx: bool = True, step_timeout: float = 3.0
) -> list[Candidate]:
    """The hosts to probe for an email address or a host name, most likely first.

    Raises:
        ConfigError: the target is neither an address nor a host name.
    """
    target = target.strip()
    if not target:
        raise ConfigError("give an email address or a host name")
    if "@" not in target:
        host = target.strip("[]") if _is_ip(target) else target.lower().rstrip(".")
        preset = provider_for_host(host)
        return [Candidate(host, "given", preset.name if preset else None)]
    domain = target.rpartition("@")[2].lower().rstrip(".")
    if not domain or any(ch.isspace() for ch in domain):
        raise ConfigError(f"{target!r}: no domain after the @")
    found: list[Candidate] = []
    if domain in _DOMAIN_PRESETS:
        candidate = _preset_candidate(_DOMAIN_PRESETS[domain], f"preset for {domain}")
        if candidate:
            found.append(candidate)
    mx_hosts = await _mx_hosts(domain, step_timeout) if mx and not _is_ip(domain) else []
    for host in mx_hosts:
        name = _preset_for_suffix(host, _MX_PRESETS)
        if name:
            candidate = _preset_candidate(name, f"preset (MX {host})")
            if candidate:
                found.append(candidate)
    if _is_ip(domain):
        found.append(Candidate(domain, "address literal"))
    else:
        found.append(Candidate(f"smtp.{domain}", "usual name"))
        found.append(Candidate(f"mail.{domain}", "usual name"))
        found.extend(Candidate(host, "MX record") for host in mx_hosts)
    unique: dict[str, Candidate] = {}
    for candidate in found:
        unique.setdefault(candidate.host, candidate)
    return list(unique.values())


def _fill_tls(result: PortResult, report: ProbeReport, *, verified: bool) -> None:
    tls = report.tls
    if tls is None:
        return
    result.tls_version = tls.version
    result.cipher = tls.cipher
    result.certificate_valid = verified
    if verified:
        result.certificate_subject = tls.subject
        result.certificate_expires = tls.not_after


def _fill_smtp(result: PortResult, report: ProbeReport) -> None:
    result.greeting = report.greeting
    result.auth_mechanisms = report.auth_mechanisms
    result.extensions = [k for k in NOTABLE_EXTENSIONS if k in report.extensions]
    if report.starttls_offered and "STARTTLS" not in result.extensions:
        result.extensions.append("STARTTLS")


async def _probe_port(
    host: str, port: int, context: ssl.SSLContext, step_timeout: float
) -> PortResult:
    result = PortResult(host, port)
    common: dict[str, Any] = {"step_timeout": step_timeout, "resolve": False}
    implicit = await probe(host, port, TLSMode.IMPLICIT, context=context, **common)
    tcp_ok = any(s.name == "tcp" and s.ok for s in implicit.steps)
    result.reachable = tcp_ok
    if not tcp_ok:
        failed = implicit.failed
        result.error = failed.summary if failed else "unreachable"
        result.hint = failed.hint if failed else None
        return result
    if implicit.ok:
        result.tls = "implicit"
        _fill_tls(result, implicit, verified=True)
        _fill_smtp(result, implicit)
        return result
    cert_error = implicit.tls.error if implicit.tls is not None else None
    if cert_error and "certificate verify failed" in cert_error:
        # TLS works but the certificate does not verify: learn the rest without verifying.
        retry = await probe(host, port, TLSMode.IMPLICIT, context=unverified_context(), **common)
        if retry.ok:
            result.tls = "implicit"
            _fill_tls(result, retry, verified=False)
            result.certificate_error = cert_error
            _fill_smtp(result, retry)
            return result
    plain = await probe(host, port, TLSMode.STARTTLS_OPPORTUNISTIC, context=context, **common)
    if plain.ok:
        result.tls = "starttls" if plain.secure else "none"
        _fill_tls(result, plain, verified=plain.secure)
        _fill_smtp(result, plain)
        return result
    failed = plain.failed
    tls_error = plain.tls.error if plain.tls is not None else None
    if tls_error and "certificate verify failed" in tls_error:
        retry = await probe(host, port, TLSMode.STARTTLS, context=unverified_context(), **common)
        if retry.ok:
            result.tls = "starttls"
            _fill_tls(result, retry, verified=False)
            result.certificate_error = tls_error
            _fill_smtp(result, retry)
            return result
    result.error = failed.summary if failed else "no SMTP server answered"
    result.hint = failed.hint if failed else None
    return result


async def _resolves(host: str, step_timeout: float) -> str | None:
    """None when ``host`` resolves, else the reason."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(step_timeout):
            await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except TimeoutError:
        return "name resolution timed out"
    except OSError as exc:
        return f"does not resolve ({exc.strerror or exc})"
    return None


@dataclass
class _Detection:
    candidates: list[Candidate]
    unresolved: dict[str, str]
    results: list[PortResult]


async def _detect(
    target: str, ports: tuple[int, ...], context: ssl.SSLContext, step_timeout: float, mx: bool
) -> _Detection:
    candidates = await candidates_for(target, mx=mx, step_timeout=step_timeout)
    reasons = await asyncio.gather(*(_resolves(c.host, step_timeout) for c in candidates))
    unresolved = {c.host: r for c, r in zip(candidates, reasons, strict=True) if r is not None}
    hosts = [c.host for c in candidates if c.host not in unresolved]
    results = await asyncio.gather(
        *(_probe_port(host, port, context, step_timeout) for host in hosts for port in ports)
    )
    return _Detection(candidates, unresolved, list(results))


@dataclass
class Recommendation:
    """The settings to use, as a DSN, with what to watch out for."""

    dsn: str
    host: str
    port: int
    tls: str
    provider: str | None = None
    warnings: list[str] = field(default_factory=list)


def recommend(
    results: list[PortResult], candidates: list[Candidate], *, ca_file: str | None = None
) -> Recommendation | None:
    """The best working ``host:port``: verified TLS, then AUTH offered, then implicit TLS."""
    order = {c.host: i for i, c in enumerate(candidates)}
    working = [r for r in results if r.tls is not None]
    if not working:
        return None

    def key(r: PortResult) -> tuple[int, int, int, int, int]:
        tier = 0 if r.tls != "none" and r.certificate_valid else 1 if r.tls != "none" else 2
        port_rank = _PORT_PREFERENCE.index(r.port) if r.port in _PORT_PREFERENCE else 4
        tls_rank = {"implicit": 0, "starttls": 1}.get(r.tls or "", 2)
        return (tier, 0 if r.auth_mechanisms else 1, tls_rank, port_rank, order.get(r.host, 99))

    best = min(working, key=key)
    mode = {"implicit": TLSMode.IMPLICIT, "starttls": TLSMode.STARTTLS}.get(
        best.tls or "", TLSMode.NONE
    )
    config = SMTPConfig(host=best.host, port=best.port, tls=mode, ca_file=ca_file)
    dsn = config.redacted_dsn()
    if best.auth_mechanisms:
        scheme, _, rest = dsn.partition("://")
        dsn = f"{scheme}://USER:PASSWORD@{rest}"
    warnings = []
    if mode is TLSMode.NONE:
        warnings.append(
            "no TLS works on any port probed: this DSN sends everything in plaintext; use it "
            "only for a local or trusted relay"
        )
        if best.auth_mechanisms:
            warnings.append("AUTH over plaintext also needs allow_insecure_auth=true")
    elif not best.certificate_valid:
        warnings.append(
            f"the certificate does not verify ({best.certificate_error}); if the server uses a "
            "private CA, add ca_file=PATH (never disable verification in production)"
        )
    if not best.auth_mechanisms:
        warnings.append("the server offers no AUTH here (a relay that trusts your address?)")
    candidate = next((c for c in candidates if c.host == best.host), None)
    return Recommendation(
        dsn, best.host, best.port, mode.value, candidate.provider if candidate else None, warnings
    )


def _parse_ports(text: str) -> tuple[int, ...]:
    ports: list[int] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        if not part.isdigit() or not 1 <= int(part) <= 65535:
            raise click.BadParameter(f"{part!r} is not a port number", param_hint="--ports")
        ports.append(int(part))
    if not ports:
        raise click.BadParameter("no port given", param_hint="--ports")
    return tuple(dict.fromkeys(ports))


def _print(detection: _Detection, best: Recommendation | None) -> None:
    console = stdout_console()
    for host, reason in detection.unresolved.items():
        console.print(Text(f"{clean(host)}: {clean(reason)}", style="dim"))
    table = Table(title="SMTP servers found", title_justify="left")
    for column in ("Host", "Port", "TLS", "Certificate", "AUTH", "Extensions"):
        table.add_column(column)
    for r in detection.results:
        if r.tls is None:
            table.add_row(
                Text(clean(r.host)),
                str(r.port),
                Text("-", style="dim"),
                "",
                "",
                Text(clean(r.error or "no answer"), style="dim"),
            )
            continue
        if r.tls == "none":
            cert = Text("no TLS", style="yellow")
        elif r.certificate_valid:
            cert = Text("valid", style="green")
        else:
            cert = Text(f"INVALID: {clean(r.certificate_error)}", style="red")
        tls = f"{r.tls} ({r.tls_version})" if r.tls_version else r.tls
        table.add_row(
            Text(clean(r.host)),
            str(r.port),
            Text(clean(tls)),
            cert,
            Text(clean(" ".join(r.auth_mechanisms) or "none")),
            Text(clean(" ".join(r.extensions))),
        )
    console.print(table)
    if best is None:
        console.print(Text("No working SMTP server found.", style="bold red"))
        return
    line = Text("Recommended: ", style="bold green")
    line.append(clean(best.dsn), style="bold")
    console.print(line)
    if best.provider:
        console.print(
            Text(f"(or the preset: {best.provider}://USER:PASSWORD@default)", style="dim")
        )
    for warning in best.warnings:
        console.print(Text("Warning: ", style="bold yellow") + Text(clean(warning)))


DETECT_EPILOG = f"""
\b
Examples:
  smtpkit detect ann@example.com
  smtpkit detect smtp.example.com --ports 465,587 --json
  smtpkit detect 127.0.0.1 --ports 1025 --ca-file ./devserver-ca.pem

{EXIT_CODES_HELP}
"""


@click.command(epilog=DETECT_EPILOG)
@click.argument("target", metavar="HOST_OR_EMAIL")
@click.option(
    "--ports",
    default=",".join(str(p) for p in DEFAULT_PORTS),
    show_default=True,
    help="Comma-separated ports to probe.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds to wait at each step of each probe.",
)
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Trust the CA certificates in this PEM file instead of the system store.",
)
@click.option(
    "--mx/--no-mx", default=True, show_default=True, help="Look up the domain's MX hosts."
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@cli_errors
def detect(
    *, target: str, ports: str, timeout: float, ca_file: str | None, mx: bool, as_json: bool
) -> None:
    """Find the SMTP settings for an email address or a host.

    Probes the candidate servers (provider presets for the domain, its MX hosts, smtp. and
    mail. names) on each port, reports the TLS mode that works, whether the certificate is
    valid, the AUTH mechanisms and extensions, and prints the DSN to use.
    """
    port_list = _parse_ports(ports)
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"--ca-file: cannot load CA certificates: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    detection = asyncio.run(_detect(target, port_list, context, timeout, mx))
    best = recommend(detection.results, detection.candidates, ca_file=ca_file)
    if as_json:
        out = {
            "target": target,
            "candidates": [asdict(c) for c in detection.candidates],
            "unresolved": detection.unresolved,
            "results": [asdict(r) for r in detection.results],
            "recommended": asdict(best) if best is not None else None,
        }
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        _print(detection, best)
    raise SystemExit(EXIT_OK if best is not None else EXIT_TRANSIENT)
