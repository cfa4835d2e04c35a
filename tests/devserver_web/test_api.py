"""The web inbox's JSON API and pages over HTTP, with mail sent through smtpkit over SMTP."""

from __future__ import annotations

import http.client
import json
import time

import pytest
from conftest import Inbox, tiny_png

from smtpkit import Attachment, InlineImage, Message

HOSTILE = '<script>alert("xss")</script>'


def receipt(n: int = 1, **fields: object) -> Message:
    values: dict[str, object] = {
        "sender": "Shop <shop@example.com>",
        "to": [f"customer{n}@example.com"],
        "cc": ["accounts@example.com"],
        "bcc": ["audit@example.com"],
        "subject": f"Receipt {n}",
        "text": f"Thanks for order {n}.",
        "html": f'<p>Thanks for order <b>{n}</b>.</p><img src="cid:logo" alt="logo">',
        "inline": [InlineImage("logo", tiny_png(), "image/png")],
        "attachments": [Attachment("receipt.pdf", b"%PDF-1.4 fake", "application/pdf")],
    }
    values.update(fields)
    return Message(**values)  # type: ignore[arg-type]


def test_the_list_shows_every_message_newest_first_with_its_summary(web: Inbox) -> None:
    first = web.send(receipt(1))
    second = web.send(receipt(2))
    listing = web.json("/api/messages")
    assert listing["count"] == 2
    assert [m["id"] for m in listing["messages"]] == [second, first]
    item = listing["messages"][1]
    assert item["from"] == "Shop <shop@example.com>"
    assert item["to"] == ["customer1@example.com", "accounts@example.com"]
    assert item["subject"] == "Receipt 1"
    assert item["size"] == len(web.store.raw(first)) > 0
    assert item["received_at"].endswith("+00:00")
    # The envelope comes from the SMTP session: Bcc recipients show there and only there.
    envelope = item["envelope"]
    assert envelope["mail_from"] == "shop@example.com"
    assert "audit@example.com" in envelope["rcpt_tos"]
    assert envelope["tls"] is True
    assert envelope["auth_login"] == "user"


def test_one_message_has_bodies_headers_attachments_and_inline_parts(web: Inbox) -> None:
    mid = web.send(receipt(7))
    detail = web.json(f"/api/messages/{mid}")
    assert detail["subject"] == "Receipt 7"
    assert detail["text"].strip() == "Thanks for order 7."
    assert "<b>7</b>" in detail["html"]
    headers = dict(detail["headers"])
    assert headers["Subject"] == "Receipt 7"
    assert "Bcc" not in headers
    (attachment,) = detail["attachments"]
    assert attachment["filename"] == "receipt.pdf"
    assert attachment["content_type"] == "application/pdf"
    (inline,) = detail["inline"]
    assert inline["content_id"].startswith("logo")

    download = web.fetch(attachment["url"])
    assert download.status == 200
    assert download.body == b"%PDF-1.4 fake"
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["Content-Disposition"].startswith('attachment; filename="receipt.pdf"')

    image = web.fetch(inline["url"])
    assert image.status == 200
    assert image.headers["Content-Type"] == "image/png"
    assert image.body == tiny_png()


def test_raw_source_is_the_stored_bytes_as_text_or_as_an_eml_download(web: Inbox) -> None:
    mid = web.send(receipt(3))
    raw = web.fetch(f"/api/messages/{mid}/raw")
    assert raw.status == 200
    assert raw.body == web.store.raw(mid)
    assert raw.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert raw.headers["X-Content-Type-Options"] == "nosniff"
    download = web.fetch(f"/api/messages/{mid}/raw?download=1")
    assert download.headers["Content-Disposition"].startswith(f'attachment; filename="{mid}.eml"')
    assert download.body == raw.body


def test_the_html_part_is_served_with_a_strict_content_security_policy(web: Inbox) -> None:
    mid = web.send(receipt(4, html=f"<p>Hi</p>{HOSTILE}<img src='cid:logo'>"))
    response = web.fetch(f"/api/messages/{mid}/html")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = response.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
    assert directives["default-src"] == ["'none'"]
    assert "script-src" not in directives  # falls back to default-src 'none'
    assert "http:" not in csp
    assert "https:" not in csp
    assert "*" not in csp
    assert "sandbox" in directives
    assert "allow-scripts" not in directives["sandbox"]
    # cid: references point at this server's inline parts.
    assert f"/api/messages/{mid}/parts/0" in response.text
    assert "cid:logo" not in response.text


