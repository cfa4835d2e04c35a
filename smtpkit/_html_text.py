"""A readable plain-text version of an HTML email body.

:func:`html_to_text` is what :class:`~smtpkit.Templates` uses when a template has an HTML part
but no text part. It is built on the standard library's :class:`html.parser.HTMLParser` and
makes one pass over the input; no regular expression with nested quantifiers ever sees it.
"""

from __future__ import annotations

import re
import string
from html.parser import HTMLParser
from typing import Final

__all__ = ["html_to_text"]

# HTML's own whitespace (not Unicode's: U+00A0 is handled separately, U+2028 is kept as data).
_HTML_SPACE: Final = re.compile(r"[ \t\n\r\f]+")

# Elements whose content is never text a reader should see.
_DROPPED: Final = frozenset({"script", "style", "head", "title", "template", "noscript"})

# Blocks separated from their neighbours by a blank line.
_PARAGRAPH: Final = frozenset(
    {
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "table",
        "ul",
        "ol",
        "dl",
        "hr",
        "figure",
        "address",
    }
)

# Blocks that start on a new line but need no blank line around them.
_LINE: Final = frozenset(
    {
        "div",
        "section",
        "article",
        "header",
        "footer",
        "main",
        "nav",
        "aside",
        "form",
        "fieldset",
        "center",
        "tr",
        "li",
        "dt",
        "dd",
        "caption",
        "figcaption",
        "tbody",
        "thead",
        "tfoot",
        "body",
        "html",
    }
)

_VOID: Final = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    }
)

# Link schemes worth showing to a reader of the text part; anything else (javascript:, data:,
# a fragment) is dropped and only the link text stays.
_SHOWN_SCHEMES: Final = ("http://", "https://", "mailto:", "tel:", "ftp://")

_CELL_SEPARATOR: Final = " | "

# Elements whose content the standard parser reads as raw text up to their end tag.
_RAW_TEXT: Final = ("script", "style")
_ASCII_LOWER: Final = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)

# Deepest list indentation and quote prefix written: deeper nesting does not grow lines further
# (unbounded, a deeply nested input would make output quadratic in its size).
_MAX_DEPTH: Final = 8


def html_to_text(html: str) -> str:
    """Convert an HTML document or fragment into readable plain text.

    - paragraphs, headings, lists and tables are separated by blank lines; ``<br>`` is a line
      break, ``<hr>`` a line of dashes;
    - links become ``text (url)``, or just ``url`` when the text is the address itself; links
      to anything but http(s), mailto, tel and ftp keep only their text;
    - list items become ``- item`` or ``1. item`` (nested lists are indented); table cells in
      one row are joined with ``" | "``; ``<blockquote>`` lines start with ``> ``;
      ``<pre>`` keeps its line breaks and spaces;
    - images become their ``alt`` text;
    - ``<script>``, ``<style>``, ``<head>`` (with ``<title>``), ``<template>``, ``<noscript>``,
      comments and elements styled ``display:none`` (e.g. preheaders) are dropped;
    - entities are decoded, whitespace is collapsed, trailing spaces are removed, and there is
      never more than one blank line in a row. Lines are not wrapped.

    It never raises on any ``str`` input (malformed HTML is read as well as it can be).

    >>> html_to_text('<h1>Hi Ann</h1><p>Read <a href="https://example.com/x">this</a>.</p>')
    'Hi Ann\\n\\nRead this (https://example.com/x).'
    >>> html_to_text("<ul><li>one</li><li>two</li></ul>")
    '- one\\n- two'
    """
    parser = _TextParser()
    parser.feed(_neutralise(html))
    parser.close()
    return parser.result()


