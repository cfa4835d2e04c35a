"""Send mail from FastAPI or Starlette: a mailer bound to the app's lifespan.

::

    from fastapi import BackgroundTasks, FastAPI
    from smtpkit.contrib.fastapi import MailerDep, send_in_background, smtpkit_lifespan

    app = FastAPI(lifespan=smtpkit_lifespan())   # SMTPKIT_DSN / SMTPKIT_* from the environment

    @app.post("/welcome")
    async def welcome(mailer: MailerDep, tasks: BackgroundTasks) -> dict[str, str]:
        message = Message(sender="app@example.com", to=["ann@example.com"], subject="Hi", text="Hi")
        result = await mailer.send(message)         # wait for the server's answer, or
        send_in_background(tasks, mailer, message)  # send after the response, logging failures
        return {"id": result.message_id}

The lifespan makes one :class:`~smtpkit.AsyncMailer` (one connection pool) when the app starts,
keeps it on ``app.state.smtpkit`` and closes it (QUIT on every pooled connection) when the app
shuts down. To combine it with a lifespan of your own::

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with smtpkit_lifespan()(app):
            ...  # your start-up
            yield

``BackgroundTasks.add_task(mailer.send, message)`` works as well, but an error raised by a
background task is lost after the response was sent; :func:`send_in_background` logs it.
Needs the ``fastapi`` extra: ``pip install 'smtpkit[fastapi]'``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, Final

try:
    from fastapi import Depends
    from starlette.background import BackgroundTasks
    from starlette.requests import HTTPConnection
except ImportError as _missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "smtpkit.contrib.fastapi needs FastAPI: pip install 'smtpkit[fastapi]'"
    ) from _missing

from smtpkit._config import RetryPolicy, SMTPConfig
from smtpkit._dsn import TransportGroup
from smtpkit._exceptions import SmtpkitError
from smtpkit._hooks import Hooks
from smtpkit._mailer import AsyncMailer
from smtpkit._message import Message
from smtpkit._transports.base import AsyncTransport

__all__ = [
    "STATE_KEY",
    "MailerDep",
    "get_mailer",
    "send_in_background",
    "send_logged",
    "smtpkit_lifespan",
]

#: The attribute of ``app.state`` that holds the mailer.
STATE_KEY: Final = "smtpkit"

_log = logging.getLogger("smtpkit.contrib.fastapi")


def smtpkit_lifespan(
    dsn: str | None = None,
    /,
    *,
    target: SMTPConfig | TransportGroup | AsyncTransport | None = None,
    environ: Mapping[str, str] | None = None,
    hooks: Hooks | None = None,
    retry: RetryPolicy | None = None,
    rate_limit: float | None = None,
) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A lifespan that opens an :class:`~smtpkit.AsyncMailer` at start-up and closes it at
    shutdown: ``FastAPI(lifespan=smtpkit_lifespan(...))`` (or Starlette's ``lifespan=``).

    The mailer comes from ``dsn``, else from ``target`` (an :class:`~smtpkit.SMTPConfig` or
    any transport, e.g. :class:`~smtpkit.MemoryTransport` in tests), else from the
    ``SMTPKIT_*`` variables of ``environ`` (default: ``os.environ``), read when the app starts.
    It is made inside the server's event loop, as its connection pool needs.
    """
    if dsn is not None and target is not None:
        raise TypeError("pass a DSN or a target, not both")

    def make() -> AsyncMailer:
        options: dict[str, Any] = {"hooks": hooks, "retry": retry, "rate_limit": rate_limit}
        if dsn is not None:
            return AsyncMailer.from_dsn(dsn, **options)
        if target is not None:
            return AsyncMailer(target, **options)
        return AsyncMailer.from_env(environ, **options)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        mailer = make()
        setattr(app.state, STATE_KEY, mailer)
        try:
            yield
        finally:
            try:
                await mailer.aclose()
            finally:
                delattr(app.state, STATE_KEY)

    return lifespan


def get_mailer(connection: HTTPConnection) -> AsyncMailer:
    """The app's mailer, for ``Depends(get_mailer)`` (or call it with a Starlette request).

    Raises:
        RuntimeError: the app was not started with :func:`smtpkit_lifespan`.
    """
    mailer = getattr(connection.app.state, STATE_KEY, None)
    if not isinstance(mailer, AsyncMailer):
        raise RuntimeError(
            "no smtpkit mailer on app.state: create the app with lifespan=smtpkit_lifespan()"
        )
    return mailer


#: A route parameter annotated ``mailer: MailerDep`` receives the app's :class:`AsyncMailer`.
MailerDep = Annotated[AsyncMailer, Depends(get_mailer)]


async def send_logged(mailer: AsyncMailer, message: Message, /) -> None:
    """Send ``message`` and log (never raise) a failure, for work nobody awaits.

    A failure is logged at ERROR on the ``smtpkit.contrib.fastapi`` logger with the
    Message-ID and the error (whose text carries the server's reply and a hint).
    """
    try:
        result = await mailer.send(message)
    except SmtpkitError as exc:
        _log.error(
            "background send of %s failed: %s: %s",
            message.message_id,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        return
    except Exception:
        _log.exception("background send of %s failed unexpectedly", message.message_id)
        return
    if result.rejected:
        _log.warning(
            "background send of %s: recipients refused: %s",
            message.message_id,
            ", ".join(result.rejected),
        )


def send_in_background(tasks: BackgroundTasks, mailer: AsyncMailer, message: Message, /) -> None:
    """Send ``message`` after the response is sent, logging a failure instead of losing it.

    ``tasks`` is the route's ``BackgroundTasks``; see :func:`send_logged`.
    """
    tasks.add_task(send_logged, mailer, message)
