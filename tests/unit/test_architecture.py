"""The dependency direction of docs/architecture.md, checked on the real import statements.

Each module may import only modules of a lower layer (or siblings in its own subpackage), and
each third-party library is confined to the one module that wraps it. Imports under
``if TYPE_CHECKING:`` are annotations only and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import smtpkit

PACKAGE = Path(smtpkit.__file__).parent

# Lowest layer first. A module matches the longest prefix listed.
LAYERS: list[tuple[str, ...]] = [
    ("_exceptions", "_secrets", "_mime", "_html_text", "_ratelimit", "_parsed"),
    ("_headers", "_replies"),
    ("_address", "_hints", "_auth"),
    ("_message", "_envelope"),
    ("_templates",),
    ("_config",),
    ("_dsn", "providers"),
    (
        "_transports._pool",
        "_transports._transcript",
        "_transports._rules",
        "_transports.base",
        "_transports",
    ),
    ("_transports.memory", "_transports.file", "_transports.multi", "_transports.smtp"),
    ("_retry", "_hooks"),
    ("_mailer",),
    ("_sync",),
    ("contact",),
    ("outbox",),
    ("devserver",),
    ("cli",),
    ("contrib",),
    ("testing",),
    ("__init__", "__main__"),
]

# Deliberate upward imports, made lazily inside a function to break a cycle.
ALLOWED_UPWARD = {
    ("_config", "providers"),  # SMTPConfig.from_provider looks the preset up
    ("_dsn", "providers"),  # gmail://... DSNs name a preset
    ("_config", "_dsn"),  # SMTPConfig.from_dsn / to_dsn are thin calls into the DSN parser
}

# Third-party libraries and the only modules allowed to import them.
CONFINED = {
    "aiosmtplib": ("_transports.smtp",),
    "tenacity": ("_retry",),
    "email_validator": ("_address",),
    "jinja2": ("_templates",),
    "aiosmtpd": ("devserver",),
    "trustme": ("devserver",),
}


def _relative(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _layer(name: str) -> tuple[int, str]:
    best: tuple[int, str] | None = None
    for index, group in enumerate(LAYERS):
        for prefix in group:
            if (name == prefix or name.startswith(prefix + ".")) and (
                best is None or len(prefix) > len(best[1])
            ):
                best = (index, prefix)
    assert best is not None, f"module smtpkit.{name} is not placed in a layer"
    return best


def _imports(tree: ast.Module) -> list[str]:
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for orelse in child.orelse:
                    visit(orelse)
                continue
            if isinstance(child, ast.Import):
                found.extend(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append(child.module)
            visit(child)

    visit(tree)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=_relative)
def test_module_imports_follow_the_layers(path: Path) -> None:
    name = _relative(path)
    own_layer, own_prefix = _layer(name)
    for imported in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        top = imported.split(".")[0]
        if top in CONFINED:
            allowed = CONFINED[top]
            assert any(name == a or name.startswith(a + ".") for a in allowed), (
                f"smtpkit.{name} imports {imported}; only {allowed} may"
            )
        if top != "smtpkit" or imported == "smtpkit":
            continue
        target = imported.removeprefix("smtpkit.")
        target_layer, target_prefix = _layer(target)
        same_package = own_prefix == target_prefix and "." not in own_prefix
        if (own_prefix.split(".")[0], target_prefix.split(".")[0]) in ALLOWED_UPWARD:
            continue
        assert target_layer < own_layer or same_package or name == "__init__", (
            f"smtpkit.{name} (layer {own_layer}) imports {imported} (layer {target_layer})"
        )


def test_public_names_are_sorted_and_importable() -> None:
    names = [n for n in smtpkit.__all__ if n != "__version__"]
    assert names == sorted(names, key=str.lower) or names == sorted(names)
    for name in smtpkit.__all__:
        assert hasattr(smtpkit, name), name


def test_public_classes_and_functions_have_docstrings() -> None:
    for name in smtpkit.__all__:
        obj = getattr(smtpkit, name)
        if callable(obj):
            assert (obj.__doc__ or "").strip(), name


def test_importing_smtpkit_does_not_import_optional_parts() -> None:
    import subprocess
    import sys

    code = (
        "import sys, smtpkit; "
        "optional = ('aiosmtpd', 'trustme', 'smtpkit.devserver', 'pytest'); "
        "bad = [m for m in optional if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
