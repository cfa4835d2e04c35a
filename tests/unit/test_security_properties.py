"""Security properties of the builders (no sockets): SECURITY-NOTES.md section 4, W1-W8.

An attacker controls one input at a time (an address, a display name, a header, a file name,
a content type, a Content-ID, an unsubscribe URI, a DSN, the EHLO name, ...). Each test proves
that such input either raises a typed smtpkit error at construction, or produces bytes that keep
the wire invariants. Tests marked ``xfail(strict=True)`` document bugs found in this review.
"""

from __future__ import annotations

import builtins
import email
import io
import os
import re
import subprocess
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from smtpkit._address import Address, Mailbox
from smtpkit._config import ConfigError, Credentials, SMTPConfig, TLSMode
from smtpkit._dsn import parse_dsn
from smtpkit._envelope import Envelope
from smtpkit._exceptions import (
    InvalidAddress,
    InvalidHeader,
    MessageError,
    SmtpkitError,
)
from smtpkit._html_text import html_to_text
from smtpkit._message import Attachment, InlineImage, Message
from smtpkit._transports._rules import path as _path
from smtpkit._transports.smtp import _plan

# -- helpers -----------------------------------------------------------------------------------

#: Pieces that break SMTP commands or headers when they get through.
BREAKERS = [
    "\r\n",
    "\n",
    "\r",
    "\x00",
    "\t",
    "\x0b",
    "\x0c",
    "\x1b",
    "\x7f",
    "\x85",
    "\u2028",
    "\u2029",
]


def lines_of(data: bytes) -> list[bytes]:
    assert data.endswith(b"\r\n")
    return data.split(b"\r\n")[:-1]


def assert_wire(data: bytes, *, eight_bit: bool = False) -> None:
    """W1 (CRLF only), W3 (<= 998 octets + CRLF) and W4 (7-bit unless allowed)."""
    for line in lines_of(data):
        assert b"\r" not in line, line[:80]
        assert b"\n" not in line, line[:80]
        assert len(line) <= 998, (len(line), line[:80])
    if not eight_bit:
        assert data.isascii()


def top_header_names(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0]
    return [
        line.split(b":", 1)[0].decode().lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    ]


def parse(data: bytes, *, utf8: bool = False) -> EmailMessage:
    if utf8:
        msg = email.message_from_string(data.decode("utf-8"), policy=default_policy)
    else:
        msg = BytesParser(policy=default_policy).parsebytes(data)
    assert isinstance(msg, EmailMessage)
    return msg


def simple(**kwargs: Any) -> Message:
    kwargs.setdefault("sender", "shop@example.com")
    kwargs.setdefault("to", ["ann@example.com"])
    kwargs.setdefault("text", "body")
    return Message(**kwargs)


@pytest.fixture
def fast() -> Callable[[], None]:
    """A hang guard: call it at the end of a DoS test; generous so CI noise cannot fail it."""
    started = time.monotonic()

    def check() -> None:
        assert time.monotonic() - started < 10.0

    return check


# -- property 1: nothing reaches a header or a command argument ---------------------------------


@pytest.mark.parametrize("breaker", [*BREAKERS, ">", " NOTIFY=SUCCESS", " ", "<", ","])
@pytest.mark.parametrize("where", ["sender", "recipient"])
def test_envelope_strings_with_breakers_are_refused(breaker: str, where: str) -> None:
    bad = f"a@example.com{breaker}"
    good = "b@example.com"
    if breaker != " ":  # a trailing space is stripped: "a@example.com " is that address
        sender, recipients = (bad, [good]) if where == "sender" else (good, [good, bad])
        with pytest.raises((InvalidAddress, InvalidHeader)):
            Envelope(sender, recipients)
    # The same inside the local part and in front of the address.
    texts = [f"a{breaker}b@example.com"]
    if breaker in BREAKERS:  # in front, it would be part of a display name
        texts.append(f"Ann{breaker} <a@example.com>")
    for text in texts:
        with pytest.raises((InvalidAddress, InvalidHeader)):
            Envelope(good, [text])


