"""Message: validation at construction, and bytes proven equal by the stdlib parser."""

from __future__ import annotations

import email
import io
import re
from datetime import UTC, datetime, timedelta, timezone
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import compat32
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from smtpkit._address import Address
from smtpkit._exceptions import (
    ConfigError,
    InvalidAddress,
    InvalidHeader,
    MessageError,
    MessageTooLarge,
)
from smtpkit._headers import check_header_name, check_header_value
from smtpkit._message import Attachment, InlineImage, Message, MessageLimits

SENDER = "Shop <shop@example.com>"
PDF = bytes(range(256)) * 80  # 20 KB of every octet value


# --------------------------------------------------------------------------- helpers


def assert_wire(data: bytes, *, eight_bit: bool = False) -> None:
    """W1/W3/W4: CRLF only, no bare CR or LF, no line over 998 octets, 7-bit unless allowed."""
    assert data.endswith(b"\r\n")
    lines = data.split(b"\r\n")
    assert lines[-1] == b""
    for line in lines[:-1]:
        assert b"\r" not in line
        assert b"\n" not in line
        assert len(line) <= 998
    if not eight_bit:
        assert data.isascii()


def parse(data: bytes) -> EmailMessage:
    msg = BytesParser(policy=default_policy).parsebytes(data)
    assert isinstance(msg, EmailMessage)
    return msg


def parse_utf8(data: bytes) -> EmailMessage:
    """SMTPUTF8 messages have raw UTF-8 headers: parse them as text."""
    msg = email.message_from_string(data.decode("utf-8"), policy=default_policy)
    assert isinstance(msg, EmailMessage)
    return msg


def header_names(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0]
    return [
        line.split(b":", 1)[0].decode()
        for line in head.split(b"\r\n")
        if not line.startswith((b" ", b"\t"))
    ]


def rfc2047_name(data: bytes, header: str = "To") -> str:
    """The display name of a one-mailbox header, decoded by RFC 2047's rules.

    CPython's address parser keeps the whitespace between adjacent encoded-words of a phrase
    (RFC 2047 6.2 says to ignore it), so names long enough for several encoded-words are
    checked with ``email.header``, which follows the RFC. The stdlib's own generator output
    does not round-trip through its parser either for such names.
    """
    raw = email.message_from_bytes(data, policy=compat32)[header]
    assert isinstance(raw, str)
    decoded = str(make_header(decode_header(raw)))
    return decoded.rsplit(" <", 1)[0]


def shape(part: Any) -> Any:
    if part.is_multipart():
        payload = part.get_payload()
        assert isinstance(payload, list)
        return (part.get_content_type(), [shape(p) for p in payload])
    return part.get_content_type()


def content(part: EmailMessage) -> Any:
    value = part.get_content()
    return value.replace("\r\n", "\n") if isinstance(value, str) else value


def leaves(msg: EmailMessage) -> list[EmailMessage]:
    return [p for p in msg.walk() if not p.is_multipart()]


def simple(**kwargs: Any) -> Message:
    kwargs.setdefault("sender", SENDER)
    kwargs.setdefault("to", ["ann@example.com"])
    return Message(**kwargs)


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"text": "hi"}, "text/plain"),
        ({"html": "<p>hi</p>"}, ("multipart/alternative", ["text/plain", "text/html"])),
        ({}, "text/plain"),
        (
            {"text": "hi", "html": "<p>hi</p>"},
            ("multipart/alternative", ["text/plain", "text/html"]),
        ),
        (
            {"text": "hi", "attachments": [Attachment("a.pdf", PDF)]},
            ("multipart/mixed", ["text/plain", "application/pdf"]),
        ),
        ({"attachments": [Attachment("a.pdf", PDF)]}, ("multipart/mixed", ["application/pdf"])),
        (
            {"html": "<img src='cid:logo'>", "inline": [InlineImage("logo", b"PNG", "image/png")]},
            (
                "multipart/related",
                [("multipart/alternative", ["text/plain", "text/html"]), "image/png"],
            ),
        ),
        (
            {
                "text": "hi",
                "html": "<img src='cid:logo'>",
                "inline": [InlineImage("logo", b"PNG", "image/png")],
                "attachments": [Attachment("a.pdf", PDF), Attachment("b.txt", b"B")],
            },
            (
                "multipart/mixed",
                [
                    (
                        "multipart/related",
                        [("multipart/alternative", ["text/plain", "text/html"]), "image/png"],
                    ),
                    "application/pdf",
                    "text/plain",
                ],
            ),
        ),
        (
            {"text": "hi", "html": "<p>hi</p>", "calendar": "BEGIN:VCALENDAR\r\nEND:VCALENDAR"},
            ("multipart/alternative", ["text/plain", "text/html", "text/calendar"]),
        ),
    ],
)
def test_structure_collapses_unneeded_levels(kwargs: dict[str, Any], expected: Any) -> None:
    data = simple(**kwargs).to_bytes()
    assert_wire(data)
    msg = parse(data)
    assert shape(msg) == expected
    assert msg.defects == []
    for part in msg.walk():
        assert part.defects == []


