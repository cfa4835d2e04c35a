"""Send mail from Flask: the :class:`SmtpKit` extension, configured from ``app.config``.

::

    from flask import Flask
    from smtpkit.contrib.flask import SmtpKit

    mail = SmtpKit()

    def create_app() -> Flask:
        app = Flask(__name__)
        app.config["SMTPKIT_DSN"] = "smtp://user:password@smtp.example.com:587"
        app.config["SMTPKIT_DEFAULT_SENDER"] = "Example <no-reply@example.com>"
        app.config["SMTPKIT_TEMPLATES"] = "email_templates"   # relative to app.root_path
        mail.init_app(app)
        return app

    # in a view
    mail.send(message)                                       # -> SendResult
    mail.send_template("welcome", {"name": "Ann"}, to=["ann@example.com"])

Settings (``app.config``):

``SMTPKIT_DSN``, or ``SMTPKIT_HOST`` / ``SMTPKIT_PORT`` / ``SMTPKIT_TLS`` / ``SMTPKIT_USERNAME`` /
``SMTPKIT_PASSWORD`` / ``SMTPKIT_PROVIDER`` / ... exactly as the ``SMTPKIT_*`` environment
variables (the same parser reads them; ints and bools may be given as Python values).
``SMTPKIT_TEMPLATES``: a directory of smtpkit templates (relative to ``app.root_path``) or
``"package:NAME/PATH"``. ``SMTPKIT_TEMPLATES_USE_FLASK``: ``True`` to find templates with the
app's own Jinja loader (its ``templates/`` folder and blueprints), filters and globals instead.
``SMTPKIT_DEFAULT_SENDER``: the sender :meth:`SmtpKit.send_template` uses when none is given.
``SMTPKIT_RECORD``: with ``TESTING``, keep messages in memory instead of sending them
(:attr:`SmtpKit.outbox`); see also :func:`record_messages`.

Each app gets one blocking :class:`~smtpkit.Mailer` (and so one connection pool), made on the
first send in each process (after a fork, too) and closed when the app is garbage-collected
or the interpreter exits, or by :meth:`SmtpKit.close`. Needs the ``flask`` extra:
``pip install 'smtpkit[flask]'``.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, Final

try:
    from flask import Flask, current_app, has_app_context
except ImportError as _missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "smtpkit.contrib.flask needs Flask: pip install 'smtpkit[flask]'"
    ) from _missing

from smtpkit._config import RetryPolicy, SMTPConfig
from smtpkit._dsn import TransportGroup, config_from_env
from smtpkit._exceptions import ConfigError
from smtpkit._hooks import Hooks
from smtpkit._message import Message
from smtpkit._replies import SendResult
from smtpkit._sync import Mailer
from smtpkit._templates import Templates
from smtpkit._transports.memory import MemoryTransport

__all__ = ["EXTENSION_KEY", "SmtpKit", "SmtpKitState", "record_messages"]

#: The key of the per-app :class:`SmtpKitState` in ``app.extensions``.
EXTENSION_KEY: Final = "smtpkit"

_PREFIX: Final = "SMTPKIT_"


def _as_env_value(value: object) -> str:
    # app.config holds Python values; the env parser reads text.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _close_in(pid: int, mailer: Mailer) -> None:
    # A forked child inherits the finalizer but not the mailer's loop thread: closing from there
    # would wait forever for a loop that no longer runs.
    if os.getpid() == pid:
        mailer.close()


class SmtpKitState:
    """What :class:`SmtpKit` keeps for one app, in ``app.extensions["smtpkit"]``.

    Holds the parsed settings, the app's :class:`~smtpkit.Mailer` (made on first use) and its
    :class:`~smtpkit.Templates`. Several threads of one app share it.
    """

    def __init__(
        self,
        app: Flask,
        *,
        hooks: Hooks | None,
        retry: RetryPolicy | None,
        rate_limit: float | None,
    ) -> None:
        config = app.config
        self.default_sender: str | None = config.get("SMTPKIT_DEFAULT_SENDER") or None
        self._hooks, self._retry, self._rate_limit = hooks, retry, rate_limit
        self._lock = threading.Lock()
        self._app = weakref.ref(app)
        self._mailer: Mailer | None = None
        self._pid = 0
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._templates: Templates | None = None
        self._recorders: list[Mailer] = []

        record = bool(config.get("SMTPKIT_RECORD", False))
        if record and not app.testing:
            # Never let a production app drop its mail into memory because of a stray setting.
            raise ConfigError("SMTPKIT_RECORD is only allowed with TESTING = True")
        #: The transport messages are recorded in when ``SMTPKIT_RECORD`` is on, else ``None``.
        self.outbox: MemoryTransport | None = MemoryTransport() if record else None
        self._target: SMTPConfig | TransportGroup | None = None
        if self.outbox is None:
            environ = {
                key: _as_env_value(value)
                for key, value in config.items()
                if key.startswith(_PREFIX) and value is not None
            }
            self._target = config_from_env(environ)

        templates = config.get("SMTPKIT_TEMPLATES")
        self._use_flask_templates = bool(config.get("SMTPKIT_TEMPLATES_USE_FLASK", False))
        if templates and self._use_flask_templates:
            raise ConfigError("set SMTPKIT_TEMPLATES or SMTPKIT_TEMPLATES_USE_FLASK, not both")
        self._templates_source: str | Path | None = None
        if templates:
            text = str(templates)
            self._templates_source = (
                text if text.startswith("package:") else Path(app.root_path, templates)
            )

    @property
    def mailer(self) -> Mailer:
        """The app's mailer in this process, made on first use."""
        with self._lock:
            if self._recorders:
                return self._recorders[-1]
            if self._mailer is not None and self._pid != os.getpid():
                # Forked (e.g. a pre-loading server): the parent's loop thread is not here.
                assert self._finalizer is not None
                self._finalizer.detach()
                self._mailer = None
            if self._mailer is None:
                self._mailer = self._make_mailer()
                self._pid = os.getpid()
                self._finalizer = weakref.finalize(self, _close_in, self._pid, self._mailer)
            return self._mailer

    @property
    def templates(self) -> Templates:
        """The app's email templates (``SMTPKIT_TEMPLATES`` or Flask's loader)."""
        with self._lock:
            if self._templates is None:
                self._templates = self._make_templates()
            return self._templates

    def close(self) -> None:
        """Close the mailer's connections; the next send opens a new mailer."""
        with self._lock:
            finalizer, self._finalizer, self._mailer = self._finalizer, None, None
        if finalizer is not None:
            finalizer()

    @contextmanager
    def recording(self) -> Iterator[MemoryTransport]:
        """Send to a fresh :class:`~smtpkit.MemoryTransport` inside the block; see
        :func:`record_messages`."""
        transport = MemoryTransport()
        recorder = Mailer(transport, hooks=self._hooks)
        with self._lock:
            self._recorders.append(recorder)
        try:
            yield transport
        finally:
            with self._lock:
                self._recorders.remove(recorder)
            recorder.close()

    def _make_mailer(self) -> Mailer:
        target = self.outbox if self.outbox is not None else self._target
        assert target is not None
        return Mailer(target, hooks=self._hooks, retry=self._retry, rate_limit=self._rate_limit)

    def _make_templates(self) -> Templates:
        if self._templates_source is not None:
            return Templates(self._templates_source)
        app = self._app()
        if not self._use_flask_templates or app is None:
            raise ConfigError(
                "no email templates: set SMTPKIT_TEMPLATES to a directory, or "
                "SMTPKIT_TEMPLATES_USE_FLASK = True to use the app's templates folder"
            )
        env = app.jinja_env
        if env.loader is None:
            raise ConfigError("SMTPKIT_TEMPLATES_USE_FLASK: the app has no Jinja loader")
        # Flask's loader, filters and globals, rendered by smtpkit's sandboxed environment so
        # that subjects are still checked for line breaks; context processors are not run.
        return Templates(env.loader, filters=env.filters, globals=env.globals)


