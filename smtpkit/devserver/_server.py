"""DevServer: an aiosmtpd server in its own thread, with TLS, AUTH, capture and fault injection.

The SMTP protocol class below subclasses aiosmtpd's ``SMTP`` and wraps each ``smtp_*`` command
method: it records the (redacted) command, applies the fault rule for it if any, and otherwise
lets aiosmtpd handle the command. aiosmtpd's handler hooks rewrite the EHLO reply and capture the
message at the end of DATA. Extra AUTH mechanisms (CRAM-MD5, XOAUTH2, OAUTHBEARER) use
aiosmtpd's ``auth_*`` method hooks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, AnyStr, Literal, Self
from urllib.parse import quote

from smtpkit.devserver._base import LoopServer
from smtpkit.devserver._certs import CertificateBundle, make_certificates
from smtpkit.devserver._faults import Drop, Fault, FaultSet, Hang, Respond
from smtpkit.devserver._loop import close_everything
from smtpkit.devserver._store import (
    CapturedMessage,
    ConnectionInfo,
    MessageStore,
    ReceivedCommand,
)

try:
    from aiosmtpd.smtp import (
        SMTP,
        AuthResult,
        Envelope,
        LoginPassword,
        Session,
        TLSSetupException,
        auth_mechanism,
    )
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the smtpkit development server needs aiosmtpd: pip install 'smtpkit[devserver]'"
    ) from exc

if TYPE_CHECKING:
    from smtpkit._config import SMTPConfig

__all__ = ["DEFAULT_MECHANISMS", "MECHANISMS", "DevServer", "TLSChoice"]

log = logging.getLogger("smtpkit.devserver")

TLSChoice = Literal["starttls", "implicit", "none"]
#: Every AUTH mechanism the server can offer.
MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "OAUTHBEARER")
#: The mechanisms offered unless ``mechanisms=`` says otherwise.
DEFAULT_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")
_DEFAULT_USER = ("user", "pass")
_INVALID = "535 5.7.8 Authentication credentials invalid"
# What Gmail answers after a failed XOAUTH2 exchange (its 334 error challenge comes first).
_GOOGLE_INVALID = "535 5.7.8 Username and Password not accepted"
_SHUTDOWN_GRACE = 5.0


def _peer_text(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return str(peer)


class _Core:
    """What every connection of one server shares (touched only from the server's loop)."""

    def __init__(
        self,
        *,
        store: MessageStore,
        faults: FaultSet,
        tls: TLSChoice,
        users: Mapping[str, str] | None,
        auth_enabled: bool,
        mechanisms: tuple[str, ...],
        require_auth: bool,
    ) -> None:
        self.store = store
        self.faults = faults
        self.tls = tls
        self.users = users
        self.auth_enabled = auth_enabled
        self.mechanisms = mechanisms
        self.require_auth = require_auth
        self.protocols: set[_DevSMTP] = set()
        self.idle = asyncio.Event()  # set while no connection is open
        self.idle.set()
        self.handler = _Handler(self)

    def add(self, protocol: _DevSMTP) -> None:
        """Track an open connection."""
        self.protocols.add(protocol)
        self.idle.clear()

    def discard(self, protocol: _DevSMTP) -> None:
        """Forget a closed connection."""
        self.protocols.discard(protocol)
        if not self.protocols:
            self.idle.set()

    def check_password(self, user: str, secret: str) -> bool:
        """Whether ``secret`` (a password or an OAuth2 token) is right for ``user``."""
        if self.users is None:
            return True
        expected = self.users.get(user)
        return expected is not None and hmac.compare_digest(expected.encode(), secret.encode())

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        """aiosmtpd's ``authenticator`` callback, used by its built-in PLAIN and LOGIN."""
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        try:
            user, password = data.login.decode(), data.password.decode()
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False)
        if self.check_password(user, password):
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)