def test_full_message_round_trips() -> None:
    text = "Hello Ann,\n\nYour order shipped.\n"
    html = "<p>Hello Ann,</p><img src='cid:logo@shop'>"
    msg = Message(
        sender=SENDER,
        to=["Ann Lee <ann@example.com>", ("Doe, Jane", "jane@example.org")],
        cc="Carl <carl@example.net>",
        bcc=["secret@example.com"],
        reply_to="support@example.com",
        subject="Your order #1234",
        text=text,
        html=html,
        attachments=[Attachment("invoice.pdf", PDF)],
        inline=[InlineImage("<logo@shop>", b"\x89PNG\r\n\x1a\n", "image/png")],
        headers={"X-Campaign": "spring", "In-Reply-To": "<abc@example.com>"},
    )
    data = msg.to_bytes()
    assert_wire(data)
    parsed = parse(data)
    assert [str(a) for a in parsed["To"].addresses] == [
        "Ann Lee <ann@example.com>",
        '"Doe, Jane" <jane@example.org>',
    ]
    assert parsed["From"].addresses[0].display_name == "Shop"
    assert parsed["Cc"].addresses[0].addr_spec == "carl@example.net"
    assert parsed["Reply-To"].addresses[0].addr_spec == "support@example.com"
    assert parsed["Subject"] == "Your order #1234"
    assert parsed["Message-ID"] == msg.message_id
    assert parsed["X-Campaign"] == "spring"
    assert parsed["In-Reply-To"] == "<abc@example.com>"
    assert parsed["MIME-Version"] == "1.0"
    assert parsed["Date"].datetime == msg.date
    parts = leaves(parsed)
    assert content(parts[0]) == text
    assert content(parts[1]) == html + "\n"
    assert parts[2]["Content-ID"] == "<logo@shop>"
    assert parts[2].get_content() == b"\x89PNG\r\n\x1a\n"
    assert parts[3].get_filename() == "invoice.pdf"
    assert parts[3].get_content_disposition() == "attachment"
    assert parts[3].get_content() == PDF
    related = next(p for p in parsed.walk() if p.get_content_type() == "multipart/related")
    assert related.get_param("type") == "multipart/alternative"
    assert "Bcc" not in header_names(data)
    assert b"secret@example.com" not in data
    assert [str(a) for a in msg.recipients] == [
        "ann@example.com",
        "jane@example.org",
        "carl@example.net",
        "secret@example.com",
    ]


def test_header_order_and_set() -> None:
    msg = simple(text="x", cc=["c@example.com"], reply_to=["r@example.com"], priority="low")
    assert header_names(msg.to_bytes()) == [
        "Date",
        "From",
        "Reply-To",
        "To",
        "Cc",
        "Subject",
        "Message-ID",
        "X-Priority",
        "Importance",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
    ]


def test_bodies_are_crlf_and_end_with_a_newline() -> None:
    msg = simple(text="a\nb\rc\r\nd", html="<p>\r</p>")
    data = msg.to_bytes()
    assert_wire(data)
    plain, html = leaves(parse(data))
    assert content(plain) == "a\nb\nc\nd\n"
    assert content(html) == "<p>\n</p>\n"
    assert b"a\r\nb\r\nc\r\nd\r\n" in data


# --------------------------------------------------------------------------- transfer encodings


def cte_of(msg: Message) -> list[str]:
    return [str(p["Content-Transfer-Encoding"]) for p in leaves(parse(msg.to_bytes()))]


def test_ascii_short_lines_are_7bit() -> None:
    assert cte_of(simple(text="plain ascii\n" * 50)) == ["7bit"]


