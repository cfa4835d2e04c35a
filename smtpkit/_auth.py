"""SASL mechanisms for SMTP AUTH, as pure state machines.

A :class:`Mechanism` never touches the network: the transport's AUTH driver asks it for an
initial response, base64-encodes what it returns, and feeds it every decoded ``334`` challenge
through :meth:`Mechanism.respond`. That keeps each mechanism testable with known vectors and
keeps credentials in one place that never prints them.

Supported: ``PLAIN`` (RFC 4616), ``LOGIN`` (draft-murchison-sasl-login), ``CRAM-MD5``
(RFC 2195), ``XOAUTH2`` (Google and Microsoft) and ``OAUTHBEARER`` (RFC 7628).

>>> mech = create_mechanism("plain", username="tim", password="tanstaaftanstaaf")
>>> mech.initial_response()
b'\\x00tim\\x00tanstaaftanstaaf'
>>> mech
<PlainMechanism username='tim'>
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import ClassVar

from smtpkit._exceptions import AuthenticationError

__all__ = [
    "SUPPORTED_MECHANISMS",
    "TOKEN_MECHANISMS",
    "CramMD5Mechanism",
    "LoginMechanism",
    "Mechanism",
    "OAuthBearerMechanism",
    "PlainMechanism",
    "XOAuth2Mechanism",
    "choose_mechanisms",
    "create_mechanism",
    "redact_auth_line",
]

#: Every mechanism name smtpkit implements, upper case.
SUPPORTED_MECHANISMS: tuple[str, ...] = ("XOAUTH2", "OAUTHBEARER", "CRAM-MD5", "PLAIN", "LOGIN")
#: The mechanisms that authenticate with an OAuth2 access token instead of a password.
TOKEN_MECHANISMS: frozenset[str] = frozenset({"XOAUTH2", "OAUTHBEARER"})

# Server error JSON is only kept for the error message: cap it so a hostile server cannot make
# us hold (and later print) an unbounded blob.
_MAX_SERVER_ERROR = 2048


def _encode(value: str, *, mechanism: str, what: str) -> bytes:
    """UTF-8 encode a credential; the error names the field, never the value."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise AuthenticationError(
            f"{mechanism}: the {what} cannot be encoded as UTF-8", stage="auth"
        ) from None


def _forbid(value: str, char: str, *, mechanism: str, what: str, label: str) -> None:
    """Raise before any I/O when a credential contains a separator its wire format forbids."""
    if char in value:
        raise AuthenticationError(
            f"{mechanism}: the {what} contains a {label} character, which the "
            f"{mechanism} format cannot carry",
            stage="auth",
        )


class Mechanism(ABC):
    """One SASL mechanism exchange, without I/O.

    The driver calls :meth:`initial_response` once; if it returns bytes they are sent (base64)
    with the ``AUTH`` command, otherwise ``AUTH <name>`` is sent alone. Each ``334`` challenge
    is base64-decoded and passed to :meth:`respond`, whose return value is base64-encoded and
    sent back. A mechanism object serves one exchange; create a new one to authenticate again.

    ``repr()`` shows the mechanism and user name only, never a password or token.
    """

    __slots__ = ("_sent", "_steps", "username")

    #: The SASL mechanism name, upper case, as in the server's ``AUTH`` offer.
    name: ClassVar[str]
    #: Whether the mechanism needs an OAuth2 access token (otherwise a password).
    needs_token: ClassVar[bool] = False

    def __init__(self, username: str) -> None:
        #: The authentication identity (not a secret; shown in ``repr``).
        self.username = username
        # True once the credentials have been handed out (as initial response or response).
        self._sent = False
        # How many challenges have been answered.
        self._steps = 0

    @abstractmethod
    def initial_response(self) -> bytes | None:
        """The raw initial response to send with ``AUTH``, or ``None`` for none."""

    @abstractmethod
    def respond(self, challenge: bytes) -> bytes:
        """Answer one decoded ``334`` challenge.

        Raises:
            AuthenticationError: the server's challenge does not fit the mechanism (for
                example, a challenge after the exchange is complete).
        """

    def _unexpected(self, detail: str = "an unexpected challenge") -> AuthenticationError:
        """The error for a challenge the mechanism cannot answer (no secret in it)."""
        return AuthenticationError(f"{self.name}: the server sent {detail}", stage="auth")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} username={self.username!r}>"


