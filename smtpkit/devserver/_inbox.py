"""The web inbox of ``smtpkit serve``: an HTTP server with HTML pages and a JSON API.

:class:`InboxServer` shows the messages of a :class:`~smtpkit.devserver._storage.MailDirectory`
in a browser. It runs the standard library's ``ThreadingHTTPServer`` in a thread and needs no
other package.

Every message is hostile input, so:

* every value written into a page is HTML-escaped, and the pages' Content-Security-Policy
  allows only the inbox's own script and stylesheet (no inline script);
* a mail's HTML part is served by its own URL with a CSP that blocks scripts and every remote
  request (images, CSS, fonts, frames, forms) and sandboxes the document, and the page shows
  it in an ``<iframe sandbox>`` without ``allow-scripts``; inline ``cid:`` images are rewritten
  to this server's URLs so they still show;
* attachments are always downloads (``Content-Disposition: attachment``, a cleaned file name);
* message ids in URLs are checked against a strict pattern, so no path leaves the directory;
* requests whose ``Host`` is not this server are refused (a web page cannot read the inbox by
  DNS rebinding), and so are cross-origin deletes.

>>> with InboxServer(MailDirectory(path)) as inbox:      # doctest: +SKIP
...     print(inbox.url)
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import re
import socket
import socketserver
import threading
import unicodedata
from collections.abc import Iterable
from email.message import EmailMessage
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, quote, unquote, urlsplit

from smtpkit.devserver._storage import (
    InvalidMessageId,
    MailDirectory,
    MessageNotFound,
    StoredMessage,
    check_id,
)

__all__ = ["HTML_PART_CSP", "PAGE_CSP", "InboxServer", "safe_filename"]

log = logging.getLogger("smtpkit.devserver.inbox")

#: The policy of the inbox pages: only the inbox's own files, no inline script.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
#: The policy of a mail's HTML part: no script, nothing remote; inline styles and images from
#: the message itself (``data:`` URLs and the rewritten ``cid:`` parts) only.
HTML_PART_CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; font-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox"
)
# Downloads and raw parts: never rendered as a document of this origin.
_DOWNLOAD_CSP = "default-src 'none'; sandbox"
_IFRAME_SANDBOX = "allow-popups allow-popups-to-escape-sandbox"
_VIEWS = ("html", "text", "headers", "raw")
_LIST_LIMIT = 500
_RAW_VIEW_LIMIT = 2 * 1024 * 1024
_SSE_KEEPALIVE = 15.0
_STATIC = {
    "inbox.css": "text/css; charset=utf-8",
    "inbox.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_CID = re.compile(r"""cid:([^\s"'<>()]+)""", re.IGNORECASE)
_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
_DOCTYPE = re.compile(r"\A\s*<!doctype[^>]*>", re.IGNORECASE)
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - names, not a bind


def _e(value: object) -> str:
    """HTML-escape any value for text and (double-quoted) attribute positions."""
    return html.escape(str(value), quote=True)


def safe_filename(name: str | None, fallback: str) -> str:
    """A file name safe to offer as a download: no path, no control or bidi characters.

    Keeps only the last path component, drops C0/C1 controls and format characters (bidi
    overrides like U+202E), leading dots and surrounding spaces, and caps the length.
    Returns ``fallback`` when nothing is left.
    """
    if not name:
        return fallback
    base = re.split(r"[/\\]", name)[-1]
    cleaned = "".join(ch for ch in base if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"))
    cleaned = cleaned.strip().lstrip(".").strip()
    if len(cleaned) > 150:
        stem, dot, suffix = cleaned.rpartition(".")
        cleaned = (stem[: 140 - len(suffix)] + dot + suffix) if dot and len(suffix) < 10 else ""
        cleaned = cleaned or base[:150]
    return cleaned or fallback


def _content_disposition(filename: str) -> str:
    ascii_name = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} kB"
    return f"{size / 1024 / 1024:.1f} MB"


def _decoded_text(part: EmailMessage) -> str:
    # get_content() raises LookupError for an unknown charset; show the bytes as UTF-8 then.
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):
        content = None
    if isinstance(content, str):
        return content.replace("\r\n", "\n")
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def _body(parsed: EmailMessage, subtype: str) -> str | None:
    try:
        part = parsed.get_body(preferencelist=(subtype,))
    except Exception:  # a broken MIME structure has no usable body
        return None
    if not isinstance(part, EmailMessage) or part.get_content_type() != f"text/{subtype}":
        return None
    return _decoded_text(part)


