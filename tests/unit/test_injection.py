"""Nothing can inject: any input is a typed error, or bytes with exactly the expected headers.

For arbitrary text in every header-bound field (subject, display names, addresses, custom
header names and values, filenames, Message-ID, unsubscribe URIs, content IDs) and in bodies:

* either construction raises ``InvalidHeader`` / ``InvalidAddress`` / ``MessageError``,
* or the bytes have every line ending in CRLF, no bare CR or LF, no line over 998 octets,
  7-bit only (unless the message needs SMTPUTF8), exactly the expected header fields at every
  level, and the stdlib parser reads back the value that went in.
"""

from __future__ import annotations

import email
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import compat32
from email.policy import default as default_policy

from hypothesis import example, given
from hypothesis import strategies as st

# The wire-format check (CRLF only, no line over 998 octets, 7-bit unless allowed) is the one
# the example-based message tests use; this directory is on sys.path under pytest.
from test_message import assert_wire

from smtpkit._exceptions import InvalidAddress, InvalidHeader, MessageError
from smtpkit._message import Attachment, InlineImage, Message

BASE_HEADERS = [
    "Date",
    "From",
    "To",
    "Subject",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
]

# Pieces that have broken mail libraries before, mixed with arbitrary text.
_NASTY = st.sampled_from(
    ["\r", "\n", "\r\n", "\r\n.\r\n", "\n.\n", "\x00", "\t", "\x0b", "\x0c", "\x1c", "\x85",
     "\u2028", "\u2029", "\x7f", "\ud800", " ", "  ", ",", ";", ":", "<", ">", "@", '"', "\\",
     "(", ")", "=?", "?=", "=?utf-8?q?x?=", "=?utf-8?b?eA==?=", "_", "=", "é", "€", "😀", "日本",
     "\u202e", "Bcc: evil@example.org", "--", ".", "/", "../", "%", "'", "*"]
)  # fmt: skip
TEXT = st.one_of(
    st.text(max_size=60),
    st.lists(st.one_of(_NASTY, st.text(max_size=4)), max_size=25).map("".join),
)
LONG_TEXT = st.one_of(TEXT, st.builds(lambda a, n: a * n, TEXT, st.integers(1, 60)))
ERRORS = (InvalidHeader, InvalidAddress, MessageError)


def names_of(block: bytes) -> list[str]:
    return [
        line.split(b":", 1)[0].decode("utf-8")
        for line in block.split(b"\r\n")
        if line and not line.startswith((b" ", b"\t"))
    ]


def top_names(data: bytes) -> list[str]:
    return names_of(data.split(b"\r\n\r\n", 1)[0])


def parse(data: bytes, *, utf8: bool = False) -> EmailMessage:
    if utf8:
        msg = email.message_from_string(data.decode("utf-8"), policy=default_policy)
    else:
        msg = BytesParser(policy=default_policy).parsebytes(data)
    assert isinstance(msg, EmailMessage)
    return msg


def display_name(data: bytes, header: str, *, utf8: bool = False) -> str:
    """The display name of a one-mailbox header.

    Names written as encoded-words are decoded with ``email.header``, which follows RFC 2047:
    CPython's address parser re-tokenises decoded phrase text, keeping the whitespace between
    adjacent encoded-words (RFC 2047 6.2 says to ignore it) and collapsing runs of whitespace
    inside them, so it cannot read back every name exactly (its own generator's output either).
    """
    raw = email.message_from_string(data.decode("utf-8"), policy=compat32)[header]
    assert isinstance(raw, str)
    if "=?utf-8?" in raw:
        return str(make_header(decode_header(raw.rsplit(" <", 1)[0])))
    (address,) = parse(data, utf8=utf8)[header].addresses
    return str(address.display_name)


def build(**kwargs: object) -> Message | None:
    kwargs.setdefault("sender", "shop@example.com")
    kwargs.setdefault("to", ["ann@example.com"])
    kwargs.setdefault("text", "body")
    try:
        return Message(**kwargs)  # type: ignore[arg-type]
    except ERRORS:
        return None


@given(LONG_TEXT)
@example("=?utf-8?q?=41?=")
@example(" x ")
@example("a\r\n\r\nInjected body")
def test_subject(subject: str) -> None:
    msg = build(subject=subject)
    if msg is None:
        return
    data = msg.to_bytes()
    assert_wire(data)
    assert top_names(data) == BASE_HEADERS
    assert parse(data)["Subject"] == subject


@given(LONG_TEXT, st.sampled_from(["to", "sender"]))
@example('Ann "x" \\', "to")
@example("a  b", "to")
def test_display_name_as_pair(name: str, where: str) -> None:
    msg = build(
        **{where: [(name, "ann@example.com")] if where == "to" else (name, "a@example.com")}
    )
    if msg is None:
        return
    data = msg.to_bytes()
    assert_wire(data)
    assert top_names(data) == BASE_HEADERS
    header = "To" if where == "to" else "From"
    assert display_name(data, header) == (name.strip(" ") if name.strip(" ") else "")


