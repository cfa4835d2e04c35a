"""Envelope: MAIL FROM / RCPT TO, derived from a message or given."""

from __future__ import annotations

import pytest

from smtpkit._address import Address, Mailbox
from smtpkit._envelope import Envelope
from smtpkit._exceptions import InvalidAddress, InvalidHeader, NoRecipients
from smtpkit._message import Message


def addrs(env: Envelope) -> list[str]:
    return [r.for_smtp(smtputf8=True) for r in env.recipients]


def test_given_envelope_accepts_all_forms_and_dedupes() -> None:
    env = Envelope(
        "Bounces <bounces@example.org>",
        [
            "ann@example.com",
            Address.parse("ann@EXAMPLE.com"),
            Mailbox.parse("Bob <bob@example.com>"),
            "Ann@example.com",
        ],
    )
    assert env.sender == Address.parse("bounces@example.org")
    assert addrs(env) == ["ann@example.com", "bob@example.com", "Ann@example.com"]
    assert not env.needs_smtputf8


def test_single_string_is_one_recipient() -> None:
    assert addrs(Envelope("a@example.com", "b@example.com")) == ["b@example.com"]
    with pytest.raises(InvalidAddress, match="more than one address"):
        Envelope("a@example.com", "b@example.com, c@example.com")


def test_null_reverse_path() -> None:
    env = Envelope(None, ["postmaster@example.com"])
    assert env.sender is None


def test_no_recipients() -> None:
    with pytest.raises(NoRecipients, match="envelope: no recipients"):
        Envelope("a@example.com", [])


def test_errors_name_the_position() -> None:
    with pytest.raises(InvalidAddress, match=r"^envelope recipients\[1\]: "):
        Envelope("a@example.com", ["b@example.com", "b@example.com> NOTIFY=SUCCESS"])
    with pytest.raises(InvalidAddress, match=r"^envelope recipients\[0\]: expected str"):
        Envelope("a@example.com", [42])  # type: ignore[list-item]
    with pytest.raises(InvalidAddress, match=r"^envelope sender: "):
        Envelope("nobody", ["b@example.com"])
    with pytest.raises(InvalidHeader):
        Envelope("a@example.com\r\nRCPT TO:<x@example.org>", ["b@example.com"])


def test_from_message_uses_from_and_all_recipients() -> None:
    msg = Message(
        sender="Shop <shop@example.com>",
        to=["ann@example.com"],
        cc=["bob@example.com"],
        bcc=["secret@example.com", "ANN@example.com", "ann@Example.com"],
    )
    env = Envelope.from_message(msg)
    assert env.sender == Address.parse("shop@example.com")
    assert addrs(env) == [
        "ann@example.com",
        "bob@example.com",
        "secret@example.com",
        "ANN@example.com",
    ]
    assert b"secret@example.com" not in msg.to_bytes()


def test_from_message_uses_return_path() -> None:
    msg = Message(sender="shop@example.com", to="a@example.com", return_path="b+1@example.org")
    assert Envelope.from_message(msg).sender == Address.parse("b+1@example.org")


def test_from_message_without_recipients() -> None:
    with pytest.raises(NoRecipients, match="message: no recipients"):
        Envelope.from_message(Message(sender="shop@example.com"))


def test_needs_smtputf8() -> None:
    assert Envelope("jöhn@example.com", ["a@example.com"]).needs_smtputf8
    assert Envelope(None, ["zoë@example.com"]).needs_smtputf8
    assert not Envelope("a@bücher.example", ["b@bücher.example"]).needs_smtputf8
    msg = Message(sender="a@example.com", to=["zoë@example.com"])
    assert Envelope.from_message(msg).needs_smtputf8 == msg.needs_smtputf8 is True


def test_frozen_and_comparable() -> None:
    env = Envelope("a@example.com", ["b@example.com"])
    assert env == Envelope("a@EXAMPLE.com", ["b@example.com"])
    with pytest.raises(AttributeError):
        env.sender = None  # type: ignore[misc]
