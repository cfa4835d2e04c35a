"""What the outbox stores and shows: states, entries, per-recipient state, the record codec.

A stored message is its serialised bytes plus a JSON envelope: never a pickle, so a database
written by one version (or tampered with) can at worst fail a checksum, never run code. The
checksum covers the bytes and the envelope together; a row that does not match it is
quarantined as ``corrupt`` instead of being sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from smtpkit._address import Address
from smtpkit._envelope import Envelope
from smtpkit._replies import Reply

__all__ = [
    "OutboxEntry",
    "OutboxStats",
    "RecipientPhase",
    "RecipientState",
    "Status",
    "WorkerStats",
    "checksum",
    "decode_envelope",
    "encode_envelope",
    "reply_from_json",
    "timestamp",
]

# Bumped if the envelope JSON ever changes shape; old rows keep decoding by their version.
_ENVELOPE_VERSION = 1


class Status(StrEnum):
    """Where a message is in the outbox.

    ``queued`` → ``sending`` → ``sent`` | ``deferred`` | ``failed`` | ``unknown``; ``deferred``
    and ``unknown`` go back to ``sending`` when due. ``corrupt`` rows failed their checksum and
    are never sent.
    """

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    UNKNOWN = "unknown"
    CORRUPT = "corrupt"


RecipientPhase = Literal["pending", "accepted", "refused"]


@dataclass(frozen=True, slots=True)
class RecipientState:
    """One envelope recipient's state.

    Attributes:
        address: the recipient as sent in ``RCPT TO`` (Unicode form).
        state: ``pending`` (not delivered yet, or refused for now), ``accepted`` (the server
            took responsibility) or ``refused`` (for good).
        reply: the last reply concerning this recipient, if any.
    """

    address: str
    state: RecipientPhase
    reply: Reply | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return {
            "address": self.address,
            "state": self.state,
            "reply": self.reply.to_dict() if self.reply is not None else None,
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> RecipientState:
        """The inverse of :meth:`to_dict`."""
        state = value["state"]
        if state not in ("pending", "accepted", "refused"):
            raise ValueError(f"unknown recipient state {state!r}")
        return cls(str(value["address"]), state, reply_from_json(value.get("reply")))


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A message in the outbox, as :meth:`Outbox.get` and :meth:`Outbox.list` show it.

    Attributes:
        id: the outbox's id for the message (what :meth:`Outbox.enqueue` returned).
        message_id: the Message-ID header, kept for every resend.
        status: the current :class:`Status`.
        idempotency_key: the key given to ``enqueue``, if any.
        sender: the envelope sender (``None`` for the null reverse-path).
        recipients: every envelope recipient with its state.
        size: the message size in octets.
        created_at: when it was enqueued.
        due_at: when it is (or was) due to be sent next.
        attempts: how many times a worker took it up.
        flagged: ``True`` once its outcome was unknown at least once: it may have been
            delivered twice (with the same Message-ID).
        last_error: the last failure, in words, or ``None``.
        last_reply: the server's last error reply, if there was one.
        results: each completed SMTP transaction's :meth:`SendResult.to_dict`, oldest first.
        updated_at: when the row last changed.
        finished_at: when it became ``sent`` or ``failed``.
        lease_owner: the worker holding it while ``sending``.
    """

    id: int
    message_id: str | None
    status: Status
    idempotency_key: str | None
    sender: str | None
    recipients: tuple[RecipientState, ...]
    size: int
    created_at: datetime
    due_at: datetime
    attempts: int
    flagged: bool
    last_error: str | None
    last_reply: Reply | None
    results: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    lease_owner: str | None = None

    @property
    def pending(self) -> tuple[str, ...]:
        """Recipients not delivered yet."""
        return tuple(r.address for r in self.recipients if r.state == "pending")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (times as ISO 8601 strings in UTC)."""
        return {
            "id": self.id,
            "message_id": self.message_id,
            "status": self.status.value,
            "idempotency_key": self.idempotency_key,
            "sender": self.sender,
            "recipients": [r.to_dict() for r in self.recipients],
            "size": self.size,
            "created_at": self.created_at.isoformat(),
            "due_at": self.due_at.isoformat(),
            "attempts": self.attempts,
            "flagged": self.flagged,
            "last_error": self.last_error,
            "last_reply": self.last_reply.to_dict() if self.last_reply is not None else None,
            "results": [dict(r) for r in self.results],
            "updated_at": _iso(self.updated_at),
            "finished_at": _iso(self.finished_at),
            "lease_owner": self.lease_owner,
        }


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """How many messages are in each state (what ``smtpkit outbox status`` prints).

    Attributes:
        counts: messages per :class:`Status` (every state present, zero included).
        flagged: messages whose outcome was unknown at least once.
        next_due: when the earliest queued, deferred or unknown message is due, if any.
        oldest_waiting: when the oldest message not yet sent or failed was enqueued.
    """

    counts: Mapping[Status, int]
    flagged: int = 0
    next_due: datetime | None = None
    oldest_waiting: datetime | None = None

    @property
    def total(self) -> int:
        """Every message in the outbox."""
        return sum(self.counts.values())

    @property
    def waiting(self) -> int:
        """Messages still to send: queued, sending, deferred or unknown."""
        return sum(
            self.counts.get(s, 0)
            for s in (Status.QUEUED, Status.SENDING, Status.DEFERRED, Status.UNKNOWN)
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return {
            "counts": {s.value: n for s, n in self.counts.items()},
            "total": self.total,
            "waiting": self.waiting,
            "flagged": self.flagged,
            "next_due": _iso(self.next_due),
            "oldest_waiting": _iso(self.oldest_waiting),
        }


@dataclass(slots=True)
class WorkerStats:
    """What one :meth:`AsyncOutbox.run` did: outcomes recorded, by state."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    unknown: int = 0
    corrupt: int = 0

    def count(self, status: Status) -> None:
        """Add one outcome."""
        name = status.value
        setattr(self, name, getattr(self, name) + 1)

    def to_dict(self) -> dict[str, int]:
        """A JSON-ready mapping."""
        return {
            "sent": self.sent,
            "deferred": self.deferred,
            "failed": self.failed,
            "unknown": self.unknown,
            "corrupt": self.corrupt,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def timestamp(value: float) -> datetime:
    """A stored time (Unix seconds) as an aware UTC datetime."""
    return datetime.fromtimestamp(value, UTC)


def _address_json(address: Address) -> list[str]:
    return [address.local, address.domain, address.ascii_domain]


def _address_from_json(value: object) -> Address:
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value)):
        raise ValueError("an address must be [local, domain, ascii_domain]")
    # Address() re-checks the shape of each field (no controls, no spaces), so even a tampered
    # row that somehow matched its checksum cannot put an injected line into MAIL or RCPT.
    return Address(value[0], value[1], value[2])