def _neutralise(html: str) -> str:
    """Escape each ``<`` that does not open a complete tag or comment, in one linear pass.

    The standard library's parser rescans to the end of the input for every ``<`` that opens
    a tag or comment that is never closed, which takes quadratic time on inputs like
    ``"<a " * 10_000`` (on Python versions before the fix for CVE-2025-6069 and its kin). After
    this pass every tag the parser sees ends at a ``>`` before the next ``<``, every comment has
    its ``-->`` and every ``<script>`` / ``<style>`` its end tag, so it never has to wait for
    more input. The cost: a ``<`` inside a quoted attribute value must be written ``&lt;``
    (autoescaping always does).
    """
    # ASCII-only lower-casing keeps every index valid (str.lower can change the length).
    lower = html.translate(_ASCII_LOWER)
    out: list[str] = []
    copied = pos = 0
    # Cached "next occurrence at or after" positions (-1: none left). The positions searched
    # from only grow, so each is recomputed only once it falls behind: linear in total.
    next_gt = next_comment_end = 0
    next_raw_end = dict.fromkeys(_RAW_TEXT, 0)
    while (lt := html.find("<", pos)) >= 0:
        pos = lt + 1
        if html.startswith("<!--", lt):
            if 0 <= next_comment_end < lt + 4:
                next_comment_end = html.find("-->", lt + 4)
            if next_comment_end >= 0:
                pos = next_comment_end + 3
                continue
        elif _opens_tag(html[lt + 1 : lt + 2]):
            if 0 <= next_gt < pos:
                next_gt = html.find(">", pos)
            next_lt = html.find("<", pos)
            if next_gt >= 0 and not 0 <= next_lt < next_gt:
                pos = next_gt + 1
                raw = _raw_text_element(lower, lt, next_gt)
                if raw is None:
                    continue
                if 0 <= next_raw_end[raw] < pos:
                    next_raw_end[raw] = lower.find("</" + raw, pos)
                if next_raw_end[raw] < 0:
                    # Never closed: the rest is script or style, never shown anyway.
                    out.append(html[copied:pos])
                    return "".join(out)
                pos = next_raw_end[raw]
                continue
        out.append(html[copied:lt])
        out.append("&lt;")
        copied = lt + 1
    out.append(html[copied:])
    return "".join(out)


def _opens_tag(char: str) -> bool:
    return (char.isascii() and char.isalpha()) or char in ("/", "!", "?")


def _raw_text_element(lower: str, lt: int, gt: int) -> str | None:
    """``"script"`` or ``"style"`` if ``lower[lt:gt + 1]`` starts one's raw content."""
    if not lower.startswith(_RAW_TEXT, lt + 1) or lower[gt - 1] == "/":
        return None  # the common case; and <script/> starts no script content
    for name in _RAW_TEXT:
        after = lt + 1 + len(name)
        if lower.startswith(name, lt + 1) and not lower[after : after + 1].isalnum():
            return name
    return None