class PlainMechanism(Mechanism):
    """``PLAIN`` (RFC 4616): ``authzid NUL authcid NUL passwd`` with an empty authzid.

    The response goes as the initial response; a driver that does not send one gets it as the
    answer to the server's (empty) first challenge instead.
    """

    __slots__ = ("_password",)
    name: ClassVar[str] = "PLAIN"

    def __init__(self, username: str, password: str) -> None:
        _forbid(username, "\0", mechanism="PLAIN", what="username", label="NUL")
        _forbid(password, "\0", mechanism="PLAIN", what="password", label="NUL")
        super().__init__(username)
        self._password = password

    def _message(self) -> bytes:
        user = _encode(self.username, mechanism=self.name, what="username")
        password = _encode(self._password, mechanism=self.name, what="password")
        return b"\0" + user + b"\0" + password

    def initial_response(self) -> bytes | None:
        """The whole PLAIN message (RFC 4616 allows it as an initial response)."""
        self._sent = True
        return self._message()

    def respond(self, challenge: bytes) -> bytes:
        """Send the PLAIN message if it has not gone yet; any later challenge is an error."""
        if self._sent:
            raise self._unexpected("a challenge after the PLAIN credentials")
        self._sent = True
        return self._message()


class LoginMechanism(Mechanism):
    """``LOGIN``: the user name, then the password, each in answer to a ``334`` challenge.

    Servers word the challenges differently ("Username:", "User Name", localized, or empty),
    so the answer is chosen by step, not by the challenge text.
    """

    __slots__ = ("_password",)
    name: ClassVar[str] = "LOGIN"

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username)
        self._password = password

    def initial_response(self) -> bytes | None:
        """None: the user name is sent in answer to the first challenge (widest support)."""
        return None

    def respond(self, challenge: bytes) -> bytes:
        """First challenge: the user name; second: the password; a third is an error."""
        self._steps += 1
        if self._steps == 1:
            return _encode(self.username, mechanism=self.name, what="username")
        if self._steps == 2:
            self._sent = True
            return _encode(self._password, mechanism=self.name, what="password")
        raise self._unexpected("a third LOGIN challenge")


class CramMD5Mechanism(Mechanism):
    """``CRAM-MD5`` (RFC 2195): ``user SP hex(HMAC-MD5(password, challenge))``.

    The password itself never goes on the wire. There is no initial response.
    """

    __slots__ = ("_password",)
    name: ClassVar[str] = "CRAM-MD5"

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username)
        self._password = password

    def initial_response(self) -> bytes | None:
        """None: CRAM-MD5 starts with the server's challenge."""
        return None

    def respond(self, challenge: bytes) -> bytes:
        """Answer the one challenge; an empty or second challenge is an error."""
        if self._sent:
            raise self._unexpected("a second CRAM-MD5 challenge")
        if not challenge:
            raise self._unexpected("an empty CRAM-MD5 challenge")
        key = _encode(self._password, mechanism=self.name, what="password")
        # MD5 is what RFC 2195 specifies; it is an HMAC over a server nonce, not a stored hash.
        digest = hmac.new(key, challenge, hashlib.md5).hexdigest()
        self._sent = True
        user = _encode(self.username, mechanism=self.name, what="username")
        return user + b" " + digest.encode("ascii")