@pytest.mark.parametrize(
    "text",
    [
        "a@example.com> NOTIFY=SUCCESS",
        "<a@example.com> NOTIFY=SUCCESS",
        "a@example.com ORCPT=rfc822;b@example.org",
        "<a@example.com> SIZE=1",
        "a@example.com>\r\nRCPT TO:<evil@example.org>",
        "user1@example.com>\r\nRCPT TO:<x@example.org>\r\nDATA",
        "a@b.com, c@d.com",
        "alice@example.com (comment) <bob@evil.example>",
        '"x@y.com x"@internal.example',
        "a@malicious.org@important.com",
        "user@=?utf-8?q?ex=C3=A4mple?=.com",
        "=?utf-8?q?a?=@example.com",
        "a@exam\r\n ple.com",
        "a@exam\t ple.com",
        "a@exam ple.com",
        "a@example.com (x)",
        "a@example.com\u00a0",
        "a@ex\u200bample.com",
        "a\uff20example.com",
        "Ann <a@example.com> <b@example.org>",
        "Ann <a@example.com>, Bob <b@example.org>",
        '"Ann" <a@example.com> x',
        "a@[127.0.0.1]",
        '"a b"@example.com',
    ],
)
def test_address_differentials_are_refused_everywhere(text: str) -> None:
    """The classic parser-differential inputs: refused by Envelope and by every Message field."""
    with pytest.raises((InvalidAddress, InvalidHeader)):
        Envelope("s@example.com", [text])
    with pytest.raises((InvalidAddress, InvalidHeader)):
        Envelope(text, ["r@example.com"])
    for field in ("sender", "to", "cc", "bcc", "reply_to", "return_path"):
        with pytest.raises((InvalidAddress, InvalidHeader)):
            simple(**{field: text})


@pytest.mark.parametrize("breaker", BREAKERS)
@pytest.mark.parametrize("field", ["sender", "to", "cc", "reply_to"])
def test_display_names_with_breakers_are_refused(breaker: str, field: str) -> None:
    name = f"Ann{breaker}Bcc: evil@example.org"
    with pytest.raises(InvalidHeader):
        simple(**{field: (name, "ann@example.org")})
    with pytest.raises((InvalidHeader, InvalidAddress)):
        simple(**{field: f'"{name}" <ann@example.org>'})


@pytest.mark.parametrize("breaker", BREAKERS)
def test_every_header_bound_argument_refuses_breakers(breaker: str) -> None:
    evil = f"x{breaker}Bcc: evil@example.org"
    attempts: list[Callable[[], object]] = [
        lambda: simple(subject=evil),
        lambda: simple(headers={"X-Campaign": evil}),
        lambda: simple(headers=[(f"X-A{breaker}Bcc", "v")]),
        lambda: simple(message_id=f"<a@example.com>{breaker}Bcc: evil@example.org"),
        lambda: simple(message_id_domain=f"example.com{breaker}Bcc: evil@example.org"),
        lambda: simple(list_unsubscribe=f"https://example.com/u{breaker}Bcc: evil@example.org"),
        lambda: Attachment(f"a{breaker}b.pdf", b"x"),
        lambda: Attachment("a.pdf", b"x", f"application/pdf{breaker}Bcc: evil@example.org"),
        lambda: InlineImage(f"logo{breaker}Bcc: evil@example.org", b"x", "image/png"),
        lambda: InlineImage("logo", b"x", f"image/png{breaker}Bcc: evil@example.org"),
    ]
    for attempt in attempts:
        with pytest.raises((InvalidHeader, MessageError)):
            attempt()


@pytest.mark.parametrize(
    "content_type",
    [
        'text/plain; name="x\r\nBcc: y@example.org"',
        'text/plain; name="x"',
        "text/plain; charset=utf-8",
        "text/plain;charset=utf-8",
        "text/plain\r\n",
        "text/plain ",
        " text/plain",
        "text/pla in",
        "text/plain/x",
        "text",
        "text/",
        "/plain",
        "text/plain\x00",
        "text/plain\u2028x",
        'text/"plain"',
        "multipart/mixed",
        "message/rfc822",
    ],
)
def test_attachment_and_inline_content_types_cannot_carry_parameters(content_type: str) -> None:
    with pytest.raises((InvalidHeader, MessageError)):
        Attachment("a.txt", b"x", content_type)
    with pytest.raises((InvalidHeader, MessageError)):
        InlineImage("logo", b"x", content_type)


