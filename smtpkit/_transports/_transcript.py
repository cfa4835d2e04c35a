"""A redacted record of one SMTP conversation, for errors, results and DEBUG logging.

Lines look like ``C: EHLO app.example`` and ``S: 250-SIZE 35882577``. Credentials never enter
a transcript: the AUTH driver records ``C: AUTH PLAIN ***`` and ``C: ***`` for its responses
itself, because only the driver knows which client lines are secret (a LOGIN continuation is a
bare base64 line with no verb to recognise it by).
"""

from __future__ import annotations

import logging

__all__ = ["REDACTED", "Transcript"]

#: What a secret is replaced with, in transcripts and logs.
REDACTED = "***"

# Enough for a complete conversation of one message with a few hundred recipients; a
# pathological one keeps its start (greeting, EHLO, AUTH) and its most recent lines.
_MAX_MESSAGE_LINES = 400


class Transcript:
    """The lines of one connection: its set-up (greeting to AUTH), then the current message.

    Recording costs nothing when neither the transcript nor DEBUG logging is wanted, which is
    the common case on a hot path.
    """

    __slots__ = ("_keep", "_logger", "_message", "_setup", "_tag")

    def __init__(self, *, keep: bool, logger: logging.Logger, tag: str) -> None:
        self._keep = keep
        self._logger = logger
        self._tag = tag
        self._setup: list[str] = []
        self._message: list[str] = []

    @property
    def active(self) -> bool:
        """Whether lines are kept or logged (callers may skip formatting when false)."""
        return self._keep or self._logger.isEnabledFor(logging.DEBUG)

    def client(self, line: str) -> None:
        """Record a command line exactly as the caller gives it (already redacted if needed)."""
        self._add("C: " + line)

    def server(self, code: int, message: str) -> None:
        """Record a reply, one ``S:`` line per reply line, with ``-`` continuation marks."""
        if not self.active:
            return
        lines = message.split("\n") if message else [""]
        last = len(lines) - 1
        for index, text in enumerate(lines):
            sep = "-" if index < last else " "
            self._add(f"S: {code}{sep}{text}".rstrip())

    def note(self, text: str) -> None:
        """Record an event that is not a protocol line (``*`` prefix), e.g. a TLS handshake."""
        self._add("* " + text)

    def setup_done(self) -> None:
        """The connection is ready for mail: later lines belong to the messages sent on it."""
        self._setup.extend(self._message)
        self._message.clear()

    def begin_message(self) -> None:
        """Start the lines of the next message on this connection (the previous ones go)."""
        self._message.clear()

    def lines(self) -> tuple[str, ...]:
        """The set-up lines and the current message's lines (empty unless kept)."""
        return (*self._setup, *self._message)

    def _add(self, line: str) -> None:
        if self._keep:
            if len(self._message) >= _MAX_MESSAGE_LINES:
                del self._message[: _MAX_MESSAGE_LINES // 2]
                self._message.insert(0, "* (earlier lines omitted)")
            self._message.append(line)
        if self._logger.isEnabledFor(logging.DEBUG):
            self._logger.debug("%s %s", self._tag, line)