class SmtpKit:
    """The Flask extension: ``SmtpKit(app)``, or ``SmtpKit()`` then :meth:`init_app`.

    Methods act on the current app (inside an app or request context), or on the app given
    to the constructor outside one.

    Args:
        app: the app to set up now.
        hooks: ``before_send`` / ``sent`` / ``failed`` hooks given to each app's mailer.
        retry: the retry policy; by default the configuration's.
        rate_limit: at most this many messages per second, per app and process.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        hooks: Hooks | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: float | None = None,
    ) -> None:
        self._app = app
        self._hooks, self._retry, self._rate_limit = hooks, retry, rate_limit
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read the app's ``SMTPKIT_*`` settings (a :class:`~smtpkit.ConfigError` now if they
        are wrong) and register the app's state. No connection is opened here."""
        app.extensions[EXTENSION_KEY] = SmtpKitState(
            app, hooks=self._hooks, retry=self._retry, rate_limit=self._rate_limit
        )

    @property
    def state(self) -> SmtpKitState:
        """The current app's :class:`SmtpKitState`."""
        return _state(self._current_app())

    @property
    def mailer(self) -> Mailer:
        """The current app's blocking :class:`~smtpkit.Mailer`."""
        return self.state.mailer

    @property
    def outbox(self) -> MemoryTransport | None:
        """The recorded messages' transport with ``SMTPKIT_RECORD`` on, else ``None``."""
        return self.state.outbox

    def send(self, message: Message, /) -> SendResult:
        """Send ``message`` with the current app's mailer; see :meth:`smtpkit.Mailer.send`."""
        return self.state.mailer.send(message)

    def template_message(
        self, name: str, context: Mapping[str, Any] | None = None, /, **fields: Any
    ) -> Message:
        """Render the template ``name`` into a message without sending it.

        ``fields`` are the other :class:`~smtpkit.Message` arguments; ``sender`` defaults to
        ``SMTPKIT_DEFAULT_SENDER``.
        """
        state = self.state
        if "sender" not in fields:
            if state.default_sender is None:
                raise ConfigError("no sender: pass sender=... or set SMTPKIT_DEFAULT_SENDER")
            fields["sender"] = state.default_sender
        return state.templates.message(name, context, **fields)

    def send_template(
        self, name: str, context: Mapping[str, Any] | None = None, /, **fields: Any
    ) -> SendResult:
        """Render the template ``name`` (see :meth:`template_message`) and send it."""
        return self.send(self.template_message(name, context, **fields))

    def close(self) -> None:
        """Close the current app's mailer (it is made again on the next send)."""
        self.state.close()

    def _current_app(self) -> Flask:
        if has_app_context():
            app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
            return app
        if self._app is not None:
            return self._app
        raise RuntimeError(
            "smtpkit: no Flask app here: call inside an app context (with app.app_context():)"
            " or create the extension as SmtpKit(app)"
        )


def _state(app: Flask) -> SmtpKitState:
    state = app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, SmtpKitState):
        raise RuntimeError("smtpkit is not set up on this app: call SmtpKit(app) or init_app(app)")
    return state


@contextmanager
def record_messages(app: Flask) -> Iterator[MemoryTransport]:
    """Keep the messages ``app`` sends inside the block in memory, and yield their transport.

    Nothing reaches the SMTP server meanwhile (from any thread of this app). Check the
    outbox with :func:`smtpkit.testing.assert_sent`::

        with record_messages(app) as outbox:
            client.post("/contact", data=...)
        (sent,) = assert_sent(outbox, to="team@example.com")
    """
    with _state(app).recording() as transport:
        yield transport