def encode_envelope(envelope: Envelope) -> str:
    """The envelope as compact JSON: the validated address fields, not text to re-parse."""
    return json.dumps(
        {
            "v": _ENVELOPE_VERSION,
            "sender": _address_json(envelope.sender) if envelope.sender is not None else None,
            "recipients": [_address_json(a) for a in envelope.recipients],
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def decode_envelope(text: str) -> Envelope:
    """The inverse of :func:`encode_envelope` (raises ``ValueError`` on any malformed input)."""
    value = json.loads(text)
    if not isinstance(value, dict) or value.get("v") != _ENVELOPE_VERSION:
        raise ValueError("unknown envelope format")
    sender = value.get("sender")
    recipients = value.get("recipients")
    if not isinstance(recipients, list):
        raise ValueError("envelope recipients must be a list")
    return Envelope(
        None if sender is None else _address_from_json(sender),
        [_address_from_json(r) for r in recipients],
    )


def checksum(data: bytes, envelope_json: str) -> str:
    """SHA-256 over the bytes and the envelope, length-prefixed so no boundary can shift."""
    digest = hashlib.sha256()
    encoded = envelope_json.encode("utf-8")
    digest.update(len(data).to_bytes(8, "big"))
    digest.update(data)
    digest.update(len(encoded).to_bytes(8, "big"))
    digest.update(encoded)
    return digest.hexdigest()


def reply_from_json(value: object) -> Reply | None:
    """A :class:`~smtpkit.Reply` from :meth:`Reply.to_dict` output (``None`` stays ``None``)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError("a reply must be a mapping")
    enhanced = value.get("enhanced_code")
    return Reply(
        int(value["code"]),
        str(enhanced) if enhanced is not None else None,
        str(value.get("text", "")),
    )


def recipients_json(states: Sequence[RecipientState]) -> str:
    """Per-recipient state as stored."""
    return json.dumps([s.to_dict() for s in states], separators=(",", ":"), ensure_ascii=False)


def recipients_from_json(text: str) -> tuple[RecipientState, ...]:
    """The inverse of :func:`recipients_json`."""
    value = json.loads(text)
    if not isinstance(value, list):
        raise ValueError("recipient states must be a list")
    return tuple(RecipientState.from_dict(v) for v in value)