def test_long_ascii_lines_are_quoted_printable() -> None:
    text = "x" * 5000 + "\n" + "y " * 1000
    msg = simple(text=text)
    assert cte_of(msg) == ["quoted-printable"]
    assert_wire(msg.to_bytes())
    assert content(leaves(parse(msg.to_bytes()))[0]) == text + "\n"


def test_mostly_ascii_utf8_is_quoted_printable_and_cjk_is_base64() -> None:
    latin = "Grüße from Köln: a line that is mostly plain ASCII text.\n" * 20
    cjk = "日本語のテキストです。" * 50
    msg = simple(text=latin, html=cjk)
    assert cte_of(msg) == ["quoted-printable", "base64"]
    data = msg.to_bytes()
    assert_wire(data)
    plain, html = leaves(parse(data))
    assert content(plain) == latin
    assert content(html) == cjk + "\n"


def test_trailing_whitespace_and_dots_survive() -> None:
    text = "line with trailing space   \n.\n..leading dots\nFrom here\n\t tab\n"
    for body in (text, text + "é"):
        msg = simple(text=body)
        assert content(leaves(parse(msg.to_bytes()))[0]) == (
            body if body.endswith("\n") else body + "\n"
        )


def test_eight_bit_only_when_smtputf8_is_needed() -> None:
    ascii_sender = simple(text="Grüße", subject="Grüße")
    assert ascii_sender.to_bytes().isascii()
    assert not ascii_sender.needs_smtputf8
    utf8 = Message(
        sender="Jöhn <jöhn@example.com>",
        to=["Zoë <zoe@bücher.example>"],
        subject="Grüße  aus  Köln",
        text="Grüße\n",
        html="<p>é</p>",
    )
    assert utf8.needs_smtputf8
    data = utf8.to_bytes()
    assert_wire(data, eight_bit=True)
    assert "From: Jöhn <jöhn@example.com>".encode() in data
    assert "To: Zoë <zoe@bücher.example>".encode() in data
    parsed = parse_utf8(data)
    assert parsed["Subject"] == "Grüße  aus  Köln"
    assert parsed["From"].addresses[0].username == "jöhn"
    assert cte_of(utf8) == ["8bit", "8bit"]
    plain, _html = leaves(parse(data))
    assert content(plain) == "Grüße\n"


def test_no_line_over_998_anywhere() -> None:
    msg = simple(
        subject="word " * 3000,
        to=[(f"Name {i} " * 10, f"user{i}@example.com") for i in range(50)],
        text="z" * 10000,
        html="<p>" + "é" * 3000 + "</p>",
        headers={"X-Long": "a" * 2000, "X-Words": "ab " * 900 + "end"},
        attachments=[Attachment("x" * 200 + ".txt", b"x" * 5000)],
    )
    data = msg.to_bytes()
    assert_wire(data)
    parsed = parse(data)
    assert parsed["Subject"] == "word " * 3000
    assert parsed["X-Long"] == "a" * 2000
    assert parsed["X-Words"] == "ab " * 900 + "end"
    assert len(parsed["To"].addresses) == 50
    assert parsed["To"].addresses[49].display_name == ("Name 49 " * 10).strip()
    assert leaves(parsed)[-1].get_filename() == "x" * 200 + ".txt"


def test_no_line_over_998_octets_with_utf8_headers() -> None:
    subject = "😀" * 300 + " " + "é" * 600
    name = "日本語" * 56  # 504 octets, near the display-name limit
    msg = Message(sender="jöhn@example.com", to=[(name, "a@example.com")], subject=subject)
    data = msg.to_bytes()
    assert_wire(data, eight_bit=True)
    parsed = parse_utf8(data)
    assert parsed["Subject"] == subject
    assert parsed["To"].addresses[0].display_name == name
    with pytest.raises(InvalidHeader, match="longer than the limit 900"):
        simple(list_unsubscribe="https://example.com/" + "x" * 900)


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    "subject",
    [
        "",
        "Plain",
        "  leading and trailing  ",
        "=?utf-8?q?not_an_encoded_word?=",
        "Grüße — ünïcode ✓ 😀",
        "a  b   c",
        'quotes " and \\ backslash',
        "x" * 1200,
        "é" * 400,
        "mixed 😀 " * 100,
    ],
)
def test_subject_round_trips(subject: str) -> None:
    data = simple(text="x", subject=subject).to_bytes()
    assert_wire(data)
    assert parse(data)["Subject"] == subject
    assert header_names(data).count("Subject") == 1


