"""The web inbox in a real browser: headless Chromium driven by Playwright.

Needs ``/usr/bin/chromium`` (Debian package ``chromium``) and the ``playwright`` Python package;
Playwright's own browser download is never used. With ``SMTPKIT_INBOX_SCREENSHOT=PATH`` the
screenshot test also saves its picture there (how docs/img/inbox.png is made).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import Canary, Inbox, tiny_png

from smtpkit import Attachment, InlineImage, Message

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    try:
        yield opened
    finally:
        context.close()


def hostile_html(canary: Canary) -> str:
    url = canary.url
    return f"""<!doctype html>
<html><head><title>mail title</title>
<link rel="stylesheet" href="{url}/remote.css">
<style>@import url("{url}/import.css"); body {{ background: url("{url}/bg.png"); }}</style>
</head><body>
<h1 id="greeting">Hello from the test</h1>
<img id="logo" src="cid:logo" alt="logo">
<img id="remote" src="{url}/pixel.png" alt="remote">
<script>
document.title = "pwned";
document.body.setAttribute("data-pwned", "1");
fetch("{url}/script");
</script>
<img src="broken" onerror="fetch('{url}/onerror')" alt="">
<iframe src="{url}/frame"></iframe>
<form action="{url}/form"><input name="q"></form>
<a id="link" href="https://example.com/">a link</a>
</body></html>"""


def test_a_sent_message_appears_live_and_its_script_does_not_run(
    web: Inbox, page: Page, canary: Canary
) -> None:
    page.goto(web.web.url)
    sync_api.expect(page.locator("#live.on")).to_be_visible()  # the event stream is open
    assert page.locator(".messages li").count() == 0

    subject = 'Welcome <script>document.title="list-pwned"</script>'
    web.send(
        Message(
            sender="Shop <shop@example.com>",
            to=["customer@example.com"],
            subject=subject,
            text="Hello in text.",
            html=hostile_html(canary),
            inline=[InlineImage("logo", tiny_png(), "image/png")],
        )
    )
    # No reload: the list updates through Server-Sent Events.
    item = page.locator(".messages li a").first
    sync_api.expect(item.locator(".subject")).to_have_text(subject)
    assert page.title() == "smtpkit inbox"

    item.click()
    page.wait_for_url(re.compile(r"/messages/"))
    frame = page.frame_locator("iframe.html")
    sync_api.expect(frame.locator("#greeting")).to_have_text("Hello from the test")
    # The cid: image comes from this server and loads; remote resources do not.
    sync_api.expect(frame.locator("#logo")).to_have_js_property("complete", value=True)
    assert frame.locator("#logo").evaluate("img => img.naturalWidth") == 8
    assert frame.locator("#remote").evaluate("img => img.naturalWidth") == 0
    time.sleep(0.5)  # let anything that could still fire, fire

    assert frame.locator("body").get_attribute("data-pwned") is None
    html_frame = next(f for f in page.frames if f.url.endswith("/html"))
    assert html_frame.title() == "mail title"
    assert page.title().startswith("Welcome <script>")
    assert canary.requests == []
    # Links open outside the sandboxed frame.
    base_target = "a => a.ownerDocument.querySelector('base').target"
    assert frame.locator("#link").evaluate(base_target) == "_blank"


def test_text_headers_raw_tabs_and_attachment_download(web: Inbox, page: Page) -> None:
    mid = web.send(
        Message(
            sender="Billing <billing@example.com>",
            to=["customer@example.com"],
            subject="Invoice 42",
            text="Invoice 42 is attached.",
            attachments=[Attachment("invoice-42.pdf", b"%PDF-1.4 invoice", "application/pdf")],
        )
    )
    page.goto(f"{web.web.url}messages/{mid}")
    # No HTML part: the text is shown first.
    sync_api.expect(page.locator("pre.text")).to_contain_text("Invoice 42 is attached.")
    page.get_by_role("link", name="Headers").click()
    sync_api.expect(page.locator("table.headers")).to_contain_text("Invoice 42")
    page.get_by_role("link", name="Raw").click()
    sync_api.expect(page.locator("pre.raw")).to_contain_text("Content-Type: multipart/mixed")
    with page.expect_download() as info:
        page.get_by_role("link", name="invoice-42.pdf").click()
    download = info.value
    assert download.suggested_filename == "invoice-42.pdf"
    assert Path(download.path()).read_bytes() == b"%PDF-1.4 invoice"


def test_delete_one_and_delete_all_from_the_page(web: Inbox, page: Page) -> None:
    ids = [
        web.send(
            Message(sender="a@example.com", to=["b@example.com"], subject=f"Note {n}", text="x")
        )
        for n in range(3)
    ]
    page.goto(f"{web.web.url}messages/{ids[0]}")
    page.locator("section.view [data-delete]").click()
    page.wait_for_url(web.web.url)
    sync_api.expect(page.locator(".messages li")).to_have_count(2)
    assert {m.id for m in web.store.list()} == set(ids[1:])
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#delete-all").click()
    sync_api.expect(page.locator(".empty")).to_be_visible()
    assert web.store.list() == []


def test_screenshot_of_a_message(web: Inbox, page: Page, tmp_path: Path) -> None:
    for subject, sender in (
        ("Reset your password", "Accounts <accounts@example.com>"),
        ("Your order #1042 has shipped", "Shop <shop@example.com>"),
    ):
        web.send(Message(sender=sender, to=["ada@example.com"], subject=subject, text="..."))
    html = """<!doctype html><html><head><style>
