"""Address and Mailbox: one strict validator, a strict ``Name <addr>`` splitter, no parseaddr."""

from __future__ import annotations

from typing import Any

import email_validator
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpkit._address import (
    MAX_ADDRESS_LENGTH,
    Address,
    Mailbox,
    mailbox_items,
    parse_mailboxes,
)
from smtpkit._exceptions import InvalidAddress, InvalidHeader, MessageError

# --------------------------------------------------------------------------- Address


def test_parse_keeps_local_case_and_lowercases_domain() -> None:
    a = Address.parse("Ann.Lee@Example.COM")
    assert (a.local, a.domain, a.ascii_domain) == ("Ann.Lee", "example.com", "example.com")
    assert str(a) == "Ann.Lee@example.com"
    assert a.for_smtp() == "Ann.Lee@example.com"
    assert not a.needs_smtputf8


def test_idn_domain_becomes_a_label_without_smtputf8() -> None:
    a = Address.parse("info@Bücher.example")
    assert a.domain == "bücher.example"
    assert a.ascii_domain == "xn--bcher-kva.example"
    assert a.for_smtp() == "info@xn--bcher-kva.example"
    assert a.for_smtp(smtputf8=True) == "info@bücher.example"
    assert not a.needs_smtputf8


def test_non_ascii_local_part_needs_smtputf8() -> None:
    a = Address.parse("jöhn@example.com")
    assert a.needs_smtputf8
    assert a.for_smtp(smtputf8=True) == "jöhn@example.com"
    with pytest.raises(InvalidAddress, match="SMTPUTF8"):
        a.for_smtp()


def test_key_merges_domain_case_but_not_local_case() -> None:
    assert Address.parse("ann@EXAMPLE.com").key == Address.parse("ann@example.com").key
    assert Address.parse("Ann@example.com").key != Address.parse("ann@example.com").key
    assert Address.parse("x@Bücher.example").key == Address.parse("x@xn--bcher-kva.example").key


@pytest.mark.parametrize(
    "text",
    [
        "a@example.com> NOTIFY=SUCCESS",
        "a@example.com, c@example.org",
        "a@example.com c@example.org",
        "x (c) <y@example.com>",
        "alice@example.com (comment) <bob@example.org>",
        "a@malicious.example@important.example",
        '"q"@example.com',
        '"xclow3n@gmail.com x"@internal.example',
        '"user"@example.com(x)evil.example',
        "a@[192.0.2.1]",
        "a@example.com\r\nRCPT TO:<evil@example.org>",
        "a@example.com\n",
        "user1@example.com>\r\nRCPT TO:<x@example.org>\r\nDATA",
        "-bi@example.com x",
        "a@",
        "@example.com",
        "",
        "a@example",
        "<a@example.com>",
        "Name <a@example.com>",
        "a@exam ple.com",
        "a@example.com\x00",
        "=?utf-8?q?evil?=@example.com",
    ],
)
def test_parse_refuses_ambiguous_and_injected_addresses(text: str) -> None:
    with pytest.raises(InvalidAddress):
        Address.parse(text)


def test_errors_name_the_field() -> None:
    with pytest.raises(InvalidAddress, match=r"^to\[2\]: 'nope' is not a valid address"):
        Address.parse("nope", field="to[2]")


def test_non_str_is_refused() -> None:
    with pytest.raises(InvalidAddress, match="expected an address as str"):
        Address.parse(b"a@example.com", field="to")  # type: ignore[arg-type]


def test_length_is_capped_before_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the validator ran on an over-long address")

    long = "a" * 100_000 + "@example.com"
    monkeypatch.setattr(email_validator, "validate_email", must_not_run)
    with pytest.raises(InvalidAddress, match=f"longer than {MAX_ADDRESS_LENGTH}"):
        Address.parse(long)
    monkeypatch.undo()
    with pytest.raises(InvalidAddress, match="longer than"):
        Address.parse("é" * 130 + "@example.com")  # 260 octets in UTF-8, 142 characters


def test_special_use_domains_refused_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(email_validator, "TEST_ENVIRONMENT", False)
    for text in ("a@x.test", "a@localhost", "a@host.invalid", "a@printer.local"):
        with pytest.raises(InvalidAddress, match=r"special-use|period"):
            Address.parse(text)
    assert Address.parse("a@example.com").domain == "example.com"


def test_test_environment_switch_allows_test_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(email_validator, "TEST_ENVIRONMENT", True)
    assert Address.parse("dev@app.test").domain == "app.test"