class _TokenMechanism(Mechanism):
    """Shared logic of the OAuth2 mechanisms: credentials once, then at most an error challenge.

    When the server refuses the token it sends a ``334`` whose decoded text is a JSON error
    (e.g. ``{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}``). The
    mechanism answers with the dummy response the format requires and keeps the decoded error
    in :attr:`server_error` so the driver can report it (and decide to fetch a fresh token);
    the server then ends the exchange with a failure reply.
    """

    __slots__ = ("_token", "server_error")
    needs_token: ClassVar[bool] = True
    #: What to send in answer to the error challenge.
    _error_ack: ClassVar[bytes]

    def __init__(self, username: str, token: str) -> None:
        _forbid(username, "\x01", mechanism=self.name, what="username", label="\\x01")
        _forbid(token, "\x01", mechanism=self.name, what="token", label="\\x01")
        if not token:
            raise AuthenticationError(f"{self.name}: the access token is empty", stage="auth")
        super().__init__(username)
        self._token = token
        #: The server's decoded error challenge (a JSON object), or ``None`` if none came.
        self.server_error: dict[str, object] | None = None

    @abstractmethod
    def _message(self) -> bytes:
        """The complete client response carrying the token."""

    def initial_response(self) -> bytes | None:
        """The complete token message, sent with the ``AUTH`` command."""
        self._sent = True
        return self._message()

    def respond(self, challenge: bytes) -> bytes:
        """Send the token if not yet sent; else record the error challenge and acknowledge it."""
        if not self._sent:
            # A driver that sent "AUTH <name>" alone gets an empty 334 first.
            self._sent = True
            return self._message()
        if self.server_error is not None:
            raise self._unexpected(f"a second {self.name} challenge after the error response")
        self.server_error = _decode_server_error(challenge)
        return self._error_ack


def _decode_server_error(challenge: bytes) -> dict[str, object]:
    """Decode an OAuth2 error challenge: a JSON object, or ``{"raw": text}`` when it is not one."""
    text = challenge[:_MAX_SERVER_ERROR].decode("utf-8", "replace")
    try:
        value = json.loads(text)
    except ValueError:
        return {"raw": text}
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    return {"raw": text}


class XOAuth2Mechanism(_TokenMechanism):
    """``XOAUTH2`` (Google, Microsoft): ``user=U ^A auth=Bearer T ^A ^A``.

    On a token error the server sends a JSON challenge; the client answers with an empty
    response and the server then replies with a failure code.
    """

    __slots__ = ()
    name: ClassVar[str] = "XOAUTH2"
    _error_ack: ClassVar[bytes] = b""

    def _message(self) -> bytes:
        user = _encode(self.username, mechanism=self.name, what="username")
        token = _encode(self._token, mechanism=self.name, what="token")
        return b"user=" + user + b"\x01auth=Bearer " + token + b"\x01\x01"


def _saslname(value: str) -> str:
    """Escape an authzid for the GS2 header (RFC 5801): ``=`` as ``=3D`` and ``,`` as ``=2C``."""
    return value.replace("=", "=3D").replace(",", "=2C")


class OAuthBearerMechanism(_TokenMechanism):
    """``OAUTHBEARER`` (RFC 7628): ``n,a=U, ^A [host=H ^A port=P ^A] auth=Bearer T ^A ^A``.

    On a token error the server sends a JSON challenge; RFC 7628 §3.2.3 has the client answer
    with a single ``0x01`` and the server then replies with a failure code.
    """

    __slots__ = ("host", "port")
    name: ClassVar[str] = "OAUTHBEARER"
    _error_ack: ClassVar[bytes] = b"\x01"

    def __init__(
        self, username: str, token: str, *, host: str | None = None, port: int | None = None
    ) -> None:
        if host is not None:
            _forbid(host, "\x01", mechanism=self.name, what="host", label="\\x01")
        super().__init__(username, token)
        #: The server host name sent in the ``host=`` field, or ``None`` to leave it out.
        self.host = host
        #: The server port sent in the ``port=`` field, or ``None`` to leave it out.
        self.port = port

    def _message(self) -> bytes:
        user = _encode(_saslname(self.username), mechanism=self.name, what="username")
        token = _encode(self._token, mechanism=self.name, what="token")
        fields = b""
        if self.host is not None:
            fields += b"host=" + _encode(self.host, mechanism=self.name, what="host") + b"\x01"
        if self.port is not None:
            fields += b"port=" + str(self.port).encode("ascii") + b"\x01"
        return b"n,a=" + user + b",\x01" + fields + b"auth=Bearer " + token + b"\x01\x01"