def _part_bytes(part: EmailMessage) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], EmailMessage):
            return inner[0].as_bytes()
    return b""


def _content_id(part: EmailMessage) -> str | None:
    value = part.get("Content-ID")
    if value is None:
        return None
    return str(value).strip().strip("<>").strip() or None


class _Parts:
    """The downloadable pieces of one parsed message."""

    def __init__(self, parsed: EmailMessage) -> None:
        try:
            self.attachments = [p for p in parsed.iter_attachments() if isinstance(p, EmailMessage)]
        except Exception:  # iter_attachments raises on some broken structures
            self.attachments = []
        # Parts that an HTML body can name with cid: (inline images, mostly).
        self.inline = [
            p
            for p in parsed.walk()
            if isinstance(p, EmailMessage) and not p.is_multipart() and _content_id(p)
        ]

    def cid_map(self) -> dict[str, int]:
        """Content-ID (without angle brackets) -> index in :attr:`inline`."""
        found: dict[str, int] = {}
        for index, part in enumerate(self.inline):
            cid = _content_id(part)
            if cid is not None:
                found.setdefault(cid, index)
        return found


def _prepare_html(body: str, message_id: str, parts: _Parts) -> str:
    """Rewrite ``cid:`` URLs to this server and make links open outside the frame."""
    cids = parts.cid_map()

    def replace(match: re.Match[str]) -> str:
        index = cids.get(unquote(match.group(1)))
        if index is None:
            return match.group(0)
        return f"/api/messages/{message_id}/parts/{index}"

    body = _CID.sub(replace, body)
    # Links cannot navigate the sandboxed frame (the page's CSP allows only its own frames):
    # send them to a new tab (allow-popups) instead.
    base = '<base target="_blank">'
    head = _HEAD.search(body)
    if head is not None:
        return body[: head.end()] + base + body[head.end() :]
    doctype = _DOCTYPE.search(body)
    if doctype is not None:
        return body[: doctype.end()] + base + body[doctype.end() :]
    return base + body


def _headers(parsed: EmailMessage) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for name in parsed:
        # Decoded values when they parse; the raw value when the header is broken.
        for value in parsed.get_all(name) or []:
            try:
                found.append((name, str(value)))
            except Exception:
                found.append((name, repr(value)))
    return found


# -- pages ---------------------------------------------------------------------------------------
def _page(title: str, body: str, *, selected: str = "", smtp: str = "") -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
        '<link rel="stylesheet" href="/static/inbox.css">'
        '<script src="/static/inbox.js" defer></script>'
        f'</head><body data-selected="{_e(selected)}">'
        '<header class="bar"><a class="brand" href="/">smtpkit inbox</a>'
        '<span class="badge" title="Do not expose this server">development only</span>'
        f'<span class="smtp">{_e(smtp)}</span>'
        '<span class="spacer"></span>'
        '<span class="live" id="live" title="Live updates">●</span>'
        '<button type="button" class="danger" id="delete-all">Delete all</button>'
        f"</header>{body}</body></html>\n"
    )


def _short_sender(sender: str) -> str:
    # The list has room for a name: "Shop <shop@example.com>" shows as "Shop".
    name, _, rest = sender.rpartition(" <")
    return name.strip().strip('"') if name.strip() and rest.endswith(">") else sender


