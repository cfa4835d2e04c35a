"""MemoryTransport, FileTransport, FailoverTransport and RoundRobinTransport (no sockets)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpkit._envelope import Envelope
from smtpkit._exceptions import (
    AllTransportsFailed,
    AuthenticationError,
    ConfigError,
    ConnectError,
    DeliveryUnknown,
    RecipientsRefused,
    SenderRefused,
    TLSError,
    TransportError,
)
from smtpkit._replies import Reply, SendResult
from smtpkit._transports.base import AsyncTransport, header_block, message_id_of
from smtpkit._transports.file import FileTransport
from smtpkit._transports.memory import MemoryTransport
from smtpkit._transports.multi import FailoverTransport, RoundRobinTransport, should_fail_over

DATA = (
    b"From: a@example.com\r\nTo: b@example.com\r\nMessage-ID: <u1@example.com>\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello\r\n"
)


def envelope(*recipients: str) -> Envelope:
    return Envelope("a@example.com", recipients or ("b@example.com",))


# -- helpers in base ---------------------------------------------------------------------------


def test_message_id_of_reads_only_the_header_block() -> None:
    assert message_id_of(DATA) == "<u1@example.com>"
    assert message_id_of(b"Subject: x\r\n\r\nMessage-ID: <body@example.com>\r\n") is None
    assert message_id_of(b"message-id: <lower@example.com>\n\nbody") == "<lower@example.com>"
    assert message_id_of(b"X-Message-ID: <no@example.com>\r\n\r\n") is None
    assert header_block(b"A: 1\r\nB: 2\r\n\r\nbody") == b"A: 1\r\nB: 2"


@given(st.binary(max_size=2000))
def test_message_id_of_never_fails(data: bytes) -> None:
    value = message_id_of(data)
    assert value is None or (value.startswith("<") and value.endswith(">"))


# -- MemoryTransport ---------------------------------------------------------------------------


async def test_memory_records_messages_and_parses_them() -> None:
    transport = MemoryTransport()
    assert isinstance(transport, AsyncTransport)
    result = await transport.send_raw(envelope("b@example.com", "c@example.com"), DATA)
    assert result.accepted == ("b@example.com", "c@example.com")
    assert result.message_id == "<u1@example.com>"
    assert result.transport == "memory://"
    (sent,) = transport.outbox
    assert sent.data == DATA
    assert sent.subject == "Grüße"
    assert sent.text == "Hello\n"
    assert sent.html is None
    assert sent.sender == "a@example.com"
    assert sent.recipients == ("b@example.com", "c@example.com")
    assert sent.header("To") == "b@example.com"
    assert sent.header("X-Missing") is None
    assert sent.attachments == []
    assert "u1@example.com" in repr(sent)


async def test_memory_refuses_configured_addresses() -> None:
    transport = MemoryTransport(refuse=["Bob@Example.com"])
    result = await transport.send_raw(envelope("ann@example.com", "bob@example.com"), DATA)
    assert result.accepted == ("ann@example.com",)
    assert result.rejected["bob@example.com"].code == 550
    transport.refuse("ann@example.com", reply=Reply(450, "4.2.0", "busy"))
    with pytest.raises(RecipientsRefused) as caught:
        await transport.send_raw(envelope("ann@example.com", "bob@example.com"), DATA)
    assert not caught.value.is_transient  # one 550 among them
    assert len(transport.outbox) == 1


async def test_memory_fails_next_sends_then_recovers() -> None:
    transport = MemoryTransport()
    transport.fail_next(ConnectError("refused"), times=2)
    for _ in range(2):
        with pytest.raises(ConnectError):
            await transport.send_raw(envelope(), DATA)
    await transport.send_raw(envelope(), DATA)
    assert len(transport.outbox) == 1
    transport.clear()
    assert transport.outbox == []
    await transport.aclose()
    assert transport.closed


# -- FileTransport -----------------------------------------------------------------------------


def _count(directory: Path, pattern: str) -> int:
    return len(list(directory.glob(pattern)))


async def test_file_transport_writes_eml_and_envelope(tmp_path: Path) -> None:
    directory = tmp_path / "out" / "nested"
    transport = FileTransport(directory)
    env = Envelope("a@example.com", ["b@example.com", "hidden@example.com"])
    result = await transport.send_raw(env, DATA)
    await transport.send_raw(env, DATA)
    emls = sorted(directory.glob("*.eml"))
    assert len(emls) == 2
    assert emls[0].read_bytes() == DATA
    assert result.extra["path"] == str(emls[0])
    sidecar = json.loads(emls[0].with_name(emls[0].stem + ".envelope.json").read_text("utf-8"))
    assert sidecar["sender"] == "a@example.com"
    assert sidecar["recipients"] == ["b@example.com", "hidden@example.com"]
    assert sidecar["message_id"] == "<u1@example.com>"
    assert not list(directory.glob(".*.tmp"))
    assert result.accepted == ("b@example.com", "hidden@example.com")
    assert transport.description.startswith("file://")
    await transport.aclose()


async def test_file_transport_concurrent_writes_get_distinct_names(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path)
    await asyncio.gather(*(transport.send_raw(envelope(), DATA) for _ in range(20)))
    assert _count(tmp_path, "*.eml") == 20
    assert _count(tmp_path, "*.envelope.json") == 20


# -- failover and round-robin ------------------------------------------------------------------


class Named(MemoryTransport):
    def __init__(self, name: str) -> None:
        super().__init__(description=f"memory://{name}")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConnectError("x"), True),
        (TLSError("x"), True),
        (AuthenticationError("x", reply=Reply(535)), True),
        (SenderRefused("x", reply=Reply(451)), True),
        (SenderRefused("x", reply=Reply(550)), False),
        (RecipientsRefused("x", rejected={"a@example.com": Reply(550)}), False),
        (DeliveryUnknown("x"), False),
    ],
)
def test_should_fail_over(error: TransportError, expected: bool) -> None:
    assert should_fail_over(error) is expected


async def test_failover_uses_the_next_transport_on_connection_errors() -> None:
    first, second = Named("a"), Named("b")
    first.fail_next(ConnectError("refused"))
    transport = FailoverTransport([first, second])
    result = await transport.send_raw(envelope(), DATA)
    assert result.transport == "memory://b"
    assert (len(first.outbox), len(second.outbox)) == (0, 1)
    result = await transport.send_raw(envelope(), DATA)
    assert result.transport == "memory://a"
    assert transport.description == "failover(memory://a memory://b)"


async def test_failover_stops_on_delivery_unknown_and_permanent_refusals() -> None:
    first, second = Named("a"), Named("b")
    transport = FailoverTransport([first, second])
    first.fail_next(DeliveryUnknown("lost after the dot"))
    with pytest.raises(DeliveryUnknown):
        await transport.send_raw(envelope(), DATA)
    first.refuse("b@example.com")
    with pytest.raises(RecipientsRefused):
        await transport.send_raw(envelope(), DATA)
    assert second.outbox == []


async def test_all_transports_failed_collects_every_error() -> None:
    first, second = Named("a"), Named("b")
    first.fail_next(ConnectError("refused"))
    second.fail_next(TLSError("bad certificate", stage="tls"))
    transport = FailoverTransport([first, second])
    with pytest.raises(AllTransportsFailed) as caught:
        await transport.send_raw(envelope(), DATA)
    error = caught.value
    assert [type(e) for e in error.errors] == [ConnectError, TLSError]
    assert error.is_transient  # the ConnectError is
    assert error.stage == "tls"
    assert "refused" in str(error)
    assert "bad certificate" in str(error)


async def test_round_robin_rotates_and_falls_over() -> None:
    transports = [Named("a"), Named("b"), Named("c")]
    transport = RoundRobinTransport(transports)
    used = [(await transport.send_raw(envelope(), DATA)).transport for _ in range(4)]
    assert used == ["memory://a", "memory://b", "memory://c", "memory://a"]
    transports[1].fail_next(ConnectError("down"))
    result = await transport.send_raw(envelope(), DATA)  # b's turn; b fails; c takes it
    assert result.transport == "memory://c"
    assert transport.description.startswith("roundrobin(")


async def test_group_aclose_closes_every_member_even_if_one_fails() -> None:
    class Broken(MemoryTransport):
        async def aclose(self) -> None:
            raise OSError("boom")

    ok = MemoryTransport()
    group = FailoverTransport([Broken(), ok])
    await group.aclose()
    assert ok.closed


def test_an_empty_group_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        FailoverTransport([])


async def test_results_are_send_results() -> None:
    result = await MemoryTransport().send_raw(envelope(), DATA)
    assert isinstance(result, SendResult)
    assert result.reply is not None
    assert result.reply.code == 250