@pytest.mark.parametrize(
    "cid",
    [
        "logo>\r\nBcc: evil@example.org",
        "a> <b",
        "<a> <b>",
        "a b",
        "a;b",
        '"a"',
        "a\x00",
        "",
        "<>",
        "x" * 201,
        "a\u202eb",
    ],
)
def test_inline_cids_are_strict(cid: str) -> None:
    with pytest.raises(InvalidHeader):
        InlineImage(cid, b"x", "image/png")


@pytest.mark.parametrize(
    "name",
    [
        "Bcc",
        "bcc",
        "BCC",
        "Resent-Bcc",
        "resent-to",
        "Content-Type",
        "content-transfer-encoding",
        "From",
        "Subject",
        "To",
        "X A",
        "X-A:",
        "X-A:b",
        "",
        "Ä",
        "X-\u00e9",
        "X" * 77,
    ],
)
def test_custom_header_names_cannot_shadow_or_break_headers(name: str) -> None:
    with pytest.raises(InvalidHeader):
        simple(headers={name: "v"})


@pytest.mark.parametrize(
    "uri",
    [
        "https://example.com/u>, <mailto:evil@example.org",
        "https://example.com/u> <https://evil.example",
        "https://example.com/ u",
        "javascript:alert(1)",
        "data:text/html,x",
        "file:///etc/passwd",
        "<https://example.com/u>",
        "https://example.com/u>",
        "",
        "mailto:",
    ],
)
def test_list_unsubscribe_values_are_strict(uri: str) -> None:
    with pytest.raises(InvalidHeader):
        simple(list_unsubscribe=uri)


@pytest.mark.parametrize(
    "method_line",
    [
        'METHOD:REQUEST; evil="x"',
        "METHOD:REQUEST\r\nBcc: evil@example.org",
        "METHOD:REQ UEST",
        "METHOD:" + "A" * 500,
        "METHOD:REQUEST\x00",
    ],
)
def test_calendar_method_never_reaches_a_header_unchecked(method_line: str) -> None:
    ics = f"BEGIN:VCALENDAR\r\n{method_line}\r\nEND:VCALENDAR\r\n"
    try:
        msg = simple(html="<p>x</p>", calendar=ics)
    except MessageError:
        assert "\x00" in ics
        return
    data = msg.to_bytes()
    assert_wire(data)
    assert "bcc" not in top_header_names(data)
    calendar = [p for p in parse(data).walk() if p.get_content_type() == "text/calendar"]
    assert len(calendar) == 1
    method = calendar[0].get_param("method")
    assert isinstance(method, str)
    assert re.fullmatch(r"[A-Z-]{1,40}", method)


@pytest.mark.parametrize(
    "ehlo",
    [
        "mail.example.com\r\nMAIL FROM:<x@example.org>",
        "mail.example.com\n",
        "mail example.com",
        "mail.example.com\x00",
        "mail.example.com\t",
        "mail.example.com\u2028",
        "[127.0.0.1]\r\n",
        "[IPv6:::1\r\n]",
        "[127.0.0.1] x",
        "",
        "-mail.example.com",
        "mail.example.com SIZE=1",
    ],
)
def test_ehlo_name_is_validated_in_config_and_dsn(ehlo: str) -> None:
    with pytest.raises(ConfigError):
        SMTPConfig(host="mail.example.com", local_hostname=ehlo)
    from urllib.parse import quote

    with pytest.raises(ConfigError):
        parse_dsn(f"smtp://mail.example.com?ehlo={quote(ehlo, safe='')}")