class _TextParser(HTMLParser):
    """Collects text while tracking just enough structure to lay it out."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        # Line breaks owed before the next text (capped at 2: one blank line).
        self._breaks = 0
        # Whether anything has been written; where on the current line the output is.
        self._started = False
        self._at_line_start = True
        self._line_has_text = False
        self._after_marker = False
        # A space owed between two inline runs of text.
        self._space = False
        # A cell separator owed before the next text on the current line (a new table cell).
        self._cell_pending = False
        # While > 0, text is dropped; _skip_tag is the element that started the skipping.
        self._skip_depth = 0
        self._skip_tag = ""
        self._pre = 0
        # The <blockquote> depth now, and that of the line last written.
        self._quote = 0
        self._line_quote = 0
        # One entry per open list: None for <ul>, the next number for <ol>.
        self._lists: list[int | None] = []
        # The open link: (href, index in _parts where its text starts).
        self._link: tuple[str, int] | None = None

    # -- the parser's callbacks ---------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_depth:
            if tag == self._skip_tag:
                self._skip_depth += 1
            elif tag == "body" and self._skip_tag == "head":
                # </head> may be omitted: <body> ends the head.
                self._skip_depth = 0
            return
        if tag in _DROPPED or (tag not in _VOID and _is_hidden(attrs)):
            self._skip_tag = tag
            self._skip_depth = 1
            return
        self._start(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <img/>, and also <div/> written by XHTML-minded tools: start and end at once.
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._skip_depth:
            if tag == self._skip_tag:
                self._skip_depth -= 1
            return
        self._end(tag)

    def handle_data(self, data: str) -> None:
        if self._skip_depth or not data:
            return
        if self._pre:
            lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            for index, line in enumerate(lines):
                if index:
                    self._breaks += 1
                if line:
                    self._write(line)
            return
        data = data.replace("\xa0", " ")
        collapsed = _HTML_SPACE.sub(" ", data)
        if collapsed.startswith(" "):
            self._space = True
        words = collapsed.strip(" ")
        if words:
            self._write(words)
        if collapsed.endswith(" "):
            self._space = True

    # -- structure ----------------------------------------------------------------------------

    def _start(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _PARAGRAPH:
            self._block(2)
        elif tag in _LINE:
            self._block(1)
        if tag == "br":
            self._breaks += 1
            self._space = False
        elif tag == "hr":
            self._write("-" * 20)
            self._block(2)
        elif tag == "img":
            alt = _attr(attrs, "alt")
            if alt and alt.strip():
                self._write(_HTML_SPACE.sub(" ", alt.replace("\xa0", " ")).strip(" "))
        elif tag == "a":
            self._close_link()  # <a> cannot nest: a new one ends the previous one
            self._link = ((_attr(attrs, "href") or "").strip(), len(self._parts))
        elif tag in ("ul", "ol"):
            self._lists.append(_start_number(attrs) if tag == "ol" else None)
        elif tag == "li":
            self._list_item()
        elif tag in ("td", "th"):
            self._cell_pending = True
        elif tag == "pre":
            self._pre += 1
        elif tag == "blockquote":
            self._quote += 1

    def _end(self, tag: str) -> None:
        if tag == "a":
            self._close_link()
        elif tag in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
        elif tag == "blockquote":
            self._block(2)
            self._quote = max(0, self._quote - 1)
        if tag in _PARAGRAPH:
            self._block(2)
        elif tag in _LINE:
            self._block(1)

    def _list_item(self) -> None:
        depth = len(self._lists)
        if not depth:
            marker = "- "
        else:
            number = self._lists[-1]
            if number is None:
                marker = "- "
            else:
                marker = f"{number}. "
                self._lists[-1] = number + 1
        self._block(1)
        self._write("  " * min(max(0, depth - 1), _MAX_DEPTH) + marker, marker=True)

    def _close_link(self) -> None:
        if self._link is None:
            return
        href, start = self._link
        self._link = None
        if not href.lower().startswith(_SHOWN_SCHEMES):
            return
        shown = href[7:] if href.lower().startswith("mailto:") else href
        text = "".join(self._parts[start:]).strip()
        self._space = True
        if not text:
            self._write(shown)
        elif text not in (href, shown):
            self._write(f"({shown})")

    # -- output -------------------------------------------------------------------------------

    def _block(self, breaks: int) -> None:
        """Owe at least ``breaks`` line breaks before the next text."""
        if self._lists:
            # Inside a list, blocks (nested lists, paragraphs in items) keep the list tight.
            breaks = min(breaks, 1)
        self._breaks = max(self._breaks, breaks)
        self._space = False
        self._cell_pending = False

    def _write(self, text: str, *, marker: bool = False) -> None:
        # Breaks owed right after a list marker are dropped: "<li><p>x</p></li>" is "- x".
        if self._breaks and self._started and not self._after_marker:
            # A blank line between two quoted lines stays quoted.
            if self._breaks >= 2 and min(self._quote, self._line_quote):
                depth = min(self._quote, self._line_quote, _MAX_DEPTH)
                self._parts.append("\n" + ">" * depth + "\n")
            else:
                self._parts.append("\n" * min(self._breaks, 2))
            self._at_line_start = True
            self._line_has_text = False
        self._breaks = 0
        if self._at_line_start:
            if self._quote:
                self._parts.append("> " * min(self._quote, _MAX_DEPTH))
            self._line_quote = self._quote
            self._at_line_start = False
        elif self._line_has_text:
            if self._cell_pending:
                self._parts.append(_CELL_SEPARATOR)
            elif self._space:
                self._parts.append(" ")
        self._cell_pending = False
        self._space = False
        self._parts.append(text)
        self._started = True
        # A list marker is not text: the item's first word follows it with no space.
        self._line_has_text = not marker
        self._after_marker = marker

    def result(self) -> str:
        """The text collected so far: no trailing spaces, at most one blank line in a row."""
        self._close_link()
        text = "".join(self._parts)
        lines: list[str] = []
        for raw in text.split("\n"):
            line = raw.rstrip(" ")
            # A line of spaces (say, in <pre>) is blank once stripped: it must not make a
            # second blank line next to one the block structure already produced.
            if line or not lines or lines[-1]:
                lines.append(line)
        return "\n".join(lines).strip("\n")


def _attr(attrs: list[tuple[str, str | None]], name: str) -> str | None:
    for key, value in attrs:
        if key == name:
            return value
    return None


def _is_hidden(attrs: list[tuple[str, str | None]]) -> bool:
    if any(key == "hidden" for key, _ in attrs):
        return True
    style = _attr(attrs, "style")
    if not style:
        return False
    compact = "".join(style.lower().split())
    return "display:none" in compact


def _start_number(attrs: list[tuple[str, str | None]]) -> int:
    start = _attr(attrs, "start")
    if start is not None:
        stripped = start.strip()
        # Bounded: a huge "start" is an author's mistake, not something to format.
        if stripped.isascii() and stripped.lstrip("-").isdigit() and len(stripped) <= 9:
            return int(stripped)
    return 1