@pytest.mark.parametrize(
    "name",
    [
        "Ann Lee",
        "Doe, Jane",
        "J. Doe",
        'Say "hi"',
        "back\\slash",
        "Zoë Ünïcode",
        "=?utf-8?q?x?=",
        "(comment)",
        "a" * 300,
        "日本 " * 60,
        "<ann@evil.example>",
    ],
)
def test_display_names_round_trip(name: str) -> None:
    data = simple(to=[(name, "ann@example.com")], text="x").to_bytes()
    assert_wire(data)
    (addr,) = parse(data)["To"].addresses
    assert addr.addr_spec == "ann@example.com"
    name = name.strip(" ")
    head = data.split(b"\r\n\r\n")[0]
    if head.count(b"=?utf-8?") > 1:
        assert rfc2047_name(data) == name
    else:
        assert addr.display_name == name


def test_idn_domain_is_a_label_in_headers() -> None:
    data = simple(to=["info@Bücher.example"], text="x").to_bytes()
    assert b"info@xn--bcher-kva.example" in data
    assert data.isascii()


def test_custom_header_names_are_checked() -> None:
    assert check_header_name("X-Ok") == "X-Ok"
    for bad in ["", "X Bad", "X:Bad", "X-Ünï", "X\r\nBcc", "x" * 77, "X\x00"]:
        with pytest.raises(InvalidHeader):
            simple(headers={bad: "v"})
    with pytest.raises(InvalidHeader, match="header name must be a str"):
        check_header_name(1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    ["From", "to", "BCC", "Cc", "Reply-To", "Subject", "Message-ID", "Date", "MIME-Version",
     "Content-Type", "content-transfer-encoding", "Content-Disposition", "Return-Path",
     "Sender", "Resent-To", "List-Unsubscribe", "Auto-Submitted", "X-Priority"],
)  # fmt: skip
def test_reserved_headers_cannot_be_set(name: str) -> None:
    with pytest.raises(InvalidHeader, match=rf"^headers\['{name}'\]: .* is set by smtpkit"):
        simple(headers=[(name, "x")])


@pytest.mark.parametrize(
    "value", ["a\r\nBcc: x@evil.example", "a\nb", "a\rb", "a\x00", "a\tb", "a\x0bb", "a\u2028b"]
)
def test_control_characters_in_header_values(value: str) -> None:
    with pytest.raises(InvalidHeader, match=r"control character U\+"):
        simple(subject=value)
    with pytest.raises(InvalidHeader, match=r"^headers\['X-A'\]: control character"):
        simple(headers={"X-A": value})


def test_check_header_value_contract() -> None:
    assert check_header_value("ok", field="f") == "ok"
    with pytest.raises(InvalidHeader, match="lone surrogate"):
        check_header_value("a\ud800", field="f")
    with pytest.raises(InvalidHeader, match="longer than the limit 3"):
        check_header_value("abcd", field="f", max_length=3)
    with pytest.raises(InvalidHeader, match="octets, longer than the limit 3"):
        check_header_value("éé", field="f", max_length=3)
    with pytest.raises(InvalidHeader, match="expected a str"):
        check_header_value(b"x", field="f")  # type: ignore[arg-type]


def test_duplicate_custom_headers_from_pairs_are_kept() -> None:
    data = simple(headers=[("X-Tag", "a"), ("X-Tag", "b")], text="x").to_bytes()
    assert parse(data).get_all("X-Tag") == ["a", "b"]


def test_header_value_non_str() -> None:
    with pytest.raises(InvalidHeader, match="expected a str"):
        simple(headers={"X-A": 1})
    with pytest.raises(InvalidHeader, match="pairs"):
        simple(headers=["X-A"])


# --------------------------------------------------------------------------- special headers


def test_message_id_generated_with_domain() -> None:
    msg = simple()
    assert re.fullmatch(r"<[0-9a-f]{32}@example\.com>", msg.message_id)
    other = simple(message_id_domain="mail.Bücher.example")
    assert other.message_id.endswith("@mail.xn--bcher-kva.example>")
    assert other.message_id_domain == "mail.xn--bcher-kva.example"
    assert simple().message_id != msg.message_id
    for bad in ["bad domain", "a..b", "x\r\n", "-" * 300, "ex_ample.com"]:
        with pytest.raises(InvalidHeader):
            simple(message_id_domain=bad)