class _Handler:
    """aiosmtpd handler hooks; they delegate to the connection's protocol object."""

    def __init__(self, core: _Core) -> None:
        self._core = core

    async def handle_EHLO(
        self,
        server: _DevSMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """Rewrite the EHLO reply (hidden extensions, PIPELINING, AUTH order)."""
        return server.ehlo_reply(session, hostname, responses)

    async def handle_DATA(self, server: _DevSMTP, session: Session, envelope: Envelope) -> str:
        """Capture the message (or apply the ``DATA_END`` fault) and return the reply."""
        return await server.message_received(envelope)

    async def handle_exception(self, error: Exception) -> str:
        """Keep failed TLS handshakes quiet; record anything else for the tests to see."""
        if isinstance(error, TLSSetupException):
            log.debug("TLS handshake failed: %r", error.__cause__)
            return "454 4.7.0 TLS handshake failed"
        self._core.store.add_error(repr(error))
        log.error("devserver error", exc_info=error)
        return f"451 4.3.0 Internal server error: {type(error).__name__}"


class _QuietSession(Session):
    """aiosmtpd's Session without the deprecation log line on every successful AUTH."""

    @property
    def login_data(self) -> Any:
        """The legacy login value (aiosmtpd still sets it after AUTH)."""
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _DevSMTP(SMTP):
    """One client connection: aiosmtpd's SMTP with recording, faults and extra mechanisms."""

    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"

    def __init__(self, core: _Core, **kwargs: Any) -> None:
        self._core = core
        self._conn: int | None = None
        self._peer = ""
        self._login: str | None = None
        self._greeted = False
        self._rejected = False  # greeted with a non-421 error: refuse all but QUIT
        self._close_after_push = False
        self._swap: Respond | None = None  # a 2xx fault reply that replaces the normal reply
        super().__init__(core.handler, **kwargs)
        # aiosmtpd keeps these limits in a class attribute and grows them on every EHLO;
        # a per-connection copy keeps concurrent servers (and threads) from sharing it.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)

    # -- connection bookkeeping ------------------------------------------------------------
    def _create_session(self) -> Session:
        return _QuietSession(self.loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Record the connection (the second call, after STARTTLS, marks it encrypted)."""
        first = self._conn is None
        super().connection_made(transport)
        if first:
            self._peer = _peer_text(transport.get_extra_info("peername"))
            self._conn = self._core.store.open_connection(
                self._peer, tls=self._core.tls == "implicit"
            )
            self._core.add(self)
        elif self._conn is not None:
            self._core.store.set_tls(self._conn)

    def connection_lost(self, error: Exception | None) -> None:
        """Mark the connection closed (aiosmtpd may call this twice after a TLS failure)."""
        try:
            super().connection_lost(error)
        finally:
            if self._conn is not None:
                self._core.store.close_connection(self._conn)
            self._core.discard(self)

    @property
    def is_tls(self) -> bool:
        """Whether the session is encrypted."""
        return self._core.tls == "implicit" or self._tls_protocol is not None

    def _record(self, verb: str, line: str) -> None:
        assert self._conn is not None
        self._core.store.add_command(ReceivedCommand(verb, line, self.is_tls, self._conn))

    # -- replies -----------------------------------------------------------------------------
    async def push(self, status: AnyStr) -> None:
        """Send a reply; the first one (the greeting) is where ``CONNECT`` faults act."""
        reply: str | bytes = status
        if not self._greeted:
            self._greeted = True
            reply = await self._greeting(reply)
        elif self._swap is not None and _code_class(reply) == str(self._swap.code)[0]:
            reply, self._swap = self._swap.render(), None
        if isinstance(reply, str):
            await super().push(reply)
        else:
            await super().push(reply)
        if self._close_after_push and self.transport is not None:
            self._close_after_push = False
            self.transport.close()

    async def _greeting(self, status: str | bytes) -> str | bytes:
        fault = self._core.faults.take("CONNECT", self._peer)
        if isinstance(fault, Hang):
            await self._hang(fault)
        elif isinstance(fault, Drop):
            await self._drop()
        elif isinstance(fault, Respond):
            if fault.code == 421:
                self._close_after_push = True
            elif fault.code >= 300:
                self._rejected = True
            return fault.render()
        return status

    async def _hang(self, fault: Hang) -> None:
        # Cancelled by connection_lost() when the client leaves or the server stops.
        if fault.seconds is None:
            await asyncio.get_running_loop().create_future()
        else:
            await asyncio.sleep(fault.seconds)

    async def _drop(self) -> None:
        # abort(), not close(): no TLS close_notify, no FIN-after-flush: a crash, as seen by
        # the client. connection_lost() then cancels this task, so this never returns.
        _abort(self.transport)
        await asyncio.get_running_loop().create_future()

    async def _run(
        self,
        verb: str,
        arg: str | None,
        handle: Callable[[], Awaitable[Any]],
        *,
        subject: str | None = None,
        line: str | None = None,
    ) -> None:
        self._record(verb, line if line is not None else (f"{verb} {arg}" if arg else verb))
        if self._rejected and verb != "QUIT":
            await self.push("503 5.5.1 Error: connection was refused at greeting; send QUIT")
            return
        fault = self._core.faults.take(verb, subject if subject is not None else arg or "")
        if isinstance(fault, Drop):
            if verb == "DATA":
                await self._drop_mid_data()
            await self._drop()
            return
        if isinstance(fault, Hang):
            await self._hang(fault)
        if isinstance(fault, Respond):
            if fault.code < 400:
                # A positive fault reply: handle the command normally, replace its reply.
                self._swap = fault
                try:
                    await handle()
                finally:
                    self._swap = None
                return
            if fault.code == 421:
                self._close_after_push = True
            await self.push(fault.render())
            return
        await handle()

    async def _drop_mid_data(self) -> None:
        assert self.session is not None
        assert self.envelope is not None
        if self.session.host_name and self.envelope.mail_from and self.envelope.rcpt_tos:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            with contextlib.suppress(
                asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError
            ):
                await self._reader.readuntil(b"\r\n")

    async def _auth_missing(self) -> bool:
        assert self.session is not None
        if self._core.require_auth and not self.session.authenticated:
            await self.push("530 5.7.0 Authentication required")
            return True
        return False

    # -- commands ----------------------------------------------------------------------------
    async def smtp_EHLO(self, hostname: str) -> None:
        """EHLO, with faults."""
        await self._run("EHLO", hostname, partial(super().smtp_EHLO, hostname))

    async def smtp_HELO(self, hostname: str) -> None:
        """HELO, with faults."""
        await self._run("HELO", hostname, partial(super().smtp_HELO, hostname))

    async def smtp_NOOP(self, arg: str) -> None:
        """NOOP, with faults."""
        await self._run("NOOP", arg, partial(super().smtp_NOOP, arg))

    async def smtp_RSET(self, arg: str) -> None:
        """RSET, with faults."""
        await self._run("RSET", arg, partial(super().smtp_RSET, arg))

    async def smtp_QUIT(self, arg: str) -> None:
        """QUIT, with faults."""
        await self._run("QUIT", arg, partial(super().smtp_QUIT, arg))

    async def smtp_VRFY(self, arg: str) -> None:
        """VRFY, with faults."""
        await self._run("VRFY", arg, partial(super().smtp_VRFY, arg))

    async def smtp_HELP(self, arg: str) -> None:
        """HELP, with faults."""
        await self._run("HELP", arg, partial(super().smtp_HELP, arg))

    async def smtp_STARTTLS(self, arg: str) -> None:
        """STARTTLS; refused when the server has no STARTTLS or it is hidden."""
        parent = super().smtp_STARTTLS

        async def handle() -> None:
            if self._core.tls != "starttls" or "STARTTLS" in self._core.faults.hidden():
                await self.push("502 5.5.1 Error: command not implemented")
            elif self._tls_protocol is not None:
                await self.push("503 5.5.1 Error: TLS already active")
            else:
                await parent(arg)

        await self._run("STARTTLS", arg, handle)

    async def smtp_AUTH(self, arg: str) -> None:
        """AUTH; recorded as ``AUTH <mechanism> ***``, refused when AUTH is off or hidden."""
        parts = arg.split() if arg else []
        line = "AUTH" + (f" {parts[0]}" if parts else "") + (" ***" if len(parts) > 1 else "")
        parent = super().smtp_AUTH

        async def handle() -> None:
            if not self._core.auth_enabled or "AUTH" in self._core.faults.hidden():
                await self.push("502 5.5.1 Error: command not implemented")
                return
            await parent(arg)
            assert self.session is not None
            login: object = getattr(self.session, "auth_data", None)
            if self.session.authenticated and isinstance(login, str) and self._conn is not None:
                self._login = login
                self._core.store.set_auth(self._conn, login)

        await self._run("AUTH", arg, handle, subject=parts[0].upper() if parts else "", line=line)

    async def smtp_MAIL(self, arg: str | None) -> None:
        """MAIL FROM; enforces ``require_auth`` and refuses parameters of hidden extensions."""
        parent = super().smtp_MAIL

        async def handle() -> None:
            if await self._auth_missing():
                return
            problem = self._hidden_parameter(arg or "")
            if problem:
                await self.push(f"555 5.5.4 {problem} parameter not supported")
                return
            await parent(arg)

        await self._run("MAIL", arg, handle)

    async def smtp_RCPT(self, arg: str | None) -> None:
        """RCPT TO, with ``require_auth``."""
        parent = super().smtp_RCPT

        async def handle() -> None:
            if not await self._auth_missing():
                await parent(arg)

        await self._run("RCPT", arg, handle)

    async def smtp_DATA(self, arg: str) -> None:
        """DATA, with ``require_auth``; end-of-data faults act in :meth:`message_received`."""
        parent = super().smtp_DATA

        async def handle() -> None:
            if not await self._auth_missing():
                await parent(arg)

        await self._run("DATA", arg, handle)

    def _hidden_parameter(self, arg: str) -> str | None:
        hidden = self._core.faults.hidden()
        for word in arg.upper().split()[1:]:
            if word == "SMTPUTF8" and "SMTPUTF8" in hidden:
                return "SMTPUTF8"
            if word == "BODY=8BITMIME" and "8BITMIME" in hidden:
                return "BODY=8BITMIME"
            if word.startswith("SIZE=") and "SIZE" in hidden:
                return "SIZE"
        return None

    # -- hooks called by _Handler ------------------------------------------------------------
    def ehlo_reply(self, session: Session, hostname: str, responses: list[str]) -> list[str]:
        """The EHLO reply lines, after hidden extensions are removed and PIPELINING added."""
        session.host_name = hostname  # the EHLO hook must do what aiosmtpd would have done
        if self._swap is not None:
            lines, self._swap = self._swap.render().split("\r\n"), None
            return lines
        hidden = self._core.faults.hidden()
        keywords: list[str] = []
        for response in responses[1:]:
            keyword = response[4:]
            name = keyword.split(" ", 1)[0].upper()
            if name in hidden or name == "HELP":
                continue
            if name == "AUTH":
                if not self._core.auth_enabled or not self._core.mechanisms:
                    continue
                keyword = "AUTH " + " ".join(self._core.mechanisms)
            keywords.append(keyword)
        if "PIPELINING" not in hidden:
            keywords.append("PIPELINING")
        keywords.append("HELP")
        lines = [responses[0]] + [f"250-{k}" for k in keywords[:-1]]
        lines.append(f"250 {keywords[-1]}")
        return lines

    async def message_received(self, envelope: Envelope) -> str:
        """Apply the ``DATA_END`` fault, capture the message and return the final reply."""
        data = envelope.original_content or b""
        fault = self._core.faults.take("DATA_END", data.decode("utf-8", "replace"))
        if isinstance(fault, Hang):
            await self._hang(fault)
        elif isinstance(fault, Drop):
            self._capture(envelope, data, acknowledged=False)
            await self._drop()
        elif isinstance(fault, Respond):
            if fault.code < 300:
                self._capture(envelope, data)
            elif fault.code == 421:
                self._close_after_push = True
            return fault.render()
        message = self._capture(envelope, data)
        return f"250 2.0.0 Ok: queued as {message.queue_id}"

    def _capture(
        self, envelope: Envelope, data: bytes, *, acknowledged: bool = True
    ) -> CapturedMessage:
        sender = envelope.mail_from or ""
        message = CapturedMessage(
            mail_from="" if sender == "<>" else sender,
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=data,
            mail_options=tuple(envelope.mail_options),
            rcpt_options=tuple(envelope.rcpt_options),
            tls=self.is_tls,
            auth_login=self._login,
            peer=self._peer,
            acknowledged=acknowledged,
            queue_id=secrets.token_hex(6).upper(),
            connection=self._conn if self._conn is not None else -1,
        )
        try:
            return self._core.store.add_message(message)
        except Exception as exc:
            # A failing on_message callback or an unwritable maildir must not look like a
            # delivery problem to the client: the message is stored in memory regardless.
            self._core.store.add_error(repr(exc))
            log.exception("devserver could not store a message")
            return message

    # -- extra AUTH mechanisms (aiosmtpd passes the server object twice to built-ins) ---------
    @auth_mechanism("CRAM-MD5")
    async def auth_CRAM_MD5(self, _: SMTP, args: list[str]) -> AuthResult:
        """CRAM-MD5 (RFC 2195): HMAC-MD5 of a one-time challenge keyed with the password."""
        if len(args) != 1:
            await self.push("501 5.5.2 CRAM-MD5 takes no initial response")
            return AuthResult(success=False, handled=True)
        challenge = f"<{secrets.randbits(64)}.{time.time_ns()}@{self.hostname}>".encode()
        response = await self.challenge_auth(challenge)
        if not isinstance(response, bytes):
            return AuthResult(success=False, handled=True)  # "*" or bad base64: answered
        user_bytes, _sep, digest = response.rpartition(b" ")
        try:
            user = user_bytes.decode()
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False)
        users = self._core.users
        if users is None:
            return AuthResult(success=True, auth_data=user)
        password = users.get(user)
        if password is None:
            return AuthResult(success=False, handled=False)
        expected = hmac.new(password.encode(), challenge, "md5").hexdigest().encode()
        if hmac.compare_digest(expected, digest.lower()):
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)

    @auth_mechanism("XOAUTH2")
    async def auth_XOAUTH2(self, _: SMTP, args: list[str]) -> AuthResult:
        """Google/Microsoft XOAUTH2: ``user=U^Aauth=Bearer T^A^A``; the token is the password."""
        payload = await self._initial_or_challenge(args)
        if payload is None:
            return AuthResult(success=False, handled=True)
        fields = dict(_split_kv(part) for part in payload.split(b"\x01") if b"=" in part)
        user = fields.get("user", "")
        token = fields.get("auth", "").removeprefix("Bearer ").strip()
        if user and token and self._core.check_password(user, token):
            return AuthResult(success=True, auth_data=user)
        error = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
        return await self._oauth_failure(error)

    @auth_mechanism("OAUTHBEARER")
    async def auth_OAUTHBEARER(self, _: SMTP, args: list[str]) -> AuthResult:
        """RFC 7628 OAUTHBEARER: ``n,a=U,^Ahost=..^Aauth=Bearer T^A^A``."""
        payload = await self._initial_or_challenge(args)
        if payload is None:
            return AuthResult(success=False, handled=True)
        header, _sep, rest = payload.partition(b"\x01")
        user = ""
        for item in header.split(b","):
            if item.startswith(b"a="):
                user = item[2:].decode("utf-8", "replace").replace("=2C", ",").replace("=3D", "=")
        fields = dict(_split_kv(part) for part in rest.split(b"\x01") if b"=" in part)
        token = fields.get("auth", "").removeprefix("Bearer ").strip()
        if user and token and self._core.check_password(user, token):
            return AuthResult(success=True, auth_data=user)
        return await self._oauth_failure({"status": "invalid_token", "scope": "mail"})

    async def _initial_or_challenge(self, args: list[str]) -> bytes | None:
        if len(args) == 2:
            try:
                return base64.b64decode(args[1], validate=True)
            except binascii.Error:
                await self.push("501 5.5.2 Can't decode base64")
                return None
        response = await self.challenge_auth(b"")
        return response if isinstance(response, bytes) else None

    async def _oauth_failure(self, error: dict[str, str]) -> AuthResult:
        # The provider sends its error as a base64 JSON challenge; the client answers with an
        # empty line (XOAUTH2) or ^A (OAUTHBEARER) and only then gets the final 535.
        answer = await self.challenge_auth(json.dumps(error, separators=(",", ":")))
        if not isinstance(answer, bytes):
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False, message=_GOOGLE_INVALID)


def _split_kv(part: bytes) -> tuple[str, str]:
    key, _sep, value = part.decode("utf-8", "replace").partition("=")
    return key.strip().lower(), value


def _abort(transport: asyncio.BaseTransport | None) -> None:
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    elif transport is not None:
        transport.close()


def _code_class(status: str | bytes) -> str:
    text = status.decode("ascii", "replace") if isinstance(status, bytes) else status
    return text[:1]


class DevServer(LoopServer):
    """A real SMTP server on loopback for tests, examples and development.

    It runs aiosmtpd on its own event loop in a daemon thread, so it works the same from
    synchronous and asynchronous code. TLS uses a CA and a certificate made at :meth:`start`
    (``ca_file`` is the PEM file a client must trust). Every message is captured in memory
    (:attr:`messages`) and, with ``maildir``, written as an ``.eml`` file.

    Args:
        host: address to listen on (loopback by default).
        port: port to listen on; ``0`` picks a free one (see :attr:`port` after start).
        tls: ``"starttls"`` (offer STARTTLS), ``"implicit"`` (TLS from the first byte, like
            port 465) or ``"none"``.
        auth: ``False`` (no AUTH), ``True`` (any credentials accepted) or a mapping of user
            name to password. For XOAUTH2 and OAUTHBEARER the "password" is the token.
        mechanisms: AUTH mechanisms to offer, in this order: any of ``MECHANISMS``.
        require_auth: refuse MAIL/RCPT/DATA with ``530 5.7.0`` until the client has logged in.
        auth_require_tls: refuse AUTH (``538 5.7.11``) and leave it out of EHLO before
            STARTTLS, as real servers do. ``False`` lets a test check that the *client* refuses
            to authenticate over plaintext. Must be ``False`` for ``tls="none"`` with AUTH.
        maildir: directory that receives every message as an ``.eml`` file.
        hostname: the name in the greeting and EHLO reply.
        data_size_limit: advertise ``SIZE n`` and refuse larger messages with ``552``.
        smtputf8: advertise and accept SMTPUTF8.
        faults: fault rules (:mod:`smtpkit.devserver._faults`); see :meth:`set_faults`.
        cert_hostnames: names and IP addresses in the server certificate.
        on_message: called (in the server thread) with each captured message.
        timeout: seconds of client inactivity before the server closes the connection.
    """

    _thread_name = "smtpkit-devserver"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: TLSChoice = "starttls",
        auth: bool | Mapping[str, str] = False,
        mechanisms: Sequence[str] = DEFAULT_MECHANISMS,
        require_auth: bool = False,
        auth_require_tls: bool = True,
        maildir: str | Path | None = None,
        hostname: str = "localhost",
        data_size_limit: int | None = None,
        smtputf8: bool = True,
        faults: Iterable[Fault] = (),
        cert_hostnames: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
        on_message: Callable[[CapturedMessage], None] | None = None,
        timeout: float = 300.0,
    ) -> None:
        if tls not in ("starttls", "implicit", "none"):
            raise ValueError(f"tls must be 'starttls', 'implicit' or 'none', not {tls!r}")
        chosen = tuple(m.upper() for m in mechanisms)
        unknown = [m for m in chosen if m not in MECHANISMS]
        if unknown:
            raise ValueError(f"unsupported AUTH mechanism(s) {unknown}; choose from {MECHANISMS}")
        if isinstance(auth, Mapping):
            users: dict[str, str] | None = dict(auth)
            if not users:
                raise ValueError("auth mapping must hold at least one user")
        else:
            users = None
        auth_enabled = auth is not False
        if auth_enabled and tls == "none" and auth_require_tls:
            raise ValueError("AUTH without TLS needs auth_require_tls=False")
        if require_auth and not auth_enabled:
            raise ValueError("require_auth=True needs auth")
        if data_size_limit is not None and data_size_limit < 1:
            raise ValueError("data_size_limit must be a positive number of bytes or None")
        super().__init__(host=host, port=port, cert_hostnames=cert_hostnames)
        self._tls: TLSChoice = tls
        self._auth = auth
        self._users = users
        self._auth_enabled = auth_enabled
        self._mechanisms = chosen
        self._require_auth = require_auth
        self._auth_require_tls = auth_require_tls
        self._maildir = Path(maildir) if maildir is not None else None
        self._hostname = hostname
        self._data_size_limit = data_size_limit
        self._smtputf8 = smtputf8
        self._timeout = timeout
        self._faults = FaultSet(faults)
        self._store = MessageStore(self._maildir, on_message)
        self._core: _Core | None = None

    def __repr__(self) -> str:
        return f"<DevServer {self._host} tls={self._tls} {self._state()}>"

    # -- life cycle ----------------------------------------------------------------------------
    def _make_certificates(self) -> CertificateBundle:
        if self._maildir is not None:
            self._maildir.mkdir(parents=True, exist_ok=True)
        return make_certificates(self._cert_hostnames, self._faults.certificate)

    async def _listen(self, certs: CertificateBundle) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        core = _Core(
            store=self._store,
            faults=self._faults,
            tls=self._tls,
            users=self._users,
            auth_enabled=self._auth_enabled,
            mechanisms=self._mechanisms if self._auth_enabled else (),
            require_auth=self._require_auth,
        )
        self._core = core
        # aiosmtpd only knows STARTTLS: with implicit TLS the whole connection is encrypted,
        # so its "AUTH needs TLS" check must be off.
        require_tls = self._auth_require_tls if self._tls != "implicit" else False
        excluded = [m for m in MECHANISMS if m not in core.mechanisms]
        options: dict[str, Any] = {
            "data_size_limit": self._data_size_limit,
            "enable_SMTPUTF8": self._smtputf8,
            "decode_data": False,
            "hostname": self._hostname,
            "ident": "smtpkit devserver",
            "tls_context": certs.context if self._tls == "starttls" else None,
            "timeout": self._timeout,
            "auth_require_tls": require_tls,
            "auth_exclude_mechanism": excluded,
            "authenticator": core.authenticate,
            "loop": loop,
        }

        def factory() -> _DevSMTP:
            return _DevSMTP(core, **options)

        return await loop.create_server(
            factory,
            self._host,
            self._requested_port,
            ssl=certs.context if self._tls == "implicit" else None,
            ssl_handshake_timeout=10.0 if self._tls == "implicit" else None,
        )

    async def _shutdown(self, server: asyncio.Server) -> None:
        core = self._core

        def abort() -> None:
            for protocol in list(core.protocols if core is not None else ()):
                _abort(protocol.transport)

        await close_everything(server, abort)
        if core is not None:
            # connection_lost() runs a loop iteration after abort(); wait for every one so
            # no transport is left for the garbage collector to warn about.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(core.idle.wait(), _SHUTDOWN_GRACE)

    def _stopped(self) -> None:
        self._core = None

    async def astart(self) -> Self:
        """:meth:`start` without blocking the caller's event loop."""
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        """:meth:`stop` without blocking the caller's event loop."""
        await asyncio.to_thread(self.stop)

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    @property
    def running(self) -> bool:
        """Whether the server is started."""
        return self._thread is not None

    # -- where it is (host, port and ca_file come from LoopServer) --------------------------
    @property
    def tls(self) -> TLSChoice:
        """The TLS mode: ``"starttls"``, ``"implicit"`` or ``"none"``."""
        return self._tls

    @property
    def ca_pem(self) -> bytes:
        """The PEM CA certificate as bytes (while running)."""
        return self._running_certs().ca_pem

    @property
    def credentials(self) -> tuple[str, str] | None:
        """A user name and password the server accepts, or ``None`` without AUTH."""
        if not self._auth_enabled:
            return None
        if self._users:
            return next(iter(self._users.items()))
        return _DEFAULT_USER

    @property
    def dsn(self) -> str:
        """An ``smtp://`` / ``smtps://`` DSN for this server (credentials and ``ca_file``)."""
        scheme = "smtps" if self._tls == "implicit" else "smtp"
        userinfo = ""
        if self.credentials is not None:
            user, password = self.credentials
            userinfo = f"{quote(user, safe='')}:{quote(password, safe='')}@"
        host = f"[{self._host}]" if ":" in self._host else self._host
        query = [f"ca_file={quote(self.ca_file, safe='/')}"]
        if self._tls == "none":
            query.append("tls=none")
            if self.credentials is not None:
                query.append("allow_insecure_auth=true")
        return f"{scheme}://{userinfo}{host}:{self.port}?{'&'.join(query)}"

    def config(self, **overrides: Any) -> SMTPConfig:
        """An ``SMTPConfig`` for this server: its port, TLS mode, ``ca_file`` and a login.

        With ``tls="none"`` and AUTH the config also sets ``allow_insecure_auth=True``
        (the server was built to accept that); pass ``allow_insecure_auth=False`` to test
        the client's refusal. Keyword arguments override any field.
        """
        from smtpkit._config import Credentials, SMTPConfig, TLSMode
        from smtpkit._secrets import Secret

        fields: dict[str, Any] = {
            "host": self._host,
            "port": self.port,
            "tls": TLSMode(self._tls),
            "ca_file": self.ca_file,
        }
        if self.credentials is not None:
            user, password = self.credentials
            fields["credentials"] = Credentials(user, password=Secret(password))
            if self._tls == "none":
                fields["allow_insecure_auth"] = True
        fields.update(overrides)
        return SMTPConfig(**fields)

    # -- what it saw ---------------------------------------------------------------------------
    @property
    def messages(self) -> list[CapturedMessage]:
        """A snapshot of the captured messages, oldest first."""
        return self._store.messages()

    @property
    def commands(self) -> list[ReceivedCommand]:
        """Every command received (AUTH redacted), across connections, in order."""
        return self._store.commands()

    @property
    def connections(self) -> list[ConnectionInfo]:
        """A snapshot of every connection since the start (or the last :meth:`clear`)."""
        return self._store.connections()

    @property
    def errors(self) -> list[str]:
        """Unexpected server-side errors (a healthy run has none)."""
        return list(self._store.errors)

    def clear(self) -> None:
        """Forget captured messages, the command log and closed connections."""
        self._store.clear()

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[CapturedMessage]:
        """Block until ``count`` messages are captured and return them all.

        Raises ``TimeoutError`` when fewer arrive within ``timeout`` seconds.
        """
        return self._store.wait_for(count, timeout)

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Block until every client connection is closed (``TimeoutError`` otherwise)."""
        self._store.wait_idle(timeout)

    # -- faults --------------------------------------------------------------------------------
    @property
    def faults(self) -> tuple[Fault, ...]:
        """The fault rules in force."""
        return self._faults.faults

    def set_faults(self, *faults: Fault) -> None:
        """Replace the fault rules (and reset their ``times`` counts); no argument clears them.

        Takes effect for the next command, also on connections already open.
        """
        self._faults.replace(faults)
