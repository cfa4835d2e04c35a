"""Header checks and header encoding: the only place header bytes are produced.

Two halves:

* **Checks** (public): :func:`check_header_name` and :func:`check_header_value` refuse every
  value that could add a header or a line. They raise :class:`~smtpkit.InvalidHeader`; nothing is
  ever stripped silently.
* **Encoding** (private, used by the MIME writer): RFC 2047 encoded-words, RFC 5322 folding and
  RFC 2231 parameters, written here rather than with ``email.policy`` because the stdlib header
  machinery costs most of the time of building a message. Every function here is proven equal to
  the stdlib *parser* by the tests (``tests/unit/test_message.py``, ``test_injection.py``).

Folding rule used throughout: a header is a list of *pieces*; a fold (CRLF) may be inserted only
before a piece that starts with a space, so unfolding (removing CRLF) restores the exact value and
no line ever consists of whitespace only.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Sequence

from smtpkit._exceptions import InvalidHeader

__all__ = [
    "MAX_HEADER_NAME_LENGTH",
    "check_header_name",
    "check_header_value",
]

#: Longest accepted header field name (keeps the first line of any header foldable).
MAX_HEADER_NAME_LENGTH = 76

# C0 controls (TAB included: a header-bound value never needs one), DEL, C1 controls (NEL is one),
# the Unicode line and paragraph separators, and lone surrogates (not encodable). A single
# character class: linear time, no backtracking.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# RFC 5322 ftext: printable US-ASCII except the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")

_SOFT_LIMIT = 78  # RFC 5322 2.1.1: lines SHOULD be at most 78 characters
_HARD_LIMIT = 998  # RFC 5322 2.1.1: lines MUST be at most 998 octets
# A single unbreakable run longer than this goes into encoded-words (which can be split), so that
# no line can reach the hard limit whatever the header name.
_MAX_WORD = 900
_EW_MAX = 75  # RFC 2047 2: an encoded-word is at most 75 characters


def describe_char(ch: str) -> str:
    """Name a character for an error message without echoing it raw (``U+000A``)."""
    return f"U+{ord(ch):04X}"


def check_header_name(name: str, *, field: str = "headers") -> str:
    """Return *name* if it is a valid RFC 5322 field name, else raise ``InvalidHeader``.

    A field name is 1 to 76 printable US-ASCII characters other than the colon.

    >>> check_header_name("X-Campaign")
    'X-Campaign'
    >>> check_header_name("Bad Name")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    smtpkit._exceptions.InvalidHeader: headers: 'Bad Name' is not a valid header name ...
    """
    if not isinstance(name, str):
        raise InvalidHeader(f"{field}: header name must be a str, not {type(name).__name__}")
    if len(name) > MAX_HEADER_NAME_LENGTH:
        raise InvalidHeader(
            f"{field}: header name is {len(name)} characters, longer than {MAX_HEADER_NAME_LENGTH}"
        )
    if _FIELD_NAME.fullmatch(name) is None:
        shown = name if _FORBIDDEN.search(name) is None else name.encode("unicode_escape").decode()
        raise InvalidHeader(
            f"{field}: {shown!r} is not a valid header name (RFC 5322: printable ASCII, no"
            " spaces, no colon)"
        )
    return name


def check_header_value(value: str, *, field: str, max_length: int = 16 * 1024) -> str:
    """Return *value* if it may go into a header, else raise ``InvalidHeader``.

    Refused: any C0 control character (CR, LF, NUL, TAB, ...), DEL, C1 controls (NEL), the
    Unicode line and paragraph separators, lone surrogates, and values longer than *max_length*
    octets (UTF-8). The value is never altered.

    >>> check_header_value("Your receipt", field="subject")
    'Your receipt'
    >>> check_header_value("Hi\\r\\nBcc: x@evil.example", field="subject")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    smtpkit._exceptions.InvalidHeader: subject: control character U+000D at position 2 ...
    """
    if not isinstance(value, str):
        raise InvalidHeader(f"{field}: expected a str, not {type(value).__name__}")
    # The cheap character count bounds the work before anything looks at the content.
    if len(value) > max_length:
        raise InvalidHeader(f"{field}: {len(value)} characters, longer than the limit {max_length}")
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        ch = bad.group()
        what = "lone surrogate" if "\ud800" <= ch <= "\udfff" else "control character"
        raise InvalidHeader(
            f"{field}: {what} {describe_char(ch)} at position {bad.start()} is not allowed in a"
            " header"
        )
    if not value.isascii():
        size = len(value.encode("utf-8"))
        if size > max_length:
            raise InvalidHeader(f"{field}: {size} octets, longer than the limit {max_length}")
    return value


# --------------------------------------------------------------------------- folding


def _octets(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def fold(prefix: str, pieces: Iterable[str]) -> str:
    """Join ``prefix`` and *pieces* into one header, folded, ending in CRLF.

    A CRLF is inserted only before a piece that starts with a space, and only when the line
    would pass 78 characters; pieces are never split.
    """
    lines: list[str] = []
    cur = prefix
    cur_len = _octets(prefix)
    for piece in pieces:
        n = _octets(piece)
        if cur_len + n > _SOFT_LIMIT and piece[:1] == " " and cur_len > len(prefix):
            lines.append(cur)
            cur = piece
            cur_len = n
        else:
            cur += piece
            cur_len += n
    lines.append(cur)
    return "\r\n".join(lines) + "\r\n"


# --------------------------------------------------------------------------- RFC 2047


def _q_table() -> tuple[str, ...]:
    # RFC 2047 5(3): the most restrictive set, valid in phrases (display names) and in
    # unstructured text alike.
    safe = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/"
    table = []
    for byte in range(256):
        if byte == 0x20:
            table.append("_")
        elif byte in safe:
            table.append(chr(byte))
        else:
            table.append(f"={byte:02X}")
    return tuple(table)


_Q = _q_table()


def _q_char(ch: str) -> str:
    if ch.isascii():
        return _Q[ord(ch)]
    return "".join([_Q[b] for b in ch.encode("utf-8")])


def encoded_words(text: str, first_room: int = _EW_MAX) -> list[str]:
    """Encode *text* as RFC 2047 UTF-8 encoded-words, each whole characters, each <= 75 chars.

    Q or B encoding is chosen per value, whichever is shorter. *first_room* is the space left on
    the first line, so that the first word can share it with the header name.
    """
    data = text.encode("utf-8")
    q_parts = [_q_char(ch) for ch in text]
    q_len = sum(map(len, q_parts))
    b_len = (len(data) + 2) // 3 * 4
    words: list[str] = []
    room = first_room if first_room >= 20 else _EW_MAX
    if q_len <= b_len:
        budget = room - 12  # "=?utf-8?q?" + "?="
        cur: list[str] = []
        size = 0
        for part in q_parts:
            if size + len(part) > budget and cur:
                words.append("=?utf-8?q?" + "".join(cur) + "?=")
                cur, size, budget = [], 0, _EW_MAX - 12
            cur.append(part)
            size += len(part)
        if cur or not words:
            words.append("=?utf-8?q?" + "".join(cur) + "?=")
        return words
    # B: whole characters per word, at most (budget // 4 * 3) octets each.
    max_octets = (room - 12) // 4 * 3
    chunk = bytearray()
    for ch in text:
        enc = ch.encode("utf-8")
        if len(chunk) + len(enc) > max_octets and chunk:
            words.append("=?utf-8?b?" + binascii.b2a_base64(chunk, newline=False).decode() + "?=")
            chunk = bytearray()
            max_octets = (_EW_MAX - 12) // 4 * 3
        chunk += enc
    words.append("=?utf-8?b?" + binascii.b2a_base64(chunk, newline=False).decode() + "?=")
    return words


# --------------------------------------------------------------------------- unstructured

_WORDS = re.compile(r" *[^ ]+")


def _plain_ok(value: str, utf8: bool) -> bool:
    """Whether an unstructured value can be written as it is (no encoded-words needed)."""
    if not value:
        return True
    if not (utf8 or value.isascii()):
        return False
    # The parser drops leading and trailing whitespace and decodes anything that looks like an
    # encoded-word, so such values are encoded to round-trip exactly.
    return value[0] != " " and value[-1] != " " and "=?" not in value


def header_unstructured(name: str, value: str, *, utf8: bool = False) -> str:
    """Render ``Name: value`` for an unstructured field (Subject, custom headers).

    The value must already have passed :func:`check_header_value`.
    """
    prefix = name + ":"
    if not value:
        return prefix + " \r\n"
    if _plain_ok(value, utf8):
        words = _WORDS.findall(value)
        if max(map(_octets, words)) <= _MAX_WORD:
            words[0] = " " + words[0]
            return fold(prefix, words)
    ews = encoded_words(value, _SOFT_LIMIT - len(prefix) - 1)
    return fold(prefix, [" " + w for w in ews])


# --------------------------------------------------------------------------- addresses

# RFC 5322 atext, plus (in SMTPUTF8 messages) any non-ASCII character (RFC 6532 3.2).
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_ATOM_PHRASE_UTF8 = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]+"
    r"(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]+)*"
)


def quote_string(text: str) -> str:
    """Return *text* as an RFC 5322 quoted-string (backslash before ``"`` and ``\\``)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def phrase_pieces(name: str, *, utf8: bool, first_room: int = _SOFT_LIMIT) -> list[str]:
    """Display-name pieces, each starting with a space: atoms, a quoted-string or encoded-words."""
    if "=?" not in name and _octets(name) <= _MAX_WORD:
        atoms = _ATOM_PHRASE_UTF8 if utf8 else _ATOM_PHRASE
        if atoms.fullmatch(name) is not None:
            return [" " + w for w in name.split(" ")]
        if utf8 or name.isascii():
            quoted = quote_string(name)
            # Quoting adds a backslash before each '"' and '\\': measure what will be written.
            if _octets(quoted) <= _MAX_WORD:
                return [" " + quoted]
    return [" " + w for w in encoded_words(name, first_room)]


def header_mailboxes(name: str, mailboxes: Sequence[tuple[str | None, str]], *, utf8: bool) -> str:
    """Render an address-list header from ``(display name or None, addr-spec)`` pairs.

    The addr-specs come from email-validator (dot-atom local part, validated domain), so they
    are written as they are.
    """
    prefix = name + ":"
    pieces: list[str] = []
    last = len(mailboxes) - 1
    for i, (display, addr) in enumerate(mailboxes):
        if display:
            pieces.extend(phrase_pieces(display, utf8=utf8, first_room=_SOFT_LIMIT - len(prefix)))
            pieces.append(" <" + addr + ">")
        else:
            pieces.append(" " + addr)
        if i != last:
            pieces.append(",")
    return fold(prefix, pieces)


# --------------------------------------------------------------------------- MIME parameters

# RFC 2231 attribute-char (RFC 5987 attr-char): everything else is percent-encoded.
_ATTR_CHARS = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`|~"
)
# Characters written inside a plain quoted parameter value without any encoding.
_PLAIN_PARAM = re.compile(r"[A-Za-z0-9 !#$%&'()*+,\-./:;<>@\[\]^_`{|}~]+")
_SEGMENT = 60