@pytest.mark.parametrize(
    "dsn",
    [
        "smtp://u%0D%0AMAIL%20FROM:p@mail.example.com",
        "smtp://u%00x:p@mail.example.com",
        "smtp://u:p%0D%0ARSET@mail.example.com",
        "smtp://u:p%00@mail.example.com",
        "smtp://mail.example.com%0D%0A",
        "smtp://mail%20example.com",
        "smtp://mail.example.com?ehlo=a%0Db",
        "smtp://mail.example.com?ca_file=%2Ftmp%2Fa%0Ab",
    ],
)
def test_dsn_refuses_control_characters_everywhere(dsn: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_dsn(dsn)
    # The password part is never echoed back.
    assert "RSET" not in str(caught.value)


@pytest.mark.parametrize("bad", ["ann\r\n", "ann\x00x", "a\nb"])
def test_credentials_username_and_password_refuse_line_breaks(bad: str) -> None:
    with pytest.raises(ConfigError):
        Credentials(bad, "pw")
    with pytest.raises(ConfigError) as caught:
        Credentials("ann", bad + "-S3cret")
    assert "S3cret" not in str(caught.value)


# -- property 3: one validator, and the envelope and the header name the same address -----------

_LOCAL = st.one_of(
    st.from_regex(
        r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,12}(\.[A-Za-z0-9_-]{1,5}){0,2}", fullmatch=True
    ),
    st.sampled_from(["jörg", "ünïcødé", "日本", "ＡＢＣ", "a.b", "a+tag", "-bi", "x=y"]),
)
_DOMAIN = st.sampled_from(
    ["example.com", "EXAMPLE.org", "bücher.example", "xn--bcher-kva.example", "sub.example.net"]
)
_NAME = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.sampled_from(
        ["Doe, Jane", 'a "b" c', "x@y.example", "=?utf-8?q?x?=", "Zoë", "<b@evil.example>"]
    ),
)


@st.composite
def mailbox_likes(draw: st.DrawFn) -> object:
    addr = f"{draw(_LOCAL)}@{draw(_DOMAIN)}"
    name = draw(_NAME)
    form = draw(st.sampled_from(["bare", "angle", "quoted", "pair", "address", "mailbox"]))
    if form == "bare":
        return addr
    if form == "angle":
        return f"{name or ''} <{addr}>"
    if form == "quoted":
        escaped = (name or "").replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{addr}>'
    if form == "pair":
        return (name, addr)
    try:
        parsed = Address.parse(addr)
        return parsed if form == "address" else Mailbox(parsed, name or None)
    except SmtpkitError:
        return addr


@given(st.lists(mailbox_likes(), min_size=1, max_size=4), mailbox_likes())
@example(["a@example.com> NOTIFY=SUCCESS"], "s@example.com")
@example([("x@y.example", "a@example.com")], ("<b@evil.example>", "s@example.com"))
def test_envelope_and_headers_name_the_same_addresses(to: list[object], sender: object) -> None:
    try:
        msg = Message(sender=sender, to=to, text="x")  # type: ignore[arg-type]
    except (InvalidAddress, InvalidHeader):
        return
    data = msg.to_bytes()
    utf8 = msg.needs_smtputf8
    assert_wire(data, eight_bit=utf8)
    parsed = parse(data, utf8=utf8)
    header_to = [a.addr_spec for a in parsed["To"].addresses]
    (header_from,) = [a.addr_spec for a in parsed["From"].addresses]
    envelope = Envelope.from_message(msg)
    plan = _plan(envelope, data)
    encoding = "utf-8" if plan.smtputf8 else "ascii"
    rcpt = [_path(a, plan.smtputf8, encoding).decode(encoding)[1:-1] for a in envelope.recipients]
    mail_from = _path(envelope.sender, plan.smtputf8, encoding).decode(encoding)[1:-1]
    # Exactly one mailbox per input value (never split, never truncated), same order.
    assert len(header_to) == len(msg.to) <= len(to)
    assert rcpt == header_to
    assert mail_from == header_from
    for address in (*rcpt, mail_from):
        assert not re.search(r"[\x00-\x20<>\x7f]", address)


# -- public constructors check what parse would (found in review: they used to trust input) ----


@pytest.mark.parametrize(
    ("local", "domain", "ascii_domain"),
    [
        ("a\r\nBcc: evil@example.org\r\nX-Y: z", "example.com", "example.com"),
        ("x> NOTIFY=SUCCESS ORCPT=rfc822;y", "example.com", "example.com"),
        ("x", "example.com> NOTIFY=NEVER", "example.com"),
        ("x", "example.com", "example.com\r\nRSET"),
        ("a b", "example.com", "example.com"),
        ("", "example.com", "example.com"),
        ('"quoted"', "example.com", "example.com"),
    ],
)
def test_directly_built_address_is_refused_unless_well_formed(
    local: str, domain: str, ascii_domain: str
) -> None:
    with pytest.raises(InvalidAddress, match=r"Address\.parse"):
        Address(local, domain, ascii_domain)


