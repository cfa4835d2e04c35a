"""Templates: one name renders into a subject, a text body and an HTML body.

A template named ``welcome`` is a set of files next to each other in one Jinja2 loader:

- ``welcome.subject.txt`` (required): the subject. It is rendered, then made one line
  (whitespace runs written in the template, line breaks included, become one space; the ends
  are stripped). A value inside ``{{ ... }}`` that contains a line break or another control
  character is an :class:`~smtpkit.InvalidHeader` error, never cleaned up silently.
- ``welcome.txt``: the text body, not autoescaped.
- ``welcome.html``: the HTML body, autoescaped. Optionally with its ``<style>`` inlined.

At least one of the two bodies must exist; with only the HTML one, the text body is derived
from it by :func:`~smtpkit._html_text.html_to_text`.

Everything is rendered by Jinja2's :class:`~jinja2.sandbox.SandboxedEnvironment` with
:class:`~jinja2.StrictUndefined`, with ``trim_blocks`` and ``lstrip_blocks`` on (a line holding
only a ``{% ... %}`` tag leaves no blank line behind in a text body). User data only ever goes
in as template variables, and rendered output is never rendered again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.ext import Extension
from jinja2.sandbox import SandboxedEnvironment

from smtpkit._exceptions import ConfigError, InvalidHeader, TemplateError
from smtpkit._html_text import html_to_text
from smtpkit._message import Message

__all__ = ["Rendered", "TemplateSource", "Templates"]

#: What :class:`Templates` renders from: a directory, ``"package:NAME[/PATH]"``, or a loader.
TemplateSource = str | os.PathLike[str] | jinja2.BaseLoader

_PACKAGE_PREFIX: Final = "package:"
_SUBJECT_SUFFIX: Final = ".subject.txt"
_TEXT_SUFFIX: Final = ".txt"
_HTML_SUFFIX: Final = ".html"

# Control characters (C0 except TAB, DEL, C1), the Unicode line and paragraph separators and
# lone surrogates: none may come out of a subject. One character class, no quantifier: linear.
_SUBJECT_FORBIDDEN: Final = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# The whitespace a subject template may use for layout; collapsed to one space.
_SUBJECT_SPACE: Final = re.compile(r"[ \t\r\n]+")


@dataclass(frozen=True, slots=True)
class Rendered:
    """The three parts one template name renders into.

    ``text`` is always set (derived from ``html`` when the template has no text file);
    ``html`` is ``None`` when the template has no HTML file.

    >>> Rendered(subject="Hi", text="Hello").html is None
    True
    """

    subject: str
    text: str
    html: str | None = None


class Templates:
    """Email templates: a subject, a text body and an HTML body rendered from one name.

    ``source`` is one of:

    - a directory (``str`` or :class:`os.PathLike`), which must exist;
    - ``"package:NAME"`` or ``"package:NAME/PATH"``: the directory ``PATH`` (default
      ``templates``) inside the importable package ``NAME``, the same as
      :meth:`from_package`. A directory whose name starts with ``package:`` can still be
      given as a :class:`~pathlib.Path`;
    - any :class:`jinja2.BaseLoader` (``DictLoader``, ``ChoiceLoader``, ...).

    ``inline_css=True`` inlines the HTML body's ``<style>`` rules into ``style`` attributes
    (``@media`` rules stay in a ``<style>`` element; remote stylesheets are never fetched); it
    needs the ``css`` extra: ``pip install 'smtpkit[css]'``. ``filters``, ``globals`` and
    ``extensions`` are added to the Jinja2 environment.

    A file ``templates/welcome.subject.txt`` holding ``Welcome, {{ name }}!`` and
    ``templates/welcome.html`` holding ``<p>Hello <b>{{ name }}</b></p>``:

    >>> templates = Templates("templates/")  # doctest: +SKIP
    >>> templates.render("welcome", {"name": "Ann <3"})  # doctest: +SKIP
    Rendered(subject='Welcome, Ann <3!', text='Hello Ann <3', html='<p>Hello <b>Ann &lt;3</b></p>')
    >>> message = templates.message(  # doctest: +SKIP
    ...     "welcome", {"name": "Ann"}, sender="app@example.com", to=["ann@example.com"]
    ... )

    Errors: a missing template, a syntax error, an undefined variable or an operation the
    sandbox refuses is a :class:`~smtpkit.TemplateError` naming the file (and line); a line
    break or control character in the subject is an :class:`~smtpkit.InvalidHeader`. Other
    exceptions raised by the context's own objects or by custom filters propagate unchanged.
    A ``Templates`` object may be shared between threads.
    """

    __slots__ = ("_env", "_inline", "_subject_env", "_where")

    def __init__(
        self,
        source: TemplateSource,
        /,
        *,
        inline_css: bool = False,
        filters: Mapping[str, Callable[..., Any]] | None = None,
        globals: Mapping[str, Any] | None = None,
        extensions: Iterable[str | type[Extension]] = (),
    ) -> None:
        loader, self._where = _make_loader(source)
        self._inline = _make_inliner() if inline_css else None
        self._env = SandboxedEnvironment(
            loader=loader,
            undefined=jinja2.StrictUndefined,
            # Decided by the template's file name: .html is escaped, .txt is not.
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html", "htm", "xhtml"),
                disabled_extensions=(),
                default_for_string=False,
                default=False,
            ),
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=tuple(extensions),
        )
        if filters:
            self._env.filters.update(filters)
        if globals:
            self._env.globals.update(globals)
        # Subjects get their own view of the environment whose finalize hook sees every
        # {{ ... }} value before it joins the output: that is where variable data is told apart
        # from the template's own text, so a line break in user data is refused while one
        # written into the template file is just layout.
        self._subject_env = self._env.overlay(finalize=_subject_value)

    @classmethod
    def from_package(
        cls,
        package: str,
        /,
        path: str = "templates",
        *,
        inline_css: bool = False,
        filters: Mapping[str, Callable[..., Any]] | None = None,
        globals: Mapping[str, Any] | None = None,
        extensions: Iterable[str | type[Extension]] = (),
    ) -> Templates:
        """Templates from the directory ``path`` inside the importable package ``package``.

        Works for installed packages, zipped ones included (:class:`jinja2.PackageLoader`).
        An unknown package or a missing directory is a :class:`~smtpkit.ConfigError`.

        >>> templates = Templates.from_package("myapp", "email_templates")  # doctest: +SKIP
        """
        return cls(
            _package_loader(package, path),
            inline_css=inline_css,
            filters=filters,
            globals=globals,
            extensions=extensions,
        )

    def __repr__(self) -> str:
        css = ", inline_css=True" if self._inline is not None else ""
        return f"Templates({self._where}{css})"

    def render(self, name: str, context: Mapping[str, Any] | None = None, /) -> Rendered:
        """Render the template ``name`` with the variables in ``context``.

        >>> from jinja2 import DictLoader
        >>> templates = Templates(
        ...     DictLoader({"hi.subject.txt": "Hi {{ name }}", "hi.html": "<p>{{ name }}</p>"})
        ... )
        >>> templates.render("hi", {"name": "<Ann>"})
        Rendered(subject='Hi <Ann>', text='<Ann>', html='<p>&lt;Ann&gt;</p>')
        """
        if not isinstance(name, str) or not name:
            raise TypeError("the template name must be a non-empty str")
        variables = dict(context) if context is not None else {}
        subject_name = name + _SUBJECT_SUFFIX
        text_name = name + _TEXT_SUFFIX
        html_name = name + _HTML_SUFFIX

        subject_template = self._load(self._subject_env, subject_name)
        text_template = self._load(self._env, text_name)
        html_template = self._load(self._env, html_name)
        if subject_template is None:
            raise TemplateError(
                f"template {name!r} not found: looked for {subject_name} (required) with"
                f" {text_name} and/or {html_name} in {self._where}{_name_hint(name)}"
            )
        if text_template is None and html_template is None:
            raise TemplateError(
                f"template {name!r} has no body: looked for {text_name} and {html_name}"
                f" in {self._where} (at least one is required)"
            )

        subject = _one_line(_render(subject_template, subject_name, variables), subject_name)
        html = None
        if html_template is not None:
            html = _render(html_template, html_name, variables)
        if text_template is not None:
            text = _render(text_template, text_name, variables)
        else:
            assert html is not None
            text = html_to_text(html)
        if html is not None and self._inline is not None:
            html = self._inline_css(html, html_name)
        return Rendered(subject=subject, text=text, html=html)

    def message(
        self, name: str, context: Mapping[str, Any] | None = None, /, **message_fields: Any
    ) -> Message:
        """Render the template ``name`` into a :class:`~smtpkit.Message`.

        ``message_fields`` are the other :class:`~smtpkit.Message` arguments (``sender``,
        ``to``, ``attachments``, ...); ``subject``, ``text`` and ``html`` come from the
        template and cannot be given. The message validates the subject like any header.

        >>> templates.message(  # doctest: +SKIP
        ...     "welcome", {"name": "Ann"}, sender="App <app@example.com>", to=["ann@example.com"]
        ... )
        """
        clashing = sorted({"subject", "text", "html"} & message_fields.keys())
        if clashing:
            raise TypeError(f"{', '.join(clashing)}: given by the template, not as an argument")
        rendered = self.render(name, context)
        return Message(
            subject=rendered.subject, text=rendered.text, html=rendered.html, **message_fields
        )

    # -- internals ------------------------------------------------------------------------------

    def _load(self, env: jinja2.Environment, filename: str) -> jinja2.Template | None:
        try:
            return env.get_template(filename)
        except jinja2.TemplateNotFound as exc:
            if exc.name == filename:
                return None
            raise _translate(exc, filename) from exc
        except jinja2.TemplateError as exc:
            raise _translate(exc, filename) from exc

    def _inline_css(self, html: str, filename: str) -> str:
        assert self._inline is not None
        try:
            return self._inline(html)
        except ValueError as exc:  # css_inline.InlineError is a ValueError
            raise TemplateError(f"{filename}: CSS inlining failed: {exc}") from exc


class _UnsafeSubjectValue(Exception):
    """Raised inside rendering by :func:`_subject_value`; translated by :func:`_render`."""

    def __init__(self, char: str) -> None:
        super().__init__(char)
        self.char = char


def _subject_value(value: object) -> str:
    """Jinja2 ``finalize`` hook for subjects: every ``{{ ... }}`` value passes through here."""
    # str() of a StrictUndefined raises UndefinedError: a missing variable still says so.
    text = str(value)
    bad = _SUBJECT_FORBIDDEN.search(text)
    if bad is not None:
        raise _UnsafeSubjectValue(bad.group())
    return text


def _one_line(subject: str, filename: str) -> str:
    """Collapse the subject template's layout whitespace; refuse any other control char."""
    line = _SUBJECT_SPACE.sub(" ", subject).strip(" ")
    bad = _SUBJECT_FORBIDDEN.search(line)
    if bad is not None:
        raise InvalidHeader(
            f"subject: {filename} contains the control character U+{ord(bad.group()):04X}"
        )
    return line