def _list_fragment(messages: list[StoredMessage], selected: str) -> str:
    if not messages:
        return (
            '<p class="empty">No messages yet. Send mail to the SMTP server and it shows up '
            "here.</p>"
        )
    rows: list[str] = []
    for message in messages[:_LIST_LIMIT]:
        current = ' class="selected" aria-current="true"' if message.id == selected else ""
        sender = message.sender or message.mail_from or "(no sender)"
        rows.append(
            f'<li{current}><a href="/messages/{_e(message.id)}" data-id="{_e(message.id)}">'
            f'<span class="from" title="{_e(sender)}">{_e(_short_sender(sender))}</span>'
            f'<time datetime="{_e(message.received_at.isoformat())}">'
            f"{_e(message.received_at.strftime('%Y-%m-%d %H:%M:%S'))}</time>"
            f'<span class="subject">{_e(message.subject or "(no subject)")}</span>'
            f'<span class="to">To: {_e(", ".join(message.to) or "(none)")}</span>'
            f'<span class="size">{_e(_size(message.size))}</span>'
            "</a></li>"
        )
    more = ""
    if len(messages) > _LIST_LIMIT:
        more = f'<p class="more">Showing the newest {_LIST_LIMIT} of {len(messages)}.</p>'
    return f'<ul class="messages">{"".join(rows)}</ul>{more}'


def _list_section(messages: list[StoredMessage], selected: str) -> str:
    count = f"{len(messages)} message{'s' if len(messages) != 1 else ''}"
    return (
        '<nav class="list" aria-label="Messages">'
        f'<div class="list-head"><span id="count">{_e(count)}</span></div>'
        f'<div id="list">{_list_fragment(messages, selected)}</div></nav>'
    )


def _meta_row(label: str, value: str) -> str:
    return f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>" if value else ""


def _message_section(
    summary: StoredMessage, parsed: EmailMessage, raw: bytes, view: str, parts: _Parts
) -> str:
    mid = summary.id
    text = _body(parsed, "plain")
    has_html = _body(parsed, "html") is not None
    if view not in _VIEWS:
        view = "html" if has_html else "text"
    cc = ", ".join(_header_addresses(parsed, "Cc"))
    envelope = ""
    if summary.mail_from is not None or summary.rcpt_tos:
        details = [f"MAIL FROM <{summary.mail_from or ''}>"]
        details.append("RCPT TO " + ", ".join(f"<{r}>" for r in summary.rcpt_tos))
        if summary.tls is not None:
            details.append("TLS" if summary.tls else "no TLS")
        if summary.auth_login:
            details.append(f"AUTH {summary.auth_login}")
        envelope = " · ".join(details)
    meta = "".join(
        (
            _meta_row("From", summary.sender),
            _meta_row("To", ", ".join(_header_addresses(parsed, "To"))),
            _meta_row("Cc", cc),
            _meta_row("Reply-To", ", ".join(_header_addresses(parsed, "Reply-To"))),
            _meta_row("Date", summary.date),
            _meta_row("Received", summary.received_at.strftime("%Y-%m-%d %H:%M:%S %Z")),
            _meta_row("Envelope", envelope),
            _meta_row("Size", _size(summary.size)),
        )
    )
    attachments = ""
    if parts.attachments:
        items = []
        for index, part in enumerate(parts.attachments):
            name = safe_filename(part.get_filename(), f"attachment-{index + 1}")
            items.append(
                f'<li><a href="/api/messages/{_e(mid)}/attachments/{index}" download>'
                f"{_e(name)}</a> <span>{_e(part.get_content_type())}, "
                f"{_e(_size(len(_part_bytes(part))))}</span></li>"
            )
        attachments = f'<ul class="attachments" aria-label="Attachments">{"".join(items)}</ul>'
    tabs = []
    for name, label in (("html", "HTML"), ("text", "Text"), ("headers", "Headers"), ("raw", "Raw")):
        if (name == "html" and not has_html) or (name == "text" and text is None):
            tabs.append(f'<span class="tab disabled">{label}</span>')
            continue
        active = ' class="tab active" aria-current="page"' if name == view else ' class="tab"'
        tabs.append(f'<a{active} href="/messages/{_e(mid)}?view={name}">{label}</a>')
    if view == "html" and has_html:
        pane = (
            f'<iframe class="html" title="HTML part" sandbox="{_IFRAME_SANDBOX}" '
            f'referrerpolicy="no-referrer" src="/api/messages/{_e(mid)}/html"></iframe>'
        )
    elif view == "headers":
        rows = "".join(
            f"<tr><th>{_e(name)}</th><td>{_e(value)}</td></tr>" for name, value in _headers(parsed)
        )
        pane = f'<div class="scroll"><table class="headers">{rows}</table></div>'
    elif view == "raw":
        shown = raw[:_RAW_VIEW_LIMIT].decode("utf-8", "replace")
        cut = "" if len(raw) <= _RAW_VIEW_LIMIT else "\n[… cut; download the .eml for the rest]"
        pane = f'<pre class="raw">{_e(shown + cut)}</pre>'
    elif text is not None:
        pane = f'<pre class="text">{_e(text)}</pre>'
    else:
        pane = '<p class="empty">This message has no text part.</p>'
    return (
        f'<section class="view" aria-label="Message" data-id="{_e(mid)}">'
        f'<div class="message-head"><h2>{_e(summary.subject or "(no subject)")}</h2>'
        '<div class="actions">'
        f'<a class="button" href="/api/messages/{_e(mid)}/raw?download=1">Download .eml</a>'
        f'<button type="button" class="danger" data-delete="{_e(mid)}">Delete</button></div>'
        f'</div><dl class="meta">{meta}</dl>{attachments}'
        f'<nav class="tabs">{"".join(tabs)}</nav><div class="pane">{pane}</div></section>'
    )


