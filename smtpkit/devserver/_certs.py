"""Certificates made at server start with trustme: a private CA and the server's leaf certs.

Clients trust the CA through ``ca_file``; nothing here touches the system trust store.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["CertificateBundle", "make_certificates"]

_WRONG_HOST = "wrong.example"


def _server_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@dataclass
class CertificateBundle:
    """A CA (written as PEM to a private temporary directory) and three server contexts.

    ``context`` is the one the server listens with; its SNI callback (called even when the
    client sends no server name) switches each handshake to the certificate chosen by
    ``choose()``, so a ``BadCertificate`` fault can be turned on and off while running.
    """

    ca_pem: bytes
    ca_file: str
    directory: str
    context: ssl.SSLContext
    wrong_host: ssl.SSLContext
    untrusted: ssl.SSLContext

    def select(self, kind: Literal["wrong_host", "untrusted"] | None) -> ssl.SSLContext | None:
        """The context to switch a handshake to, or ``None`` to keep the valid one."""
        if kind == "wrong_host":
            return self.wrong_host
        if kind == "untrusted":
            return self.untrusted
        return None

    def remove(self) -> None:
        """Delete the temporary directory holding the CA file."""
        shutil.rmtree(self.directory, ignore_errors=True)


def make_certificates(
    hostnames: Sequence[str],
    choose: Callable[[], Literal["wrong_host", "untrusted"] | None] | None = None,
) -> CertificateBundle:
    """Create a CA, a certificate for ``hostnames``, and the two bad certificates."""
    try:
        import trustme
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "the smtpkit development server needs trustme: pip install 'smtpkit[devserver]'"
        ) from exc
    if not hostnames:
        raise ValueError("cert_hostnames must name at least one host")

    ca = trustme.CA(organization_name="smtpkit devserver")
    good = ca.issue_cert(*hostnames)
    wrong = ca.issue_cert(_WRONG_HOST)
    stranger = trustme.CA(organization_name="untrusted").issue_cert(*hostnames)

    context = _server_context()
    good.configure_cert(context)
    wrong_context = _server_context()
    wrong.configure_cert(wrong_context)
    untrusted_context = _server_context()
    stranger.configure_cert(untrusted_context)

    directory = tempfile.mkdtemp(prefix="smtpkit-devserver-")
    ca_pem: bytes = ca.cert_pem.bytes()
    ca_file = Path(directory) / "ca.pem"
    ca_file.write_bytes(ca_pem)
    bundle = CertificateBundle(
        ca_pem, str(ca_file), directory, context, wrong_context, untrusted_context
    )
    if choose is not None:

        def sni_callback(
            sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, current: ssl.SSLContext
        ) -> None:
            replacement = bundle.select(choose())
            if replacement is not None:
                sock.context = replacement

        context.sni_callback = sni_callback
    return bundle
