"""A griffe extension that makes smtpkit's docstrings render well as Markdown.

smtpkit's docstrings are written for ``help()`` and doctest: examples are bare ``>>>`` lines
and cross-references use Sphinx roles (``:class:`~smtpkit.Mailer```). Markdown would turn the
former into nested block quotes and show the latter literally, so before mkdocstrings renders a
docstring this extension

- wraps each run of ``>>>`` / ``...`` lines and their output in a ``pycon`` code fence
  (dropping ``# doctest:`` flags), and
- turns ``:role:`target``` into a code span of the target (``~`` keeps the last component),
- splits a combined ``host, port: ...`` entry of an ``Args:`` section into one entry per name
  (griffe's Google parser takes one name per entry).

It only changes what the site shows; the code's docstrings stay as they are. Loaded from
mkdocs.yml (``plugins.mkdocstrings.handlers.python.options.extensions``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|attr|data|mod|exc|obj|const):`(~?)([^`]+)`")
_DOCTEST_FLAG = re.compile(r"\s*#\s*doctest:.*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_ARGS_HEADER = frozenset({"Args:", "Arguments:", "Parameters:", "Params:"})
_COMBINED_ARG = re.compile(r"^(\s+)([A-Za-z_]\w*(?:,\s*[A-Za-z_]\w*)+):\s(.*)$")


def _role(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2).strip()
    if short:
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def _fence_doctests(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            in_fence = not in_fence
        stripped = line.lstrip()
        if in_fence or not stripped.startswith(">>>"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(stripped)]
        block: list[str] = []
        # A doctest block runs until the first blank line (doctest's own rule).
        while i < len(lines) and lines[i].strip():
            block.append(_DOCTEST_FLAG.sub("", lines[i].removeprefix(indent)))
            i += 1
        if out and out[-1].strip():
            out.append("")
        out.append(f"{indent}```pycon")
        out.extend(f"{indent}{b}" if b else b for b in block)
        out.append(f"{indent}```")
    return "\n".join(out)


def _split_combined_args(text: str) -> str:
    out: list[str] = []
    section_indent: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped in _ARGS_HEADER:
            section_indent = indent
        elif stripped and section_indent is not None and indent <= section_indent:
            section_indent = None  # the section ended
        match = _COMBINED_ARG.match(line) if section_indent is not None else None
        if match:
            lead, names, rest = match.groups()
            out.extend(f"{lead}{name.strip()}: {rest}" for name in names.split(","))
        else:
            out.append(line)
    return "\n".join(out)


def rewrite(text: str) -> str:
    """The Markdown form of one docstring (a pure function of its text)."""
    return _ROLE.sub(_role, _split_combined_args(_fence_doctests(text)))


class SmtpkitDocstrings(griffe.Extension):
    """Rewrite every docstring of the loaded package once it is fully loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Walk the package tree (aliases are skipped: their targets are visited)."""
        seen: set[int] = set()
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = rewrite(obj.docstring.value)
            stack.extend(m for m in obj.members.values() if not m.is_alias)  # type: ignore[misc]