@given(TEXT, TEXT)
def test_mailbox_string(name: str, local: str) -> None:
    """Free text around and inside ``Name <addr>``: one mailbox or an error, never two."""
    msg = build(to=f"{name} <{local}@example.com>")
    if msg is None:
        return
    data = msg.to_bytes()
    assert_wire(data, eight_bit=msg.needs_smtputf8)
    assert top_names(data) == BASE_HEADERS
    (address,) = parse(data, utf8=msg.needs_smtputf8)["To"].addresses
    assert address.addr_spec == msg.to[0].address.for_smtp(smtputf8=msg.needs_smtputf8)
    assert len(msg.recipients) == 1


@given(TEXT)
@example("a@example.com> NOTIFY=SUCCESS")
@example("a@example.com\r\nRCPT TO:<x@example.org>")
@example("jöhn@example.com")
def test_address(text: str) -> None:
    msg = build(to=[text, "bob@example.com"])
    if msg is None:
        return
    data = msg.to_bytes()
    assert_wire(data, eight_bit=msg.needs_smtputf8)
    assert top_names(data) == BASE_HEADERS
    got = [a.addr_spec for a in parse(data, utf8=msg.needs_smtputf8)["To"].addresses]
    assert got == [m.address.for_smtp(smtputf8=msg.needs_smtputf8) for m in msg.to]


@given(TEXT, LONG_TEXT)
@example("X-Test", "v\r\nBcc: evil@example.org")
@example("Bcc", "evil@example.org")
def test_custom_header(name: str, value: str) -> None:
    msg = build(headers=[(name, value)])
    if msg is None:
        return
    data = msg.to_bytes()
    assert_wire(data)
    expected = [*BASE_HEADERS[:5], name, *BASE_HEADERS[5:]]
    assert top_names(data) == expected
    assert parse(data)[name] == value


@given(TEXT)
@example("../../etc/passwd")
@example('a";\r\n filename="evil.exe')
@example("evil\u202efdp.exe")
def test_filename(filename: str) -> None:
    try:
        att = Attachment(filename, b"data")
    except ERRORS:
        return
    assert "/" not in att.filename
    assert "\\" not in att.filename
    msg = build(attachments=[att])
    assert msg is not None
    data = msg.to_bytes()
    assert_wire(data)
    assert top_names(data) == [*BASE_HEADERS[:6], "Content-Type"]
    parsed = parse(data)
    part = parsed.get_payload()[1]  # type: ignore[index]
    assert isinstance(part, EmailMessage)
    assert part.get_filename() == att.filename
    assert part.get_content() == b"data"
    head = data.split(b"\r\n--", 2)[2].split(b"\r\n\r\n", 1)[0]
    assert names_of(head.split(b"\r\n", 1)[1]) == [
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
    ]


@given(st.text(max_size=300), st.text(max_size=300))
@example("a\r\n.\r\nMAIL FROM:<x@example.org>\r\n", "<p>\n.\n</p>")
@example("x" * 2000, "é" * 1000)
def test_bodies(text: str, html: str) -> None:
    msg = build(text=text, html=html)
    if msg is None:
        assert any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in text + html)
        return
    data = msg.to_bytes()
    assert_wire(data)
    assert top_names(data) == [*BASE_HEADERS[:6], "Content-Type"]
    plain, rich = (p for p in parse(data).walk() if not p.is_multipart())
    norm = [
        s.replace("\r\n", "\n").replace("\r", "\n") + ("" if s.endswith(("\n", "\r")) else "\n")
        for s in (text, html)
    ]
    got = [str(p.get_content()).replace("\r\n", "\n") for p in (plain, rich)]
    assert got == norm


@given(TEXT, TEXT)
@example("Grüße  aus  Köln", "Zoë")
def test_smtputf8_message(subject: str, name: str) -> None:
    """With 8-bit headers allowed, the same guarantees hold."""
    msg = build(sender=(name, "jöhn@example.com"), subject=subject)
    if msg is None:
        return
    assert msg.needs_smtputf8
    data = msg.to_bytes()
    assert_wire(data, eight_bit=True)
    assert top_names(data) == BASE_HEADERS
    parsed = parse(data, utf8=True)
    assert parsed["Subject"] == subject
    assert display_name(data, "From", utf8=True) == name.strip(" ")


@given(TEXT, TEXT, TEXT)
def test_other_header_bound_fields(message_id: str, uri: str, cid: str) -> None:
    msg = build(message_id=message_id)
    if msg is not None:
        data = msg.to_bytes()
        assert_wire(data)
        assert top_names(data) == BASE_HEADERS
        assert parse(data)["Message-ID"] == msg.message_id
    msg = build(list_unsubscribe=["https://example.com/" + uri])
    if msg is not None:
        data = msg.to_bytes()
        assert_wire(data)
        assert top_names(data) == [*BASE_HEADERS[:5], "List-Unsubscribe", *BASE_HEADERS[5:]]
    try:
        image = InlineImage(cid, b"img", "image/png")
    except ERRORS:
        return
    msg = build(html="<img>", inline=[image])
    assert msg is not None
    data = msg.to_bytes()
    assert_wire(data)
    assert top_names(data) == [*BASE_HEADERS[:6], "Content-Type"]
    images = [p for p in parse(data).walk() if p.get_content_type() == "image/png"]
    assert [p["Content-ID"] for p in images] == [f"<{image.cid}>"]
