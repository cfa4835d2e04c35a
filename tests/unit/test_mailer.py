"""AsyncMailer and Mailer logic: retries, hooks, send_many, rate limit, the sync facade.

These tests drive the mailer with a scripted transport (a transport whose outcomes the test
dictates), because they are about the mailer's decisions, not the wire; the same paths run
against real servers in tests/server/test_mailer_server.py.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Iterator

import pytest

from smtpkit import (
    AsyncMailer,
    ConnectError,
    DeliveryUnknown,
    Envelope,
    Hooks,
    Mailer,
    Message,
    MessageRejected,
    RecipientStatus,
    Reply,
    RetryPolicy,
    SenderRefused,
    SendResult,
    ServerDisconnected,
    SmtpkitError,
    TransportError,
)

FAST = RetryPolicy(retries=2, initial_backoff=0.001, max_backoff=0.01, max_elapsed=5.0)


class ScriptedTransport:
    """Fails or succeeds as scripted, recording every call."""

    description = "scripted://"

    def __init__(self, outcomes: list[BaseException | None] | None = None, delay: float = 0.0):
        self.outcomes = list(outcomes or [])
        self.calls: list[tuple[Envelope, bytes]] = []
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False

    async def send_raw(self, envelope: Envelope, data: bytes, /) -> SendResult:
        self.calls.append((envelope, data))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            outcome = self.outcomes.pop(0) if self.outcomes else None
            if outcome is not None:
                raise outcome
            return SendResult(
                message_id=None,
                envelope=envelope,
                recipients=tuple(
                    RecipientStatus(str(r), Reply(250, "2.1.5", "ok")) for r in envelope.recipients
                ),
                reply=Reply(250, "2.0.0", "Ok: queued as ABC123"),
            )
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        self.closed = True


def message(n: int = 0, **kw: object) -> Message:
    fields: dict[str, object] = {
        "sender": "App <app@example.com>",
        "to": [f"user{n}@example.com"],
        "subject": f"hello {n}",
        "text": "hi",
    }
    fields.update(kw)
    return Message(**fields)  # type: ignore[arg-type]


def greylisted() -> TransportError:
    return SenderRefused("greylisted", stage="mail", reply=Reply(450, "4.7.1", "try later"))


async def test_transient_error_is_retried_and_attempts_counted() -> None:
    transport = ScriptedTransport([greylisted(), None])
    async with AsyncMailer(transport, retry=FAST) as mailer:
        result = await mailer.send(message())
    assert len(transport.calls) == 2
    assert result.attempts == 2
    assert result.accepted == ("user0@example.com",)
    assert result.message_id is not None
    assert result.message_id.startswith("<")
    assert result.queue_id == "ABC123"
    assert transport.closed


async def test_permanent_error_is_not_retried() -> None:
    refused = SenderRefused("no", stage="mail", reply=Reply(550, "5.7.1", "not allowed"))
    transport = ScriptedTransport([refused])
    mailer = AsyncMailer(transport, retry=FAST)
    with pytest.raises(SenderRefused) as info:
        await mailer.send(message())
    assert info.value.attempts == 1
    assert not info.value.is_transient
    assert len(transport.calls) == 1


async def test_delivery_unknown_is_never_resent() -> None:
    transport = ScriptedTransport([DeliveryUnknown("dropped after dot", stage="data")])
    mailer = AsyncMailer(transport, retry=FAST)
    with pytest.raises(DeliveryUnknown):
        await mailer.send(message())
    assert len(transport.calls) == 1


async def test_retries_exhausted_raise_the_last_error() -> None:
    errors: list[BaseException | None] = [
        ConnectError("refused 1"),
        ServerDisconnected("gone 2"),
        ConnectError("refused 3"),
    ]
    transport = ScriptedTransport(errors)
    mailer = AsyncMailer(transport, retry=FAST)
    with pytest.raises(ConnectError, match="refused 3") as info:
        await mailer.send(message())
    assert info.value.attempts == 3
    assert len(transport.calls) == 3


async def test_retries_zero_turns_retrying_off() -> None:
    transport = ScriptedTransport([ConnectError("refused")])
    mailer = AsyncMailer(transport, retry=RetryPolicy(retries=0))
    with pytest.raises(ConnectError):
        await mailer.send(message())
    assert len(transport.calls) == 1


async def test_bcc_reaches_envelope_not_bytes() -> None:
    transport = ScriptedTransport()
    mailer = AsyncMailer(transport)
    await mailer.send(message(bcc=["hidden@example.com"]))
    envelope, data = transport.calls[0]
    assert [str(r) for r in envelope.recipients] == ["user0@example.com", "hidden@example.com"]
    assert b"hidden@example.com" not in data


async def test_explicit_envelope_is_used() -> None:
    transport = ScriptedTransport()
    mailer = AsyncMailer(transport)
    envelope = Envelope("bounces@example.com", ["other@example.com"])
    result = await mailer.send(message(), envelope=envelope)
    assert transport.calls[0][0] is envelope
    assert result.accepted == ("other@example.com",)


async def test_before_send_hook_can_change_the_message() -> None:
    def add_header(m: Message) -> Message:
        return m.replace(subject="changed by hook")

    async def keep(m: Message) -> None:
        return None

    transport = ScriptedTransport()
    mailer = AsyncMailer(transport, hooks=Hooks(before_send=(keep, add_header)))
    await mailer.send(message())
    assert b"Subject: changed by hook" in transport.calls[0][1]


async def test_before_send_hook_can_reject_and_nothing_is_sent() -> None:
    def reject(m: Message) -> Message:
        raise MessageRejected("blocked by policy")

    transport = ScriptedTransport()
    mailer = AsyncMailer(transport, hooks=Hooks(before_send=(reject,)))
    with pytest.raises(MessageRejected):
        await mailer.send(message())
    assert transport.calls == []


async def test_sent_and_failed_hooks_see_outcomes_and_cannot_break_a_send() -> None:
    seen: list[object] = []

    def broken(result: SendResult) -> None:
        raise RuntimeError("hook bug")

    async def record_sent(result: SendResult) -> None:
        seen.append(result)

    def record_failed(envelope: Envelope, error: SmtpkitError) -> None:
        seen.append(error)

    refused = SenderRefused("no", stage="mail", reply=Reply(550, "5.7.1", "denied"))
    transport = ScriptedTransport([None, refused])
    hooks = Hooks(sent=(broken, record_sent), failed=(record_failed,))
    mailer = AsyncMailer(transport, hooks=hooks, retry=FAST)
    result = await mailer.send(message())
    with pytest.raises(SenderRefused):
        await mailer.send(message())
    assert seen[0] is result
    assert seen[1] is refused


async def test_send_many_keeps_order_and_reports_errors_in_place() -> None:
    refused = SenderRefused("no", stage="mail", reply=Reply(550, "5.7.1", "denied"))
    transport = ScriptedTransport([None, refused, None])
    mailer = AsyncMailer(transport, retry=FAST)
    outcomes = await mailer.send_many([message(0), message(1), message(2)], concurrency=1)
    assert isinstance(outcomes[0], SendResult)
    assert outcomes[1] is refused
    assert isinstance(outcomes[2], SendResult)
    assert outcomes[2].accepted == ("user2@example.com",)


async def test_send_many_bounds_concurrency_and_reads_lazily() -> None:
    transport = ScriptedTransport(delay=0.01)
    mailer = AsyncMailer(transport)
    produced = 0

    def generate() -> Iterator[Message]:
        nonlocal produced
        for n in range(20):
            produced += 1
            # Never more than `concurrency` messages taken ahead of those finished.
            assert produced - len(transport.calls) <= 3 + 1
            yield message(n)

    outcomes = await mailer.send_many(generate(), concurrency=3)
    assert len(outcomes) == 20
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert transport.max_in_flight <= 3
    assert transport.max_in_flight >= 2


async def test_send_many_accepts_async_iterables() -> None:
    async def generate():  # type: ignore[no-untyped-def]
        for n in range(3):
            yield message(n)

    transport = ScriptedTransport()
    outcomes = await AsyncMailer(transport).send_many(generate())
    assert [o.accepted for o in outcomes if isinstance(o, SendResult)] == [
        (f"user{n}@example.com",) for n in range(3)
    ]


async def test_rate_limit_spaces_messages() -> None:
    transport = ScriptedTransport()
    mailer = AsyncMailer(transport, rate_limit=50.0)
    started = time.monotonic()
    await mailer.send_many([message(n) for n in range(6)], concurrency=6)
    # Six evenly spaced slots at 50/s need at least five intervals of 20 ms.
    assert time.monotonic() - started >= 0.095


async def test_closed_mailer_refuses_to_send() -> None:
    transport = ScriptedTransport()
    mailer = AsyncMailer(transport)
    await mailer.aclose()
    await mailer.aclose()
    with pytest.raises(SmtpkitError, match="closed"):
        await mailer.send(message())


def test_sync_facade_matches_async_signatures() -> None:
    for name in ("send", "send_raw", "send_many", "from_dsn", "from_env"):
        sync = inspect.signature(getattr(Mailer, name))
        asyn = inspect.signature(getattr(AsyncMailer, name))
        strip = [p.replace(annotation=inspect.Parameter.empty) for p in sync.parameters.values()]
        astrip = [p.replace(annotation=inspect.Parameter.empty) for p in asyn.parameters.values()]
        assert strip == astrip, name
    assert list(inspect.signature(Mailer.__init__).parameters) == list(
        inspect.signature(AsyncMailer.__init__).parameters
    )
    assert inspect.iscoroutinefunction(AsyncMailer.send)
    assert not inspect.iscoroutinefunction(Mailer.send)


def test_sync_mailer_sends_retries_and_closes() -> None:
    transport = ScriptedTransport([greylisted(), None])
    with Mailer(transport, retry=FAST) as mailer:
        result = mailer.send(message())
        results = mailer.send_many([message(1), message(2)])
        raw = mailer.send_raw(
            Envelope("a@example.com", ["b@example.com"]), b"Subject: x\r\n\r\nhi\r\n"
        )
    assert result.attempts == 2
    assert [r.accepted for r in results if isinstance(r, SendResult)] == [
        ("user1@example.com",),
        ("user2@example.com",),
    ]
    assert raw.accepted == ("b@example.com",)
    assert transport.closed
    with pytest.raises(SmtpkitError, match="closed"):
        mailer.send(message())
    mailer.close()


async def test_sync_mailer_works_from_inside_a_running_loop() -> None:
    transport = ScriptedTransport()
    with Mailer(transport) as mailer:
        result = mailer.send(message())
    assert result.accepted == ("user0@example.com",)


def test_sync_mailer_refuses_calls_from_its_own_loop_thread() -> None:
    transport = ScriptedTransport()
    errors: list[BaseException] = []
    holder: dict[str, Mailer] = {}

    def reenter(result: SendResult) -> None:
        try:
            holder["mailer"].send(message(9))
        except RuntimeError as exc:
            errors.append(exc)

    with Mailer(transport, hooks=Hooks(sent=(reenter,))) as mailer:
        holder["mailer"] = mailer
        mailer.send(message())
    assert errors
    assert "AsyncMailer" in str(errors[0])
    assert len(transport.calls) == 1


def test_sync_mailer_in_a_forked_child_fails_fast_instead_of_hanging() -> None:
    import os

    transport = ScriptedTransport()
    with Mailer(transport) as mailer:
        pid = os.fork()
        if pid == 0:  # the child: only this thread survived the fork
            code = 1
            try:
                mailer.send(message())
            except RuntimeError as exc:
                code = 0 if "forked" in str(exc) else 2
            try:
                mailer.close()
            except BaseException:
                code = 3
            os._exit(code)
        deadline = time.monotonic() + 20
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                raise AssertionError("the child hung")
            time.sleep(0.05)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's mailer is untouched.
        assert mailer.send(message()).accepted == ("user0@example.com",)
