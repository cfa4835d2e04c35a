"""Fault rules for the development server: what to do wrong, and when.

A fault is a small frozen value given to :class:`~smtpkit.devserver.DevServer` (``faults=`` or
:meth:`~smtpkit.devserver.DevServer.set_faults`). Command names are upper-case SMTP verbs plus
three pseudo-commands:

``CONNECT``
    the moment a client connects, before the greeting (alias ``GREETING``).
``DATA``
    the ``DATA`` command itself, before the ``354`` reply. ``Drop("DATA")`` is special: the
    server sends ``354``, reads the first line of the message and then drops the connection
    (the "dropped in the middle of DATA" case; the message is not captured).
``DATA_END``
    the end-of-data dot, before the final reply (alias ``MESSAGE``). ``Drop("DATA_END")``, or
    equivalently ``Drop("DATA", after_dot=True)``, captures the message flagged
    ``acknowledged=False`` and drops the connection without replying.

Rules with ``times=n`` apply to the first *n* matching occurrences only (counted across all
connections, reset by ``set_faults``): ``Respond("RCPT", 450, "4.7.1 Greylisted", times=1)`` is
greylisting. ``match`` narrows a rule to commands whose argument contains the text
(case-insensitive) or matches the compiled pattern (``re.Pattern.search``); for ``RCPT`` the
argument is ``TO:<address> ...``, for ``AUTH`` only the mechanism name, for ``DATA_END`` the
message text.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "COMMANDS",
    "EXTENSIONS",
    "BadCertificate",
    "Drop",
    "Fault",
    "FaultSet",
    "Greeting",
    "Hang",
    "Hide",
    "Respond",
]

#: Every command name a fault can target (after aliases are resolved).
COMMANDS = frozenset(
    {
        "CONNECT",
        "EHLO",
        "HELO",
        "STARTTLS",
        "AUTH",
        "MAIL",
        "RCPT",
        "DATA",
        "DATA_END",
        "RSET",
        "NOOP",
        "QUIT",
        "VRFY",
        "HELP",
    }
)
_ALIASES = {"MESSAGE": "DATA_END", "GREETING": "CONNECT"}

#: EHLO extensions that :class:`Hide` can remove.
EXTENSIONS = frozenset({"STARTTLS", "AUTH", "SIZE", "SMTPUTF8", "8BITMIME", "PIPELINING"})

Match = str | re.Pattern[str] | None


def _command(name: str) -> str:
    upper = name.strip().upper()
    upper = _ALIASES.get(upper, upper)
    if upper not in COMMANDS:
        known = ", ".join(sorted(COMMANDS | _ALIASES.keys()))
        raise ValueError(f"unknown SMTP command {name!r} for a fault; known: {known}")
    return upper


def _check_times(times: int | None) -> None:
    if times is not None and (isinstance(times, bool) or times < 1):
        raise ValueError(f"times must be None (always) or a positive count, not {times!r}")


def _check_reply(code: int, text: str) -> None:
    if isinstance(code, bool) or not 200 <= code <= 599:
        raise ValueError(f"reply code must be between 200 and 599, not {code!r}")
    if "\r" in text or "\0" in text:
        # "\n" is allowed (it makes a multi-line reply); a CR would let a test forge extra lines.
        raise ValueError("reply text must not contain CR or NUL; use '\\n' for multi-line replies")


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer ``command`` with ``code`` and ``text`` instead of handling it.

    ``text`` may hold ``"\\n"`` for a multi-line reply and usually starts with the enhanced
    status code (``"5.1.1 No such user"``). A ``421`` reply also closes the connection, as a
    real server does. At ``CONNECT`` a 2xx reply replaces the greeting; any other code is sent
    as the greeting and then ``421`` closes the connection while other codes (such as ``554``)
    make every later command but ``QUIT`` fail with ``503``.

    >>> Respond("RCPT", 550, "5.1.1 No such user", match="bob@example.com").command
    'RCPT'
    """

    command: str
    code: int
    text: str = ""
    times: int | None = None
    match: Match = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "command", _command(self.command))
        _check_reply(self.code, self.text)
        _check_times(self.times)

    def render(self) -> str:
        """The reply as sent on the wire, without the final CRLF."""
        lines = self.text.split("\n") if self.text else [""]
        out = [f"{self.code}-{line}" for line in lines[:-1]]
        out.append(f"{self.code} {lines[-1]}".rstrip())
        return "\r\n".join(out)


@dataclass(frozen=True, slots=True)
class Drop:
    """Close the connection abruptly (no reply) when ``command`` arrives.

    ``Drop("DATA")`` drops in the middle of the message data (after ``354`` and the first line
    of content; nothing is captured). ``Drop("DATA", after_dot=True)`` (stored as
    ``Drop("DATA_END")``) reads the whole message, captures it with ``acknowledged=False`` and
    drops before the final reply: the client cannot know whether the message was queued.

    >>> Drop("DATA", after_dot=True)
    Drop(command='DATA_END', after_dot=True, times=None, match=None)
    """

    command: str
    after_dot: bool = False
    times: int | None = None
    match: Match = None

    def __post_init__(self) -> None:
        command = _command(self.command)
        if self.after_dot and command not in {"DATA", "DATA_END"}:
            raise ValueError("after_dot=True only applies to DATA (or DATA_END)")
        if self.after_dot or command == "DATA_END":
            command = "DATA_END"
            object.__setattr__(self, "after_dot", True)
        object.__setattr__(self, "command", command)
        _check_times(self.times)