body { font-family: Arial, sans-serif; background: #f4f5f7; margin: 0; padding: 24px; }
.card { background: #fff; max-width: 520px; margin: auto; border-radius: 8px; padding: 28px; }
h1 { font-size: 22px; color: #111827; margin: 12px 0; }
p { color: #374151; line-height: 1.5; }
.button { display: inline-block; background: #2563eb; color: #fff; padding: 10px 18px;
          border-radius: 6px; text-decoration: none; }
td { padding: 6px 0; color: #374151; } .right { text-align: right; }
</style></head><body><div class="card">
<img src="cid:logo" width="40" height="40" alt="Logo">
<h1>Thanks for your order, Ada!</h1>
<p>We received order <b>#1042</b>. Here is your receipt:</p>
<table width="100%"><tr><td>Mechanical keyboard</td><td class="right">€89.00</td></tr>
<tr><td>USB-C cable</td><td class="right">€9.00</td></tr>
<tr><td><b>Total</b></td><td class="right"><b>€98.00</b></td></tr></table>
<p><a class="button" href="https://shop.example.com/orders/1042">View your order</a></p>
<p style="font-size:12px;color:#6b7280">Questions? Reply to this email.</p>
</div></body></html>"""
    mid = web.send(
        Message(
            sender="Shop <shop@example.com>",
            to=["Ada Lovelace <ada@example.com>"],
            cc=["orders@example.com"],
            subject="Your receipt for order #1042",
            text="Thanks for your order, Ada! Total: €98.00",
            html=html,
            inline=[InlineImage("logo", tiny_png((37, 99, 235), 40), "image/png")],
            attachments=[Attachment("receipt-1042.pdf", b"%PDF-1.4 receipt", "application/pdf")],
        )
    )
    page.goto(f"{web.web.url}messages/{mid}")
    frame = page.frame_locator("iframe.html")
    sync_api.expect(frame.locator("h1")).to_have_text("Thanks for your order, Ada!")
    sync_api.expect(frame.locator("img")).to_have_js_property("complete", value=True)
    sync_api.expect(page.locator("#live.on")).to_be_visible()
    shot = tmp_path / "inbox.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")
    target = os.environ.get("SMTPKIT_INBOX_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)
