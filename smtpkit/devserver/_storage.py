"""A directory of ``.eml`` files seen as a mailbox: list, read, delete, and wait for changes.

The development server writes every message it receives into a directory (``DevServer(maildir=)``);
:class:`MailDirectory` is what the web inbox reads that directory through. Each message is one
``NAME.eml`` file (the bytes exactly as received) and optionally a ``NAME.json`` file next to it
with what the file cannot say: the SMTP envelope, the client, whether TLS was used.

A message's id is its file name without ``.eml``. Ids come back from URLs, so every id is
checked against a strict pattern (letters, digits, ``.``, ``_``, ``-``; no ``..``) before it
touches the file system, and files whose names do not fit are not listed.

>>> store = MailDirectory(tmp_path)                                   # doctest: +SKIP
>>> DevServer(maildir=tmp_path, on_message=store.record)              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smtpkit._parsed import parse_message

if TYPE_CHECKING:
    from smtpkit.devserver._store import CapturedMessage

__all__ = [
    "InvalidMessageId",
    "MailDirectory",
    "MessageNotFound",
    "StoredMessage",
    "check_id",
]

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
# Only the header block is parsed for the list; a cap keeps a hostile giant header cheap.
_HEADER_LIMIT = 256 * 1024


class InvalidMessageId(ValueError):
    """A message id that is not a plain file-name stem (e.g. ``../x`` or empty)."""


class MessageNotFound(KeyError):
    """No stored message has this id (never was, or was deleted)."""


def check_id(message_id: str) -> str:
    """Return ``message_id`` if it is a safe id, else raise :class:`InvalidMessageId`.

    Safe: 1 to 200 characters from ``A-Z a-z 0-9 . _ -``, starting with a letter or digit,
    and no ``..``; so it can never name a parent directory, a hidden file or another path.
    """
    if not _ID.fullmatch(message_id) or ".." in message_id:
        raise InvalidMessageId(f"invalid message id {message_id[:80]!r}")
    return message_id


@dataclass(frozen=True)
class StoredMessage:
    """The summary of one stored message, as the inbox list shows it.

    Attributes:
        id: the file name without ``.eml``.
        sender: the ``From`` header, decoded (``""`` when missing).
        to: the ``To`` and ``Cc`` addresses, decoded, or the envelope recipients when the
            headers name none.
        subject: the decoded ``Subject`` (``""`` when missing).
        date: the ``Date`` header as written by the sender (``""`` when missing).
        received_at: when the server stored it (from the envelope file, else the file time).
        size: the size of the ``.eml`` file in bytes.
        mail_from: the SMTP ``MAIL FROM`` address, when known.
        rcpt_tos: the SMTP ``RCPT TO`` addresses, when known (includes Bcc recipients).
        tls: whether the message came over TLS, when known.
        auth_login: the authenticated user, when known.
        peer: the client's ``host:port``, when known.
    """

    id: str
    sender: str
    to: tuple[str, ...]
    subject: str
    date: str
    received_at: datetime
    size: int
    mail_from: str | None = None
    rcpt_tos: tuple[str, ...] = ()
    tls: bool | None = None
    auth_login: str | None = None
    peer: str | None = None
    _order: tuple[float, str] = field(default=(0.0, ""), repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict (the inbox API's list item)."""
        return {
            "id": self.id,
            "from": self.sender,
            "to": list(self.to),
            "subject": self.subject,
            "date": self.date,
            "received_at": self.received_at.isoformat(),
            "size": self.size,
            "envelope": {
                "mail_from": self.mail_from,
                "rcpt_tos": list(self.rcpt_tos),
                "tls": self.tls,
                "auth_login": self.auth_login,
                "peer": self.peer,
            },
        }


def _header(parsed: EmailMessage, name: str) -> str:
    # policy.default decodes RFC 2047; a malformed header must not break the whole list.
    try:
        value = parsed.get(name)
    except Exception:  # any parsing defect: show the header as missing
        return ""
    return "" if value is None else str(value)