def _header_addresses(parsed: EmailMessage, name: str) -> list[str]:
    try:
        values = parsed.get_all(name) or []
    except Exception:  # a malformed header counts as absent
        return []
    return [str(v) for v in values]


def _empty_view(text: str) -> str:
    return f'<section class="view placeholder"><p>{_e(text)}</p></section>'


# -- HTTP --------------------------------------------------------------------------------------
class _Reply(Exception):
    """Raised inside a handler to answer with an error status and a message."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its inbox and tracks its open connections."""

    daemon_threads = True
    inbox: InboxServer

    def __init__(self, address: tuple[str, int], inbox: InboxServer) -> None:
        self.inbox = inbox
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the address (slow without DNS)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _Handler(BaseHTTPRequestHandler):
    """One request of the inbox (HTTP/1.0: one request per connection)."""

    server: _HTTPServer
    server_version = "smtpkit-inbox"
    sys_version = ""
    # A connection that sends nothing (a browser's pre-connect) must not hold a thread forever.
    timeout = 30.0

    def setup(self) -> None:
        super().setup()
        self.server.inbox._track(self.connection, threading.current_thread(), add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.inbox._track(self.connection, threading.current_thread(), add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Log requests at debug level instead of printing them to stderr."""
        log.debug("%s %s", self.address_string(), format % args)

    # -- dispatch ------------------------------------------------------------------------------
    def do_GET(self) -> None:
        """Pages, static files and the read side of the API."""
        self._dispatch("GET")

    def do_DELETE(self) -> None:
        """Delete one message or all of them."""
        self._dispatch("DELETE")

    def do_POST(self) -> None:
        """Not supported: answer 405."""
        self._dispatch("POST")

    def do_PUT(self) -> None:
        """Not supported: answer 405."""
        self._dispatch("PUT")

    def do_OPTIONS(self) -> None:
        """No CORS: a cross-origin preflight gets 405 and the browser stops there."""
        self._dispatch("OPTIONS")

    def _dispatch(self, method: str) -> None:
        inbox = self.server.inbox
        split = urlsplit(self.path)
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        api = bool(segments) and segments[0] == "api"
        try:
            if not inbox._host_allowed(self.headers.get("Host")):
                raise _Reply(HTTPStatus.MISDIRECTED_REQUEST, "unknown Host for this inbox")
            if method == "DELETE" and not inbox._origin_allowed(self.headers.get("Origin")):
                raise _Reply(HTTPStatus.FORBIDDEN, "cross-origin request refused")
            self._route(method, segments, query)
        except _Reply as reply:
            self._error(reply.status, reply.message, api=api)
        except InvalidMessageId as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc), api=api)
        except MessageNotFound:
            self._error(HTTPStatus.NOT_FOUND, "no such message", api=api)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:
            log.exception("inbox request failed: %s %s", method, self.path)
            with contextlib.suppress(OSError):
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", api=api)

    def _route(self, method: str, segments: list[str], query: dict[str, str]) -> None:
        inbox = self.server.inbox
        store = inbox.store
        match segments:
            case [""] | ["messages", ""] if method == "GET":
                self._html(inbox._index_page())
            case ["messages", mid] if method == "GET":
                self._html(inbox._message_page(check_id(mid), query.get("view", "")))
            case ["fragments", "list"] if method == "GET":
                selected = query.get("selected", "")
                messages = store.list()
                body = _list_fragment(messages, selected)
                self._send(
                    HTTPStatus.OK,
                    body.encode(),
                    "text/html; charset=utf-8",
                    {"X-Message-Count": str(len(messages))},
                )
            case ["static", name] if method == "GET" and name in _STATIC:
                data = resources.files("smtpkit.devserver").joinpath("inbox_static", name)
                self._send(HTTPStatus.OK, data.read_bytes(), _STATIC[name])
            case ["api", "messages"] if method == "GET":
                messages = store.list()
                self._json({"count": len(messages), "messages": [m.to_json() for m in messages]})
            case ["api", "messages"] if method == "DELETE":
                self._json({"deleted": store.clear()})
            case ["api", "messages", mid] if method == "GET":
                self._json(inbox._message_json(check_id(mid)))
            case ["api", "messages", mid] if method == "DELETE":
                store.delete(check_id(mid))
                self._json({"deleted": 1})
            case ["api", "messages", mid, "raw"] if method == "GET":
                mid = check_id(mid)
                raw = store.raw(mid)
                extra = {"Content-Security-Policy": _DOWNLOAD_CSP}
                if query.get("download"):
                    extra["Content-Disposition"] = _content_disposition(f"{mid}.eml")
                    self._send(HTTPStatus.OK, raw, "message/rfc822", extra)
                else:
                    self._send(HTTPStatus.OK, raw, "text/plain; charset=utf-8", extra)
            case ["api", "messages", mid, "html"] if method == "GET":
                self._send_html_part(check_id(mid))
            case ["api", "messages", mid, "text"] if method == "GET":
                text = _body(store.parsed(check_id(mid)), "plain")
                if text is None:
                    raise _Reply(HTTPStatus.NOT_FOUND, "this message has no text part")
                extra = {"Content-Security-Policy": _DOWNLOAD_CSP}
                self._send(HTTPStatus.OK, text.encode(), "text/plain; charset=utf-8", extra)
            case ["api", "messages", mid, "attachments", number] if method == "GET":
                self._send_part(check_id(mid), number, inline=False)
            case ["api", "messages", mid, "parts", number] if method == "GET":
                self._send_part(check_id(mid), number, inline=True)
            case ["api", "events"] if method == "GET":
                self._events()
            case _ if method not in ("GET", "DELETE"):
                raise _Reply(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed")
            case _:
                raise _Reply(HTTPStatus.NOT_FOUND, "not found")

    # -- responses -----------------------------------------------------------------------------
    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        headers = {
            "Content-Type": content_type,
            "Content-Length": str(len(body)),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cross-Origin-Resource-Policy": "same-origin",
        }
        headers.update(extra or {})
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            headers["Allow"] = "GET, DELETE"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _html(self, page: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        extra = {"Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY"}
        self._send(status, page.encode(), "text/html; charset=utf-8", extra)

    def _json(self, value: object, status: HTTPStatus = HTTPStatus.OK) -> None:
        body = json.dumps(value, ensure_ascii=False, indent=1).encode()
        self._send(status, body, "application/json; charset=utf-8")

    def _error(self, status: HTTPStatus, message: str, *, api: bool) -> None:
        if api:
            self._json({"error": message, "status": int(status)}, status)
            return
        inbox = self.server.inbox
        body = _list_section(inbox.store.list(), "") + _empty_view(f"{int(status)}: {message}")
        page = _page("smtpkit inbox", f"<main>{body}</main>", smtp=inbox.smtp_info)
        self._html(page, status)

    def _send_html_part(self, message_id: str) -> None:
        parsed = self.server.inbox.store.parsed(message_id)
        body = _body(parsed, "html")
        if body is None:
            raise _Reply(HTTPStatus.NOT_FOUND, "this message has no HTML part")
        page = _prepare_html(body, message_id, _Parts(parsed))
        extra = {
            "Content-Security-Policy": HTML_PART_CSP,
            "X-Frame-Options": "SAMEORIGIN",
        }
        self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8", extra)

    def _send_part(self, message_id: str, number: str, *, inline: bool) -> None:
        if not number.isdigit() or len(number) > 6:
            raise _Reply(HTTPStatus.BAD_REQUEST, "invalid part number")
        parts = _Parts(self.server.inbox.store.parsed(message_id))
        chosen = parts.inline if inline else parts.attachments
        index = int(number)
        if index >= len(chosen):
            raise _Reply(HTTPStatus.NOT_FOUND, "no such part")
        part = chosen[index]
        data = _part_bytes(part)
        content_type = part.get_content_type()
        extra = {"Content-Security-Policy": _DOWNLOAD_CSP}
        if inline and content_type.startswith("image/"):
            # Shown inside the HTML part's frame, whose sandbox gives it an opaque origin: a
            # same-origin resource policy would block the image. The sandbox CSP keeps an
            # SVG inert even when it is opened directly.
            extra["Cross-Origin-Resource-Policy"] = "cross-origin"
            self._send(HTTPStatus.OK, data, content_type, extra)
            return
        name = safe_filename(part.get_filename(), f"{'part' if inline else 'attachment'}-{index}")
        extra["Content-Disposition"] = _content_disposition(name)
        # Always a download of opaque bytes: an attached .html must never run on this origin.
        self._send(HTTPStatus.OK, data, "application/octet-stream", extra)

    def _events(self) -> None:
        """Server-Sent Events: a ``change`` event whenever the stored messages change."""
        inbox = self.server.inbox
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        version = inbox.store.version
        self.wfile.write(f"retry: 2000\nevent: hello\ndata: {json.dumps(version)}\n\n".encode())
        self.wfile.flush()
        idle = 0.0
        while not inbox._stopping.is_set():
            current = inbox.store.wait_changed(version, 1.0)
            if inbox._stopping.is_set():
                break
            if current != version:
                version = current
                idle = 0.0
                self.wfile.write(f"event: change\ndata: {json.dumps(version)}\n\n".encode())
            else:
                idle += 1.0
                if idle < _SSE_KEEPALIVE:
                    continue
                idle = 0.0
                self.wfile.write(b": keep-alive\n\n")
            self.wfile.flush()


class InboxServer:
    """The web inbox over a :class:`MailDirectory`, served over HTTP in a thread.

    Args:
        store: the messages to show.
        host: the address to listen on; keep the loopback default unless you mean to share
            the inbox (it has no login).
        port: the port; ``0`` picks a free one (see :attr:`port` after :meth:`start`).
        smtp_info: a line shown in the page header, e.g. ``"SMTP 127.0.0.1:1025"``.
        allowed_hosts: extra ``Host`` header values to accept (``"name:port"``). Requests
            for other host names are refused, unless ``host`` is a wildcard address.

    Routes: ``/`` and ``/messages/ID`` (pages), ``GET /api/messages``,
    ``GET|DELETE /api/messages/ID``, ``DELETE /api/messages``, ``GET /api/messages/ID/raw``
    (``?download=1`` for an ``.eml`` download), ``/html``, ``/text``, ``/attachments/N``,
    ``/parts/N`` (inline parts) and ``GET /api/events`` (Server-Sent Events).
    """

    def __init__(
        self,
        store: MailDirectory,
        *,
        host: str = "127.0.0.1",
        port: int = 8025,
        smtp_info: str = "",
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        self.store = store
        self.smtp_info = smtp_info
        self._host = host
        self._requested_port = port
        self._extra_hosts = {h.lower() for h in allowed_hosts}
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: dict[socket.socket, threading.Thread] = {}

    def __repr__(self) -> str:
        where = self.url if self._httpd is not None else "stopped"
        return f"<InboxServer {where}>"

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> Self:
        """Bind the socket and serve in a daemon thread; return ``self``."""
        if self._httpd is not None:
            raise RuntimeError("the inbox is already running")
        self._stopping.clear()
        httpd = _HTTPServer((self._host, self._requested_port), self)
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"smtpkit-inbox-{id(self):x}",
            daemon=True,
        )
        thread.start()
        self._httpd, self._thread = httpd, thread
        return self

    def stop(self) -> None:
        """Stop serving, close every open connection and the socket (idempotent)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        self.store.changed()  # wakes the event streams waiting for news
        httpd.shutdown()
        with self._lock:
            open_now = dict(self._open)
        for connection in open_now:
            # Wakes handlers blocked on a silent client; event streams end at their next tick.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for handler in open_now.values():
            handler.join(timeout=5.0)
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5.0)
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _track(self, connection: socket.socket, thread: threading.Thread, *, add: bool) -> None:
        with self._lock:
            if add:
                self._open[connection] = thread
            else:
                self._open.pop(connection, None)

    # -- where it is ---------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """The address the inbox listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port actually bound (meaningful with ``port=0``)."""
        if self._httpd is None:
            raise RuntimeError("the inbox is not running: call start() first")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The inbox's address, e.g. ``http://127.0.0.1:8025/``."""
        host = self._host
        if host in _WILDCARD_HOSTS:
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    # -- request checks ------------------------------------------------------------------------
    def _allowed_hosts(self) -> set[str]:
        port = self.port
        names = {"127.0.0.1", "localhost", "[::1]"}
        names.add(f"[{self._host}]" if ":" in self._host else self._host)
        allowed = {f"{name}:{port}".lower() for name in names}
        if port == 80:
            allowed |= {name.lower() for name in names}
        return allowed | self._extra_hosts

    def _host_allowed(self, host: str | None) -> bool:
        if host is None or self._host in _WILDCARD_HOSTS:
            # Non-browser clients may omit Host; browsers always send it.
            return True
        return host.strip().lower() in self._allowed_hosts()

    def _origin_allowed(self, origin: str | None) -> bool:
        if origin is None:
            return True
        parts = urlsplit(origin)
        if parts.scheme != "http":
            return False
        return self._host_allowed(parts.netloc)

    # -- content -------------------------------------------------------------------------------
    def _index_page(self) -> str:
        body = _list_section(self.store.list(), "") + _empty_view("Select a message to read it.")
        return _page("smtpkit inbox", f"<main>{body}</main>", smtp=self.smtp_info)

    def _message_page(self, message_id: str, view: str) -> str:
        summary = self.store.get(message_id)
        raw = self.store.raw(message_id)
        parsed = self.store.parsed(message_id)
        section = _message_section(summary, parsed, raw, view, _Parts(parsed))
        body = _list_section(self.store.list(), message_id) + section
        title = f"{summary.subject or '(no subject)'} · smtpkit inbox"
        return _page(title, f"<main>{body}</main>", selected=message_id, smtp=self.smtp_info)

    def _message_json(self, message_id: str) -> dict[str, Any]:
        summary = self.store.get(message_id)
        parsed = self.store.parsed(message_id)
        parts = _Parts(parsed)
        base = f"/api/messages/{message_id}"
        attachments = [
            {
                "index": index,
                "filename": safe_filename(part.get_filename(), f"attachment-{index}"),
                "content_type": part.get_content_type(),
                "size": len(_part_bytes(part)),
                "url": f"{base}/attachments/{index}",
            }
            for index, part in enumerate(parts.attachments)
        ]
        inline = [
            {
                "index": index,
                "content_id": _content_id(part),
                "content_type": part.get_content_type(),
                "url": f"{base}/parts/{index}",
            }
            for index, part in enumerate(parts.inline)
        ]
        html_body = _body(parsed, "html")
        value = summary.to_json()
        value.update(
            {
                "cc": _header_addresses(parsed, "Cc"),
                "headers": [[name, text] for name, text in _headers(parsed)],
                "text": _body(parsed, "plain"),
                "html": html_body,
                "attachments": attachments,
                "inline": inline,
                "links": {
                    "raw": f"{base}/raw",
                    "html": f"{base}/html" if html_body is not None else None,
                    "page": f"/messages/{message_id}",
                },
            }
        )
        return value