def _render(template: jinja2.Template, filename: str, variables: dict[str, Any]) -> str:
    try:
        return template.render(variables)
    except _UnsafeSubjectValue as exc:
        line = _location(exc.__traceback__, template, filename)
        raise InvalidHeader(
            f"subject: a value inserted at {line} contains a line break or control character"
            f" (U+{ord(exc.char):04X}); a header cannot hold one"
        ) from None
    except jinja2.TemplateError as exc:
        raise _translate(exc, filename, template) from exc


def _translate(
    exc: jinja2.TemplateError, filename: str, template: jinja2.Template | None = None
) -> TemplateError:
    """One :class:`TemplateError` for any Jinja2 error, saying which file and line."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = exc.name or exc.filename or filename
        return TemplateError(f"{where}, line {exc.lineno}: syntax error: {exc.message}")
    where = _location(exc.__traceback__, template, filename)
    if isinstance(exc, SecurityError):
        return TemplateError(f"{where}: refused by the template sandbox: {exc.message}")
    if isinstance(exc, jinja2.TemplateNotFound):
        return TemplateError(f"{where}: template {exc.name!r} not found")
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateError(f"{where}: undefined variable: {exc.message}")
    return TemplateError(f"{where}: {exc.message or type(exc).__name__}")


def _location(tb: TracebackType | None, template: jinja2.Template | None, filename: str) -> str:
    """``"file, line N"`` of the innermost template frame of a traceback Jinja2 rewrote."""
    found: tuple[str, int] | None = None
    frames = 0
    while tb is not None:
        # Jinja2 rewrites template frames into frames whose globals hold the exception and
        # whose code carries the template's file name and line number.
        if "__jinja_exception__" in tb.tb_frame.f_globals:
            found = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
            frames += 1
        tb = tb.tb_next
    if found is None:
        return filename
    source, line = found
    top = template.filename if template is not None else None
    if source in ("<template>", "<unknown>"):
        # Loaders without files (DictLoader, FunctionLoader) give every template this same
        # name, so a frame of an included or extended template cannot be told apart.
        source = filename if frames == 1 else f"{filename} (or a template it includes)"
    elif source == top:
        source = filename
    return f"{source}, line {line}"


def _name_hint(name: str) -> str:
    if name.endswith((_TEXT_SUFFIX, _HTML_SUFFIX)):
        return f" (give the name without its extension: {name.rsplit('.', 1)[0]!r})"
    return ""


def _make_loader(source: TemplateSource) -> tuple[jinja2.BaseLoader, str]:
    """The Jinja2 loader for ``source`` and a description of it for error messages."""
    if isinstance(source, jinja2.BaseLoader):
        return source, type(source).__name__
    if isinstance(source, str) and source.startswith(_PACKAGE_PREFIX):
        package, _, path = source[len(_PACKAGE_PREFIX) :].partition("/")
        return _package_loader(package, path or "templates"), f"package {source!r}"
    if isinstance(source, (str, os.PathLike)):
        directory = Path(source)
        if not directory.is_dir():
            raise ConfigError(f"templates: {str(directory)!r} is not a directory")
        return jinja2.FileSystemLoader(directory), f"directory {str(directory)!r}"
    raise TypeError(
        "templates source must be a directory path, 'package:NAME[/PATH]' or a jinja2 loader,"
        f" not {type(source).__name__}"
    )


def _package_loader(package: str, path: str) -> jinja2.PackageLoader:
    if not package:
        raise ConfigError("templates: empty package name")
    try:
        return jinja2.PackageLoader(package, path)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"templates: package {package!r} cannot be imported ({exc})") from exc
    except ValueError as exc:
        raise ConfigError(f"templates: no directory {path!r} in package {package!r}") from exc


def _make_inliner() -> Callable[[str], str]:
    try:
        import css_inline
    except ImportError as exc:
        raise ConfigError(
            "inline_css=True needs the css-inline package: pip install 'smtpkit[css]'"
        ) from exc
    inliner = css_inline.CSSInliner(
        # Never fetch anything while rendering an email (and never let a template make us).
        load_remote_stylesheets=False,
        keep_link_tags=True,
        # @media rules cannot be inlined; they stay in a <style> element.
        keep_at_rules=True,
    )
    return inliner.inline
