"""MailDirectory, id checking and file-name cleaning, without any server."""

from __future__ import annotations

import html
import threading
import time
import unicodedata
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpkit.devserver._inbox import _list_fragment, safe_filename
from smtpkit.devserver._storage import (
    InvalidMessageId,
    MailDirectory,
    MessageNotFound,
    StoredMessage,
    check_id,
)


def mail(subject: str, sender: str = "a@example.com", to: str = "b@example.com") -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content("body")
    return message.as_bytes()


def test_add_list_get_raw_delete_clear(tmp_path: Path) -> None:
    store = MailDirectory(tmp_path / "new" / "dir")
    now = datetime.now(UTC)
    old = store.add(
        mail("old"),
        mail_from="a@example.com",
        rcpt_tos=["x@example.com"],
        received_at=now - timedelta(minutes=5),
    )
    new = store.add(mail("new"), received_at=now)
    assert [m.subject for m in store.list()] == ["new", "old"]
    summary = store.get(old)
    assert summary.sender == "a@example.com"
    assert summary.to == ("b@example.com",)
    assert summary.rcpt_tos == ("x@example.com",)
    assert summary.received_at == now - timedelta(minutes=5)
    assert store.raw(new) == mail("new")
    store.delete(old)
    with pytest.raises(MessageNotFound):
        store.get(old)
    with pytest.raises(MessageNotFound):
        store.delete(old)
    assert store.clear() == 1
    assert store.list() == []
    assert list(store.path.iterdir()) == []


def test_files_written_by_other_programs_are_listed_and_hidden_or_odd_names_are_not(
    tmp_path: Path,
) -> None:
    store = MailDirectory(tmp_path)
    (tmp_path / "plain.eml").write_bytes(mail("dropped in"))
    (tmp_path / ".tmp-writing.eml").write_bytes(mail("half written"))
    (tmp_path / "with space.eml").write_bytes(mail("odd name"))
    (tmp_path / "notes.txt").write_bytes(b"not mail")
    (tmp_path / "folder.eml").mkdir()
    assert [m.id for m in store.list()] == ["plain"]
    # No envelope file: the recipients come from the headers, the time from the file.
    assert store.get("plain").to == ("b@example.com",)


def test_broken_headers_do_not_break_the_list(tmp_path: Path) -> None:
    store = MailDirectory(tmp_path)
    store.add(b"From: =?bogus?q?x?=\r\nTo: ,,,@@\r\nSubject: =?utf-8?b?!!!?=\r\n\r\nbody")
    store.add(b"\xff\xfe not a header at all")
    assert len(store.list()) == 2


def test_summaries_are_cached_until_the_file_changes(tmp_path: Path) -> None:
    store = MailDirectory(tmp_path)
    mid = store.add(mail("first"))
    assert store.get(mid).subject == "first"
    (tmp_path / f"{mid}.eml").write_bytes(mail("second, longer subject"))
    assert store.get(mid).subject == "second, longer subject"


def test_wait_changed_wakes_on_add_and_on_files_from_elsewhere(tmp_path: Path) -> None:
    store = MailDirectory(tmp_path)
    version = store.version
    assert store.wait_changed(version, 0.05) == version
    threading.Timer(0.1, store.add, args=(mail("x"),)).start()
    started = time.monotonic()
    version = store.wait_changed(version, 5)
    assert time.monotonic() - started < 1
    (tmp_path / "external.eml").write_bytes(mail("y"))
    assert store.wait_changed(version, 5) != version


@pytest.mark.parametrize(
    "bad", ["", "..", "../x", "a/b", "a\\b", ".hidden", "a..b", "a\x00b", "x" * 201, "é"]
)
def test_check_id_rejects(bad: str) -> None:
    with pytest.raises(InvalidMessageId):
        check_id(bad)


@given(st.text(max_size=60))
def test_an_accepted_id_always_names_a_file_directly_inside_the_directory(text: str) -> None:
    base = Path("/srv/mail")
    try:
        mid = check_id(text)
    except InvalidMessageId:
        return
    target = (base / f"{mid}.eml").resolve()
    assert target.parent == base
    assert not target.name.startswith(".")


@given(st.text(max_size=300))
def test_safe_filename_has_no_path_control_or_bidi_characters(name: str) -> None:
    cleaned = safe_filename(name, "fallback")
    assert cleaned
    assert "/" not in cleaned
    assert "\\" not in cleaned
    assert not cleaned.startswith(".")
    assert len(cleaned) <= 150
    assert all(unicodedata.category(ch) not in ("Cc", "Cf") for ch in cleaned)


def test_safe_filename_examples() -> None:
    assert safe_filename("../../etc/passwd", "f") == "passwd"
    assert safe_filename("C:\\Users\\x\\report.pdf", "f") == "report.pdf"
    assert safe_filename("invoice\u202egpj.exe", "f") == "invoicegpj.exe"
    assert safe_filename("..", "f") == "f"
    assert safe_filename(None, "f") == "f"
    long = "a" * 300 + ".pdf"
    assert safe_filename(long, "f").endswith(".pdf")


@given(st.text(max_size=80), st.text(max_size=40), st.text(max_size=40))
def test_any_subject_sender_or_recipient_is_escaped_in_the_list(
    subject: str, sender: str, to: str
) -> None:
    summary = StoredMessage(
        id="20260101T000000-ABC",
        sender=sender,
        to=(to,),
        subject=subject,
        date="",
        received_at=datetime.now(UTC),
        size=1,
    )
    fragment = _list_fragment([summary], "")
    # The only markup is the inbox's own: every text node unescapes to the value given.
    for value in (subject, sender, to):
        if value:
            assert html.escape(value, quote=True) in fragment
    assert fragment.count("<") == _list_fragment([_PLAIN], "").count("<")


_PLAIN = StoredMessage(
    id="20260101T000000-ABC",
    sender="s",
    to=("t",),
    subject="x",
    date="",
    received_at=datetime.now(UTC),
    size=1,
)