def test_directly_built_well_formed_address_still_works() -> None:
    address = Address("Ann.Lee", "bücher.example", "xn--bcher-kva.example")
    assert address == Address.parse("Ann.Lee@bücher.example")
    msg = simple(to=[address])
    assert b"Ann.Lee@xn--bcher-kva.example" in msg.to_bytes()


def test_directly_built_mailbox_cannot_inject_headers() -> None:
    with pytest.raises(InvalidHeader):
        Mailbox(Address.parse("b@example.com"), "Evil\r\nBcc: victim@example.org")
    with pytest.raises(InvalidAddress):
        Mailbox("b@example.com", "B")  # type: ignore[arg-type]


# -- property 2 / W3: no line over 998 octets, whatever the input -------------------------------


@pytest.mark.parametrize("char", ['"', "\\"])
@pytest.mark.parametrize("field", ["to", "sender"])
def test_quoted_display_name_never_makes_an_overlong_line(char: str, field: str) -> None:
    msg = simple(**{field: (char * 512, "ann@example.org")})
    assert_wire(msg.to_bytes())


def test_long_unbreakable_values_stay_within_998_octets() -> None:
    word = "w" * 5000
    msg = Message(
        sender=("N" * 500, "shop@example.com"),
        to=[(f"Name{i:04d} " * 5, f"user{i}@example.com") for i in range(999)],
        subject="s" * 10_000,
        text=word,
        html=f"<p>{word}</p>",
        headers={"X-Word": "v" * 10_000},
        attachments=[Attachment("f" * 250 + ".pdf", b"%PDF" * 10)],
        list_unsubscribe=["https://example.com/" + "u" * 800, "mailto:" + "m" * 880 + "@x.example"],
    )
    data = msg.to_bytes()
    assert_wire(data)
    parsed = parse(data)
    assert parsed["Subject"] == "s" * 10_000
    assert len(parsed["To"].addresses) == 999


# -- property 2 / W2: smuggling sequences in Message bodies --------------------------------------

SMUGGLE_ENDINGS = [
    "\n.\n",
    "\r.\r",
    "\r.\n",
    "\n.\r",
    "\n.\r\n",
    "\r\n.\n",
    "\r.\r\n",
    "\r\n.\r",
    "\r\n.\r\n",
]


@pytest.mark.parametrize("ending", SMUGGLE_ENDINGS)
def test_message_bodies_with_smuggling_endings_become_plain_crlf_lines(ending: str) -> None:
    payload = f"a{ending}MAIL FROM:<evil@example.org>{ending}RCPT TO:<v@example.org>{ending}x"
    msg = simple(text=payload, html=f"<p>{payload}</p>")
    data = msg.to_bytes()
    assert_wire(data)
    # No bare CR or LF survives: every line end is CRLF, so after dot-stuffing no line of the
    # body can be a lone "." (the SMTP layer doubles a leading dot).
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", data) is None
    assert b"MAIL FROM:<evil@example.org>" in data


@pytest.mark.parametrize("ending", SMUGGLE_ENDINGS)
def test_nul_variants_of_smuggling_endings_are_refused_in_bodies(ending: str) -> None:
    payload = f"a{ending.replace('.', '.' + chr(0))}x"
    for field in ("text", "html", "calendar"):
        with pytest.raises(MessageError):
            simple(**{field: payload})


# -- W5 / W8: Bcc never in the bytes; the header set is what the API set -------------------------


def test_bcc_reaches_the_envelope_only() -> None:
    msg = simple(bcc=["hidden@example.org", ("Secret Name", "other@example.org")])
    data = msg.to_bytes()
    assert b"hidden@example.org" not in data
    assert b"Secret Name" not in data
    assert "bcc" not in top_header_names(data)
    assert [str(a) for a in Envelope.from_message(msg).recipients] == [
        "ann@example.com",
        "hidden@example.org",
        "other@example.org",
    ]


# -- property 4: never shell out, never read what message data names -----------------------------


