"""A private Postfix + Dovecot (SASL only) on loopback, configured in a temporary directory.

Nothing here touches the machine's own Postfix or Dovecot: both run from configuration files in
the temporary directory (``postfix -c`` and ``dovecot -c``), listen on free 127.0.0.1 ports only,
and are stopped by their pid files at the end. Mail for any domain other than the two local test
domains is routed to Postfix's ``error`` transport, so nothing is ever delivered off the machine.

Listeners (``MTA.ports``):

* ``plain``: port-25 style; no AUTH, STARTTLS offered but optional; accepts mail for the local
  domains only (anything else: 554 5.7.1 Relay access denied).
* ``submission``: STARTTLS required, SASL AUTH (PLAIN, LOGIN, CRAM-MD5) through Dovecot; mail
  without AUTH is refused even for local recipients (554 5.7.1), relaying needs AUTH.
* ``smtps``: implicit TLS (wrapper mode), SASL AUTH.
* ``nosize``: like ``plain`` but does not advertise SIZE, so the size limit shows as ``552``
  at the end of data instead of smtpkit's own check before ``MAIL FROM``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import functools
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import astuple, dataclass
from email.message import EmailMessage
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"
DOVECOT = "/usr/sbin/dovecot"

LOCAL_DOMAIN = "smtpkit.test"
IDN_DOMAIN = "bücher.test"
IDN_ASCII = "xn--bcher-kva.test"
# Mailboxes that exist (address -> Maildir under mail/); any other user of the two domains is
# refused with 550 5.1.1. The domain of the IDN one is in its ASCII (A-label) form, as in SMTP.
MAILBOXES = {
    f"app@{LOCAL_DOMAIN}": f"{LOCAL_DOMAIN}/app/",
    f"ann@{LOCAL_DOMAIN}": f"{LOCAL_DOMAIN}/ann/",
    f"bob@{LOCAL_DOMAIN}": f"{LOCAL_DOMAIN}/bob/",
    f"postmaster@{LOCAL_DOMAIN}": f"{LOCAL_DOMAIN}/postmaster/",
    f"jörg@{LOCAL_DOMAIN}": f"{LOCAL_DOMAIN}/joerg/",  # an SMTPUTF8 local part
    f"ann@{IDN_ASCII}": f"{IDN_ASCII}/ann/",
}
USERNAME = "app"
PASSWORD = "s3cret-Pässword"
SIZE_LIMIT = 200_000  # octets; message_size_limit
STARTUP_TIMEOUT = 15.0


class MTAUnavailable(Exception):
    """Postfix or Dovecot cannot be run here; the reason is the skip message."""


def unavailable_reason() -> str | None:
    """Why the private MTA cannot run on this machine, or ``None`` when it can."""
    missing = [p for p in (POSTFIX, DOVECOT) if not os.access(p, os.X_OK)]
    if missing:
        return (
            f"Postfix/Dovecot not installed ({', '.join(missing)} missing): run "
            "scripts/install-postfix.sh as root (Debian packages postfix, dovecot-core)"
        )
    if importlib.util.find_spec("trustme") is None:
        return "trustme is not installed (pip install 'smtpkit[devserver]')"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root (postfix -c DIR start)"
    for user in ("postfix", "dovecot", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"system user {user!r} does not exist"
    return None


@dataclass(frozen=True)
class Ports:
    """The loopback ports of the four listeners."""

    plain: int
    submission: int
    smtps: int
    nosize: int


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so they cannot repeat)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _proc_ids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: the fields start after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def _environ_has(pid: int, entry: bytes) -> bool:
    try:
        return entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class MTA:
    """A running private Postfix + Dovecot; create with :meth:`start`, end with :meth:`stop`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config_dir = root / "etc"
        self.queue_dir = root / "queue"
        self.mail_dir = root / "mail"
        self.dovecot_conf = root / "dovecot" / "dovecot.conf"
        self.dovecot_base = root / "dovecot" / "run"
        self.ca_file = str(root / "tls" / "ca.pem")
        self.ports = Ports(*_free_ports(4))
        self._postfix: subprocess.Popen[bytes] | None = None
        self._dovecot: subprocess.Popen[bytes] | None = None

    # -- setup ---------------------------------------------------------------------------

    @classmethod
    def start(cls) -> MTA:
        """Write the configuration into a new temporary directory and start both daemons."""
        reason = unavailable_reason()
        if reason is not None:
            raise MTAUnavailable(reason)
        # Postfix daemons drop to the postfix user and must traverse the path to the queue.
        root = Path(tempfile.mkdtemp(prefix="smtpkit-postfix-"))
        root.chmod(0o755)
        mta = cls(root)
        try:
            mta._write_files()
            mta._start_postfix()
            # Dovecot puts its auth socket into Postfix's private/ directory, which Postfix
            # creates at start.
            mta._wait_for((mta.queue_dir / "private").is_dir, "queue/private")
            mta._start_dovecot()
            mta._wait_until_ready()
        except BaseException:
            mta.stop()
            raise
        return mta

    def _write_files(self) -> None:
        import trustme

        postfix_user = pwd.getpwnam("postfix")
        nobody = pwd.getpwnam("nobody")
        for directory in (self.config_dir, self.queue_dir, self.root / "tls", self.root / "log"):
            directory.mkdir(mode=0o755)
        data_dir = self.root / "data"
        data_dir.mkdir(mode=0o700)
        os.chown(data_dir, postfix_user.pw_uid, postfix_user.pw_gid)
        self.mail_dir.mkdir(mode=0o755)
        os.chown(self.mail_dir, nobody.pw_uid, nobody.pw_gid)
        (self.root / "dovecot").mkdir(mode=0o755)
        self.dovecot_base.mkdir(mode=0o755)
        (self.root / "dovecot" / "state").mkdir(mode=0o755)

        ca = trustme.CA(organization_name="smtpkit postfix tier")
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        tls = self.root / "tls"
        Path(self.ca_file).write_bytes(ca.cert_pem.bytes())
        key = tls / "key.pem"
        key.write_bytes(leaf.private_key_pem.bytes())
        key.chmod(0o600)
        (tls / "chain.pem").write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))

        vmailbox = "".join(f"{address} {path}\n" for address, path in MAILBOXES.items())
        (self.config_dir / "vmailbox").write_text(vmailbox, encoding="utf-8")
        (self.config_dir / "main.cf").write_text(self._main_cf(nobody.pw_uid, nobody.pw_gid))
        (self.config_dir / "master.cf").write_text(self._master_cf())

        passwd = self.root / "dovecot" / "passwd"
        passwd.write_text(f"{USERNAME}:{{PLAIN}}{PASSWORD}\n")
        passwd.chmod(0o600)
        # Dovecot's auth worker reads it as the dovecot user.
        dovecot_user = pwd.getpwnam("dovecot")
        os.chown(passwd, dovecot_user.pw_uid, dovecot_user.pw_gid)
        self.dovecot_conf.write_text(self._dovecot_conf(passwd))

    def _main_cf(self, uid: int, gid: int) -> str:
        root = self.root
        return f"""\
compatibility_level = 3.6
queue_directory = {self.queue_dir}
data_directory = {root}/data
mail_owner = postfix
myhostname = mx.{LOCAL_DOMAIN}
mydomain = {LOCAL_DOMAIN}
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
maillog_file = {root}/log/maillog
maillog_file_prefixes = {root}/log
smtputf8_enable = yes
biff = no
append_dot_mydomain = no
smtpd_banner = $myhostname ESMTP smtpkit-test
smtpd_peername_lookup = no
smtpd_error_sleep_time = 0s
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
smtpd_forbid_bare_newline = normalize
message_size_limit = {SIZE_LIMIT}
# Only the two test domains are local; everything else is an error, never a delivery.
virtual_mailbox_domains = {LOCAL_DOMAIN}, {IDN_ASCII}
virtual_mailbox_maps = texthash:{self.config_dir}/vmailbox
virtual_mailbox_base = {self.mail_dir}
virtual_minimum_uid = 100
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
smtpd_reject_unlisted_recipient = yes
default_transport = error:smtpkit test MTA delivers nothing off this machine
relay_transport = error:smtpkit test MTA delivers nothing off this machine
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions =
notify_classes =
# Headers arrive exactly as the client wrote them (no address rewriting or re-folding).
local_header_rewrite_clients =
# TLS with a certificate made at start; clients trust the CA in tls/ca.pem.
smtpd_tls_chain_files = {root}/tls/key.pem, {root}/tls/chain.pem
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_tls_loglevel = 0
smtpd_tls_received_header = yes
# SASL through Dovecot; the listeners that offer AUTH turn it on in master.cf.
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_auth_enable = no
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
"""

    def _master_cf(self) -> str:
        ports = self.ports
        auth = "-o smtpd_sasl_auth_enable=yes"
        return f"""\
127.0.0.1:{ports.plain} inet n - n - - smtpd
127.0.0.1:{ports.submission} inet n - n - - smtpd -o smtpd_tls_security_level=encrypt {auth}
  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
127.0.0.1:{ports.smtps} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes {auth}
127.0.0.1:{ports.nosize} inet n - n - - smtpd -o smtpd_discard_ehlo_keywords=size
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

    def _dovecot_conf(self, passwd: Path) -> str:
        base = self.root / "dovecot"
        return f"""\
