"""What every ``smtpkit`` command shares: exit codes, configuration options, safe output.

Exit codes are part of the command's interface (scripts branch on them), so they are defined
once here and documented in ``smtpkit --help`` and docs/cli.md.

Everything printed that came from outside (server replies, file contents, error messages
quoting them) goes through :func:`clean` first: control characters are replaced so that a
hostile server cannot move the cursor or rewrite the terminal, and rich markup is never
interpreted in such text (it is always wrapped in :class:`rich.text.Text`).
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
from rich.console import Console
from rich.text import Text

from smtpkit._config import Credentials, SMTPConfig
from smtpkit._dsn import TransportGroup, config_from_env, parse_dsn
from smtpkit._exceptions import (
    AllTransportsFailed,
    ConfigError,
    MessageError,
    SmtpkitError,
    TransportError,
)
from smtpkit._hints import hint_for
from smtpkit._secrets import Secret

__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_PERMANENT",
    "EXIT_TRANSIENT",
    "EXIT_USAGE",
    "ServerOptions",
    "clean",
    "cli_errors",
    "exit_code_for",
    "fail",
    "print_error",
    "resolve_target",
    "server_options",
    "stderr_console",
    "stdout_console",
]

#: Everything worked.
EXIT_OK = 0
#: The message was sent, but some recipients (or some merge rows) were refused or failed.
EXIT_PARTIAL = 1
#: Bad command line, configuration, template or message input: nothing was sent.
EXIT_USAGE = 2
#: A transient failure (network, timeout, 4xx): trying again later may work.
EXIT_TRANSIENT = 3
#: A permanent failure (TLS, authentication, 5xx): fix something before trying again.
EXIT_PERMANENT = 4
#: A bug in smtpkit (reported without a traceback unless SMTPKIT_DEBUG=1).
EXIT_INTERNAL = 70
#: Interrupted with Ctrl-C.
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "\b\nExit codes:\n"
    "  0  success\n"
    "  1  partial: some recipients (or merge rows) refused or failed\n"
    "  2  usage error: bad option, configuration, template or message input\n"
    "  3  transient failure (network, timeout, 4xx reply): retry later\n"
    "  4  permanent failure (TLS, authentication, 5xx reply)\n"
    "  130 interrupted (Ctrl-C)"
)

# C0 and C1 controls (ESC starts terminal escape sequences), DEL, and the bidi overrides that
# can make printed text read differently from what it is. TAB and LF are kept.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean(value: object) -> str:
    """``str(value)`` safe to print on a terminal: control characters shown as ``\\xNN``."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def stdout_console() -> Console:
    """A console on the current ``sys.stdout`` (no markup guessing, no highlighting)."""
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def stderr_console() -> Console:
    """A console on the current ``sys.stderr``."""
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


# -- errors ------------------------------------------------------------------------------------


def exit_code_for(exc: BaseException) -> int:
    """The exit code an error ends the command with."""
    if isinstance(exc, ConfigError | MessageError | click.UsageError):
        return EXIT_USAGE
    if isinstance(exc, SmtpkitError):
        return EXIT_TRANSIENT if exc.is_transient else EXIT_PERMANENT
    return EXIT_INTERNAL


def _message_of(exc: BaseException) -> str:
    # TransportError.__str__ appends the hint; the CLI prints the hint on its own line.
    if exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def error_hint(
    exc: BaseException, *, host: str | None = None, port: int | None = None
) -> str | None:
    """The hint for an error: its own, or one looked up the way the library does."""
    if isinstance(exc, TransportError):
        if exc.hint:
            return exc.hint
        return hint_for(
            stage=exc.stage, reply=exc.reply, error_text=_message_of(exc), host=host, port=port
        )
    return None


def error_dict(exc: BaseException) -> dict[str, Any]:
    """A JSON-ready description of an error: class, message, hint, stage, reply."""
    out: dict[str, Any] = {
        "error": type(exc).__name__,
        "message": clean(_message_of(exc)),
        "hint": error_hint(exc),
    }
    if isinstance(exc, TransportError):
        out["stage"] = exc.stage
        out["transient"] = exc.is_transient
        out["reply"] = exc.reply.to_dict() if exc.reply is not None else None
    return out


def print_error(exc: BaseException, console: Console | None = None) -> None:
    """Print ``Error: Class: message`` and ``Hint: ...`` to stderr; never a traceback."""
    console = console or stderr_console()
    line = Text("Error: ", style="bold red")
    line.append(f"{type(exc).__name__}: ", style="bold")
    line.append(clean(_message_of(exc)))
    console.print(line)
    if isinstance(exc, AllTransportsFailed):
        for index, error in enumerate(exc.errors, 1):
            item = Text(f"  {index}. {type(error).__name__}: ")
            item.append(clean(_message_of(error)))
            console.print(item)
    hint = error_hint(exc)
    if hint:
        console.print(Text("Hint: ", style="bold yellow") + Text(clean(hint)))