def test_building_and_rendering_never_open_files_or_spawn_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"unexpected I/O: {args!r}")

    html = (
        '<img src="/etc/passwd"><img src="file:///etc/hostname"><link rel=stylesheet '
        'href="file:///etc/passwd"><a href="file:///etc/shadow">x</a><img src="cid:logo">'
    )
    monkeypatch.setattr(builtins, "open", forbidden)
    monkeypatch.setattr(io, "open", forbidden)
    monkeypatch.setattr(Path, "read_bytes", forbidden)
    monkeypatch.setattr(Path, "open", forbidden)
    monkeypatch.setattr(subprocess, "Popen", forbidden)
    monkeypatch.setattr(os, "system", forbidden)
    monkeypatch.setattr(os, "popen", forbidden)
    msg = Message(
        sender="-oQ/tmp/-X/var/www/x.php@example.com",
        to=["-bi@example.com"],
        subject="$(id) `id` | id",
        html=html,
        text=html_to_text(html),
        attachments=[Attachment("/etc/passwd", b"not the file")],
        inline=[InlineImage("logo", b"\x89PNG", "image/png")],
    )
    data = msg.to_bytes()
    assert b"root:" not in data
    parsed = parse(data)
    files = [p for p in parsed.walk() if p.get_filename()]
    assert [p.get_filename() for p in files] == ["passwd"]
    assert files[0].get_content() == b"not the file"


# -- property 12: bounded work on hostile input -------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: Address.parse("a" * 100_000 + "@example.com"),
        lambda: Address.parse("a@" + "b." * 50_000 + "com"),
        lambda: Envelope("s@example.com", ["a" * 100_000 + "@example.com"]),
        lambda: Mailbox.parse("N" * 1_000_000 + " <a@example.com>"),
        lambda: Mailbox.parse('"' + "N" * 1_000_000 + '" <a@example.com>'),
        lambda: Mailbox.parse(("N" * 1_000_000, "a@example.com")),
        lambda: Mailbox.parse("<" * 500_000 + "a@example.com" + ">" * 500_000),
        lambda: simple(subject="s" * 1_000_000),
        lambda: simple(headers={"X-Big": "v " * 500_000}),
        lambda: simple(to=[f"user{i}@example.com" for i in range(10_000)]),
        lambda: simple(bcc=[f"user{i}@example.com" for i in range(1_500)]),
        lambda: simple(message_id="<" + "a" * 1_000_000 + "@example.com>"),
        lambda: simple(list_unsubscribe="https://example.com/" + "u" * 1_000_000),
        lambda: Attachment("a" * 1_000_000 + ".pdf", b"x"),
        lambda: InlineImage("c" * 1_000_000, b"x", "image/png"),
        lambda: parse_dsn("smtp://" + "u" * 1_000_000 + "@mail.example.com"),
        lambda: SMTPConfig(host="h" * 1_000_000),
        lambda: SMTPConfig(host="mail.example.com", local_hostname="a." * 500_000),
    ],
)
def test_hostile_sizes_are_refused_quickly(
    make: Callable[[], object], fast: Callable[[], None]
) -> None:
    with pytest.raises(SmtpkitError):
        make()
    fast()


@pytest.mark.parametrize(
    "html",
    [
        "<div>" * 100_000 + "x",
        "<blockquote>" * 20_000 + "x",
        "<ol><li>" * 20_000 + "x",
        "<table><tr><td>" * 20_000 + "x",
        '<a href="https://e.example/">' * 20_000 + "x",
        '<div style="display:none">' * 20_000 + "x",
        "<a " + 'href="x" ' * 50_000 + ">",
        "&#x" * 100_000,
        "&#99999999999999999999;" * 20_000,
        "<![CDATA[" * 50_000,
        "<!--" * 50_000,
        "</p>" * 30_000,
        "<pre>" * 20_000 + " x\n" * 1_000,
    ],
)
def test_html_to_text_is_bounded_on_pathological_html(html: str, fast: Callable[[], None]) -> None:
    out = html_to_text(html)
    assert isinstance(out, str)
    # Output grows at most linearly with the input (no indentation blow-up).
    assert len(out) <= 40 * len(html)
    fast()


def test_tls_none_with_credentials_needs_an_explicit_opt_in() -> None:
    with pytest.raises(ConfigError):
        SMTPConfig(host="127.0.0.1", tls=TLSMode.NONE, credentials=Credentials("ann", "pw"))
    with pytest.raises(ConfigError):
        parse_dsn("smtp://ann:pw@127.0.0.1?tls=none")
