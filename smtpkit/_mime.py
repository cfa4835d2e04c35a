"""The MIME writer: a tree of parts in, CRLF bytes out.

A lean writer of our own, because building an ``email.message.EmailMessage`` and running its
generator costs several times more than everything else in sending a message. It writes only
what smtpkit needs (leaf parts and multiparts, 7bit / 8bit / quoted-printable / base64), and the
tests parse every shape it writes back with ``email.parser`` to prove it equal.

Invariants (checked by the tests): every line ends in CRLF, there is no bare CR or LF, no line
is longer than 998 octets, and 8-bit octets appear only when the caller allowed them.
"""

from __future__ import annotations

import binascii
import io
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Leaf", "Multipart", "Part", "encode_text", "render"]

_MAX_LINE = 998
_B64_LINE = 76  # RFC 2045 6.8: encoded lines of at most 76 characters
_B64_BLOCK = 57 * 1024  # input octets per block: 1024 lines, so big inputs never double in memory
_ASCII = bytes(range(128))


def _max_line(text: str) -> int:
    if len(text) <= _MAX_LINE:
        return len(text)
    return max(map(len, text.split("\n")))


def _normalise_newlines(text: str) -> str:
    """Every CRLF, CR and LF becomes LF, and the text ends with one (as the stdlib does)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    return text


def encode_text(text: str, *, allow_8bit: bool) -> tuple[str, bytes]:
    """Encode a text body: ``(Content-Transfer-Encoding, CRLF bytes ending in CRLF)``.

    7bit when the text is ASCII with short lines; 8bit (only if *allow_8bit*) for UTF-8 text with
    short lines; otherwise quoted-printable for mostly-ASCII text and base64 for the rest. The
    caller has already refused NUL and lone surrogates.
    """
    text = _normalise_newlines(text)
    if text.isascii():
        if _max_line(text) <= _MAX_LINE:
            return "7bit", text.replace("\n", "\r\n").encode("ascii")
        return "quoted-printable", _qp(text.encode("ascii"))
    data = text.encode("utf-8")
    if allow_8bit and max(map(len, data.split(b"\n"))) <= _MAX_LINE:
        return "8bit", data.replace(b"\n", b"\r\n")
    eight_bit = len(data.translate(None, _ASCII))
    # QP costs three characters per 8-bit octet, base64 four per three octets.
    if eight_bit * 6 <= len(data):
        return "quoted-printable", _qp(data)
    return "base64", base64_lines(data.replace(b"\n", b"\r\n"))


def _qp(data: bytes) -> bytes:
    # The input has LF line ends only, so binascii writes LF for both hard and soft breaks
    # (its CRLF detection looks at the first line end) and every LF can become CRLF.
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(b"\n", b"\r\n")


def base64_lines(data: bytes | memoryview) -> bytes:
    """Base64 in CRLF-terminated lines of 76 characters (small inputs; see :func:`_write_b64`)."""
    enc = binascii.b2a_base64(data, newline=False)
    if not enc:
        return b""
    return b"\r\n".join([enc[i : i + _B64_LINE] for i in range(0, len(enc), _B64_LINE)]) + b"\r\n"


def base64_size(n: int) -> int:
    """The exact size of :func:`base64_lines` output for *n* input octets."""
    chars = (n + 2) // 3 * 4
    return chars + (chars + _B64_LINE - 1) // _B64_LINE * 2


def _write_b64(out: io.BytesIO, data: bytes | memoryview) -> None:
    # Block by block, straight into the output: the only full-size copies of a big attachment
    # are the caller's bytes and the output itself.
    view = memoryview(data)
    for start in range(0, len(view), _B64_BLOCK):
        out.write(base64_lines(view[start : start + _B64_BLOCK]))


@dataclass(slots=True)
class Leaf:
    """A single (non-multipart) part: its header lines and its body.

    ``headers`` is the rendered header block (``str``, CRLF line ends, no blank line). The body
    is either already encoded (``body``) or raw octets to base64 (``b64``), which are encoded
    only while writing.
    """

    headers: str
    body: bytes = b""
    b64: bytes | memoryview | None = None


@dataclass(slots=True)
class Multipart:
    """A ``multipart/<subtype>`` part with its children."""

    subtype: str
    parts: Sequence[Part]
    #: Extra Content-Type parameters, already rendered (``'; type="text/html"'``).
    params: str = ""


Part = Leaf | Multipart


def _content_type_multipart(subtype: str, boundary: str, params: str) -> str:
    return f'Content-Type: multipart/{subtype}{params};\r\n boundary="{boundary}"\r\n'


def render(head: str, root: Part, *, boundary_seed: str, utf8: bool) -> bytes:
    """Write the message: top-level header lines *head* (CRLF, no blank line) and the part tree.

    *boundary_seed* makes the boundaries unique: ``=_<seed>_<n>``. ``=_`` can occur neither in
    base64 nor in quoted-printable output, and the seed is random, so no body can contain a
    boundary line. With *utf8* false the headers must be ASCII.
    """
    out = io.BytesIO()
    encoding = "utf-8" if utf8 else "ascii"
    counter = [0]

    def write(part: Part, prefix: str) -> None:
        if isinstance(part, Leaf):
            out.write((prefix + part.headers + "\r\n").encode(encoding))
            if part.b64 is not None:
                _write_b64(out, part.b64)
            else:
                out.write(part.body)
            return
        boundary = f"=_{boundary_seed}_{counter[0]}"
        counter[0] += 1
        head = prefix + _content_type_multipart(part.subtype, boundary, part.params)
        out.write((head + "\r\n").encode(encoding))
        delimiter = f"--{boundary}\r\n".encode("ascii")
        for child in part.parts:
            out.write(delimiter)
            write(child, "")
            out.write(b"\r\n")
        out.write(f"--{boundary}--\r\n".encode("ascii"))

    write(root, head)
    # getvalue() hands over the internal buffer without copying it.
    return out.getvalue()