def fail(message: str, *, code: int = EXIT_USAGE, hint: str | None = None) -> NoReturn:
    """Print an error that is not an exception of the library and exit with ``code``."""
    console = stderr_console()
    console.print(Text("Error: ", style="bold red") + Text(clean(message)))
    if hint:
        console.print(Text("Hint: ", style="bold yellow") + Text(clean(hint)))
    raise SystemExit(code)


P = ParamSpec("P")
R = TypeVar("R")


def cli_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn library errors into a printed message and the documented exit code.

    Click's own usage errors pass through (click prints them and exits with 2). Anything else
    unexpected is a bug: it is reported in one line (with the traceback only when
    ``SMTPKIT_DEBUG=1``) and exits with 70.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except SmtpkitError as exc:
            print_error(exc)
            raise SystemExit(exit_code_for(exc)) from None
        except KeyboardInterrupt:
            stderr_console().print("Interrupted.")
            raise SystemExit(EXIT_INTERRUPTED) from None
        except OSError as exc:
            # Files named on the command line: unreadable attachment, report, CSV...
            fail(f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            if os.environ.get("SMTPKIT_DEBUG"):
                raise
            fail(
                f"internal error {type(exc).__name__}: {exc} (this is a bug in smtpkit; set "
                "SMTPKIT_DEBUG=1 to see the traceback)",
                code=EXIT_INTERNAL,
            )

    return wrapper


# -- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerOptions:
    """The server options of a command, as given on the command line."""

    dsn: str | None = None
    provider: str | None = None
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None


_SERVER_HELP = (
    "Server configuration, in order: --dsn, --provider (with --username/--password), or "
    "SMTPKIT_DSN / SMTPKIT_* environment variables."
)


def server_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--dsn --provider --username --password --ca-file`` to a command."""
    options = [
        click.option(
            "--dsn",
            metavar="DSN",
            help="Server DSN, e.g. smtps://user:pass@smtp.example.com (default: SMTPKIT_DSN).",
        ),
        click.option(
            "--provider",
            metavar="NAME",
            help="A provider preset (gmail, office365, ses, sendgrid, ...); see docs.",
        ),
        click.option("--username", "-u", metavar="USER", help="User name for AUTH."),
        click.option(
            "--password",
            metavar="PASSWORD",
            help="Password for AUTH (better: SMTPKIT_PASSWORD, or leave it out to be prompted).",
        ),
        click.option(
            "--ca-file",
            type=click.Path(exists=True, dir_okay=False),
            help="Trust the CA certificates in this PEM file (e.g. a test server's CA).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _password(options: ServerOptions, environ: Mapping[str, str]) -> str | None:
    if options.password:
        return options.password
    if environ.get("SMTPKIT_PASSWORD"):
        return environ["SMTPKIT_PASSWORD"]
    if options.username is None:
        return None
    if not sys.stdin.isatty():
        raise ConfigError(
            "--username needs a password: give SMTPKIT_PASSWORD or --password (no terminal to "
            "prompt on)"
        )
    value: str = click.prompt(f"Password for {options.username}", hide_input=True)
    return value


def resolve_target(
    options: ServerOptions, environ: Mapping[str, str] | None = None
) -> SMTPConfig | TransportGroup:
    """The configuration the options (or the environment) describe.

    Raises:
        ConfigError: nothing configured, or an invalid setting.
    """
    environ = os.environ if environ is None else environ
    overrides: dict[str, Any] = {}
    if options.ca_file:
        overrides["ca_file"] = options.ca_file
    if options.provider:
        if options.dsn:
            raise ConfigError("give --dsn or --provider, not both")
        from smtpkit.providers import config_from_provider

        password = _password(options, environ)
        return config_from_provider(
            options.provider, username=options.username, password=password, **overrides
        )
    if options.dsn:
        target = parse_dsn(options.dsn)
    else:
        try:
            target = config_from_env(environ)
        except ConfigError as exc:
            if "no SMTP server configured" in str(exc):
                raise ConfigError(
                    "no SMTP server configured: give --dsn, --provider, or set SMTPKIT_DSN"
                ) from None
            raise
    if options.username is not None:
        password = _password(options, environ)
        assert password is not None  # _password prompts or raises when a username is given
        overrides["credentials"] = Credentials(options.username, Secret(password))
    if not overrides:
        return target
    if isinstance(target, TransportGroup):
        return TransportGroup(target.kind, tuple(c.replace(**overrides) for c in target.configs))
    return target.replace(**overrides)


def single_config(target: SMTPConfig | TransportGroup) -> SMTPConfig:
    """The one server of a target; a group is a usage error for commands that need one."""
    if isinstance(target, TransportGroup):
        raise ConfigError(
            f"this command talks to one server, but the DSN is a {target.kind} group of "
            f"{len(target.configs)}: give one server's DSN"
        )
    return target


def describe_target(target: SMTPConfig | TransportGroup) -> str:
    """The target as a redacted DSN (never a password)."""
    return target.redacted_dsn()
