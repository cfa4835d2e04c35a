"""Templates: sources, escaping, strictness, the sandbox, subjects, CSS, and messages."""

from __future__ import annotations

import email.parser
import email.policy
import sys
import zipfile
from pathlib import Path
from typing import Any

import jinja2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError

from smtpkit._exceptions import ConfigError, InvalidHeader, MessageError, TemplateError
from smtpkit._message import Message
from smtpkit._templates import Rendered, Templates

TEMPLATES = Path(__file__).parent / "templates"

WELCOME = {
    "name": "Ann",
    "site": "Example",
    "url": "https://example.com/start?a=1&b=2",
    "items": ["tea", "cake"],
}


def dict_templates(**files: str) -> Templates:
    """Templates over a DictLoader; keyword names use ``__`` for ``.`` (x__subject__txt)."""
    return Templates(jinja2.DictLoader({k.replace("__", "."): v for k, v in files.items()}))


@pytest.fixture
def templates() -> Templates:
    return Templates(TEMPLATES)


# -- sources ---------------------------------------------------------------------------------


def test_directory_source_renders_all_three_parts(templates: Templates) -> None:
    rendered = templates.render("welcome", WELCOME)
    assert rendered.subject == "Welcome to Example, Ann!"
    # trim_blocks/lstrip_blocks: lines holding only {% %} tags leave nothing behind.
    assert rendered.text == (
        "Hello Ann,\n\nYour items:\n- tea\n- cake\nThanks for joining Example."
    )
    assert rendered.html is not None
    assert '<a href="https://example.com/start?a=1&amp;b=2">Example</a>' in rendered.html
    # The include from partials/ rendered too.
    assert "You received this because you signed up at Example." in rendered.html


@pytest.mark.parametrize("source", [str(TEMPLATES), TEMPLATES, str(TEMPLATES) + "/"])
def test_directory_as_str_or_path(source: str | Path) -> None:
    assert Templates(source).render("reset", {"url": "u"}).text == "Reset your password: u"


def test_missing_directory_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        Templates(tmp_path / "nope")


def test_unsupported_source_type() -> None:
    with pytest.raises(TypeError, match="directory path"):
        Templates(42)  # type: ignore[arg-type]


def test_dict_loader_source() -> None:
    templates = dict_templates(hi__subject__txt="Hi {{ name }}", hi__txt="Hello {{ name }}")
    assert templates.render("hi", {"name": "Bo"}) == Rendered("Hi Bo", "Hello Bo", None)


def test_choice_loader_source() -> None:
    loader = jinja2.ChoiceLoader(
        [jinja2.DictLoader({"reset.txt": "override {{ url }}"}), jinja2.FileSystemLoader(TEMPLATES)]
    )
    rendered = Templates(loader).render("reset", {"url": "u"})
    assert (rendered.subject, rendered.text) == ("Password reset", "override u")


