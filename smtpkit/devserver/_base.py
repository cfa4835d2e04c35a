"""The life cycle both test servers share: certificates, a loop thread and one listening socket.

:class:`DevServer` and :class:`ScriptedServer` differ in what they serve, not in how they
start and stop; :class:`LoopServer` does the starting and stopping, and each subclass says
how to listen (:meth:`LoopServer._listen`) and how to drop its connections
(:meth:`LoopServer._shutdown`).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import TracebackType
from typing import ClassVar, Self

from smtpkit.devserver._certs import CertificateBundle, make_certificates
from smtpkit.devserver._loop import LoopThread

__all__ = ["LoopServer"]

# How long stop() waits for the connections to be dropped and the socket closed.
_SHUTDOWN_TIMEOUT = 10.0


class LoopServer(ABC):
    """A server on its own event-loop thread, with a fresh CA and certificate per start.

    Args:
        host, port: where to listen (``port=0`` picks a free port).
        cert_hostnames: names and IP addresses in the server certificate.
    """

    #: Prefix of the loop thread's name (the object id is appended).
    _thread_name: ClassVar[str]

    def __init__(self, *, host: str, port: int, cert_hostnames: Sequence[str]) -> None:
        self._host = host
        self._requested_port = port
        self._cert_hostnames = tuple(cert_hostnames)
        self._thread: LoopThread | None = None
        self._server: asyncio.Server | None = None
        self._certs: CertificateBundle | None = None
        self._port: int | None = None

    def _state(self) -> str:
        # For __repr__: the bound port, or that the server is stopped.
        return f"port={self._port}" if self._port is not None else "stopped"

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> Self:
        """Make the certificates, bind the socket and start serving; return ``self``."""
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        certs = self._make_certificates()
        thread = LoopThread(f"{self._thread_name}-{id(self):x}")
        thread.start()
        try:
            server = thread.run(self._listen(certs))
        except BaseException:
            thread.stop()
            certs.remove()
            raise
        self._thread, self._server, self._certs = thread, server, certs
        self._port = int(server.sockets[0].getsockname()[1])
        return self

    def _make_certificates(self) -> CertificateBundle:
        return make_certificates(self._cert_hostnames)

    @abstractmethod
    async def _listen(self, certs: CertificateBundle) -> asyncio.Server:
        """Bind the listening socket (runs on the server loop)."""

    def stop(self) -> None:
        """Close every connection, stop the thread and delete the certificates (idempotent)."""
        thread, server, certs = self._thread, self._server, self._certs
        if thread is None:
            return
        try:
            if server is not None:
                thread.run(self._shutdown(server), timeout=_SHUTDOWN_TIMEOUT)
        finally:
            thread.stop()
            if certs is not None:
                certs.remove()
            self._thread = self._server = self._certs = None
            self._port = None
            self._stopped()

    @abstractmethod
    async def _shutdown(self, server: asyncio.Server) -> None:
        """Stop accepting and drop every connection (runs on the server loop)."""

    def _stopped(self) -> None:
        # Reset what a subclass keeps per run, once the thread is gone.
        return

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where it is -----------------------------------------------------------------------
    @property
    def host(self) -> str:
        """The address the server listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port actually bound (meaningful with ``port=0``)."""
        if self._port is None:
            raise RuntimeError("the server is not running: call start() first")
        return self._port

    @property
    def ca_file(self) -> str:
        """Path of the PEM CA certificate that signed the server certificate (while running)."""
        return self._running_certs().ca_file

    def _running_certs(self) -> CertificateBundle:
        if self._certs is None:
            raise RuntimeError("the server is not running: call start() first")
        return self._certs