def param_pieces(attribute: str, value: str) -> list[str]:
    """Pieces for ``; attribute=value``: a quoted value, or RFC 2231 (with continuations).

    RFC 2231 is used for non-ASCII values, for values with quotes, backslashes, ``=`` or ``?``
    (so that no parser mistakes them for encoded-words), and for long values, which are split
    into ``attribute*0*``, ``attribute*1*``, ... so that no line is over-long.
    """
    if len(value) <= _SEGMENT and value[:1] != " " and _PLAIN_PARAM.fullmatch(value):
        return [";", f' {attribute}="{value}"']
    encoded = []
    for byte in value.encode("utf-8"):
        encoded.append(chr(byte) if byte in _ATTR_CHARS else f"%{byte:02X}")
    if sum(map(len, encoded)) + 9 <= _SEGMENT:
        return [";", f" {attribute}*=utf-8''" + "".join(encoded)]
    pieces: list[str] = []
    segment = "utf-8''"
    index = 0
    for token in encoded:
        if len(segment) + len(token) > _SEGMENT:
            pieces += [";", f" {attribute}*{index}*={segment}"]
            index += 1
            segment = ""
        segment += token
    pieces += [";", f" {attribute}*{index}*={segment}"]
    return pieces


def header_params(name: str, value: str, params: Sequence[tuple[str, str]]) -> str:
    """Render ``Name: value; a="b"; ...`` (Content-Type, Content-Disposition)."""
    pieces = [" " + value]
    for attribute, pvalue in params:
        pieces.extend(param_pieces(attribute, pvalue))
    return fold(name + ":", pieces)