def _make_package(root: Path, name: str) -> None:
    package = root / name
    (package / "mail").mkdir(parents=True)
    (package / "templates").mkdir()
    (package / "__init__.py").write_text("")
    (package / "templates" / "hi.subject.txt").write_text("Default {{ who }}\n")
    (package / "templates" / "hi.txt").write_text("default body\n")
    (package / "mail" / "hi.subject.txt").write_text("Mail {{ who }}\n")
    (package / "mail" / "hi.html").write_text("<p>Hi <b>{{ who }}</b></p>\n")


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = "smtpkit_test_tpl_pkg"
    _make_package(tmp_path, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_from_package(package: str) -> None:
    assert Templates.from_package(package).render("hi", {"who": "x"}).subject == "Default x"
    rendered = Templates.from_package(package, "mail").render("hi", {"who": "<x>"})
    assert rendered == Rendered("Mail <x>", "Hi <x>", "<p>Hi <b>&lt;x&gt;</b></p>")


def test_package_string_source(package: str) -> None:
    assert Templates(f"package:{package}").render("hi", {"who": "x"}).text == "default body"
    assert Templates(f"package:{package}/mail").render("hi", {"who": "x"}).text == "Hi x"


def test_zipped_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "smtpkit_test_zip_pkg"
    _make_package(tmp_path / "src", name)
    archive = tmp_path / "pkg.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in (tmp_path / "src").rglob("*"):
            if file.is_file():
                zf.write(file, file.relative_to(tmp_path / "src").as_posix())
    monkeypatch.syspath_prepend(str(archive))
    monkeypatch.delitem(sys.modules, name, raising=False)
    assert Templates.from_package(name, "mail").render("hi", {"who": "z"}).subject == "Mail z"


def test_unknown_package_is_config_error() -> None:
    with pytest.raises(ConfigError, match="smtpkit_no_such_package"):
        Templates.from_package("smtpkit_no_such_package")
    with pytest.raises(ConfigError, match="smtpkit_no_such_package"):
        Templates("package:smtpkit_no_such_package/x")
    with pytest.raises(ConfigError, match="empty package name"):
        Templates("package:")


def test_missing_package_directory_is_config_error(package: str) -> None:
    with pytest.raises(ConfigError, match="no directory 'nothing'"):
        Templates.from_package(package, "nothing")


def test_package_prefix_directory_via_path(tmp_path: Path) -> None:
    # A real directory named "package:x" can still be used, as a Path.
    directory = tmp_path / "package:x"
    directory.mkdir()
    (directory / "a.subject.txt").write_text("A")
    (directory / "a.txt").write_text("body")
    assert Templates(directory).render("a").text == "body"


# -- escaping and whitespace -------------------------------------------------------------------


def test_html_is_autoescaped_text_and_subject_are_not() -> None:
    templates = dict_templates(
        x__subject__txt="About {{ v }}", x__txt="Text {{ v }}", x__html="<p>{{ v }}</p>"
    )
    value = "<b>Ann</b> & \"co\" 'x'"
    rendered = templates.render("x", {"v": value})
    assert rendered.subject == f"About {value}"
    assert rendered.text == f"Text {value}"
    assert rendered.html == "<p>&lt;b&gt;Ann&lt;/b&gt; &amp; &#34;co&#34; &#39;x&#39;</p>"


def test_safe_markup_is_the_authors_choice() -> None:
    templates = dict_templates(x__subject__txt="s", x__html="{{ v }}|{{ v|safe }}")
    assert templates.render("x", {"v": "<i>i</i>"}).html == "&lt;i&gt;i&lt;/i&gt;|<i>i</i>"


def test_user_data_is_never_rendered_as_template() -> None:
    templates = dict_templates(
        x__subject__txt="{{ v }}", x__txt="{{ v }}", x__html="<p>{{ v }}</p>"
    )
    payload = "{{ 7*7 }}{% raw %}{{ ''.__class__ }}"
    rendered = templates.render("x", {"v": payload})
    assert rendered.subject == payload
    assert rendered.text == payload
    assert rendered.html == f"<p>{payload.replace(chr(39), '&#39;')}</p>"
    assert "49" not in rendered.text


def test_subject_layout_whitespace_collapses() -> None:
    templates = dict_templates(
        x__subject__txt="\n  Order\t{{ n }}\n  {% if vip %}\n  (VIP)\n  {% endif %}\n\n",
        x__txt="b",
    )
    assert templates.render("x", {"n": 7, "vip": True}).subject == "Order 7 (VIP)"
    assert templates.render("x", {"n": 7, "vip": False}).subject == "Order 7"


def test_text_body_keeps_its_lines(templates: Templates) -> None:
    rendered = templates.render("welcome", {**WELCOME, "items": []})
    assert rendered.text == "Hello Ann,\n\nThanks for joining Example."


# -- subject injection -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["Hi\r\nBcc: evil@example.com", "Hi\nX: y", "Hi\rX", "a\x00b", "a\x0bb", "a\x85b", "a\u2028b"],
)
def test_control_character_from_a_variable_is_invalid_header(value: str) -> None:
    templates = dict_templates(x__subject__txt="Re: {{ v }}\n", x__txt="body")
    with pytest.raises(InvalidHeader, match=r"x\.subject\.txt, line 1") as info:
        templates.render("x", {"v": value})
    assert "evil" not in str(info.value)


def test_control_character_written_into_the_subject_file_is_invalid_header() -> None:
    templates = dict_templates(x__subject__txt="Bell\x07 here", x__txt="body")
    with pytest.raises(InvalidHeader, match="U\\+0007"):
        templates.render("x")


def test_trailing_newline_from_a_variable_is_also_refused() -> None:
    templates = dict_templates(x__subject__txt="{{ v }}", x__txt="body")
    with pytest.raises(InvalidHeader):
        templates.render("x", {"v": "fine\n"})


@given(st.text())
def test_no_value_can_break_the_subject_line(value: str) -> None:
    templates = dict_templates(x__subject__txt="Re: {{ v }} [{{ v|upper }}]", x__txt="body")
    try:
        subject = templates.render("x", {"v": value}).subject
    except InvalidHeader:
        return
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in subject)
    assert "\u2028" not in subject
    assert "\u2029" not in subject


def test_message_refuses_subject_injection() -> None:
    templates = dict_templates(x__subject__txt="Hi {{ name }}", x__txt="body")
    with pytest.raises(InvalidHeader):
        templates.message(
            "x",
            {"name": "Ann\r\nBcc: evil@example.com"},
            sender="app@example.com",
            to=["ann@example.com"],
        )


# -- strictness and errors -----------------------------------------------------------------------