def test_the_message_page_frames_the_html_part_without_allow_scripts(web: Inbox) -> None:
    mid = web.send(receipt(5))
    page = web.fetch(f"/messages/{mid}")
    assert page.status == 200
    assert '<iframe class="html"' in page.text
    sandbox = page.text.split('sandbox="', 1)[1].split('"', 1)[0]
    assert "allow-scripts" not in sandbox
    assert "allow-same-origin" not in sandbox
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    for view, marker in (
        ("text", "Thanks for order 5."),
        ("headers", "<th>Subject</th>"),
        ("raw", "Content-Type: multipart/"),
    ):
        assert marker in web.fetch(f"/messages/{mid}?view={view}").text, view


def test_hostile_subject_and_sender_are_escaped_everywhere_in_the_pages(web: Inbox) -> None:
    raw = (
        f"From: {HOSTILE} <evil@example.com>\r\n"
        "To: <img src=x onerror=alert(1)>@example.com\r\n"
        f"Subject: {HOSTILE}\r\n"
        "X-Evil: </td><script>alert(2)</script>\r\n"
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\n</pre><script>alert(3)</script>\r\n"
        "--b\r\nContent-Type: text/html\r\n"
        'Content-Disposition: attachment; filename="<b>x</b>.html"\r\n'
        "\r\n\r\n<script>alert(4)</script>\r\n--b--\r\n"
    ).encode()
    mid = web.send_raw(raw)
    pages = [
        web.fetch("/").text,
        web.fetch(f"/fragments/list?selected={mid}").text,
        *(web.fetch(f"/messages/{mid}?view={v}").text for v in ("text", "headers", "raw")),
    ]
    for page in pages:
        assert "<script>alert" not in page
        assert "<img src=x" not in page
        assert "</td><script>" not in page
    index = pages[0]
    assert "&lt;script&gt;alert(&quot;xss&quot;)&lt;/script&gt;" in index
    assert index.count("<script") == 1  # only the inbox's own /static/inbox.js
    # The file name is cut to its last path component ("b>.html") and escaped.
    assert ">b&gt;.html</a>" in pages[2]
    # The HTML attachment is a download of opaque bytes, never a page of this origin.
    attachment = web.fetch(f"/api/messages/{mid}/attachments/0")
    assert attachment.headers["Content-Type"] == "application/octet-stream"
    assert attachment.headers["Content-Disposition"].startswith('attachment; filename="b>.html"')
    assert "sandbox" in attachment.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/messages/..%2F..%2Fsecret/raw",
        "/api/messages/%2e%2e/raw",
        "/api/messages/../secret/raw",
        "/api/messages/..%2Fsecret",
        "/api/messages/.hidden/raw",
        "/api/messages/a%00b/raw",
        "/messages/..%2F..%2Fsecret",
        "/api/messages/%2Fetc%2Fpasswd/raw",
    ],
)
def test_ids_that_leave_the_directory_are_rejected(web: Inbox, path: str) -> None:
    secret = web.store.path.parent / "secret.eml"
    secret.write_bytes(b"Subject: top secret\r\n\r\nsecret body\r\n")
    (web.store.path / ".hidden.eml").write_bytes(b"Subject: hidden\r\n\r\nhidden body\r\n")
    response = web.fetch(path)
    assert response.status in (400, 404)
    assert b"secret body" not in response.body
    assert b"hidden body" not in response.body
    deleted = web.fetch(path.removesuffix("/raw"), method="DELETE")
    assert deleted.status in (400, 404, 405)
    assert secret.exists()


def test_a_symlink_in_the_directory_is_neither_listed_nor_read(web: Inbox) -> None:
    outside = web.store.path.parent / "outside.txt"
    outside.write_bytes(b"Subject: outside\r\n\r\nprivate\r\n")
    (web.store.path / "link.eml").symlink_to(outside)
    assert web.json("/api/messages")["count"] == 0
    assert web.fetch("/api/messages/link/raw").status == 404