def test_message_id_given() -> None:
    assert simple(message_id="abc@example.com").message_id == "<abc@example.com>"
    assert simple(message_id="<abc@example.com>").message_id == "<abc@example.com>"
    for bad in ["abc", "<abc@example.com", "a b@example.com", "<a@b>\r\nBcc: x", "<<a@b>>"]:
        with pytest.raises(InvalidHeader):
            simple(message_id=bad)


def test_date_given_and_generated() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    msg = simple(date=when)
    assert b"Date: Fri, 02 Jan 2026 03:04:05 +0200\r\n" in msg.to_bytes()
    assert abs(simple().date - datetime.now(UTC)) < timedelta(minutes=1)
    with pytest.raises(MessageError, match="timezone-aware"):
        simple(date=datetime(2026, 1, 2))


def test_list_unsubscribe_one_click() -> None:
    msg = simple(
        list_unsubscribe=["https://example.com/u?id=1&t=x", "mailto:unsub@example.com"],
        list_unsubscribe_post=True,
    )
    data = msg.to_bytes()
    assert (
        b"List-Unsubscribe: <https://example.com/u?id=1&t=x>, <mailto:unsub@example.com>\r\n"
        in data
    )
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in data
    assert simple(list_unsubscribe="mailto:u@example.com").list_unsubscribe == (
        "mailto:u@example.com",
    )


def test_list_unsubscribe_checks() -> None:
    with pytest.raises(MessageError, match="needs an https:// URI"):
        simple(list_unsubscribe="mailto:u@example.com", list_unsubscribe_post=True)
    with pytest.raises(MessageError, match="needs an https:// URI"):
        simple(list_unsubscribe_post=True)
    for bad in ["javascript:alert(1)", "https://x.example/a b", "https://x/>, <evil>", "ftp://x"]:
        with pytest.raises(InvalidHeader, match=r"list_unsubscribe\[0\]"):
            simple(list_unsubscribe=[bad])
    with pytest.raises(InvalidHeader, match="control character"):
        simple(list_unsubscribe="https://x.example/\r\nBcc: a@b.example")
    with pytest.raises(InvalidHeader, match="expected a str"):
        simple(list_unsubscribe=[1])


def test_long_list_unsubscribe_is_folded_between_uris() -> None:
    uris = [f"https://example.com/{'x' * 600}/{i}" for i in range(3)]
    data = simple(list_unsubscribe=uris).to_bytes()
    assert_wire(data)
    assert parse(data)["List-Unsubscribe"] == ", ".join(f"<{u}>" for u in uris)


def test_auto_submitted_and_priority() -> None:
    data = simple(auto_submitted="auto-generated", priority="high").to_bytes()
    assert b"Auto-Submitted: auto-generated\r\n" in data
    assert b"X-Priority: 1 (Highest)\r\nImportance: high\r\n" in data
    assert b"X-Priority: 5 (Lowest)\r\nImportance: low\r\n" in simple(priority="low").to_bytes()
    with pytest.raises(InvalidHeader, match="auto_submitted"):
        simple(auto_submitted="auto-generated\r\nBcc: x")
    with pytest.raises(MessageError, match="priority"):
        simple(priority="urgent")


def test_calendar_part() -> None:
    ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:CANCEL\r\nBEGIN:VEVENT\r\nEND:VEVENT\r\n"
    ics += "END:VCALENDAR\r\n"
    msg = simple(text="invite", calendar=ics.encode())
    parts = leaves(parse(msg.to_bytes()))
    assert parts[1].get_content_type() == "text/calendar"
    assert parts[1].get_param("method") == "CANCEL"
    assert content(parts[1]) == ics.replace("\r\n", "\n")
    default = leaves(parse(simple(text="x", calendar="BEGIN:VCALENDAR").to_bytes()))[1]
    assert default.get_param("method") == "REQUEST"
    with pytest.raises(MessageError, match="calendar: not UTF-8"):
        simple(calendar=b"\xff")
    with pytest.raises(MessageError, match="calendar: NUL"):
        simple(calendar="a\x00")


# --------------------------------------------------------------------------- bodies and limits


