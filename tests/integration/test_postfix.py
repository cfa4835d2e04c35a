"""smtpkit against a real Postfix: every connection mode, and the delivered message read back.

Each test sends through the private Postfix (see ``_mta.py``) and reads what Postfix's virtual
delivery agent wrote into the recipient's Maildir. The delivered file is Postfix's added trace
headers (Return-Path, Delivered-To, Received) followed by exactly the bytes smtpkit produced, so
besides comparing parsed headers and bodies the tests check that byte-for-byte.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage, MIMEPart

import idna
import pytest
from _mta import IDN_ASCII, MTA

from smtpkit import (
    AsyncMailer,
    Attachment,
    Envelope,
    InlineImage,
    Message,
    SendResult,
    SMTPConfig,
)

pytestmark = pytest.mark.postfix

APP = "app@smtpkit.test"
ANN = "ann@smtpkit.test"
BOB = "bob@smtpkit.test"
POSTMASTER = "postmaster@smtpkit.test"

# Every byte value, so a base64 round trip that drops or changes one shows.
BINARY = bytes(range(256)) * 37
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(255, -1, -1)) * 9
SUBJECT = "Grüße aus Köln — 🚀 ein Betreff, der lang genug ist, um gefaltet zu werden, 日本語も"
TEXT = "Hallo Ann,\n\nüber die Brücke — 10 € — «quoted» 😀\n\nZoë\n"
HTML = (
    "<html><body><p>Hallo <b>Ann</b>, über die Brücke — 10 €</p>"
    '<p><img src="cid:logo" alt="Logo"></p></body></html>\n'
)

# A body that needs every kind of care: lines that are (or start with) dots, which SMTP must
# dot-stuff and the server unstuff; lines far over SMTP's 998-octet limit, ASCII and not, which
# smtpkit must encode (the server would otherwise refuse or split them); trailing white space;
# a line starting "From " (mbox escaping must not happen); tabs.
DOTTED = (
    "\n".join(
        [
            ".",
            "..",
            "...",
            ".leading dot",
            "..two leading dots",
            ". space after the dot",
            "x",
            ".",
            "",
            ".",
            "a" * 2000,
            "." + "b" * 1999,
            "é" * 2000,
            ".é" + "ü" * 1998,
            "trailing spaces   ",
            "trailing tab\t",
            "From the start of a line",
            "\tindented with a tab",
            "-- ",
            ".",
            "end",
        ]
    )
    + "\n"
)


# The same in ASCII only: smtpkit then uses quoted-printable, whose lines still start with dots
# on the wire (the all-Unicode one goes as base64, where no line does).
DOTTED_ASCII = DOTTED.replace("é", "e").replace("ü", "u")


def crlf(raw: bytes) -> bytes:
    """The Maildir file with SMTP's CRLF line ends again (Postfix stores LF)."""
    return raw.replace(b"\n", b"\r\n")


def rich_message(*, to: tuple[str | None, str] = ("Ann Bücher", ANN), **changes: object) -> Message:
    """A message with every part: Unicode names and subject, text, HTML, inline image,
    attachments (binary and text, Unicode file names) and custom headers."""
    fields: dict[str, object] = {
        "sender": ("Zoë Ångström", APP),
        "to": [to],
        "cc": [('Bob "The Builder" Müller, Jr.', BOB)],
        "reply_to": [("Support 支持", POSTMASTER)],
        "subject": SUBJECT,
        "text": TEXT,
        "html": HTML,
        "inline": (InlineImage("logo", PNG, "image/png"),),
        "attachments": (
            Attachment("résumé 2024 (final).bin", BINARY, "application/octet-stream"),
            Attachment("notes.txt", "Zeile eins\nZeile zwei — ü\n".encode(), "text/plain"),
        ),
        "headers": [("X-Campaign", "welcome-42"), ("X-Note", "Grüße ✓")],
        "date": datetime(2024, 5, 17, 9, 30, tzinfo=UTC),
    }
    fields.update(changes)
    return Message(**fields)  # type: ignore[arg-type]


async def send(config: SMTPConfig, message: Message) -> SendResult:
    async with AsyncMailer(config) as mailer:
        return await mailer.send(message)


