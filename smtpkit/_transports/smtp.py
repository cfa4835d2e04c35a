"""SMTPTransport: messages over SMTP with TLS, AUTH, a connection pool and classified errors.

This is the only module that imports aiosmtplib. aiosmtplib sets each connection up
(connect, implicit TLS, EHLO, STARTTLS, and the commands of the AUTH exchange); then the
asyncio transport is handed to smtpkit's own reply reader (``_pipeline.ReplyQueue``), which
carries the mail transactions (MAIL, RCPT, DATA, RSET, QUIT). Every policy decision is made
here:

* TLS is never left to aiosmtplib's defaults (``start_tls=None`` would upgrade only when the
  server offers it). Implicit TLS connects with ``use_tls=True``; otherwise ``start_tls=False``
  is passed and STARTTLS is run here, *required* unless the configuration opts out. After the
  upgrade EHLO is sent again and nothing said before it is trusted (RFC 3207 §4.2).
* AUTH is driven here with the pure mechanisms of :mod:`smtpkit._auth`; aiosmtplib never sees a
  user name or password, so it can never log in by itself or over plaintext.
* RFC 2920 PIPELINING, when the post-TLS EHLO offers it: MAIL FROM, every RCPT TO and DATA
  go out in one write, and their replies are read in order (aiosmtplib's protocol keeps one
  reply at a time, which is why the transactions run on our own reader). Never across
  STARTTLS or AUTH: those are over before the hand-over. Without the offer, one command waits
  for its reply before the next, as RFC 5321 requires.
* Line-end normalisation and dot-stuffing happen in exactly one place, :func:`_wire_message`
  (lone CR and LF become CRLF with aiosmtplib's ``normalize_message_line_endings``, then a
  ``.`` at the start of a line is doubled, then ``.CRLF`` ends the data). Data that needs
  neither is never copied: it goes to the transport in slices of itself.
* aiosmtplib's exceptions, the reply reader's :class:`SessionError` s, and ``OSError`` /
  ``ssl.SSLError`` under them, are translated into smtpkit errors by one function,
  :meth:`SMTPTransport._translate`, always ``from`` the cause.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import itertools
import logging
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import quote

import aiosmtplib
from aiosmtplib.errors import (
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPException,
    SMTPHeloError,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from aiosmtplib.protocol import normalize_message_line_endings

from smtpkit._auth import TOKEN_MECHANISMS, Mechanism, choose_mechanisms, create_mechanism
from smtpkit._config import SMTPConfig, TLSMode
from smtpkit._exceptions import (
    AuthenticationError,
    ConnectError,
    DataRefused,
    DeliveryUnknown,
    ExtensionUnsupported,
    MessageError,
    MessageTooLarge,
    NoCommonAuthMechanism,
    RecipientsRefused,
    ReplyError,
    SenderRefused,
    ServerDisconnected,
    Stage,
    TLSError,
    TransportError,
    TransportTimeout,
)
from smtpkit._hints import hint_for
from smtpkit._replies import RecipientStatus, Reply, SendResult
from smtpkit._transports._pipeline import (
    MalformedReply,
    ReplyQueue,
    ReplyTimeout,
    SessionClosed,
    SessionError,
    check_command,
)
from smtpkit._transports._pool import ConnectionPool, Slot
from smtpkit._transports._rules import (
    Plan,
    overlong_line,
    path,
    size_limit,
    summary,
    too_many_recipients,
)
from smtpkit._transports._transcript import REDACTED, Transcript
from smtpkit._transports.base import header_block, message_id_of

if TYPE_CHECKING:
    from smtpkit._envelope import Envelope

__all__ = ["SMTPTransport"]

_log = logging.getLogger("smtpkit.transport")

_E = TypeVar("_E", bound=TransportError)

# A polite QUIT must not hold up shutdown (some servers never answer it, or drop TLS rudely).
_QUIT_TIMEOUT = 5.0
# A mechanism exchange with more challenges than this is a confused or hostile server.
_MAX_AUTH_STEPS = 8
# Mechanisms that send the password itself: a 535 to one means the same password fails with
# the other, so trying it too would only add a failed login (and bring account lockout closer).
_PASSWORD_MECHANISMS = frozenset({"PLAIN", "LOGIN"})


def _plan(envelope: Envelope, data: bytes) -> Plan:
    line = overlong_line(data)
    if line is not None:
        raise MessageError(
            f"data: line {line} is longer than 998 octets (RFC 5321 4.5.3.1.6); nothing was "
            "sent: fold headers and use quoted-printable or base64 for long body lines"
        )
    headers = header_block(data)
    message_id = message_id_of(data, headers=headers)
    eightbit = not data.isascii()
    # UTF-8 in the header block (or in an address) can only travel under SMTPUTF8; UTF-8 in
    # the body alone needs 8BITMIME.
    smtputf8 = envelope.needs_smtputf8 or (eightbit and not headers.isascii())
    return Plan(message_id=message_id, size=len(data), smtputf8=smtputf8, eightbit=eightbit)


def _caused_by(
    exc: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]
) -> BaseException | None:
    """The first exception of ``kinds`` in ``exc``'s cause/context chain (``exc`` included)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _scrub(text: str, secrets: list[str]) -> str:
    """Remove anything we sent during AUTH from a server's text before it is kept anywhere."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class _Stale(Exception):
    """A reused connection turned out dead before any byte of the message was accepted."""


# The message goes to the transport in slices of this size: a whole large message in one
# write() would be copied in full into the transport's buffer (bytes[n:] then extend).
_CHUNK = 256 * 1024


def _wire_message(data: bytes) -> list[bytes]:
    """``data`` as it goes on the wire after DATA's 354: the only place it is transformed.

    Returns pieces whose concatenation is the wire form (``data`` itself among them when it
    needs no change, so a large message is never copied just to be sent).

    Lone CR and LF become CRLF (RFC 5321 §2.3.8; aiosmtplib's function, so the bytes are the
    ones its own DATA would send), a leading dot on any line is doubled, and ``.CRLF`` ends
    the data. Normalising first matters: ``\n.\n`` must be stuffed as a line of its own, or
    a lenient server ends the data there (SMTP smuggling, CVE-2023-51764 and relatives).
    """
    # Only CRLF line ends (every CR followed by LF, every LF preceded by CR) is what
    # Message.to_bytes() produces; counting does not copy, normalising would (several times).
    crlf = data.count(b"\r\n")
    if data.count(b"\r") != crlf or data.count(b"\n") != crlf:
        data = normalize_message_line_endings(data)
    # RFC 5321 §4.5.2: a line starting with "." gets a second one. Every line end is CRLF
    # now, so a line starts at 0 or right after an LF; replace() returns ``data`` itself
    # (no copy) when there is no such line.
    pieces = [b".", data] if data.startswith(b".") else [data]
    pieces[-1] = data.replace(b"\n.", b"\n..")
    if not data.endswith(b"\r\n"):
        pieces.append(b"\r\n")  # what normalisation adds; also the empty message's line
    pieces.append(b".\r\n")
    return pieces


class _Connection:
    """One SMTP session, ready for MAIL FROM when ``clean``.

    aiosmtplib's ``smtp`` drives the set-up; from then on ``queue`` (the transport's protocol
    since the hand-over) carries every command.
    """

    __slots__ = (
        "auth_offer",
        "clean",
        "extensions",
        "payload_sent",
        "queue",
        "secure",
        "smtp",
        "stage",
        "transcript",
        "turn",
        "unsent",
        "uses",
    )

    def __init__(self, smtp: aiosmtplib.SMTP, transcript: Transcript) -> None:
        self.smtp = smtp
        self.transcript = transcript
        #: Set once the session is set up: the reader of the mail transactions' replies.
        self.queue: ReplyQueue | None = None
        #: ESMTP extensions (lower-case keyword -> parameters) from the last EHLO only.
        self.extensions: dict[str, str] = {}
        self.auth_offer: list[str] = []
        self.secure = False
        self.uses = 0
        # True when the session is between transactions: safe for the next MAIL FROM.
        self.clean = False
        self.stage: Stage = "connect"
        # Set by DATA when the message itself was written, with the bytes not yet flushed.
        self.payload_sent = False
        self.unsent = 0
        #: Done once the previous holder has read its last reply: until then the next one may
        #: write its commands (RFC 2920 lets MAIL follow the end of the data) but not read.
        self.turn: asyncio.Future[None] | None = None

    @property
    def reusable(self) -> bool:
        """Connected and between transactions."""
        return self.clean and self.queue is not None and not self.queue.closed

    def hand_over(self) -> None:
        """Move the connection from aiosmtplib's protocol to our reply queue.

        Called once, when the set-up is complete: no reply is outstanding then, so nothing
        aiosmtplib still holds belongs to a command of ours.
        """
        transport = self.smtp.transport
        if not isinstance(transport, asyncio.Transport) or transport.is_closing():
            raise SMTPServerDisconnected("Connection lost")
        self.queue = ReplyQueue.attach(transport)

    async def aclose(self) -> None:
        """QUIT and close; never raises (the server may already be gone)."""
        self.clean = False
        queue = self.queue
        turn, self.turn = self.turn, None
        if turn is not None:
            # The previous holder still reads its final reply: QUIT's reply comes after it.
            await asyncio.shield(turn)
        if queue is not None and not queue.closed:
            self.transcript.client("QUIT")
            try:
                queue.send(b"QUIT\r\n", 1)
                code, text = await queue.read(_QUIT_TIMEOUT)
            except (SessionError, OSError):
                pass  # nothing to report: we are leaving anyway
            else:
                self.transcript.server(code, text)
        self._drop_socket()

    def abort(self) -> None:
        """Close without QUIT: the session is broken or in an unknown state."""
        self.clean = False
        self._drop_socket()

    def _drop_socket(self) -> None:
        # transport.close() on a TLS connection starts a graceful TLS shutdown that finishes
        # only on later loop iterations (or after a 30 s timeout); a loop stopped before then
        # leaks the socket. The SMTP session is over either way, so close the socket now.
        if self.queue is not None:
            self.queue.close()
        transport = self.smtp.transport
        if isinstance(transport, asyncio.Transport) and not transport.is_closing():
            transport.abort()
        self.smtp.close()


class SMTPTransport:
    """Send over SMTP: TLS policy, AUTH, a connection pool, per-recipient results.

    Each :meth:`send_raw` makes one attempt on a pooled connection and returns a
    :class:`~smtpkit.SendResult`, or raises a :class:`~smtpkit.TransportError` subclass (or
    :class:`~smtpkit.MessageTooLarge` when the server's SIZE limit is smaller than the message,
    before anything is sent). Retrying is the mailer's job.

    Connections are reused: up to ``config.pool.max_connections`` at once (further callers
    wait), each for ``max_messages_per_connection`` messages, closed after ``idle_timeout``
    seconds without use. A connection is only reused when its previous transaction ended
    cleanly (250 to the data, or RSET), and a reused connection that turns out to have been
    closed by the server is replaced transparently before anything of the message is sent.

    >>> transport = SMTPTransport(SMTPConfig(host="smtp.example.com"))  # doctest: +SKIP
    >>> transport.description                                             # doctest: +SKIP
    'smtp://smtp.example.com:587'
    """

    def __init__(self, config: SMTPConfig) -> None:
        self._config = config
        self._port = config.effective_port
        # Built once: a default context loads the CA store again each time (~16 ms).
        self._ssl_context: ssl.SSLContext | None = (
            None if config.tls is TLSMode.NONE else config.create_ssl_context()
        )
        self._pool: ConnectionPool[_Connection] = ConnectionPool(
            max_connections=config.pool.max_connections,
            max_uses=config.pool.max_messages_per_connection,
            idle_timeout=config.pool.idle_timeout,
        )
        self._ehlo_name: str | None = config.local_hostname
        self._counter = itertools.count(1)
        self._description = self._describe()

    # -- public ----------------------------------------------------------------------------

    @property
    def description(self) -> str:
        """Where this transport sends, without secrets: ``smtp://user@host:587``."""
        return self._description

    @property
    def config(self) -> SMTPConfig:
        """The configuration this transport was built from."""
        return self._config

    def __repr__(self) -> str:
        return f"<SMTPTransport {self._description}>"

    async def send_raw(self, envelope: Envelope, data: bytes, /) -> SendResult:
        """Send ``data`` to ``envelope``'s recipients in one attempt.

        Raises:
            MessageTooLarge: the server's SIZE is smaller than ``data`` (nothing was sent).
            ExtensionUnsupported: the message needs SMTPUTF8 or 8BITMIME and the server lacks it.
            RecipientsRefused: every recipient was refused, or any with
                ``on_partial_rejection="abort"``.
            DeliveryUnknown: the connection failed after the end of the data and before the
                server's reply; the message may have been queued. It is not resent.
            TransportError: any other failure, with ``stage``, ``reply`` and ``hint``.
        """
        if self._pool.closed:
            raise RuntimeError(f"{self!r} is closed")
        started = time.monotonic()
        plan = _plan(envelope, data)
        async with self._pool.slot() as slot:
            conn = self._pool.checkout()
            if conn is None:
                conn = await self._open()
                result = await self._deliver_on(
                    conn, envelope, data, plan, started, slot=slot, reused=False
                )
            else:
                try:
                    result = await self._deliver_on(
                        conn, envelope, data, plan, started, slot=slot, reused=True
                    )
                except _Stale:
                    _log.debug("%s: idle connection was closed by the server; reconnecting", self)
                    conn.abort()
                    conn = await self._open()
                    result = await self._deliver_on(
                        conn, envelope, data, plan, started, slot=slot, reused=False
                    )
        return result

    async def verify(self) -> None:
        """Connect, apply the TLS policy, authenticate and QUIT, sending no message.

        What a "test connection" button needs: it raises the same classified errors (with
        hints) that a send would at those stages.
        """
        connection = await self._open()
        await connection.aclose()

    async def aclose(self) -> None:
        """QUIT every idle connection; connections in use close when their send ends."""
        await self._pool.aclose()

    # -- the conversation --------------------------------------------------------------------

    async def _deliver_on(
        self,
        conn: _Connection,
        envelope: Envelope,
        data: bytes,
        plan: Plan,
        started: float,
        *,
        slot: Slot,
        reused: bool,
    ) -> SendResult:
        """Run one message on ``conn`` and give the connection back to the pool.

        Unless it was already handed on to a waiting caller (``slot`` given up, see
        :meth:`_hand_on`): then it is that caller's, and this one only read its last reply.
        """
        conn.transcript.begin_message()
        try:
            result = await self._deliver(
                conn, envelope, data, plan, started, slot=slot, reused=reused
            )
        except _Stale:
            raise
        except TransportError:
            # Raised by us, with the connection's state already settled (clean after RSET,
            # or closed); checkin keeps it only if it is still reusable. Caught before OSError
            # because some of our errors are also ConnectionError / TimeoutError.
            if slot.held:
                await self._pool.checkin(conn)
            raise
        except (SMTPException, OSError, SessionError) as exc:
            conn.abort()
            raise self._translate(exc, conn) from exc
        except BaseException:
            # MessageTooLarge is raised before MAIL and leaves the connection clean, so it is
            # kept; a cancellation mid-transaction leaves it unclean, and checkin closes it.
            if slot.held:
                await self._pool.checkin(conn)
            raise
        if slot.held:
            await self._pool.checkin(conn)
        return result

    async def _open(self) -> _Connection:
        """Connect, EHLO, apply the TLS policy and authenticate: a connection ready for MAIL."""
        config = self._config
        if self._ehlo_name is None:
            self._ehlo_name = await _local_fqdn()
        number = next(self._counter)
        transcript = Transcript(
            keep=config.transcript, logger=_log, tag=f"[{config.host}:{self._port} #{number}]"
        )
        smtp = aiosmtplib.SMTP(
            hostname=config.host,
            port=self._port,
            # Never give aiosmtplib credentials: with them it logs in by itself on connect,
            # over plaintext if need be. AUTH is run below, after the TLS policy.
            username=None,
            password=None,
            local_hostname=self._ehlo_name,
            timeout=config.timeouts.command,
            use_tls=config.tls is TLSMode.IMPLICIT,
            # Explicitly False: its default (None) means "STARTTLS if offered", a silent
            # downgrade. STARTTLS is run below when the configuration asks for it.
            start_tls=False,
            tls_context=self._ssl_context,
        )
        conn = _Connection(smtp, transcript)
        try:
            await self._setup(conn)
        except TransportError:
            conn.abort()
            raise
        except (SMTPException, OSError) as exc:
            conn.abort()
            raise self._translate(exc, conn) from exc
        except BaseException:
            conn.abort()
            raise
        return conn

    async def _setup(self, conn: _Connection) -> None:
        config = self._config
        smtp, transcript = conn.smtp, conn.transcript
        transcript.note(f"connecting to {config.host}:{self._port} (tls={config.tls.value})")
        conn.stage = "connect"
        greeting = await smtp.connect(timeout=config.timeouts.connect)
        transcript.server(greeting.code, greeting.message)
        if config.tls is TLSMode.IMPLICIT:
            conn.secure = True
            self._note_tls(conn)
        await self._ehlo(conn)

        if config.tls in (TLSMode.STARTTLS, TLSMode.STARTTLS_OPPORTUNISTIC):
            await self._starttls(conn)

        credentials = config.credentials
        if credentials is not None:
            conn.stage = "auth"
            if not conn.secure and not config.allow_insecure_auth:
                # Checked here, not only in the configuration: opportunistic STARTTLS can end
                # in plaintext, and the password must not follow it there (any host).
                raise self._error(
                    TLSError,
                    "refusing to authenticate over an unencrypted connection to "
                    f"{config.host}:{self._port}; no credentials were sent (use TLS, or set "
                    "allow_insecure_auth=True to accept sending them in plaintext)",
                    stage="auth",
                    conn=conn,
                )
            await self._authenticate(conn)

        # From here on the transactions run on our reply queue (see the module docstring).
        conn.hand_over()
        conn.stage = "mail"
        conn.clean = True
        transcript.setup_done()

    async def _ehlo(self, conn: _Connection) -> None:
        conn.stage = "ehlo"
        smtp, transcript = conn.smtp, conn.transcript
        transcript.client(f"EHLO {self._ehlo_name}")
        try:
            response = await smtp.ehlo(timeout=self._config.timeouts.command)
        except SMTPHeloError as exc:
            transcript.server(exc.code, exc.message)
            if exc.code not in (500, 502) or not smtp.is_connected:
                raise
            # A pre-ESMTP server: HELO works, with no extensions (so no STARTTLS, no AUTH).
            transcript.client(f"HELO {self._ehlo_name}")
            response = await smtp.helo(timeout=self._config.timeouts.command)
            transcript.server(response.code, response.message)
            conn.extensions = {}
            conn.auth_offer = []
            return
        transcript.server(response.code, response.message)
        conn.extensions = dict(smtp.esmtp_extensions)
        conn.auth_offer = [name.upper() for name in smtp.server_auth_methods]

    async def _starttls(self, conn: _Connection) -> None:
        config = self._config
        required = config.tls is TLSMode.STARTTLS
        smtp, transcript = conn.smtp, conn.transcript
        conn.stage = "tls"
        if "starttls" not in conn.extensions:
            if required:
                raise self._error(
                    TLSError,
                    f"{config.host}:{self._port} did not offer STARTTLS, which this configuration "
                    "requires; nothing was sent after EHLO (the offer may have been stripped "
                    "by an attacker, or the server expects implicit TLS)",
                    stage="tls",
                    conn=conn,
                )
            transcript.note("STARTTLS not offered; continuing without TLS (opportunistic)")
            return
        transcript.client("STARTTLS")
        try:
            response = await smtp.starttls(timeout=config.timeouts.command)
        except SMTPServerDisconnected:
            raise
        except SMTPResponseException as exc:
            transcript.server(exc.code, exc.message)
            reply = Reply.parse(exc.code, exc.message)
            if required or not smtp.is_connected:
                raise self._error(
                    TLSError,
                    f"{config.host}:{self._port} refused STARTTLS ({reply}); nothing else was sent",
                    stage="tls",
                    reply=reply,
                    conn=conn,
                ) from exc
            transcript.note("STARTTLS refused; continuing without TLS (opportunistic)")
            return
        transcript.server(response.code, response.message)
        conn.secure = True
        self._note_tls(conn)
        # RFC 3207 §4.2: forget everything learnt before TLS (aiosmtplib has cleared its own
        # copy, and discarded any bytes that arrived after the 220), then ask again.
        conn.extensions = {}
        conn.auth_offer = []
        await self._ehlo(conn)

    def _note_tls(self, conn: _Connection) -> None:
        if not conn.transcript.active:
            return
        ssl_object = conn.smtp.get_transport_info("ssl_object")
        if isinstance(ssl_object, ssl.SSLObject):
            conn.transcript.note(f"TLS established: {ssl_object.version()} {ssl_object.cipher()}")

    # -- AUTH ------------------------------------------------------------------------------

    async def _authenticate(self, conn: _Connection) -> None:
        config = self._config
        credentials = config.credentials
        assert credentials is not None
        offered = conn.auth_offer if "auth" in conn.extensions else []
        names = choose_mechanisms(
            config.auth_mechanisms,
            offered,
            has_password=credentials.password is not None,
            has_token=credentials.token is not None,
        )
        if not names:
            if offered:
                text = (
                    f"no common AUTH mechanism: the server offers {', '.join(offered)}; "
                    f"configured {', '.join(config.auth_mechanisms)} (with "
                    f"{'a token' if credentials.token else 'a password'})"
                )
            else:
                text = "the server does not offer AUTH on this connection"
            raise self._error(
                NoCommonAuthMechanism,
                text,
                stage="auth",
                conn=conn,
            )
        token: str | None = None
        failures: list[tuple[str, Reply]] = []
        for name in names:
            needs_token = name in TOKEN_MECHANISMS
            reply: Reply | None = None
            for refetch in (False, True):
                if needs_token and (token is None or refetch):
                    # Fresh per connection; fetched again once if the server rejects it.
                    token = await self._fetch_token(conn)
                reply, mechanism = await self._auth_exchange(conn, name, token)
                if reply.code == 235:
                    return
                token_refused = reply.code == 535 or getattr(mechanism, "server_error", None)
                if not (needs_token and token_refused and not refetch):
                    break
                conn.transcript.note(f"{name} token refused; fetching a new token")
            assert reply is not None
            failures.append((name, reply))
            if reply.code == 421:
                raise self._error(
                    ServerDisconnected,
                    f"the server closed the connection during AUTH: {reply}",
                    stage="auth",
                    reply=reply,
                    conn=conn,
                )
            if reply.is_transient or (reply.code == 535 and name in _PASSWORD_MECHANISMS):
                break
        tried = "; ".join(f"{name}: {reply}" for name, reply in failures)
        raise self._error(
            AuthenticationError,
            f"authentication as {credentials.username!r} failed ({tried})",
            stage="auth",
            reply=failures[-1][1],
            conn=conn,
        )

    async def _fetch_token(self, conn: _Connection) -> str:
        credentials = self._config.credentials
        assert credentials is not None
        assert credentials.token is not None
        try:
            value: Any = credentials.token()
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            # The provider's own message may carry secrets (a refresh token in a URL): name
            # the exception type only; the cause stays attached for debugging.
            raise self._error(
                AuthenticationError,
                f"the OAuth2 token provider failed ({type(exc).__name__})",
                stage="auth",
                conn=conn,
            ) from exc
        if not isinstance(value, str) or not value:
            raise self._error(
                AuthenticationError,
                "the OAuth2 token provider returned no token (expected a non-empty str)",
                stage="auth",
                conn=conn,
            )
        return value

    async def _auth_exchange(
        self, conn: _Connection, name: str, token: str | None
    ) -> tuple[Reply, Mechanism]:
        """One SASL exchange. Returns the final reply; only redacted lines are recorded."""
        config = self._config
        credentials = config.credentials
        assert credentials is not None
        password = credentials.password.reveal() if credentials.password is not None else None
        mechanism = create_mechanism(
            name,
            username=credentials.username,
            password=None if name in TOKEN_MECHANISMS else password,
            token=token if name in TOKEN_MECHANISMS else None,
            host=config.host,
            port=self._port,
        )
        secrets = [s for s in (password, token) if s]
        smtp, transcript = conn.smtp, conn.transcript
        timeout = config.timeouts.command
        initial = mechanism.initial_response()
        args = [b"AUTH", name.encode("ascii")]
        if initial is not None:
            # RFC 4954 §4: an empty initial response is sent as "=".
            encoded = base64.b64encode(initial) or b"="
            secrets.append(encoded.decode("ascii"))
            args.append(encoded)
            transcript.client(f"AUTH {name} {REDACTED}")
        else:
            transcript.client(f"AUTH {name}")
        response = await smtp.execute_command(*args, timeout=timeout)
        steps = 0
        while response.code == 334:
            transcript.server(response.code, _scrub(response.message, secrets))
            steps += 1
            try:
                if steps > _MAX_AUTH_STEPS:
                    raise AuthenticationError(f"more than {_MAX_AUTH_STEPS} challenges")
                challenge = base64.b64decode(response.message.strip(), validate=True)
                answer = mechanism.respond(challenge)
            except (binascii.Error, AuthenticationError) as exc:
                # RFC 4954 §4: "*" cancels the exchange; the server answers 501.
                transcript.client("*")
                cancel = await smtp.execute_command(b"*", timeout=timeout)
                transcript.server(cancel.code, _scrub(cancel.message, secrets))
                detail = "an invalid challenge" if isinstance(exc, binascii.Error) else str(exc)
                raise self._error(
                    AuthenticationError,
                    f"{name}: the exchange was cancelled: {detail}",
                    stage="auth",
                    conn=conn,
                ) from None
            encoded = base64.b64encode(answer)
            secrets.append(encoded.decode("ascii"))
            transcript.client(REDACTED if answer else "")
            response = await smtp.execute_command(encoded, timeout=timeout)
        message = _scrub(response.message, secrets)
        transcript.server(response.code, message)
        return Reply.parse(response.code, message), mechanism

    # -- one message -----------------------------------------------------------------------

    async def _deliver(
        self,
        conn: _Connection,
        envelope: Envelope,
        data: bytes,
        plan: Plan,
        started: float,
        *,
        slot: Slot,
        reused: bool,
    ) -> SendResult:
        config = self._config
        extensions = conn.extensions
        limit = size_limit(extensions)
        if limit is not None and plan.size > limit:
            raise MessageTooLarge(
                f"the message is {plan.size} octets and {config.host} accepts at most {limit} "
                "(its SIZE limit); nothing was sent",
                limit=limit,
                size=plan.size,
            )
        if plan.smtputf8 and "smtputf8" not in extensions:
            raise self._error(
                ExtensionUnsupported,
                "the message needs SMTPUTF8 (a non-ASCII address or header) and "
                f"{config.host} does not offer it; nothing was sent",
                stage="mail",
                conn=conn,
            )
        # RFC 6531 §3.1: a server offering SMTPUTF8 must accept 8-bit data as well.
        if plan.eightbit and not plan.smtputf8 and "8bitmime" not in extensions:
            raise self._error(
                ExtensionUnsupported,
                f"the message has 8-bit data and {config.host} does not offer 8BITMIME; "
                "nothing was sent (send it with a 7-bit transfer encoding)",
                stage="mail",
                conn=conn,
            )
        params: list[bytes] = []
        if "size" in extensions:
            params.append(b"SIZE=%d" % plan.size)
        if plan.eightbit and "8bitmime" in extensions:
            params.append(b"BODY=8BITMIME")
        if plan.smtputf8:
            params.append(b"SMTPUTF8")
        encoding = "utf-8" if plan.smtputf8 else "ascii"
        sender = path(envelope.sender, plan.smtputf8, encoding)
        recipients = envelope.recipients
        paths = [path(address, plan.smtputf8, encoding) for address in recipients]
        mail_line = check_command(b" ".join([b"MAIL FROM:" + sender, *params]))

        statuses: dict[int, RecipientStatus] = {}
        pending = list(range(len(recipients)))
        data_replies: list[Reply] = []
        per_transaction = max(1, config.max_recipients_per_transaction)
        first = reused
        abort = config.on_partial_rejection == "abort"
        # Only what the last EHLO said counts: after STARTTLS that is the post-TLS one.
        pipelining = "pipelining" in extensions
        # RFC 2920 lets DATA end a group. Not in abort mode: there a refused recipient must
        # stop the transaction, and once DATA has its 354 the only way out is to send data.
        data_in_group = pipelining and not abort
        command_timeout, data_timeout = config.timeouts.command, config.timeouts.data
        conn.payload_sent = False
        # Set when this message's end of data was followed by the next holder's commands: the
        # connection is then no longer ours, only the final reply (and its transcript) is.
        handed: tuple[str, ...] | None = None
        while pending:
            chunk, rest = pending[:per_transaction], pending[per_transaction:]
            conn.clean = False
            rcpt_lines = [check_command(b"RCPT TO:" + paths[index]) for index in chunk]
            if pipelining:
                group = (
                    [mail_line, *rcpt_lines, b"DATA"] if data_in_group else [mail_line, *rcpt_lines]
                )
                self._send(conn, group, stale=first)
            else:
                self._send(conn, [mail_line], stale=first)
            turn, conn.turn = conn.turn, None
            if turn is not None:
                # Our group went right behind the previous holder's end of data; its final
                # reply comes first. A failure now is that connection's end, not staleness:
                # the server had it in use (see _hand_on).
                first = False
                await asyncio.shield(turn)
            conn.stage = "mail"
            mail_reply = await self._reply(conn, command_timeout, stale=first)
            first = False
            sender_ok = 200 <= mail_reply.code < 300
            if not sender_ok and not pipelining:
                await self._reset(conn)
                self._raise_reply(
                    SenderRefused, f"the server refused the sender: {mail_reply}", conn, mail_reply
                )

            conn.stage = "rcpt"
            accepted: list[int] = []
            deferred: list[int] = []
            for position, index in enumerate(chunk):
                if not pipelining:
                    self._send(conn, [rcpt_lines[position]])
                reply = await self._reply(conn, command_timeout)
                if not sender_ok:
                    continue  # the group's answers after a refused MAIL say nothing more
                if accepted and too_many_recipients(reply):
                    # The server's per-transaction limit: the rest go in another transaction.
                    if not pipelining:
                        deferred = chunk[position:]
                        break
                    # Every RCPT of the group was sent: each reply decides for its own address.
                    deferred.append(index)
                    continue
                statuses[index] = RecipientStatus(str(recipients[index]), reply)
                if 200 <= reply.code < 300:
                    accepted.append(index)

            data_reply: Reply | None = None
            ended = False  # whether a lone dot has already ended this transaction
            if data_in_group:
                conn.stage = "data"
                data_reply = await self._reply(conn, data_timeout, closing_raises=False)
                if data_reply.code == 354 and not (sender_ok and accepted):
                    # RFC 2920 §3.1: DATA may be accepted even with no valid recipient; the
                    # client then sends a single dot (no message content) and ignores the reply,
                    # which ends the transaction.
                    self._send(conn, [b"."])
                    await self._reply(conn, data_timeout, closing_raises=False)
                    ended = True
            if not sender_ok:
                conn.stage = "mail"
                if ended:
                    conn.clean = True
                else:
                    await self._reset(conn)
                self._raise_reply(
                    SenderRefused, f"the server refused the sender: {mail_reply}", conn, mail_reply
                )
            pending = deferred + rest

            refused = {s.address: s.reply for s in statuses.values() if not s.accepted}
            if refused and abort:
                await self._reset(conn)
                raise self._refused(
                    f"recipients refused, transaction aborted: {summary(refused)}", refused, conn
                )
            if not accepted:
                if ended:
                    conn.clean = True
                else:
                    await self._reset(conn)
                continue

            conn.stage = "data"
            if data_reply is None:
                reply, completed = await self._data(conn, data)
            elif data_reply.code == 354:
                await self._write_payload(conn, data)
                completed = True
                if not pending:
                    handed = self._hand_on(conn, slot)
                if handed is None:
                    reply = await self._final_reply(conn)
                else:
                    reply, handed = await self._final_reply_handed_on(conn, handed)
            else:
                reply, completed = data_reply, False
            if reply.code == 250:
                data_replies.append(reply)
                if handed is None:
                    conn.clean = True
                continue
            if handed is not None:
                pass  # the connection is the next holder's: its state is not ours to set
            elif not completed:
                await self._reset(conn)
            else:
                conn.clean = True  # the final reply ends the transaction either way
            if not data_replies:
                raise self._error(
                    DataRefused,
                    f"the server refused the message: {reply}",
                    stage="data",
                    reply=reply,
                    conn=conn,
                    lines=handed,
                )
            # Earlier transactions delivered: the refusal belongs to this chunk's recipients.
            for index in accepted:
                statuses[index] = RecipientStatus(str(recipients[index]), reply)

        if handed is None:
            conn.uses += 1  # (counted by _hand_on otherwise)
        if not data_replies:
            rejected = {s.address: s.reply for s in statuses.values()}
            raise self._refused(f"every recipient was refused: {summary(rejected)}", rejected, conn)
        extra: dict[str, Any] = {}
        if len(data_replies) > 1:
            extra["data_replies"] = tuple(data_replies)
        if config.transcript:
            extra["transcript"] = conn.transcript.lines() if handed is None else handed
        return SendResult(
            message_id=plan.message_id,
            envelope=envelope,
            recipients=tuple(statuses[i] for i in range(len(recipients))),
            reply=data_replies[-1],
            attempts=1,
            elapsed=time.monotonic() - started,
            transport=self._description,
            extra=extra,
        )

    def _send(self, conn: _Connection, lines: list[bytes], *, stale: bool = False) -> None:
        """Write command ``lines`` (checked, without CRLF) in one write; each is owed a reply.

        With PIPELINING a whole group goes in one call; otherwise a single command.
        """
        transcript = conn.transcript
        if transcript.active:
            for line in lines:
                transcript.client(line.decode("utf-8", "replace"))
        queue = conn.queue
        assert queue is not None, "commands are only sent after the set-up"
        try:
            queue.send(b"\r\n".join(lines) + b"\r\n", len(lines))
        except SessionClosed as exc:
            if stale:
                raise _Stale from exc
            raise

    async def _reply(
        self,
        conn: _Connection,
        seconds: float,
        *,
        stale: bool = False,
        closing_raises: bool = True,
    ) -> Reply:
        """The next reply, recorded; 421 (closing) is raised as a disconnect.

        ``closing_raises=False`` (the replies to DATA and to the data) returns a 421 like any
        refusal, so that it becomes a DataRefused as it always has; the connection is closed
        all the same.
        """
        queue = conn.queue
        assert queue is not None, "replies are only read after the set-up"
        try:
            code, text = await queue.read(seconds)
        except SessionClosed as exc:
            if stale:
                raise _Stale from exc
            raise
        conn.transcript.server(code, text)
        reply = Reply.parse(code, text)
        if code == 421:
            # "Service not available, closing transmission channel": the server is going
            # away, and whatever else we wrote is lost with it.
            queue.close()
            if not closing_raises:
                return reply
            # On the first command of a reused connection this is a server that timed us
            # out while idle; nothing of the message was taken.
            if stale:
                raise _Stale
            raise self._error(
                ServerDisconnected,
                f"the server is closing the connection: {reply}",
                stage=conn.stage,
                reply=reply,
                conn=conn,
            )
        return reply

    async def _command(self, conn: _Connection, *args: bytes) -> Reply:
        """Send one command and return its reply; 421 (closing) is raised as a disconnect."""
        self._send(conn, [check_command(b" ".join(args))])
        return await self._reply(conn, self._config.timeouts.command)

    async def _reset(self, conn: _Connection) -> None:
        """RSET after a failed transaction; the connection stays reusable only if it worked."""
        try:
            reply = await self._command(conn, b"RSET")
        except (SMTPException, OSError, SessionError, TransportError):
            conn.clean = False
            return
        conn.clean = reply.code == 250

    async def _data(self, conn: _Connection, data: bytes) -> tuple[Reply, bool]:
        """DATA and the message; returns (reply, whether the message itself was sent)."""
        self._send(conn, [b"DATA"])
        reply = await self._reply(conn, self._config.timeouts.data, closing_raises=False)
        if reply.code != 354:
            return reply, False
        await self._write_payload(conn, data)
        return await self._final_reply(conn), True

    async def _write_payload(self, conn: _Connection, data: bytes) -> None:
        """After a 354: the message and its final dot."""
        queue = conn.queue
        assert queue is not None
        pieces = _wire_message(data)
        if sum(map(len, pieces)) <= _CHUNK:
            # A usual message: one write, so its end of data leaves in the same segment.
            queue.send(b"".join(pieces), 1)
        else:
            # Slices of a memoryview share the message's bytes: no copy is made to cut them,
            # and the transport copies into its buffer only what the socket did not take.
            views = [
                memoryview(piece)[start : start + _CHUNK]
                for piece in pieces
                for start in range(0, len(piece), _CHUNK)
            ]
            # The first write owes the reply and fails if the connection is already gone, as
            # one write of the whole would. A write that kills the connection makes the
            # transport drop the rest (as it would the rest of one big write): stop then.
            # Flow control: each slice waits until the transport's buffer has drained, so the
            # message is never copied whole into it.
            queue.send(views[0], 1)  # type: ignore[arg-type]
            for view in views[1:]:
                await queue.drain(self._config.timeouts.data)
                if queue.closed:
                    break
                queue.send(view, 0)  # type: ignore[arg-type]
        # From here the server may get the whole message: a failure before its reply leaves
        # the outcome unknown unless the bytes provably never left (see _after_payload).
        conn.payload_sent = True
        conn.transcript.client(f"<message: {len(data)} octets>")

    def _hand_on(self, conn: _Connection, slot: Slot) -> tuple[str, ...] | None:
        """After the last end of data of a message: let a waiting caller have ``conn`` now.

        RFC 2920 §3.1 lets the next MAIL follow the end of the data without waiting for its
        reply, so a caller waiting for a connection (the pool is saturated) takes this one at
        once and writes its group right behind our dot: one round trip per message instead
        of two. It must not read before we have: ``conn.turn`` is done once our final reply
        is read. Returns our transcript so far (the connection's own goes on with the next
        message), or None when no one waits (nothing changes then).
        """
        lines = conn.transcript.lines()
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        conn.clean = True
        conn.uses += 1
        conn.turn = turn
        if self._pool.hand_on(conn, slot):
            return lines
        conn.clean = False
        conn.uses -= 1
        conn.turn = None
        return None

    async def _final_reply_handed_on(
        self, conn: _Connection, lines: tuple[str, ...]
    ) -> tuple[Reply, tuple[str, ...]]:
        """Our final reply on a connection handed on (see :meth:`_hand_on`), and our transcript.

        Every failure is classified here, from what was ours (the shared connection state is
        the next holder's by now); any failure, cancellation included, closes the connection,
        since a reply left unread would answer the next holder's MAIL.
        """
        queue, turn = conn.queue, conn.turn
        assert queue is not None
        assert turn is not None
        try:
            code, text = await queue.read(self._config.timeouts.data)
        except SessionError as exc:
            unsent = queue.unsent()
            conn.abort()
            if isinstance(exc, MalformedReply):
                raise self._error(
                    TransportError,
                    f"{self._config.host}:{self._port} sent something that is not an SMTP reply "
                    f"after the end of the message ({exc}): {exc.text!r}",
                    stage="data",
                    lines=lines,
                ) from exc
            raise self._after_payload(exc, unsent=unsent, lines=lines) from exc
        except BaseException:
            conn.abort()
            raise
        finally:
            if not turn.done():
                turn.set_result(None)
        if code == 421:
            queue.close()  # the server is leaving; the next holder finds it closed
        # Recorded apart: the connection's transcript holds the next holder's lines by now.
        parts = text.split("\n")
        last = len(parts) - 1
        mine = [
            f"S: {code}{'-' if i < last else ' '}{part}".rstrip() for i, part in enumerate(parts)
        ]
        if self._config.transcript:
            lines += tuple(mine)
        for line in mine:
            _log.debug(
                "[%s:%s] %s (final reply, connection handed on)",
                self._config.host,
                self._port,
                line,
            )
        return Reply.parse(code, text), lines

    async def _final_reply(self, conn: _Connection) -> Reply:
        """After the end of data: the server's verdict."""
        queue = conn.queue
        assert queue is not None
        try:
            reply = await self._reply(conn, self._config.timeouts.data, closing_raises=False)
        except SessionError:
            conn.unsent = queue.unsent()
            raise
        # Answered: a later failure (in a further transaction of a split message) is about
        # that transaction's commands, not about this message's bytes.
        conn.payload_sent = False
        return reply

    # -- errors ----------------------------------------------------------------------------

    def _error(
        self,
        cls: type[_E],
        message: str,
        *,
        stage: Stage,
        reply: Reply | None = None,
        conn: _Connection | None = None,
        error_text: str = "",
        lines: tuple[str, ...] | None = None,
    ) -> _E:
        """Build an error with its hint and the redacted transcript so far (or ``lines``)."""
        hint = hint_for(
            stage=stage,
            reply=reply,
            error_text=error_text or message,
            host=self._config.host,
            port=self._port,
        )
        if lines is not None:
            transcript = lines
        else:
            transcript = conn.transcript.lines() if conn is not None else ()
        return cls(message, stage=stage, reply=reply, hint=hint, transcript=transcript)

    def _refused(
        self, message: str, rejected: dict[str, Reply], conn: _Connection
    ) -> RecipientsRefused:
        first = next(iter(rejected.values()))
        hint = hint_for(stage="rcpt", reply=first, host=self._config.host, port=self._port)
        return RecipientsRefused(
            message,
            rejected=rejected,
            stage="rcpt",
            hint=hint,
            transcript=conn.transcript.lines(),
        )

    def _raise_reply(
        self, cls: type[ReplyError], message: str, conn: _Connection, reply: Reply
    ) -> NoReturn:
        raise self._error(cls, message, stage=conn.stage, reply=reply, conn=conn)

    def _translate(self, exc: BaseException, conn: _Connection) -> TransportError:
        """The one mapping from aiosmtplib / socket / TLS failures to smtpkit errors."""
        stage = conn.stage
        where = f"{self._config.host}:{self._port}"
        text = str(exc)

        if isinstance(exc, SMTPConnectResponseError):
            reply = Reply.parse(exc.code, exc.message)
            return self._error(
                ConnectError,
                f"{where} refused the session: {reply}",
                stage="greeting",
                reply=reply,
                conn=conn,
            )

        if conn.payload_sent and isinstance(
            exc, (SMTPServerDisconnected, SMTPTimeoutError, SessionClosed, ReplyTimeout)
        ):
            return self._after_payload(exc, unsent=conn.unsent, lines=conn.transcript.lines())

        if isinstance(exc, MalformedReply):
            # Our reply reader's version of aiosmtplib's code -1 (handled the same way below).
            return self._error(
                TransportError,
                f"{where} sent something that is not an SMTP reply during {stage} "
                f"({exc}): {exc.text!r}",
                stage=stage,
                conn=conn,
            )

        # A TLS error while setting up (handshake, certificate, wrong port) is a TLSError;
        # later, TLS is just the way the connection broke.
        tls_failure = _caused_by(exc, ssl.SSLError) if stage in ("connect", "tls") else None
        if tls_failure is not None:
            reason = str(tls_failure)
            if isinstance(tls_failure, ssl.SSLCertVerificationError):
                reason = f"certificate verification failed: {tls_failure.verify_message}"
            return self._error(
                TLSError,
                f"TLS with {where} failed: {reason}",
                stage="tls",
                conn=conn,
                error_text=f"{text} {tls_failure}",
            )

        if isinstance(exc, SMTPTimeoutError | TimeoutError):
            if isinstance(exc, SMTPConnectTimeoutError) or stage == "connect":
                message = (
                    f"timed out connecting to {where} (no greeting within the connect timeout)"
                )
                return self._error(TransportTimeout, message, stage="connect", conn=conn)
            return self._error(
                TransportTimeout,
                f"timed out waiting for {where} to answer ({stage})",
                stage=stage,
                conn=conn,
            )

        if isinstance(exc, SMTPConnectError):
            cause = exc.__cause__
            detail = str(cause) if cause is not None else text
            return self._error(
                ConnectError,
                f"cannot connect to {where}: {detail}",
                stage="connect",
                conn=conn,
                error_text=text,
            )

        if isinstance(exc, SMTPServerDisconnected | ConnectionError):
            return self._error(
                ServerDisconnected,
                f"{where} closed the connection during {stage}; the message was not sent",
                stage=stage,
                conn=conn,
            )

        if isinstance(exc, SMTPResponseException) and exc.code < 200:
            # aiosmtplib's code -1: a line that is not an SMTP reply, or an endless one.
            return self._error(
                TransportError,
                f"{where} sent something that is not an SMTP reply during {stage}: "
                f"{exc.message[:200]!r}",
                stage=stage,
                conn=conn,
            )

        if isinstance(exc, SMTPResponseException):
            reply = Reply.parse(exc.code, exc.message)
            what = "EHLO" if isinstance(exc, SMTPHeloError) else stage
            return self._error(
                ReplyError, f"{where} refused {what}: {reply}", stage=stage, reply=reply, conn=conn
            )

        if isinstance(exc, OSError):
            return self._error(
                ConnectError if stage == "connect" else ServerDisconnected,
                f"network error with {where} during {stage}: {text}",
                stage=stage,
                conn=conn,
            )
        return self._error(
            TransportError,
            f"SMTP error with {where} during {stage}: {text}",
            stage=stage,
            conn=conn,
        )

    def _after_payload(
        self, exc: BaseException, *, unsent: int, lines: tuple[str, ...]
    ) -> TransportError:
        """Classify a failure after the message was written: not received, or unknown.

        ``unsent``: bytes still in our buffer when it failed; ``lines``: the transcript.
        """
        where = f"{self._config.host}:{self._port}"
        # A reset (rather than a clean close) means the server closed with our bytes still
        # unread, so it never read the final dot; bytes still in our own buffer mean the dot
        # never left. Either way the message cannot have been accepted.
        reset = _caused_by(exc, (ConnectionResetError, BrokenPipeError)) is not None
        timed_out = isinstance(exc, SMTPTimeoutError | TimeoutError)
        if reset or unsent > 0:
            if timed_out:
                return self._error(
                    TransportTimeout,
                    f"timed out sending the message to {where}; it was not accepted",
                    stage="data",
                    lines=lines,
                )
            return self._error(
                ServerDisconnected,
                f"{where} closed the connection before reading the whole message; "
                "it was not accepted",
                stage="data",
                lines=lines,
            )
        what = "timed out waiting" if timed_out else "lost the connection"
        return self._error(
            DeliveryUnknown,
            f"{what} for {where}'s reply after the end of the message: the server may have "
            "accepted it. It was not resent; if you retry, keep the same Message-ID so that "
            "a duplicate can be recognised",
            stage="data",
            lines=lines,
        )

    def _describe(self) -> str:
        config = self._config
        scheme = "smtps" if config.tls is TLSMode.IMPLICIT else "smtp"
        user = ""
        if config.credentials is not None:
            user = quote(config.credentials.username, safe="") + "@"
        host = f"[{config.host}]" if ":" in config.host else config.host
        query = ""
        if config.tls in (TLSMode.STARTTLS_OPPORTUNISTIC, TLSMode.NONE):
            query = f"?tls={config.tls.value}"
        return f"{scheme}://{user}{host}:{self._port}{query}"


async def _local_fqdn() -> str:
    """The name for EHLO when none is configured: the machine's FQDN, if it is a usable one."""
    name = await asyncio.to_thread(socket.getfqdn)
    if name and name.isascii() and not any(ch.isspace() or ord(ch) < 33 for ch in name):
        return name
    return "localhost"
