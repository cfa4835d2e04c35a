"""The Django-to-smtpkit message conversion: faithful, or an explicit fallback to Django's bytes."""

from __future__ import annotations

from email.mime.text import MIMEText
from typing import Any

import pytest

pytest.importorskip("django", reason="Django is not installed (smtpkit[django])")

from django.core.mail import EmailMessage, EmailMultiAlternatives

from smtpkit._exceptions import InvalidAddress
from smtpkit.contrib._django_convert import Unconvertible, convert

CLASSES = (EmailMultiAlternatives, EmailMessage)


def _convert(message: Any) -> Any:
    return convert(message, default_charset="utf-8", django_classes=CLASSES)


def _message(**kwargs: Any) -> EmailMultiAlternatives:
    fields: dict[str, Any] = {
        "subject": "Hi",
        "body": "Body",
        "from_email": "Site <site@example.com>",
        "to": ["ann@example.com"],
    }
    fields.update(kwargs)
    return EmailMultiAlternatives(**fields)


class _OwnMime(EmailMessage):
    def message(self) -> Any:
        return super().message()


def test_fields_map_one_to_one() -> None:
    message = _message(
        cc=["c@example.com"],
        bcc=["b@example.com"],
        reply_to=["r@example.com"],
        headers={
            "X-Campaign": "spring",
            "List-Unsubscribe": "<https://example.com/u/1>, <mailto:u@example.com>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Date": "Tue, 01 Jul 2025 10:00:00 +0000",
        },
    )
    message.attach_alternative("<p>Body</p>", "text/html")
    message.attach("data.bin", b"\x00\x01", "application/octet-stream")

    converted = _convert(message)

    assert str(converted.sender) == "Site <site@example.com>"
    assert [str(m.address) for m in converted.bcc] == ["b@example.com"]
    assert converted.text == "Body"
    assert converted.html == "<p>Body</p>"
    assert converted.headers == (("X-Campaign", "spring"),)
    assert converted.list_unsubscribe == ("https://example.com/u/1", "mailto:u@example.com")
    assert converted.list_unsubscribe_post is True
    assert converted.date.year == 2025
    assert [(a.filename, a.data) for a in converted.attachments] == [("data.bin", b"\x00\x01")]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda m: setattr(m, "encoding", "iso-8859-1"), "charset"),
        (lambda m: m.attach_alternative("# md", "text/markdown"), "text/markdown"),
        (lambda m: m.extra_headers.update({"From": "other@example.com"}), "From header"),
        (lambda m: m.extra_headers.update({"To": "undisclosed-recipients:;"}), "To header"),
        (lambda m: m.extra_headers.update({"X-Priority": "1"}), "X-Priority header"),
        (lambda m: m.extra_headers.update({"Date": "yesterday"}), "Date"),
        (lambda m: m.attach("notes.txt", "café", "text/plain"), "non-ASCII text"),
        (lambda m: m.attach(MIMEText("inline body")), "without an attachment file name"),
        (lambda m: m.attach("fwd.eml", "Subject: x\n\nbody", "message/rfc822"), "message/rfc822"),
        (lambda m: setattr(m, "mixed_subtype", "related"), "mixed_subtype"),
    ],
)
def test_what_smtpkit_cannot_express_is_unconvertible(change: Any, reason: str) -> None:
    message = _message()
    change(message)
    with pytest.raises(Unconvertible, match=reason):
        _convert(message)


def test_a_subclass_that_builds_its_own_mime_is_left_to_django() -> None:
    message = _OwnMime("s", "b", "site@example.com", ["a@example.com"])
    with pytest.raises(Unconvertible, match="overrides message"):
        _convert(message)


def test_invalid_content_is_an_error_not_a_fallback() -> None:
    with pytest.raises(InvalidAddress):
        _convert(_message(to=["not an address"]))