def text_of(part: MIMEPart | None) -> str:
    """A text part's decoded content with its line breaks as "\n".

    A base64 text part carries RFC 2045's canonical CRLF line breaks inside the encoding, which
    the email package leaves as they are; quoted-printable and 7bit parts come out with "\n".
    Either way no other CR may appear.
    """
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    normalized = content.replace("\r\n", "\n")
    assert "\r" not in normalized
    return normalized


def payload(part: MIMEPart) -> bytes:
    """A part's decoded (transfer-encoding undone) bytes."""
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


def addresses(parsed: EmailMessage, name: str) -> list[tuple[str, str]]:
    return [(a.display_name, a.addr_spec) for a in parsed[name].addresses]


def check_rich(parsed: EmailMessage, message: Message) -> None:
    """The parsed delivery matches the rich message part by part."""
    assert parsed["Subject"] == SUBJECT
    assert addresses(parsed, "From") == [("Zoë Ångström", APP)]
    assert addresses(parsed, "Cc") == [('Bob "The Builder" Müller, Jr.', BOB)]
    assert addresses(parsed, "Reply-To") == [("Support 支持", POSTMASTER)]
    assert parsed["Message-ID"] == message.message_id
    assert parsed["X-Campaign"] == "welcome-42"
    assert parsed["X-Note"] == "Grüße ✓"
    assert parsed["Date"].datetime == datetime(2024, 5, 17, 9, 30, tzinfo=UTC)
    assert "Bcc" not in parsed

    assert text_of(parsed.get_body(("plain",))) == TEXT
    assert text_of(parsed.get_body(("html",))) == HTML

    inline = [part for part in parsed.walk() if part["Content-ID"] == "<logo>"]
    assert len(inline) == 1
    assert inline[0].get_content_type() == "image/png"
    assert inline[0].get_content() == PNG
    # The image sits next to the HTML in multipart/related, as mail clients need it.
    related = [part for part in parsed.walk() if part.get_content_type() == "multipart/related"]
    assert len(related) == 1
    assert inline[0] in list(related[0].iter_parts())

    attachments = {part.get_filename(): part for part in parsed.iter_attachments()}
    assert set(attachments) == {"résumé 2024 (final).bin", "notes.txt"}
    assert payload(attachments["résumé 2024 (final).bin"]) == BINARY
    notes = payload(attachments["notes.txt"])
    assert notes.replace(b"\r\n", b"\n") == "Zeile eins\nZeile zwei — ü\n".encode()


MODES = [
    pytest.param("submission", ("PLAIN",), "ESMTPSA", id="starttls-PLAIN"),
    pytest.param("submission", ("LOGIN",), "ESMTPSA", id="starttls-LOGIN"),
    pytest.param("submission", ("CRAM-MD5",), "ESMTPSA", id="starttls-CRAM-MD5"),
    pytest.param("smtps", ("PLAIN",), "ESMTPSA", id="implicit-PLAIN"),
    pytest.param("smtps", ("LOGIN",), "ESMTPSA", id="implicit-LOGIN"),
    pytest.param("smtps", ("CRAM-MD5",), "ESMTPSA", id="implicit-CRAM-MD5"),
    pytest.param("opportunistic", None, "ESMTPS", id="opportunistic-no-auth"),
    pytest.param("plain", None, "ESMTP", id="plaintext-no-auth"),
]


@pytest.mark.parametrize(("mode", "mechanisms", "protocol"), MODES)
async def test_every_mode_delivers_the_exact_message(
    mta: MTA,
    config: Callable[..., SMTPConfig],
    mode: str,
    mechanisms: tuple[str, ...] | None,
    protocol: str,
) -> None:
    message = rich_message()
    result = await send(config(mode, mechanisms=mechanisms), message)

    assert result.accepted == (ANN, BOB)
    assert result.rejected == {}
    assert result.reply is not None
    assert result.reply.code == 250
    assert result.queue_id is not None
    assert result.queue_id in str(result.reply)

    for mailbox in (ANN, BOB):
        raw = await mta.wait_for(mailbox, message.message_id)
        # Postfix only prepends its trace headers: the rest is smtpkit's bytes, unchanged.
        assert crlf(raw).endswith(message.to_bytes())
        parsed = await mta.wait_for_parsed(mailbox, message.message_id)
        check_rich(parsed, message)
        assert parsed["Delivered-To"] == mailbox
        assert parsed["Return-Path"] == f"<{APP}>"
        # RFC 3848: ESMTPSA = TLS + AUTH, ESMTPS = TLS, ESMTP = neither.
        received = " ".join(parsed["Received"].split())
        assert re.search(rf"\bwith {protocol} id {result.queue_id}\b", received), received

    # Postfix logs the SASL mechanism it accepted: the one this test asked for.
    line = await mta.wait_for_log(f"{result.queue_id}: client=")
    if mechanisms is None:
        assert "sasl_method" not in line
    else:
        assert f"sasl_method={mechanisms[0]}, sasl_username=app" in line


async def test_default_mechanism_preference_picks_cram_md5(
    mta: MTA, config: Callable[..., SMTPConfig]
) -> None:
    """With the default auth_mechanisms, smtpkit prefers CRAM-MD5 (no password on the wire)
    over PLAIN and LOGIN when the server offers all three."""
    message = rich_message()
    result = await send(config("submission"), message)
    line = await mta.wait_for_log(f"{result.queue_id}: client=")
    assert "sasl_method=CRAM-MD5" in line
    parsed = await mta.wait_for_parsed(ANN, message.message_id)
    check_rich(parsed, message)


@pytest.mark.parametrize("body", [DOTTED, DOTTED_ASCII], ids=["unicode", "ascii"])
async def test_dots_and_long_lines_arrive_as_meant(
    mta: MTA, config: Callable[..., SMTPConfig], body: str
) -> None:
    html = "<html><body><pre>\n" + body + "</pre></body></html>\n"
    message = Message(
        sender=APP,
        to=ANN,
        subject="." + "dots " * 30,
        text=body,
        html=html,
        attachments=(Attachment("dotted.txt", body.encode(), "text/plain"),),
    )
    await send(config("submission"), message)

    raw = await mta.wait_for(ANN, message.message_id)
    assert crlf(raw).endswith(message.to_bytes())
    # smtpkit encoded the long lines: nothing near SMTP's 998-octet line limit was sent.
    assert max(len(line) for line in raw.split(b"\n")) <= 998

    parsed = await mta.wait_for_parsed(ANN, message.message_id)
    assert parsed["Subject"] == "." + "dots " * 30
    assert text_of(parsed.get_body(("plain",))) == body
    assert text_of(parsed.get_body(("html",))) == html
    (attachment,) = parsed.iter_attachments()
    assert payload(attachment).replace(b"\r\n", b"\n") == body.encode()
    if body is DOTTED_ASCII:
        # Lines that start with a dot went over SMTP (stuffed) and were stored unstuffed.
        assert b"\n..\n" in raw
        assert b"\n.leading dot\n" in raw


async def test_raw_data_with_dot_lines_arrives_byte_for_byte(
    mta: MTA, config: Callable[..., SMTPConfig]
) -> None:
    """send_raw: smtpkit dot-stuffs on the wire, Postfix unstuffs, and the stored message is
    exactly the data given, including lines that are a lone dot or start with dots."""
    body_lines = [b".", b"..", b".x", b"...y", b"", b".", b"z" * 990, b"." + b"w" * 990, b"."]
    data = (
        b"From: app@smtpkit.test\r\n"
        b"To: ann@smtpkit.test\r\n"
        b"Subject: raw dots\r\n"
        b"Message-ID: <raw-dots.1@smtpkit.test>\r\n"
        b"Date: Fri, 17 May 2024 09:30:00 +0000\r\n"
        b"\r\n" + b"\r\n".join(body_lines) + b"\r\n"
    )
    async with AsyncMailer(config("smtps")) as mailer:
        result = await mailer.send_raw(Envelope(APP, [ANN]), data)
    assert result.accepted == (ANN,)

    raw = await mta.wait_for(ANN, "<raw-dots.1@smtpkit.test>")
    assert crlf(raw).endswith(data)
    header_end = raw.index(b"\n\n") + 2
    assert raw[header_end:].split(b"\n")[:-1] == body_lines


async def test_idn_domain(mta: MTA, config: Callable[..., SMTPConfig]) -> None:
    """A recipient at bücher.test reaches the Postfix domain xn--bcher-kva.test."""
    message = rich_message(to=("Ann Bücher", "ann@bücher.test"), cc=())
    result = await send(config("submission"), message)
    assert result.accepted == (f"ann@{IDN_ASCII}",) or result.accepted == ("ann@bücher.test",)

    parsed = await mta.wait_for_parsed(f"ann@{IDN_ASCII}", message.message_id)
    assert parsed["Delivered-To"] == f"ann@{IDN_ASCII}"
    (to,) = parsed["To"].addresses
    assert to.display_name == "Ann Bücher"
    assert to.username == "ann"
    assert idna.decode(to.domain) == "bücher.test"
    assert text_of(parsed.get_body(("plain",))) == TEXT


async def test_smtputf8_local_part(mta: MTA, config: Callable[..., SMTPConfig]) -> None:
    """A non-ASCII local part needs SMTPUTF8, which Postfix offers; the UTF-8 headers arrive
    unchanged."""
    message = Message(
        sender=("Zoë", APP), to=("Jörg", "jörg@smtpkit.test"), subject="Grüße", text=TEXT
    )
    assert message.needs_smtputf8
    result = await send(config("submission"), message)
    assert result.accepted == ("jörg@smtpkit.test",)

    raw = await mta.wait_for("jörg@smtpkit.test", message.message_id)
    assert crlf(raw).endswith(message.to_bytes())
    # The bytes parser reads headers as ASCII; UTF-8 headers (RFC 6532) need the text parser.
    parsed = email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert "=?" not in raw.decode("utf-8").split("\n\n", 1)[0]  # raw UTF-8, no encoded words
    assert addresses(parsed, "To") == [("Jörg", "jörg@smtpkit.test")]
    assert parsed["Subject"] == "Grüße"
    # The 8-bit body is read from the bytes (the text parser would decode it twice).
    from_bytes = await mta.wait_for_parsed("jörg@smtpkit.test", message.message_id)
    assert text_of(from_bytes.get_body(("plain",))) == TEXT


async def test_bcc_and_several_recipients(mta: MTA, config: Callable[..., SMTPConfig]) -> None:
    message = Message(
        sender=APP, to=[ANN], cc=[BOB], bcc=[POSTMASTER], subject="Bcc check", text="hidden\n"
    )
    result = await send(config("smtps"), message)
    assert result.accepted == (ANN, BOB, POSTMASTER)

    copies = {box: await mta.wait_for(box, message.message_id) for box in (ANN, BOB, POSTMASTER)}
    for mailbox, raw in copies.items():
        assert crlf(raw).endswith(message.to_bytes())
        parsed = await mta.wait_for_parsed(mailbox, message.message_id)
        assert "Bcc" not in parsed
        assert POSTMASTER.encode() not in raw.split(b"\n\n", 1)[1]
        assert parsed["Delivered-To"] == mailbox


async def test_pooled_connections_carry_many_messages(
    mta: MTA, config: Callable[..., SMTPConfig]
) -> None:
    """send_many over the pool: every message delivered once, over few connections (several
    transactions per authenticated TLS session work against Postfix)."""
    start = len(mta.maillog())
    messages = [
        Message(sender=APP, to=BOB, subject=f"Batch {i}", text=f"message {i}\n") for i in range(12)
    ]
    async with AsyncMailer(config("submission")) as mailer:
        outcomes = await mailer.send_many(messages, concurrency=4)
    assert all(isinstance(outcome, SendResult) for outcome in outcomes), outcomes

    for i, message in enumerate(messages):
        parsed = await mta.wait_for_parsed(BOB, message.message_id)
        assert parsed["Subject"] == f"Batch {i}"
        assert text_of(parsed.get_body(("plain",))) == f"message {i}\n"
    queue_ids = {outcome.queue_id for outcome in outcomes if isinstance(outcome, SendResult)}
    assert len(queue_ids) == 12
    for queue_id in queue_ids:
        await mta.wait_for_log(f"{queue_id}: removed", start=start)
    log = mta.maillog()[start:]
    connects = len(re.findall(r"\]: connect from", log))
    assert 1 <= connects <= 4, log