def _addresses(parsed: EmailMessage, *names: str) -> tuple[str, ...]:
    found: list[str] = []
    for name in names:
        try:
            values = parsed.get_all(name) or []
        except Exception:  # a malformed header counts as absent
            values = []
        for value in values:
            for display, address in email.utils.getaddresses([str(value)]):
                if address or display:
                    found.append(email.utils.formataddr((display, address)) if display else address)
    return tuple(found)


class MailDirectory:
    """The ``.eml`` files of one directory as a mailbox the inbox can list, read and delete.

    Thread-safe. Summaries are cached per file (name, size and modification time), so listing
    a large directory again only parses the new files.

    Args:
        path: the directory; created if missing.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._path.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Condition()
        self._cache: dict[str, tuple[tuple[int, int, int], StoredMessage]] = {}
        self._version = 0
        self._signature: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        """The directory holding the ``.eml`` files."""
        return self._path

    def __repr__(self) -> str:
        return f"<MailDirectory {str(self._path)!r}>"

    # -- writing -----------------------------------------------------------------------------
    def record(self, message: CapturedMessage) -> None:
        """Keep what the ``.eml`` file of a captured message cannot hold; wake the watchers.

        Pass it as ``DevServer(maildir=store.path, on_message=store.record)``; the server has
        already written the ``.eml`` file (``message.path``) when it calls this.
        """
        if message.path is not None:
            eml = Path(message.path)
            if eml.parent.resolve() == self._path.resolve():
                envelope = {
                    "mail_from": message.mail_from,
                    "rcpt_tos": list(message.rcpt_tos),
                    "received_at": message.received_at.isoformat(),
                    "tls": message.tls,
                    "auth_login": message.auth_login,
                    "peer": message.peer,
                }
                self._write(eml.with_suffix(".json"), json.dumps(envelope).encode())
        self.changed()

    def add(
        self,
        data: bytes,
        *,
        mail_from: str | None = None,
        rcpt_tos: Iterable[str] = (),
        received_at: datetime | None = None,
    ) -> str:
        """Store message bytes (and an envelope) as a new ``.eml`` file; return its id."""
        when = received_at or datetime.now(UTC)
        message_id = f"{when:%Y%m%dT%H%M%S}-{secrets.token_hex(6).upper()}"
        envelope = {
            "mail_from": mail_from,
            "rcpt_tos": list(rcpt_tos),
            "received_at": when.isoformat(),
        }
        self._write(self._path / f"{message_id}.json", json.dumps(envelope).encode())
        self._write(self._path / f"{message_id}.eml", data)
        self.changed()
        return message_id

    @staticmethod
    def _write(final: Path, data: bytes) -> None:
        # Write then rename, so a reader never sees half a file.
        temporary = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")
        temporary.write_bytes(data)
        temporary.replace(final)

    def delete(self, message_id: str) -> None:
        """Delete one message; raise :class:`MessageNotFound` if there is none with this id."""
        eml = self._eml(message_id)
        try:
            eml.unlink()
        except FileNotFoundError:
            raise MessageNotFound(message_id) from None
        with contextlib.suppress(FileNotFoundError):
            eml.with_suffix(".json").unlink()
        self.changed()

    def clear(self) -> int:
        """Delete every message; return how many there were."""
        count = 0
        for eml in self._files():
            with contextlib.suppress(FileNotFoundError):
                eml.unlink()
                count += 1
            with contextlib.suppress(FileNotFoundError):
                eml.with_suffix(".json").unlink()
        self.changed()
        return count

    # -- reading -----------------------------------------------------------------------------
    def _eml(self, message_id: str) -> Path:
        path = self._path / f"{check_id(message_id)}.eml"
        # A symbolic link could point anywhere: such files are neither listed nor read.
        if path.is_symlink():
            raise MessageNotFound(message_id)
        return path

    def _files(self) -> list[Path]:
        try:
            entries = list(os.scandir(self._path))
        except FileNotFoundError:
            return []
        return [
            Path(entry.path)
            for entry in entries
            if entry.name.endswith(".eml")
            and _ID.fullmatch(entry.name[:-4])
            and ".." not in entry.name
            and entry.is_file(follow_symlinks=False)
        ]

    def list(self) -> list[StoredMessage]:
        """Every stored message, newest first."""
        found: list[StoredMessage] = []
        seen: set[str] = set()
        for eml in self._files():
            with contextlib.suppress(FileNotFoundError):  # deleted while listing
                found.append(self._summary(eml))
                seen.add(eml.stem)
        with self._lock:
            for stale in set(self._cache) - seen:
                del self._cache[stale]
        found.sort(key=lambda m: m._order, reverse=True)
        return found

    def get(self, message_id: str) -> StoredMessage:
        """The summary of one message (:class:`MessageNotFound` if absent)."""
        try:
            return self._summary(self._eml(message_id))
        except FileNotFoundError:
            raise MessageNotFound(message_id) from None

    def raw(self, message_id: str) -> bytes:
        """The message bytes exactly as received (:class:`MessageNotFound` if absent)."""
        try:
            return self._eml(message_id).read_bytes()
        except FileNotFoundError:
            raise MessageNotFound(message_id) from None

    def parsed(self, message_id: str) -> EmailMessage:
        """The message parsed with ``email.policy.default``."""
        return parse_message(self.raw(message_id))

    def _summary(self, eml: Path) -> StoredMessage:
        stat = eml.stat()
        try:
            envelope_time = eml.with_suffix(".json").stat().st_mtime_ns
        except FileNotFoundError:
            envelope_time = 0
        # The envelope file is written just after the .eml file: it is part of the cache key.
        key = (stat.st_size, stat.st_mtime_ns, envelope_time)
        with self._lock:
            cached = self._cache.get(eml.stem)
        if cached is not None and cached[0] == key:
            return cached[1]
        with eml.open("rb") as handle:
            head = handle.read(_HEADER_LIMIT)
        end = head.find(b"\r\n\r\n")
        end = head.find(b"\n\n") if end < 0 else end
        parsed = parse_message(head[: end + 2] if end >= 0 else head)
        envelope = self._envelope(eml)
        received = _parse_time(envelope.get("received_at")) or datetime.fromtimestamp(
            stat.st_mtime, UTC
        )
        rcpt_tos = tuple(str(r) for r in envelope.get("rcpt_tos") or ())
        summary = StoredMessage(
            id=eml.stem,
            sender=_header(parsed, "From"),
            to=_addresses(parsed, "To", "Cc") or rcpt_tos,
            subject=_header(parsed, "Subject"),
            date=_header(parsed, "Date"),
            received_at=received,
            size=stat.st_size,
            mail_from=_optional_str(envelope.get("mail_from")),
            rcpt_tos=rcpt_tos,
            tls=envelope["tls"] if isinstance(envelope.get("tls"), bool) else None,
            auth_login=_optional_str(envelope.get("auth_login")),
            peer=_optional_str(envelope.get("peer")),
            _order=(received.timestamp(), eml.stem),
        )
        with self._lock:
            self._cache[eml.stem] = (key, summary)
        return summary

    @staticmethod
    def _envelope(eml: Path) -> dict[str, Any]:
        try:
            loaded = json.loads(eml.with_suffix(".json").read_bytes())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    # -- change notification -----------------------------------------------------------------
    @property
    def version(self) -> int:
        """A number that grows whenever the stored messages change."""
        self._poll()
        with self._lock:
            return self._version

    def changed(self) -> None:
        """Tell the watchers that messages were added or deleted."""
        with self._lock:
            self._version += 1
            self._lock.notify_all()

    def _poll(self) -> None:
        # Files may also be added or removed by another program; noticing that needs a look
        # at the directory, which the watchers do about once a second.
        signature = tuple(sorted(p.name for p in self._files()))
        with self._lock:
            if signature != self._signature:
                if self._signature or signature:
                    self._version += 1
                self._signature = signature
                self._lock.notify_all()

    def wait_changed(self, version: int, timeout: float) -> int:
        """Block until :attr:`version` differs from ``version`` or ``timeout`` passes.

        Returns the current version (equal to ``version`` on timeout).
        """
        deadline = time.monotonic() + timeout
        while True:
            self._poll()
            with self._lock:
                if self._version != version:
                    return self._version
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return self._version
                self._lock.wait(min(remaining, 1.0))


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