@pytest.mark.parametrize("field", ["text", "html"])
def test_nul_and_lone_surrogates_in_bodies(field: str) -> None:
    with pytest.raises(MessageError, match=rf"^{field}: NUL character at position 3"):
        simple(**{field: "abc\x00"})
    with pytest.raises(MessageError, match=rf"^{field}: lone surrogate at position 1"):
        simple(**{field: "a\udc80"})
    with pytest.raises(MessageError, match="expected a str"):
        simple(**{field: b"bytes"})


def test_size_limit_before_building() -> None:
    limits = MessageLimits(max_size=10_000)
    with pytest.raises(MessageTooLarge) as info:
        simple(attachments=[Attachment("a.bin", b"x" * 9000)], limits=limits)
    assert info.value.limit == 10_000
    assert info.value.size is not None
    assert info.value.size > 10_000
    with pytest.raises(MessageTooLarge, match="text:") as info:
        simple(text="x" * 20_000, limits=limits)
    assert info.value.limit == 10_000
    assert len(simple(text="x" * 5000, limits=limits).to_bytes()) < 10_000


def test_size_limit_checked_on_the_real_bytes() -> None:
    # QP makes this text much larger than its character count: the estimate passes, the
    # serialised size does not.
    msg = simple(text="é" * 3000 + "a" * 2000, limits=MessageLimits(max_size=9_000))
    with pytest.raises(MessageTooLarge) as info:
        msg.to_bytes()
    assert info.value.limit == 9_000


def test_recipient_limit() -> None:
    limits = MessageLimits(max_recipients=3)
    simple(to=["a@example.com", "b@example.com"], cc=["a@EXAMPLE.com"], bcc=["c@example.com"],
           limits=limits)  # fmt: skip
    with pytest.raises(MessageError, match="4 recipients, more than the limit of 3"):
        simple(to=["a@example.com", "b@example.com"], bcc=["c@example.com", "d@example.com"],
               limits=limits)  # fmt: skip
    with pytest.raises(MessageError, match=r"^to: 7 addresses, more than the limit of 6"):
        simple(to=[f"u{i}@example.com" for i in range(7)], limits=limits)


def test_header_length_limit() -> None:
    limits = MessageLimits(max_header_length=100)
    with pytest.raises(InvalidHeader, match=r"^subject: 101 characters"):
        simple(subject="x" * 101, limits=limits)
    with pytest.raises(InvalidHeader, match=r"^headers\['X-A'\]"):
        simple(headers={"X-A": "x" * 101}, limits=limits)
    with pytest.raises(InvalidHeader, match=r"^to\[0\]: display name longer than 100"):
        simple(to=[("n" * 101, "a@example.com")], limits=limits)


def test_limits_are_validated() -> None:
    with pytest.raises(ConfigError, match="max_size"):
        MessageLimits(max_size=0)
    with pytest.raises(ConfigError, match="max_recipients"):
        MessageLimits(max_recipients=True)
    with pytest.raises(ConfigError, match="limits"):
        simple(limits={"max_size": 1})


# --------------------------------------------------------------------------- attachments


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ann\\secret.docx", "secret.docx"),
        ("dir/sub/ spaced name .txt ", "spaced name .txt"),
        ("Q3 résumé.pdf", "Q3 résumé.pdf"),
        ("日本語のファイル.xlsx", "日本語のファイル.xlsx"),
        ('we"ird;name=x.txt', "we'ird;name=x.txt"),
        ("=?utf-8?q?evil?=.exe", "=?utf-8?q?evil?=.exe"),
        ("a" * 255, "a" * 255),
        ("ü" * 255, "ü" * 255),
    ],
)
def test_attachment_filenames_round_trip(given: str, expected: str) -> None:
    att = Attachment(given, b"data")
    assert att.filename == expected
    data = simple(text="x", attachments=[att]).to_bytes()
    assert_wire(data)
    part = leaves(parse(data))[-1]
    assert part.get_filename() == expected
    assert part.get_param("name") == expected
    assert part.defects == []


@pytest.mark.parametrize(
    "name", ["a\r\nb.txt", "a\x00.txt", "a\tb", "evil\u202efdp.exe", "x\u2066y", "a\u200fb", "\x7f"]
)
def test_attachment_filename_controls_and_bidi_raise(name: str) -> None:
    with pytest.raises(InvalidHeader):
        Attachment(name, b"x")