def test_missing_variable_names_variable_file_and_line() -> None:
    templates = dict_templates(x__subject__txt="s", x__txt="one\ntwo\n{{ nope }}")
    with pytest.raises(TemplateError, match=r"x\.txt, line 3: undefined variable: 'nope'") as info:
        templates.render("x", {})
    assert isinstance(info.value.__cause__, jinja2.UndefinedError)
    assert isinstance(info.value, MessageError)


def test_missing_variable_in_subject(templates: Templates) -> None:
    with pytest.raises(TemplateError, match=r"welcome\.subject\.txt, line 1: .*'site'"):
        templates.render("welcome", {"name": "Ann"})


def test_missing_attribute_is_an_error() -> None:
    templates = dict_templates(x__subject__txt="s", x__txt="{{ user.email }}")
    with pytest.raises(TemplateError, match="has no attribute 'email'"):
        templates.render("x", {"user": {"name": "Ann"}})


def test_undefined_is_not_silently_falsy_in_output_but_testable() -> None:
    templates = dict_templates(
        x__subject__txt="s", x__txt="{% if maybe is defined %}{{ maybe }}{% else %}none{% endif %}"
    )
    assert templates.render("x").text == "none"
    assert templates.render("x", {"maybe": "yes"}).text == "yes"


def test_missing_variable_in_an_extended_file_names_that_file(templates: Templates) -> None:
    # layout.html extends partials/base.html, whose line 3 uses {{ site }}.
    with pytest.raises(TemplateError, match=r"partials[/\\]base\.html, line 3: .*'site'"):
        templates.render("layout", {"name": "Ann"})
    html = templates.render("layout", {"name": "Ann", "site": "S"}).html
    assert html is not None
    assert "<p>Dear Ann</p>" in html


def test_missing_variable_in_an_include_without_files() -> None:
    # Loaders without files cannot say which template a frame belongs to; the message says so.
    templates = dict_templates(
        x__subject__txt="s", x__txt='{% include "part.txt" %}', part__txt="\n{{ gone }}"
    )
    with pytest.raises(TemplateError, match=r"x\.txt \(or a template it includes\), line 2"):
        templates.render("x")


def test_missing_template_names_the_files_looked_for(templates: Templates) -> None:
    with pytest.raises(TemplateError) as info:
        templates.render("nope", {})
    message = str(info.value)
    assert "nope.subject.txt" in message
    assert "nope.txt" in message
    assert "nope.html" in message
    assert str(TEMPLATES) in message


def test_subject_without_body(templates: Templates) -> None:
    with pytest.raises(TemplateError, match=r"nobody\.txt and nobody\.html"):
        templates.render("nobody", {})


def test_body_without_subject(templates: Templates) -> None:
    with pytest.raises(TemplateError, match=r"nosubject\.subject\.txt \(required\)"):
        templates.render("nosubject", {"name": "x"})


def test_name_with_extension_gets_a_hint(templates: Templates) -> None:
    with pytest.raises(TemplateError, match="without its extension: 'welcome'"):
        templates.render("welcome.html", WELCOME)


@pytest.mark.parametrize("name", ["", None, 3])
def test_bad_name(templates: Templates, name: Any) -> None:
    with pytest.raises(TypeError, match="non-empty str"):
        templates.render(name)


def test_syntax_error_names_file_and_line(templates: Templates) -> None:
    with pytest.raises(TemplateError, match=r"broken\.txt, line 2: syntax error") as info:
        templates.render("broken", {})
    assert isinstance(info.value.__cause__, jinja2.TemplateSyntaxError)


def test_missing_include_is_a_template_error() -> None:
    templates = dict_templates(x__subject__txt="s", x__txt='a\n{% include "gone.txt" %}')
    with pytest.raises(TemplateError, match=r"x\.txt, line 2: template 'gone\.txt' not found"):
        templates.render("x")


def test_errors_from_context_objects_propagate() -> None:
    class Boom:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    templates = dict_templates(x__subject__txt="s", x__txt="{{ b }}")
    with pytest.raises(RuntimeError, match="boom"):
        templates.render("x", {"b": Boom()})


# -- the sandbox -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ name.__class__.__base__ }}",
        "{{ (1).__class__ }}",
        "{{ name|attr('__class__') }}",
        "{{ '{0.__class__}'.format(name) }}",
        "{{ '%s'|format(name.__class__) }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ self.__init__ }}",
    ],
)
@pytest.mark.parametrize("suffix", ["txt", "html", "subject.txt"])
def test_sandbox_blocks_attribute_escapes(source: str, suffix: str) -> None:
    files = {"x.subject.txt": "s", "x.txt": "t", f"x.{suffix}": source}
    templates = Templates(jinja2.DictLoader(files))
    with pytest.raises(TemplateError, match="refused by the template sandbox") as info:
        templates.render("x", {"name": "ann"})
    assert isinstance(info.value.__cause__, SecurityError)