def test_unknown_ids_and_parts_are_404_and_bad_numbers_400(web: Inbox) -> None:
    mid = web.send(receipt(1))
    assert web.fetch("/api/messages/20000101T000000-nope").status == 404
    assert web.fetch(f"/api/messages/{mid}/attachments/9").status == 404
    assert web.fetch(f"/api/messages/{mid}/attachments/-1").status == 400
    assert web.fetch("/messages/nope").status == 404
    body = web.json(f"/api/messages/{mid}")
    assert body["id"] == mid
    error = web.fetch("/api/messages/nope")
    assert json.loads(error.body) == {"error": "no such message", "status": 404}


def test_delete_one_then_all(web: Inbox) -> None:
    ids = [web.send(receipt(n)) for n in range(3)]
    response = web.fetch(f"/api/messages/{ids[1]}", method="DELETE")
    assert response.status == 200
    assert [m["id"] for m in web.json("/api/messages")["messages"]] == [ids[2], ids[0]]
    assert not list(web.store.path.glob(f"{ids[1]}.*"))  # the .eml and its envelope
    assert web.fetch(f"/api/messages/{ids[1]}", method="DELETE").status == 404
    cleared = web.fetch("/api/messages", method="DELETE")
    assert json.loads(cleared.body) == {"deleted": 2}
    assert web.json("/api/messages") == {"count": 0, "messages": []}
    assert list(web.store.path.iterdir()) == []


def test_requests_for_another_host_name_are_refused(web: Inbox) -> None:
    # A web page that rebinds its own name to 127.0.0.1 still sends its name as Host.
    web.send(receipt(1))
    refused = web.fetch("/api/messages", headers={"Host": f"evil.example:{web.web.port}"})
    assert refused.status == 421
    assert b"Receipt" not in refused.body
    for host in (f"localhost:{web.web.port}", f"127.0.0.1:{web.web.port}"):
        assert web.fetch("/api/messages", headers={"Host": host}).status == 200


def test_cross_origin_deletes_are_refused(web: Inbox) -> None:
    mid = web.send(receipt(1))
    refused = web.fetch(
        f"/api/messages/{mid}", method="DELETE", headers={"Origin": "http://evil.example"}
    )
    assert refused.status == 403
    assert web.json("/api/messages")["count"] == 1
    # A CORS preflight gets no Access-Control-Allow-* headers, so browsers stop there.
    preflight = web.fetch(f"/api/messages/{mid}", method="OPTIONS")
    assert preflight.status == 405
    assert "Access-Control-Allow-Origin" not in preflight.headers
    same = web.fetch(
        f"/api/messages/{mid}",
        method="DELETE",
        headers={"Origin": f"http://127.0.0.1:{web.web.port}"},
    )
    assert same.status == 200


def test_other_methods_are_refused(web: Inbox) -> None:
    assert web.fetch("/api/messages", method="POST").status == 405
    assert web.fetch("/api/messages", method="PUT").status == 405
    assert web.fetch("/nowhere").status == 404


def test_static_files_are_served_with_their_types(web: Inbox) -> None:
    js = web.fetch("/static/inbox.js")
    assert js.status == 200
    assert js.headers["Content-Type"].startswith("text/javascript")
    assert b"EventSource" in js.body
    assert web.fetch("/static/inbox.css").headers["Content-Type"].startswith("text/css")
    assert web.fetch("/static/../_inbox.py").status == 404


def _read_event(response: http.client.HTTPResponse) -> tuple[str, str]:
    event, data = "", ""
    while True:
        line = response.fp.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and event:
            return event, data


def test_the_event_stream_announces_new_and_deleted_messages(web: Inbox) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", web.web.port, timeout=10)
    try:
        connection.request("GET", "/api/events")
        response = connection.getresponse()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert _read_event(response)[0] == "hello"
        started = time.monotonic()
        mid = web.send(receipt(1))
        assert _read_event(response)[0] == "change"
        assert time.monotonic() - started < 3
        web.fetch(f"/api/messages/{mid}", method="DELETE")
        assert _read_event(response)[0] == "change"
    finally:
        connection.close()


def test_stop_ends_open_event_streams_and_is_idempotent(web: Inbox) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", web.web.port, timeout=10)
    try:
        connection.request("GET", "/api/events")
        response = connection.getresponse()
        assert _read_event(response)[0] == "hello"
        started = time.monotonic()
        web.web.stop()
        assert time.monotonic() - started < 3
        web.web.stop()
        assert response.fp.read() in (b"", b": keep-alive\n\n")
    finally:
        connection.close()