@pytest.mark.parametrize("name", ["", "dir/", "..", "a/.", "   ", "x" * 256])
def test_attachment_filename_empty_or_too_long(name: str) -> None:
    with pytest.raises(InvalidHeader):
        Attachment(name, b"x")


def test_attachment_content_types() -> None:
    assert Attachment("a.pdf", b"").content_type == "application/pdf"
    assert Attachment("a.png", b"").content_type == "image/png"
    assert Attachment("noext", b"").content_type == "application/octet-stream"
    assert Attachment("a.pdf", b"", "Text/CSV").content_type == "text/csv"
    for bad in [
        "text",
        "text/plain; charset=x",
        "a/b\r\nX: y",
        "multipart/mixed",
        "message/rfc822",
    ]:
        with pytest.raises(MessageError):
            Attachment("a", b"", bad)


def test_attachment_sources(tmp_path: Path) -> None:
    assert Attachment("a", bytearray(b"ab")).data == b"ab"
    assert Attachment("a", memoryview(b"ab")).data == b"ab"
    assert Attachment("a", io.BytesIO(b"file")).data == b"file"
    with pytest.raises(MessageError, match="binary mode"):
        Attachment("a", io.StringIO("text"))  # type: ignore[arg-type]
    with pytest.raises(MessageError, match="expected bytes"):
        Attachment("a", "text")  # type: ignore[arg-type]
    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\r\n")
    att = Attachment.from_path(path)
    assert (att.filename, att.data, att.content_type) == ("report.csv", b"a,b\r\n", "text/csv")
    renamed = Attachment.from_path(str(path), filename="other.txt")
    assert (renamed.filename, renamed.content_type) == ("other.txt", "text/plain")
    assert "size=5" in repr(att)
    with pytest.raises(AttributeError):
        att.filename = "x"  # type: ignore[misc]