def create_mechanism(
    name: str,
    *,
    username: str,
    password: str | None = None,
    token: str | None = None,
    host: str | None = None,
    port: int | None = None,
) -> Mechanism:
    """Create a fresh mechanism state machine by (case-insensitive) name.

    Args:
        name: ``PLAIN``, ``LOGIN``, ``CRAM-MD5``, ``XOAUTH2`` or ``OAUTHBEARER``.
        username: the authentication identity.
        password: needed by ``PLAIN``, ``LOGIN`` and ``CRAM-MD5``.
        token: an OAuth2 access token, needed by ``XOAUTH2`` and ``OAUTHBEARER``.
        host, port: optional ``OAUTHBEARER`` fields (ignored by the other mechanisms).

    Raises:
        AuthenticationError: unknown mechanism, missing credential, or a credential that the
            mechanism's format cannot carry (raised before any I/O; never shows the secret).
    """
    key = name.strip().upper()
    if key in TOKEN_MECHANISMS:
        if token is None:
            raise AuthenticationError(f"{key} needs an OAuth2 access token", stage="auth")
        if key == "XOAUTH2":
            return XOAuth2Mechanism(username, token)
        return OAuthBearerMechanism(username, token, host=host, port=port)
    if key not in SUPPORTED_MECHANISMS:
        supported = ", ".join(SUPPORTED_MECHANISMS)
        raise AuthenticationError(
            f"unsupported AUTH mechanism {key[:40]!r} (supported: {supported})", stage="auth"
        )
    if password is None:
        raise AuthenticationError(f"{key} needs a password", stage="auth")
    if key == "PLAIN":
        return PlainMechanism(username, password)
    if key == "LOGIN":
        return LoginMechanism(username, password)
    return CramMD5Mechanism(username, password)


def choose_mechanisms(
    preference: Sequence[str],
    offered: Iterable[str],
    *,
    has_password: bool,
    has_token: bool,
) -> list[str]:
    """The mechanisms to try, in preference order.

    A name is kept when smtpkit implements it, the server offers it, and the credentials can
    serve it (OAuth2 mechanisms need a token, the others a password). Names compare
    case-insensitively and come back upper case, without duplicates. An empty list means the
    caller should raise :class:`~smtpkit.NoCommonAuthMechanism`.

    >>> choose_mechanisms(["XOAUTH2", "PLAIN", "LOGIN"], ["login", "plain"],
    ...                   has_password=True, has_token=False)
    ['PLAIN', 'LOGIN']
    """
    offer = {name.strip().upper() for name in offered}
    chosen: list[str] = []
    for raw in preference:
        name = raw.strip().upper()
        if name in chosen or name not in SUPPORTED_MECHANISMS or name not in offer:
            continue
        usable = has_token if name in TOKEN_MECHANISMS else has_password
        if usable:
            chosen.append(name)
    return chosen


# Names a transcript may show after "AUTH". Only registered names are kept: anything else in
# that position could be a misplaced credential, since any short base64 word looks like a name.
_KNOWN_MECHANISMS = frozenset(
    {
        *SUPPORTED_MECHANISMS,
        "ANONYMOUS",
        "DIGEST-MD5",
        "EXTERNAL",
        "GSSAPI",
        "NTLM",
        "SCRAM-SHA-1",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-256-PLUS",
    }
)
_AUTH_COMMAND = re.compile(r"AUTH(?:[ \t]+(\S+))?([ \t]+.*)?", re.IGNORECASE | re.DOTALL)


def redact_auth_line(line: str) -> str:
    """Redact a client line of an AUTH exchange for transcripts and logs.

    An ``AUTH`` command keeps its verb and a registered mechanism name and loses any initial
    response (``"AUTH PLAIN AGFsaWNl..."`` becomes ``"AUTH PLAIN ***"``; an unknown word after
    ``AUTH`` is hidden too, as ``"AUTH ***"``); any other line is taken to be
    a continuation response and becomes ``"***"``, except the cancel line ``"*"``. A trailing
    line ending is kept.

    >>> redact_auth_line("AUTH PLAIN AHRpbQB0YW5zdGFhZg==")
    'AUTH PLAIN ***'
    >>> redact_auth_line("dGlt")
    '***'
    """
    body = line.rstrip("\r\n")
    ending = line[len(body) :]
    stripped = body.strip()
    if stripped == "*":
        return "*" + ending
    match = _AUTH_COMMAND.fullmatch(stripped)
    if match is None or match.group(1) is None:
        return "***" + ending
    mechanism = match.group(1).upper()
    if mechanism not in _KNOWN_MECHANISMS:
        return "AUTH ***" + ending
    redacted = "AUTH " + mechanism
    if match.group(2) is not None and match.group(2).strip():
        redacted += " ***"
    return redacted + ending
