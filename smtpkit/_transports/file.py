"""FileTransport: writes each message to a directory as an ``.eml`` file, for development.

Every message becomes ``<time>-<random>.eml`` (the bytes exactly as they would go to a server)
plus ``<time>-<random>.envelope.json`` next to it holding the envelope, which the ``.eml``
cannot carry (Bcc recipients and the return path live only in the envelope). Both are written
atomically (temporary file, fsync, rename), the JSON first, so a reader that lists ``*.eml``
never sees a half-written message or one without its envelope.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from smtpkit._replies import RecipientStatus, Reply, SendResult
from smtpkit._transports.base import message_id_of

if TYPE_CHECKING:
    from smtpkit._envelope import Envelope

__all__ = ["FileTransport"]

_ACCEPTED = Reply(250, "2.1.5", "OK")


class FileTransport:
    """Save messages as ``.eml`` files (with an envelope sidecar) instead of sending them.

    Args:
        directory: where to write; created (with parents) if missing.

    >>> transport = FileTransport("outbox/")  # doctest: +SKIP
    >>> result = await transport.send_raw(envelope, data)  # doctest: +SKIP
    >>> result.extra["path"]  # doctest: +SKIP
    'outbox/20260101T120000.000000Z-1f2e3d4c.eml'
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._directory = Path(directory)

    @property
    def directory(self) -> Path:
        """The directory messages are written to."""
        return self._directory

    @property
    def description(self) -> str:
        """``file://`` and the directory."""
        return f"file://{self._directory.resolve()}"

    async def send_raw(self, envelope: Envelope, data: bytes, /) -> SendResult:
        """Write the message and its envelope; every recipient is recorded as accepted."""
        message_id = message_id_of(data)
        path = await asyncio.to_thread(self._write, envelope, bytes(data), message_id)
        return SendResult(
            message_id=message_id,
            envelope=envelope,
            recipients=tuple(RecipientStatus(str(r), _ACCEPTED) for r in envelope.recipients),
            reply=Reply(250, "2.0.0", f"saved as {path.name}"),
            transport=self.description,
            extra={"path": str(path)},
        )

    async def aclose(self) -> None:
        """Nothing to release (files are closed as they are written)."""

    def _write(self, envelope: Envelope, data: bytes, message_id: str | None) -> Path:
        self._directory.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        # Sortable by time; the random part keeps concurrent writers apart.
        stem = f"{now:%Y%m%dT%H%M%S.%f}Z-{secrets.token_hex(4)}"
        sidecar = {
            "sender": None if envelope.sender is None else str(envelope.sender),
            "recipients": [str(r) for r in envelope.recipients],
            "message_id": message_id,
            "created": now.isoformat(),
            "size": len(data),
        }
        text = json.dumps(sidecar, ensure_ascii=False, indent=2) + "\n"
        _write_atomic(self._directory / f"{stem}.envelope.json", text.encode("utf-8"))
        target = self._directory / f"{stem}.eml"
        _write_atomic(target, data)
        return target


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same directory, fsync, then rename into place."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