def test_attachment_bytes_round_trip_all_sizes() -> None:
    atts = [Attachment(f"f{n}.bin", bytes(range(256)) * (n // 256) + bytes(n % 256))
            for n in (0, 1, 2, 3, 56, 57, 58, 76, 1000, 57 * 1024 + 1)]  # fmt: skip
    data = simple(text="x", attachments=atts).to_bytes()
    assert_wire(data)
    got = [p.get_content() for p in leaves(parse(data))[1:]]
    assert got == [a.data for a in atts]


def test_inline_images() -> None:
    with pytest.raises(MessageError, match="need an HTML body"):
        simple(text="x", inline=[InlineImage("logo", b"x", "image/png")])
    with pytest.raises(MessageError, match="duplicate cid"):
        simple(html="x", inline=[InlineImage("a", b"", "image/png")] * 2)
    for bad in ["", "a b", "a\r\nb", "<a", "x" * 201]:
        with pytest.raises(InvalidHeader):
            InlineImage(bad, b"", "image/png")
    with pytest.raises(InvalidHeader, match="expected a str"):
        InlineImage(1, b"", "image/png")  # type: ignore[arg-type]
    assert "size=3" in repr(InlineImage("a", b"abc", "image/gif"))
    with pytest.raises(MessageError, match=r"attachments\[0\]: expected an Attachment"):
        simple(attachments=[b"x"])
    with pytest.raises(MessageError, match=r"inline\[0\]: expected an InlineImage"):
        simple(html="x", inline=[Attachment("a", b"")])


# --------------------------------------------------------------------------- addresses in messages


def test_address_errors_name_the_position() -> None:
    with pytest.raises(InvalidAddress, match=r"^to\[2\]: "):
        simple(to=["a@example.com", "b@example.com", "a@example.com> NOTIFY=SUCCESS"])
    with pytest.raises(InvalidAddress, match=r"^cc: .*more than one address"):
        simple(cc="a@example.com, b@example.com")
    with pytest.raises(InvalidAddress, match=r"^sender: "):
        simple(sender="nobody")
    with pytest.raises(InvalidAddress, match=r"^bcc\[0\]: "):
        simple(bcc=["x (c) <y@example.com>"])
    with pytest.raises(InvalidHeader, match=r"^reply_to\[0\] name: control"):
        simple(reply_to=[("a\nb", "a@example.com")])


def test_duplicates_merged_per_header_and_in_recipients() -> None:
    msg = simple(
        to=["ann@example.com", "Ann <ann@EXAMPLE.com>", "Ann@example.com"],
        cc=["ann@example.com", "bob@example.com"],
        bcc=["bob@Example.com", "eve@example.com"],
    )
    assert [str(m) for m in msg.to] == ["ann@example.com", "Ann@example.com"]
    assert [str(a) for a in msg.recipients] == [
        "ann@example.com",
        "Ann@example.com",
        "bob@example.com",
        "eve@example.com",
    ]


def test_return_path() -> None:
    msg = simple(return_path="bounces+123@example.org")
    assert msg.return_path == Address.parse("bounces+123@example.org")
    assert b"bounces" not in msg.to_bytes()
    assert simple().return_path is None
    assert Message(sender="a@example.com", return_path="ü@example.com").needs_smtputf8


# --------------------------------------------------------------------------- value semantics


def test_bytes_are_cached_and_deterministic() -> None:
    msg = simple(text="x", html="y", attachments=[Attachment("a.txt", b"a")])
    first = msg.to_bytes()
    assert msg.to_bytes() is first
    again = msg.replace()
    assert again.message_id == msg.message_id
    assert again.date == msg.date
    assert again == msg


def test_replace_validates_and_can_renew_identity() -> None:
    msg = simple(subject="a")
    changed = msg.replace(subject="b", to=["z@example.com"])
    assert (changed.subject, [str(m) for m in changed.to]) == ("b", ["z@example.com"])
    assert msg.subject == "a"
    assert msg.replace(message_id=None).message_id != msg.message_id
    with pytest.raises(InvalidHeader):
        msg.replace(subject="a\nb")
    with pytest.raises(TypeError):
        msg.replace(nope=1)


def test_frozen() -> None:
    msg = simple()
    with pytest.raises(AttributeError):
        msg.subject = "x"  # type: ignore[misc]
    assert "secret" not in repr(simple(bcc=[]))
    assert hash(msg) == hash(msg.replace())


def test_no_recipients_is_allowed_for_a_draft() -> None:
    msg = Message(sender=SENDER, subject="draft")
    assert msg.recipients == ()
    assert "To" not in header_names(msg.to_bytes())


def test_stdlib_parser_agrees_with_stdlib_generator_on_the_same_content() -> None:
    """Same logical message through EmailMessage and through smtpkit: same parse."""
    text, html = "Hello Zoë\n", "<p>Hello Zoë</p>\n"
    ours = parse(
        simple(
            subject="Grüße", text=text, html=html, attachments=[Attachment("résumé.pdf", PDF)]
        ).to_bytes()
    )
    ref = EmailMessage()
    ref["Subject"] = "Grüße"
    ref.set_content(text)
    ref.add_alternative(html, subtype="html")
    ref.add_attachment(PDF, "application", "pdf", filename="résumé.pdf")
    theirs = parse(ref.as_bytes())
    assert shape(ours) == shape(theirs)
    assert ours["Subject"] == theirs["Subject"]
    assert [content(p) for p in leaves(ours)] == [content(p) for p in leaves(theirs)]
    assert leaves(ours)[-1].get_filename() == leaves(theirs)[-1].get_filename()


def test_html_only_message_gets_a_derived_text_part() -> None:
    msg = Message(
        sender="a@example.com",
        to=["b@example.com"],
        html='<h1>Hi</h1><p>Read <a href="https://example.com/x">the terms</a>.</p>',
    )
    assert msg.text is not None
    assert "the terms (https://example.com/x)" in msg.text
    changed = msg.replace(html="<p>Other</p>")
    assert changed.text is not None
    assert "Other" in changed.text
    assert "terms" not in changed.text
    explicit = msg.replace(text="Mine")
    assert explicit.text == "Mine"
    assert explicit.replace(html="<p>x</p>").text == "Mine"


@pytest.mark.parametrize("name", ['""', '"report".pdf', 'a"b.txt'])
def test_double_quotes_in_file_names_become_single_quotes(name: str) -> None:
    attachment = Attachment(name, b"x")
    assert '"' not in attachment.filename
    msg = Message(sender="a@example.com", to=["b@example.com"], text="x", attachments=[attachment])
    parsed = email.message_from_bytes(msg.to_bytes(), policy=email.policy.default)
    (part,) = list(parsed.iter_attachments())  # type: ignore[attr-defined]
    assert part.get_filename() == attachment.filename