# -- text derived from HTML; CSS -----------------------------------------------------------------


def test_text_part_derived_from_html(templates: Templates) -> None:
    rendered = templates.render(
        "receipt",
        {
            "title": "Receipt #12",
            "name": "Ann & Bo",
            "lines": [("Tea", "3.00"), ("<Cake>", "4.50")],
            "url": "https://shop.example/r/12",
        },
    )
    assert rendered.text == (
        "Receipt #12\n\n"
        "Hi Ann & Bo, here is your receipt.\n\n"
        "Item | Price\n"
        "Tea | 3.00\n"
        "<Cake> | 4.50\n\n"
        "View it online (https://shop.example/r/12)"
    )
    assert rendered.html is not None
    assert "&lt;Cake&gt;" in rendered.html


def test_text_only_template_has_no_html(templates: Templates) -> None:
    assert templates.render("reset", {"url": "https://x.example"}).html is None


def test_inline_css() -> None:
    pytest.importorskip("css_inline")
    templates = Templates(TEMPLATES, inline_css=True)
    assert "inline_css=True" in repr(templates)
    html = templates.render("welcome", WELCOME).html
    assert html is not None
    start = html.index('<p class="big" style="')
    tag = html[start : html.index(">", start)]
    assert "color: #333333" in tag
    assert "font-size: 20px" in tag
    assert "<style>" not in html


def test_inline_css_keeps_media_queries_and_never_fetches() -> None:
    pytest.importorskip("css_inline")
    templates = Templates(
        jinja2.DictLoader(
            {
                "x.subject.txt": "s",
                "x.html": '<link rel="stylesheet" href="https://127.0.0.1:1/x.css">'
                "<style>p{color:red} @media (max-width: 600px) { p { color: blue } }</style>"
                "<p>{{ v }}</p>",
            }
        ),
        inline_css=True,
    )
    rendered = templates.render("x", {"v": "<x>"})
    assert rendered.html is not None
    assert '<p style="color: red;">&lt;x&gt;</p>' in rendered.html
    assert "@media" in rendered.html
    assert rendered.text == "<x>"


def test_inline_css_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "css_inline", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r"smtpkit\[css\]"):
        Templates(TEMPLATES, inline_css=True)
    Templates(TEMPLATES)  # not needed unless asked for


# -- environment options ----------------------------------------------------------------------


def test_filters_globals_and_extensions() -> None:
    templates = Templates(
        jinja2.DictLoader(
            {
                "x.subject.txt": "{{ brand }}: {{ v|shout }}",
                "x.txt": "{% for i in range(5) %}{% if i == 2 %}{% break %}{% endif %}{{ i }}"
                "{% endfor %}",
            }
        ),
        filters={"shout": lambda s: str(s).upper() + "!"},
        globals={"brand": "Acme"},
        extensions=["jinja2.ext.loopcontrols"],
    )
    assert templates.render("x", {"v": "hi"}) == Rendered("Acme: HI!", "01", None)


def test_context_is_not_modified() -> None:
    templates = dict_templates(x__subject__txt="s", x__txt="{% set v = 2 %}{{ v }}")
    context = {"v": 1}
    assert templates.render("x", context).text == "2"
    assert context == {"v": 1}


def test_rendered_is_frozen() -> None:
    rendered = Rendered("s", "t")
    with pytest.raises(AttributeError):
        rendered.subject = "x"  # type: ignore[misc]


def test_repr_names_the_source(templates: Templates) -> None:
    assert repr(templates) == f"Templates(directory {str(TEMPLATES)!r})"
    assert repr(dict_templates(a__txt="")) == "Templates(DictLoader)"


# -- messages -----------------------------------------------------------------------------------


def test_message_from_template(templates: Templates) -> None:
    message = templates.message(
        "welcome", WELCOME, sender="App <app@example.com>", to=["ann@example.com"]
    )
    assert isinstance(message, Message)
    assert message.subject == "Welcome to Example, Ann!"
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(message.to_bytes())
    assert parsed["Subject"] == "Welcome to Example, Ann!"
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "- cake" in text.get_content()
    assert "Thanks for joining" in html.get_content()


def test_message_with_derived_text(templates: Templates) -> None:
    message = templates.message(
        "receipt",
        {"title": "R", "name": "Ann", "lines": [], "url": "https://shop.example/"},
        sender="app@example.com",
        to="ann@example.com",
    )
    assert message.text is not None
    assert "View it online (https://shop.example/)" in message.text


@pytest.mark.parametrize("field", ["subject", "text", "html"])
def test_message_fields_from_the_template_cannot_be_given(templates: Templates, field: str) -> None:
    with pytest.raises(TypeError, match=f"{field}: given by the template"):
        templates.message("reset", {"url": "u"}, sender="app@example.com", **{field: "x"})