protocols =
listen = 127.0.0.1
base_dir = {self.dovecot_base}
state_dir = {base}/state
log_path = {self.root}/log/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5
# No delay after a failed login: the wrong-password tests would otherwise wait seconds.
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup
}}
service auth {{
  unix_listener {self.queue_dir}/private/auth {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        # Foreground daemons, children of this process: they are reaped here, and their early
        # errors (which Postfix prints only to a terminal or stdout) land in a log file.
        with (self.root / "log" / log_name).open("ab") as output:
            return subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"},
                start_new_session=True,
            )

    def _start_postfix(self) -> None:
        self._postfix = self._spawn(
            [POSTFIX, "-c", str(self.config_dir), "start-fg"], "postfix.out"
        )

    def _start_dovecot(self) -> None:
        self._dovecot = self._spawn([DOVECOT, "-F", "-c", str(self.dovecot_conf)], "dovecot.out")

    def _wait_for(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not ready():
            for name, process in (("postfix", self._postfix), ("dovecot", self._dovecot)):
                if process is not None and process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {process.returncode} while starting\n{self.log_tail()}"
                    )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Postfix/Dovecot not ready after {STARTUP_TIMEOUT:.0f}s: {what}\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.05)

    def _wait_until_ready(self) -> None:
        auth_socket = self.queue_dir / "private" / "auth"
        self._wait_for(auth_socket.exists, "Dovecot auth socket")
        for port in (self.ports.plain, self.ports.submission, self.ports.nosize):
            self._wait_for(functools.partial(self._greets, port), f"no 220 greeting on {port}")
        smtps = self.ports.smtps
        self._wait_for(functools.partial(self._accepts, smtps), f"implicit-TLS port {smtps} closed")

    @staticmethod
    def _greets(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                return sock.recv(512).startswith(b"220 ")
        except OSError:
            return False

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return True
        except OSError:
            return False

    # -- teardown ------------------------------------------------------------------------

    def _pid_file(self, path: Path) -> int | None:
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def processes(self) -> set[int]:
        """Every live process of this instance: both masters, their children, and any process
        carrying this instance's ``MAIL_CONFIG`` (Postfix passes it to all its daemons)."""
        masters = {
            pid
            for pid in (
                self._pid_file(self.queue_dir / "pid" / "master.pid"),
                self._pid_file(self.dovecot_base / "master.pid"),
            )
            if pid is not None and _alive(pid)
        }
        marker = f"MAIL_CONFIG={self.config_dir}".encode()
        found = set(masters)
        for pid in _proc_ids():
            if _parent_of(pid) in masters or _environ_has(pid, marker):
                found.add(pid)
        return {pid for pid in found if _alive(pid)}

    def stop(self) -> None:
        """Stop both daemons by their pid files; raise if any process of them is left."""
        try:
            left, listening = self._stop_processes()
            log = self.log_tail()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
        if left or listening:
            raise RuntimeError(
                f"still running after stop: processes {sorted(left)} (killed), "
                f"listening ports {listening}\n{log}"
            )

    def _stop_processes(self) -> tuple[set[int], list[int]]:
        before = self.processes()
        # SIGTERM to each master (found by its pid file) stops its children too; "postfix
        # stop" would do the same but polls once a second.
        for pid_file in (self.queue_dir / "pid" / "master.pid", self.dovecot_base / "master.pid"):
            pid = self._pid_file(pid_file)
            if pid is not None and pid in before:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for process in (self._postfix, self._dovecot):
            if process is None:
                continue
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                # Started but never wrote a pid file (a failed start): stop it directly.
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(5)
        left = self._wait_gone(before | self.processes(), timeout=10.0)
        if left:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self._wait_gone(left, timeout=5.0)
        listening = [port for port in astuple(self.ports) if self._accepts(port)]
        return left, listening

    @staticmethod
    def _wait_gone(pids: Iterable[int], *, timeout: float) -> set[int]:
        remaining = set(pids)
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            remaining = {pid for pid in remaining if _alive(pid)}
            if remaining:
                time.sleep(0.05)
        return remaining

    # -- reading back ----------------------------------------------------------------------

    def log_tail(self, lines: int = 40) -> str:
        """The end of the Postfix and Dovecot logs, for failure messages."""
        parts = []
        for name in ("postfix.out", "maillog", "dovecot.out", "dovecot.log"):
            path = self.root / "log" / name
            with contextlib.suppress(OSError):
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {name}\n" + "\n".join(tail))
        return "\n".join(parts)

    def maillog(self) -> str:
        """Postfix's log so far."""
        try:
            return (self.root / "log" / "maillog").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def wait_for_log(self, needle: str, *, start: int = 0, within: float = 10.0) -> str:
        """The first maillog line containing ``needle`` after offset ``start`` (postlogd
        writes asynchronously, so this waits for it).

        The waits are coroutines that sleep with ``asyncio.sleep``: a blocking sleep would also
        stop the test's event loop, and with it smtpkit closing its connections.
        """
        deadline = time.monotonic() + within
        while True:
            for line in self.maillog()[start:].splitlines():
                if needle in line:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no maillog line with {needle!r}\n{self.log_tail()}")
            await asyncio.sleep(0.05)

    def maildir(self, address: str) -> Path:
        """The Maildir of a local mailbox (a key of ``MAILBOXES``)."""
        return self.mail_dir / MAILBOXES[address]

    def delivered(self, address: str) -> list[Path]:
        """The files in a mailbox's ``new/`` directory."""
        new = self.maildir(address) / "new"
        return sorted(new.iterdir()) if new.is_dir() else []

    async def wait_for(self, address: str, message_id: str, *, within: float = 10.0) -> bytes:
        """The delivered bytes of the message with this Message-ID, waiting for delivery."""
        deadline = time.monotonic() + within
        while True:
            for path in self.delivered(address):
                raw = path.read_bytes()
                parsed = email.message_from_bytes(raw, policy=email.policy.default)
                if parsed.get("Message-ID") == message_id:
                    return raw
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{message_id} not delivered to {address} within {within}s\n{self.log_tail()}"
                )
            await asyncio.sleep(0.05)

    async def wait_for_parsed(self, address: str, message_id: str) -> EmailMessage:
        """:meth:`wait_for`, parsed with the email package's default policy."""
        raw = await self.wait_for(address, message_id)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed
