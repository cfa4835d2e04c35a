"""smtpkit.contact: the hostile inputs a contact form gets, and what must come out of it.

Every submission ends in one of two ways: a typed smtpkit error before anything is sent, or a
message whose headers are exactly the expected set, with From and To the site's and the visitor
only in Reply-To (SECURITY-NOTES 1.2, 1.10, property 8).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser, Parser

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from smtpkit._exceptions import (
    ConfigError,
    ContactFormError,
    InvalidAddress,
    InvalidHeader,
    MessageError,
    RateLimited,
    SpamSubmission,
)
from smtpkit._message import Message
from smtpkit._sync import Mailer
from smtpkit.contact import ContactForm, ContactRateLimiter, InMemoryRateLimiter
from smtpkit.testing import smtp_server_factory

__all__ = ["smtp_server_factory"]

SITE = "Example Site <web@example.com>"
INBOX = ("support@example.com", "Sales <sales@example.com>")
EXPECTED_HEADERS = {
    "date",
    "from",
    "reply-to",
    "to",
    "subject",
    "message-id",
    "mime-version",
    "content-type",
}

HOSTILE = [
    "Eve\r\nBcc: victim@example.net",
    "Eve\nTo: victim@example.net",
    "Eve\rCc: victim@example.net",
    "eve@example.org\r\nBcc: victim@example.net",
    "eve@example.org>\r\nRCPT TO:<victim@example.net>",
    "a@example.com, b@example.net",
    "a@example.com; b@example.net",
    "Eve <eve@example.org>",
    '"Eve" <eve@example.org>',
    "eve@example.org\x00",
    "line\u2028separator",
    "next\x85line",
    "tab\there",
    "=?utf-8?q?Bcc=3A_victim=40example=2Enet?=",
    "Eve <victim@example.net>, Mallory <m@example.net>",
    "<script>alert(1)</script>",
    "\ud800",
    "",
    " ",
]


def _form(**overrides: object) -> ContactForm:
    fields: dict[str, object] = {"sender": SITE, "to": INBOX, "rate_limiter": None}
    fields.update(overrides)
    return ContactForm(**fields)  # type: ignore[arg-type]


def _parse(message: Message, *, headers: bool = False) -> EmailMessage:
    raw = message.to_bytes()
    if headers and not raw.isascii():
        # SMTPUTF8 messages carry UTF-8 headers, which the bytes parser leaves undecoded.
        parsed = Parser(policy=policy.default).parsestr(raw.decode("utf-8"), headersonly=True)
    else:
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _parts(message: Message) -> tuple[str, str]:
    parsed = _parse(message)
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None
    assert html is not None
    # Line ends as written on the wire (CRLF) are read back as "\n" for comparison.
    return (
        text.get_content().replace("\r\n", "\n"),  # type: ignore[attr-defined]
        html.get_content().replace("\r\n", "\n"),  # type: ignore[attr-defined]
    )


def _check_safe(message: Message, *, name: str, email: str, subject: str, body: str) -> None:
    """The invariants of every message build() returns, read back from its bytes."""
    parsed = _parse(message, headers=True)
    assert {key.lower() for key in parsed.keys()} == EXPECTED_HEADERS  # noqa: SIM118
    assert len(parsed.get_all("reply-to") or []) == 1
    assert [a.addr_spec for a in parsed["from"].addresses] == ["web@example.com"]
    assert [a.addr_spec for a in parsed["to"].addresses] == [
        "support@example.com",
        "sales@example.com",
    ]
    (visitor,) = parsed["reply-to"].addresses
    # The validated address, as email-validator normalised it (NFC, IDNA-mapped domain); the
    # domain is written as its A-label unless the message needs SMTPUTF8 anyway.
    address = message.reply_to[0].address
    assert visitor.addr_spec in {str(address), address.for_smtp(smtputf8=message.needs_smtputf8)}
    local = email.strip(" ").rpartition("@")[0]
    assert visitor.addr_spec.rpartition("@")[0] == unicodedata.normalize("NFC", local)
    # Compared without whitespace: CPython's address parser keeps the folding space between two
    # adjacent encoded-words of a display name, which RFC 2047 6.2 says a reader ignores.
    assert "".join(visitor.display_name.split()) == "".join(name.split())
    assert parsed["subject"] == "[Contact] " + (
        subject.strip(" ") or f"Message from {name.strip(' ') or '(no name given)'}"
    )
    # Only the site's addresses are recipients; the visitor is not one.
    assert {str(a) for a in message.recipients} == {"support@example.com", "sales@example.com"}
    assert message.bcc == ()
    assert message.cc == ()
    text, html = _parts(message)
    normalised = body.replace("\r\n", "\n").replace("\r", "\n")
    assert normalised in text
    # The HTML holds no markup of the visitor's: every '<' in it is one of ours.
    tags = set(re.findall(r"<(/?[a-zA-Z!]+)", html))
    assert tags <= {"!DOCTYPE", "html", "/html", "body", "/body", "p", "/p", "br"}


# --------------------------------------------------------------------------- the happy path


def test_build_fixes_from_and_to_and_puts_the_visitor_in_reply_to() -> None:
    message = _form().build(
        name="Ann Lee",
        email="ann@example.org",
        subject="Pricing",
        message="Hello,\nhow much is it?\n",
    )
    assert str(message.sender) == SITE
    assert [str(m) for m in message.to] == ["support@example.com", "Sales <sales@example.com>"]
    assert [str(m) for m in message.reply_to] == ["Ann Lee <ann@example.org>"]
    assert message.subject == "[Contact] Pricing"
    assert message.text is not None
    assert "Name: Ann Lee\nEmail: ann@example.org\nSubject: Pricing\n\nHello,\nhow much" in (
        message.text
    )
    _check_safe(
        message,
        name="Ann Lee",
        email="ann@example.org",
        subject="Pricing",
        body="Hello,\nhow much is it?",
    )


def test_empty_subject_and_name_get_a_default_subject() -> None:
    message = _form().build(name="", email="ann@example.org", message="hi")
    assert message.subject == "[Contact] Message from (no name given)"
    assert message.reply_to[0].name is None
    message = _form(subject_prefix="Web: ").build(name="Bo", email="bo@example.org", message="x")
    assert message.subject == "Web: Message from Bo"


def test_there_is_no_way_to_address_the_message_at_submission_time() -> None:
    form = _form()
    for forbidden in ("to", "cc", "bcc", "sender", "reply_to", "headers"):
        with pytest.raises(TypeError):
            form.build(name="x", email="x@example.org", message="x", **{forbidden: "a@example.net"})


# --------------------------------------------------------------------------- hostile inputs


@pytest.mark.parametrize("value", ["Eve\r\nBcc: v@example.net", "Eve\nX: y", "a\rb", "a\x00b"])
@pytest.mark.parametrize("where", ["name", "subject"])
def test_line_breaks_and_controls_in_name_or_subject_raise_invalid_header(
    where: str, value: str
) -> None:
    fields = {"name": "Ann", "email": "ann@example.org", "message": "hi", "subject": ""}
    fields[where] = value
    with pytest.raises(InvalidHeader, match=rf"^{where}: "):
        _form().build(**fields)


@pytest.mark.parametrize(
    "value",
    [
        "ann@example.org\r\nBcc: v@example.net",
        "ann@example.org\nBcc: v@example.net",
        "ann@example.org>\r\nRCPT TO:<v@example.net>",
        "ann@example.org\x00",
    ],
)
def test_line_breaks_in_the_email_field_raise_before_anything_is_built(value: str) -> None:
    with pytest.raises((InvalidHeader, InvalidAddress), match=r"^email: "):
        _form().build(name="Ann", email=value, message="hi")


@pytest.mark.parametrize(
    "value",
    [
        "a@x.com, b@y.com",
        "a@example.com;b@example.net",
        "a@example.com b@example.net",
        "Ann <ann@example.org>",
        "ann@example.org (comment)",
        '"a@b"@example.org',
        "ann@[127.0.0.1]",
        "-oQ/tmp/@example.org>",
        "",
        "not an address",
    ],
)
def test_the_email_field_is_exactly_one_plain_address(value: str) -> None:
    with pytest.raises(InvalidAddress, match=r"^email: "):
        _form().build(name="Ann", email=value, message="hi")


@pytest.mark.parametrize(
    "name",
    ["victim@example.net", "Eve <victim@example.net>", "a@b.example, c@d.example", '"x" <y@z>'],
)
def test_a_name_with_at_or_angle_brackets_stays_text(name: str) -> None:
    message = _form().build(name=name, email="eve@example.org", message="hi")
    assert message.reply_to[0].name == name
    assert [str(m.address) for m in message.reply_to] == ["eve@example.org"]
    assert "victim@example.net" not in {str(a) for a in message.recipients}
    _check_safe(message, name=name, email="eve@example.org", subject="", body="hi")


def test_html_and_script_are_literal_in_text_and_escaped_in_html() -> None:
    body = '<script>alert("x")</script>\n<a href="https://evil.example">click</a> & <b>bold</b>'
    message = _form().build(
        name="<img src=x onerror=alert(1)>", email="eve@example.org", message=body
    )
    text, html = _parts(message)
    assert body in text
    assert "<script" not in html
    assert "<a " not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;<br>" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&amp; &lt;b&gt;bold&lt;/b&gt;" in html


def test_message_line_breaks_of_any_style_are_kept() -> None:
    message = _form().build(name="A", email="a@example.org", message="one\r\ntwo\rthree\nfour")
    text, html = _parts(message)
    assert "one\ntwo\nthree\nfour" in text
    assert "one<br>\ntwo<br>\nthree<br>\nfour" in html


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x07", "\x7f", "\x85"])
def test_control_characters_in_the_message_are_refused(char: str) -> None:
    with pytest.raises(ContactFormError, match=r"^message: control character") as caught:
        _form().build(name="A", email="a@example.org", message=f"hi{char}there")
    assert caught.value.field == "message"


@pytest.mark.parametrize("body", ["", "   ", "\n\r\n\t"])
def test_an_empty_message_is_refused(body: str) -> None:
    with pytest.raises(ContactFormError, match=r"^message: ") as caught:
        _form().build(name="A", email="a@example.org", message=body)
    assert caught.value.field == "message"


@pytest.mark.parametrize(
    ("where", "limit"),
    [("name", 100), ("subject", 200), ("message", 10_000), ("email", 254)],
)
def test_over_long_fields_raise_contact_form_error_naming_the_field(where: str, limit: int) -> None:
    fields = {"name": "Ann", "email": "ann@example.org", "message": "hi", "subject": "s"}
    fields[where] = "a" * limit
    if where != "email":  # a 254-character run of 'a' is not an address
        _form().build(**fields)
    # One over the limit, with an injection attempt at the end that must never be looked at.
    fields[where] = "a" * limit + "\r\nBcc: v@example.net"
    with pytest.raises(ContactFormError, match=rf"^{where}: \d+ characters") as caught:
        _form().build(**fields)
    assert type(caught.value) is ContactFormError
    assert caught.value.field == where


def test_huge_bodies_are_refused_quickly_and_limits_are_configurable() -> None:
    huge = "x" * 50_000_000
    with pytest.raises(ContactFormError, match=r"^message: 50000000 characters"):
        _form().build(name="A", email="a@example.org", message=huge)
    form = _form(max_message_length=20, max_name_length=3, max_subject_length=4)
    form.build(name="Ann", email="a@example.org", message="x" * 20, subject="abcd")
    for field, value in (("message", "x" * 21), ("name", "Anna"), ("subject", "abcde")):
        fields = {"name": "Ann", "email": "a@example.org", "message": "x", "subject": ""}
        fields[field] = value
        with pytest.raises(ContactFormError, match=f"^{field}: "):
            form.build(**fields)


def test_length_limits_come_before_the_honeypot_and_other_checks() -> None:
    with pytest.raises(ContactFormError) as caught:
        _form().build(name="x" * 101, email="bad", message="hi", honeypot="bot")
    assert type(caught.value) is ContactFormError
    assert caught.value.field == "name"


def test_non_string_fields_are_contact_form_errors() -> None:
    with pytest.raises(ContactFormError, match=r"^email: expected a str") as caught:
        _form().build(name="A", email=["a@example.org", "b@example.org"], message="hi")  # type: ignore[arg-type]
    assert caught.value.field == "email"


# --------------------------------------------------------------------------- honeypot


def test_a_filled_honeypot_is_spam_and_is_not_counted() -> None:
    limiter = InMemoryRateLimiter(max_submissions=1)
    form = _form(rate_limiter=limiter)
    with pytest.raises(SpamSubmission) as caught:
        form.build(name="A", email="a@example.org", message="buy", honeypot="https://spam")
    assert isinstance(caught.value, ContactFormError)
    assert caught.value.field == "website"
    assert len(limiter) == 0
    # The honeypot beats every later check, so a bot learns nothing from the error.
    with pytest.raises(SpamSubmission):
        form.build(name="A\r\nB", email="junk", message="", honeypot="x")
    form.build(name="A", email="a@example.org", message="real", client_key="k")


def test_honeypot_field_name_is_configurable_and_checked() -> None:
    with pytest.raises(SpamSubmission, match=r"^fax: "):
        _form(honeypot_field="fax").build(name="A", email="a@e.example", message="x", honeypot="1")
    for bad in ("", "a b", "x\r\ny", "<input>"):
        with pytest.raises(ConfigError):
            _form(honeypot_field=bad)


def test_errors_can_be_swallowed_by_type() -> None:
    # SpamSubmission and RateLimited are MessageErrors (ValueErrors): nothing was sent.
    assert issubclass(SpamSubmission, ContactFormError)
    assert issubclass(RateLimited, ContactFormError)
    assert issubclass(ContactFormError, MessageError)
    assert issubclass(ContactFormError, ValueError)


# --------------------------------------------------------------------------- rate limiting


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_counts_per_key_and_the_window_slides() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(max_submissions=3, window=60.0, clock=clock)
    assert [limiter.allow("a") for _ in range(3)] == [True, True, True]
    assert limiter.allow("a") is False
    assert limiter.allow("b") is True  # another client has its own count
    clock.now += 30
    assert limiter.allow("a") is False
    clock.now += 29.9
    assert limiter.allow("a") is False  # the first three are 59.9 s old
    clock.now += 0.1
    assert limiter.allow("a") is True  # all three left the window at 60 s; one slot taken
    assert limiter.allow("a") is True
    assert limiter.allow("a") is True
    assert limiter.allow("a") is False


def test_refused_attempts_are_not_counted() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(max_submissions=1, window=10.0, clock=clock)
    assert limiter.allow("a")
    for _ in range(100):
        clock.now += 0.05
        assert not limiter.allow("a")
    clock.now = 1010.0
    assert limiter.allow("a")


def test_rate_limiter_memory_is_bounded_by_max_keys() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(max_submissions=1, window=3600.0, clock=clock, max_keys=3)
    for key in ("a", "b", "c"):
        assert limiter.allow(key)
    assert len(limiter) == 3
    assert not limiter.allow("a")  # "a" is now the most recently used
    assert limiter.allow("d")  # the table is full: "b", least recently used, is forgotten
    assert len(limiter) == 3
    assert not limiter.allow("a")
    assert not limiter.allow("c")
    assert not limiter.allow("d")
    assert limiter.allow("b")  # forgotten, so counted afresh
    for i in range(10_000):
        limiter.allow(f"flood-{i}")
    assert len(limiter) == 3


def test_rate_limiter_is_thread_safe() -> None:
    limiter = InMemoryRateLimiter(max_submissions=50, window=3600.0)
    allowed: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(100):
            ok = limiter.allow("shared")
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 50
    assert len(allowed) == 800


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_submissions": 0},
        {"max_submissions": 1.5},
        {"max_submissions": True},
        {"window": 0},
        {"window": -1.0},
        {"window": "60"},
        {"max_keys": 0},
    ],
)
def test_rate_limiter_settings_are_checked(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        InMemoryRateLimiter(**kwargs)  # type: ignore[arg-type]


def test_form_consults_the_limiter_per_client_key_after_validation() -> None:
    clock = FakeClock()
    form = _form(rate_limiter=InMemoryRateLimiter(max_submissions=2, window=60.0, clock=clock))
    good = {"name": "A", "email": "a@example.org", "message": "hi"}
    form.build(**good, client_key="192.0.2.1")
    # Invalid submissions are refused before the limiter and do not use up the quota.
    for _ in range(5):
        with pytest.raises(InvalidAddress):
            form.build(name="A", email="bad", message="hi", client_key="192.0.2.1")
    form.build(**good, client_key="192.0.2.1")
    with pytest.raises(RateLimited):
        form.build(**good, client_key="192.0.2.1")
    form.build(**good, client_key="192.0.2.2")
    clock.now += 61
    form.build(**good, client_key="192.0.2.1")


def test_without_a_client_key_all_anonymous_submissions_share_one_bucket() -> None:
    form = _form(rate_limiter=InMemoryRateLimiter(max_submissions=2))
    good = {"name": "A", "email": "a@example.org", "message": "hi"}
    form.build(**good)
    form.build(**good)
    with pytest.raises(RateLimited):
        form.build(**good)


def test_default_form_has_its_own_in_memory_limiter() -> None:
    one = ContactForm(sender=SITE, to=INBOX)
    two = ContactForm(sender=SITE, to=INBOX)
    assert isinstance(one.rate_limiter, InMemoryRateLimiter)
    assert one.rate_limiter is not two.rate_limiter
    assert one.rate_limiter.max_submissions == 5
    assert one.rate_limiter.window == 3600.0


def test_a_custom_rate_limiter_is_used() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.keys: list[str] = []

        def allow(self, key: str, /) -> bool:
            self.keys.append(key)
            return key != "blocked"

    recorder = Recorder()
    assert isinstance(recorder, ContactRateLimiter)
    form = _form(rate_limiter=recorder)
    form.build(name="A", email="a@example.org", message="hi", client_key="ok")
    with pytest.raises(RateLimited):
        form.build(name="A", email="a@example.org", message="hi", client_key="blocked")
    with pytest.raises(SpamSubmission):
        form.build(name="A", email="a@example.org", message="hi", honeypot="x", client_key="s")
    assert recorder.keys == ["ok", "blocked"]


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"sender": "not an address"}, InvalidAddress),
        ({"sender": "a@example.com\r\nBcc: x@example.net"}, InvalidHeader),
        ({"to": ()}, ConfigError),
        ({"to": ["ok@example.com", "bad"]}, InvalidAddress),
        ({"subject_prefix": "[x]\r\nBcc: v@example.net "}, InvalidHeader),
        ({"max_message_length": 0}, ConfigError),
        ({"max_name_length": -5}, ConfigError),
        ({"rate_limiter": object()}, ConfigError),
    ],
)
def test_configuration_mistakes_surface_when_the_form_is_made(
    overrides: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        _form(**overrides)


# --------------------------------------------------------------------------- properties

VALID_EMAILS = ["ann@example.org", "b.c+tag@example.com", "zoë@exämple.test", "X@EXAMPLE.NET"]
# Printable text (no control characters), so that a good share of examples builds a message.
_printable = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=150)
_hostile_text = st.one_of(
    _printable,
    st.text(max_size=150),
    st.sampled_from(HOSTILE),
    st.tuples(_printable, st.sampled_from(HOSTILE), _printable).map("".join),
)
_emails = st.one_of(
    st.sampled_from(VALID_EMAILS),
    _hostile_text,
    st.emails(),
    st.tuples(st.sampled_from(VALID_EMAILS), st.sampled_from(HOSTILE)).map("".join),
)


@given(name=_hostile_text, email=_emails, subject=_hostile_text, body=_hostile_text)
@example(name="Eve\r\nBcc: v@example.net", email="a@example.org", subject="", body="x")
@example(name="A", email="a@x.com, b@y.com", subject="", body="x")
@example(name="Eve <v@example.net>", email="eve@example.org", subject="=?utf-8?q?x?=", body="x")
@example(name="A", email="a@example.org", subject="hi\nBcc: v@example.net", body="x")
@example(name="A", email="a@example.org", subject="", body="x\r\n.\r\nMAIL FROM:<v@example.net>")
def test_any_submission_is_a_typed_error_or_a_safe_message(
    name: str, email: str, subject: str, body: str
) -> None:
    try:
        message = _form().build(name=name, email=email, subject=subject, message=body)
    except MessageError:  # typed, and raised before anything could be sent
        return
    _check_safe(message, name=name, email=email, subject=subject, body=body)


@pytest.mark.parametrize("where", ["name", "email", "subject", "message"])
@given(value=st.one_of(_hostile_text, _emails))
def test_one_hostile_field_is_a_typed_error_or_a_safe_message(where: str, value: str) -> None:
    fields = {"name": "Ann", "email": "ann@example.org", "subject": "Hi", "message": "Hello"}
    fields[where] = value
    try:
        message = _form().build(**fields)
    except MessageError:
        return
    body = fields.pop("message")
    _check_safe(message, body=body, **fields)


# --------------------------------------------------------------------------- end to end


def test_end_to_end_through_mailer_to_the_dev_server(smtp_server_factory) -> None:  # type: ignore[no-untyped-def]
    server = smtp_server_factory()
    form = ContactForm(sender="web@example.com", to="support@example.com")
    message = form.build(
        name="Eve <victim@example.net>",
        email="eve@example.org",
        subject="Question",
        message="<b>hi</b>\n.\nsecond line",
        client_key="192.0.2.10",
    )
    with Mailer(server.config()) as mailer:
        result = mailer.send(message)
    assert [str(r.address) for r in result.recipients] == ["support@example.com"]
    (captured,) = server.messages
    assert captured.mail_from == "web@example.com"
    assert captured.rcpt_tos == ("support@example.com",)
    assert captured.header("Reply-To") == '"Eve <victim@example.net>" <eve@example.org>'
    assert captured.header("From") == "web@example.com"
    assert captured.header("Bcc") is None
    assert captured.header("Cc") is None
    assert captured.subject == "[Contact] Question"
    assert captured.text is not None
    assert "<b>hi</b>\n.\nsecond line" in captured.text
    assert captured.html is not None
    assert "&lt;b&gt;hi&lt;/b&gt;<br>" in captured.html