@dataclass(frozen=True, slots=True)
class Hang:
    """Wait ``seconds`` (``None``: until the client goes away) before handling ``command``.

    After the wait the command is handled normally. A hang ends early when the client closes
    the connection or the server stops, so a hanging server never delays test teardown.

    >>> Hang("DATA_END", 2.5).seconds
    2.5
    """

    command: str
    seconds: float | None = None
    times: int | None = None
    match: Match = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "command", _command(self.command))
        if self.seconds is not None and self.seconds < 0:
            raise ValueError("seconds must be >= 0 or None")
        _check_times(self.times)


@dataclass(frozen=True, slots=True)
class Hide:
    """Leave ``extension`` out of the EHLO reply, and refuse it if the client uses it anyway.

    Hidden ``STARTTLS`` and ``AUTH`` commands get ``502 5.5.1``; a ``MAIL FROM`` parameter for a
    hidden ``SIZE``, ``SMTPUTF8`` or ``8BITMIME`` gets ``555 5.5.4``. ``PIPELINING`` is only
    left out of the EHLO reply.

    >>> Hide("starttls").extension
    'STARTTLS'
    """

    extension: str

    def __post_init__(self) -> None:
        upper = self.extension.strip().upper()
        if upper not in EXTENSIONS:
            raise ValueError(
                f"cannot hide {self.extension!r}; choose from {', '.join(sorted(EXTENSIONS))}"
            )
        object.__setattr__(self, "extension", upper)


@dataclass(frozen=True, slots=True)
class Greeting:
    """The greeting to send at connect: shorthand for ``Respond("CONNECT", code, text)``.

    >>> Greeting(421, "4.3.2 Service not available, closing channel").code
    421
    """

    code: int
    text: str = ""
    times: int | None = None

    def __post_init__(self) -> None:
        _check_reply(self.code, self.text)
        _check_times(self.times)

    def as_reply(self) -> Respond:
        """The equivalent :class:`Respond` rule."""
        return Respond("CONNECT", self.code, self.text, times=self.times)


@dataclass(frozen=True, slots=True)
class BadCertificate:
    """Present a certificate the client must refuse (STARTTLS and implicit TLS).

    ``"wrong_host"``: signed by the server's CA (so trusted) but issued for ``wrong.example``.
    ``"untrusted"``: valid for the right names but signed by a CA nobody trusts.

    >>> BadCertificate().kind
    'wrong_host'
    """

    kind: Literal["wrong_host", "untrusted"] = "wrong_host"

    def __post_init__(self) -> None:
        if self.kind not in ("wrong_host", "untrusted"):
            raise ValueError("BadCertificate kind must be 'wrong_host' or 'untrusted'")


#: Any fault rule.
Fault = Respond | Drop | Hang | Hide | Greeting | BadCertificate
#: The rules that act on one command.
CommandFault = Respond | Drop | Hang


def _matches(rule: Match, subject: str) -> bool:
    if rule is None:
        return True
    if isinstance(rule, re.Pattern):
        return rule.search(subject) is not None
    return rule.casefold() in subject.casefold()


class FaultSet:
    """The faults a server applies, with their remaining ``times`` counts (thread-safe).

    The server's event-loop thread calls :meth:`take`; tests call :meth:`replace` from their
    own thread between or during tests.
    """

    def __init__(self, faults: Iterable[Fault] = ()) -> None:
        self._lock = threading.Lock()
        self._faults: tuple[Fault, ...] = ()
        self._used: list[int] = []
        self.replace(faults)

    @property
    def faults(self) -> tuple[Fault, ...]:
        """The configured rules, in order."""
        with self._lock:
            return self._faults

    def replace(self, faults: Iterable[Fault]) -> None:
        """Install ``faults`` instead of the current rules and reset every ``times`` count."""
        new = tuple(faults)
        for fault in new:
            if not isinstance(fault, Respond | Drop | Hang | Hide | Greeting | BadCertificate):
                raise TypeError(f"not a fault rule: {fault!r}")
        with self._lock:
            self._faults = new
            self._used = [0] * len(new)

    def take(self, command: str, subject: str = "") -> CommandFault | None:
        """Return the first rule for ``command`` that applies now, and count its use.

        :class:`Greeting` rules are returned as the equivalent :class:`Respond` at ``CONNECT``.
        """
        with self._lock:
            for index, fault in enumerate(self._faults):
                rule: CommandFault
                if isinstance(fault, Greeting):
                    rule = fault.as_reply()
                elif isinstance(fault, Respond | Drop | Hang):
                    rule = fault
                else:
                    continue
                if rule.command != command or not _matches(rule.match, subject):
                    continue
                if rule.times is not None and self._used[index] >= rule.times:
                    continue
                self._used[index] += 1
                return rule
        return None

    def hidden(self) -> frozenset[str]:
        """The extensions currently hidden by :class:`Hide` rules."""
        with self._lock:
            return frozenset(f.extension for f in self._faults if isinstance(f, Hide))

    def certificate(self) -> Literal["wrong_host", "untrusted"] | None:
        """The bad-certificate kind to present, or ``None`` for the valid certificate."""
        with self._lock:
            for fault in self._faults:
                if isinstance(fault, BadCertificate):
                    return fault.kind
        return None