def test_check_deliverability_is_passed_to_the_validator(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    real = email_validator.validate_email

    def spy(text: str, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(text, **{**kwargs, "check_deliverability": False})

    monkeypatch.setattr(email_validator, "validate_email", spy)
    Address.parse("a@example.com")
    Address.parse("a@example.com", check_deliverability=True)
    assert [k["check_deliverability"] for k in seen] == [False, True]
    assert all(
        k["allow_quoted_local"] is False
        and k["allow_domain_literal"] is False
        and k["allow_display_name"] is False
        for k in seen
    )


def test_addresses_are_frozen_values() -> None:
    a = Address.parse("a@example.com")
    with pytest.raises(AttributeError):
        a.local = "b"  # type: ignore[misc]
    assert a == Address.parse("a@EXAMPLE.com")
    assert len({a, Address.parse("a@example.com")}) == 1


# --------------------------------------------------------------------------- Mailbox


@pytest.mark.parametrize(
    ("value", "name", "addr"),
    [
        ("a@example.com", None, "a@example.com"),
        ("  a@example.com ", None, "a@example.com"),
        ("Ann Lee <ann@example.com>", "Ann Lee", "ann@example.com"),
        ("J. Doe <j@example.com>", "J. Doe", "j@example.com"),
        ('"Doe, Jane" <jane@example.com>', "Doe, Jane", "jane@example.com"),
        ('"Say \\"hi\\" \\\\ bye" <a@example.com>', 'Say "hi" \\ bye', "a@example.com"),
        ("<ann@example.com>", None, "ann@example.com"),
        ('"" <ann@example.com>', None, "ann@example.com"),
        ("Zoë Ünïcode <zoe@example.com>", "Zoë Ünïcode", "zoe@example.com"),
        (("Doe, Jane", "jane@example.com"), "Doe, Jane", "jane@example.com"),
        ((None, "jane@example.com"), None, "jane@example.com"),
        (("(not a comment)", "jane@example.com"), "(not a comment)", "jane@example.com"),
    ],
)
def test_mailbox_forms(value: Any, name: str | None, addr: str) -> None:
    m = Mailbox.parse(value)
    assert m.name == name
    assert str(m.address) == addr


def test_mailbox_from_address_and_mailbox() -> None:
    a = Address.parse("a@example.com")
    assert Mailbox.parse(a) == Mailbox(a)
    m = Mailbox(a, "A")
    assert Mailbox.parse(m) is m
    assert Mailbox.parse(("A", a)) == m


@pytest.mark.parametrize(
    "text",
    [
        "x (c) <y@example.com>",
        "alice@example.com (comment) <bob@example.org>",
        "Doe, Jane <jane@example.com>",
        "Ann <ann@example.com> NOTIFY=SUCCESS",
        "Ann <ann@example.com>, Bob <bob@example.com>",
        "Ann <ann@example.com",
        "Ann ann@example.com>",
        "Ann <<ann@example.com>>",
        "a@example.com; b@example.com",
        '"Ann <ann@example.com>',
        '"Ann\\" <ann@example.com>',
        '"A" "B" <ann@example.com>',
        "Ann@home <ann@example.com>",
        "Ann: <ann@example.com>",
        "Ann <ann@example.com>\r\nBcc: x@example.org",
        "Ann <>",
        "Ann <a@b>",
    ],
)
def test_mailbox_refuses_everything_but_one_address(text: str) -> None:
    with pytest.raises(MessageError):
        Mailbox.parse(text)


def test_mailbox_refuses_ambiguous_forms_as_invalid_address() -> None:
    for text in ("x (c) <y@example.com>", "Doe, Jane <j@example.com>", "a@example.com, b@x.org"):
        with pytest.raises(InvalidAddress):
            Mailbox.parse(text, field="to[0]")


@pytest.mark.parametrize(
    "value",
    [
        ("Ann\r\nBcc: evil@example.org", "ann@example.com"),
        ("Ann\n", "ann@example.com"),
        ("Ann\x00", "ann@example.com"),
        ("Ann\tLee", "ann@example.com"),
        ("Ann\u2028", "ann@example.com"),
        ("Ann\x85", "ann@example.com"),
        ("Ann\x7f", "ann@example.com"),
        "Ann\x1b[31m <ann@example.com>",
        '"Ann\r\nX: y" <ann@example.com>',
    ],
)
def test_control_characters_in_names_are_invalid_header(value: Any) -> None:
    with pytest.raises(InvalidHeader, match=r"^to\[1\]( name)?: control character U\+"):
        Mailbox.parse(value, field="to[1]")


def test_name_length_is_limited() -> None:
    with pytest.raises(InvalidHeader, match="longer than the limit"):
        Mailbox.parse(("x" * 600, "a@example.com"))
    with pytest.raises(InvalidAddress, match="too long"):
        Mailbox.parse("x" * 5000 + " <a@example.com>")


def test_mailbox_wrong_type() -> None:
    with pytest.raises(InvalidAddress, match="expected an address"):
        Mailbox.parse(42, field="cc")  # type: ignore[arg-type]
    with pytest.raises(InvalidHeader, match="display name must be a str"):
        Mailbox.parse((42, "a@example.com"))  # type: ignore[arg-type]


def test_mailbox_str_quotes_when_needed() -> None:
    assert str(Mailbox.parse("Ann Lee <ann@example.com>")) == "Ann Lee <ann@example.com>"
    assert str(Mailbox.parse(("Doe, Jane", "j@example.com"))) == '"Doe, Jane" <j@example.com>'
    assert str(Mailbox.parse(("Zoë", "zoe@Bücher.example"))) == "Zoë <zoe@bücher.example>"
    assert str(Mailbox.parse(("J. Doe", "j@example.com"))) == '"J. Doe" <j@example.com>'
    assert str(Mailbox.parse("j@example.com")) == "j@example.com"


# --------------------------------------------------------------------------- lists


def test_parse_mailboxes_single_string_is_one_address() -> None:
    assert len(parse_mailboxes("a@example.com", field="to")) == 1
    with pytest.raises(InvalidAddress, match=r"^to: .*more than one address"):
        parse_mailboxes("a@example.com, b@example.com", field="to")


def test_parse_mailboxes_reports_position() -> None:
    with pytest.raises(InvalidAddress, match=r"^to\[2\]: "):
        parse_mailboxes(["a@example.com", "b@example.com", "c@"], field="to")


def test_parse_mailboxes_merges_duplicates_keeping_order_and_local_case() -> None:
    boxes = parse_mailboxes(
        ["ann@example.com", "Ann <ann@EXAMPLE.COM>", "Ann@example.com", "bob@example.com"],
        field="to",
    )
    assert [str(b.address) for b in boxes] == [
        "ann@example.com",
        "Ann@example.com",
        "bob@example.com",
    ]
    assert boxes[0].name is None  # the first occurrence wins


def test_parse_mailboxes_none_and_pairs() -> None:
    assert parse_mailboxes(None, field="cc") == ()
    assert parse_mailboxes(("Ann", "ann@example.com"), field="cc")[0].name == "Ann"
    two = parse_mailboxes(("a@example.com", "b@example.com"), field="cc")
    assert [str(b.address) for b in two] == ["a@example.com", "b@example.com"]
    assert len(mailbox_items(iter(["a@example.com", "b@example.com"]))) == 2
    with pytest.raises(InvalidAddress, match="expected an address or a list"):
        mailbox_items(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- properties

_NASTY = st.sampled_from(
    ["\r", "\n", "\r\n", "\x00", ",", ";", "<", ">", "@", '"', "\\", "(", ")", " ", ":",
     "é", "ü", "xn--", ".", "a", "example.com", "NOTIFY=SUCCESS", "\u2028", "\t", "[", "]"]
)  # fmt: skip
_TEXT = st.one_of(st.text(max_size=40), st.lists(_NASTY | st.text(max_size=5)).map("".join))


@given(_TEXT)
def test_address_parse_is_total_and_safe(text: str) -> None:
    """Any input: an Address whose SMTP form is a clean addr-spec, or InvalidAddress."""
    try:
        a = Address.parse(text)
    except InvalidAddress:
        return
    wire = a.for_smtp(smtputf8=True)
    assert wire.count("@") == 1
    assert not any(c in wire for c in ' \t\r\n\x00<>,;:()[]"\\')
    assert a.ascii_domain.isascii()


@given(st.one_of(_TEXT, st.builds(lambda a, b: f"{a} <{b}@example.com>", _TEXT, _TEXT)))
def test_mailbox_parse_is_total_and_safe(text: str) -> None:
    """Any input: exactly one Mailbox with a control-free name, or a typed error."""
    try:
        m = Mailbox.parse(text)
    except (InvalidAddress, InvalidHeader):
        return
    assert m.name is None or not any(ord(c) < 32 or c in "\x7f\u2028\u2029" for c in m.name)
    assert m.address.for_smtp(smtputf8=True).count("@") == 1
