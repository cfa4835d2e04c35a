"""Outbox throughput: durable enqueue, and a worker draining into a sink, next to direct sending.

In one run, against the fast sink of ``benchmarks/_sink.py`` (its own process, plain SMTP on
127.0.0.1):

1. ``enqueue``: N messages stored one by one with ``Outbox.enqueue`` (each commit fsynced
   before it returns: the figure a web request pays), then N more with ``enqueue_many``
   (batches, one fsync each).
2. ``drain``: ``AsyncOutbox.run(..., stop_when_idle=True)`` sends each outbox's N messages
   through an ``AsyncMailer`` with a pool (claims, sends, outcome records included).
3. ``direct``: ``AsyncMailer.send_many`` of the same N messages with the same pool and
   concurrency, no outbox.

Drains and direct runs alternate (drain, direct, drain, direct) so that a change in machine load
hits both alike. The goal (issue 5): the drain reaches at least 70% of direct pooled sending.

    /work/venv/bin/python benchmarks/outbox.py                # N = 10,000
    /work/venv/bin/python benchmarks/outbox.py --n 2000       # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import HOST, MANY, Sink, running_sink  # noqa: E402

from smtpkit import AsyncMailer, Message, PoolLimits, SMTPConfig, TLSMode  # noqa: E402
from smtpkit.outbox import AsyncOutbox, Outbox  # noqa: E402

GOAL = 0.70


def build_messages(n: int) -> list[Message]:
    return [
        Message(
            sender="Shop <orders@shop.example.com>",
            to=[f"customer{i}@example.com"],
            subject=f"Your order A-{100000 + i} has shipped",
            text=f"Hello,\n\nYour order A-{100000 + i} left our warehouse today.\n",
        )
        for i in range(n)
    ]


def config(sink: Sink, connections: int) -> SMTPConfig:
    pool = PoolLimits(max_connections=connections, max_messages_per_connection=MANY)
    return SMTPConfig(host=HOST, port=sink.plain_port, tls=TLSMode.NONE, pool=pool)


def timed_enqueue(path: Path, messages: list[Message], batch: int | None) -> float:
    with Outbox(path) as outbox:
        gc.collect()
        started = time.perf_counter()
        if batch is None:
            for message in messages:
                outbox.enqueue(message)
        else:
            for start in range(0, len(messages), batch):
                outbox.enqueue_many(messages[start : start + batch])
        elapsed = time.perf_counter() - started
        assert outbox.status().total == len(messages)
    return elapsed


async def timed_drain(path: Path, sink: Sink, concurrency: int) -> float:
    async with AsyncOutbox(path) as outbox, AsyncMailer(config(sink, concurrency)) as mailer:
        gc.collect()
        started = time.perf_counter()
        stats = await outbox.run(
            mailer, concurrency=concurrency, stop_when_idle=True, poll_interval=0.01
        )
        elapsed = time.perf_counter() - started
        total = (await outbox.status()).total
    if stats.sent != total:
        raise RuntimeError(f"drain sent {stats.sent} of {total}: {stats}")
    return elapsed


async def timed_direct(messages: list[Message], sink: Sink, concurrency: int) -> float:
    async with AsyncMailer(config(sink, concurrency)) as mailer:
        # Open every connection of the pool first, as the drain's first batch does.
        await mailer.send_many(messages[:concurrency], concurrency=concurrency)
        gc.collect()
        started = time.perf_counter()
        outcomes = await mailer.send_many(messages, concurrency=concurrency)
        elapsed = time.perf_counter() - started
    failures = [o for o in outcomes if isinstance(o, Exception)]
    if failures:
        raise RuntimeError(f"direct sending failed: {failures[:3]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="messages per phase")
    parser.add_argument("--concurrency", type=int, default=8, help="pool size and concurrency")
    parser.add_argument("--batch", type=int, default=500, help="enqueue_many batch size")
    args = parser.parse_args()
    n, concurrency = args.n, args.concurrency

    print(
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs; N={n}, pool/concurrency={concurrency}, "
        f"enqueue_many batch={args.batch}"
    )
    messages = build_messages(n)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        single, batched = directory / "single.db", directory / "batched.db"
        one_by_one = timed_enqueue(single, messages, None)
        in_batches = timed_enqueue(batched, messages, args.batch)
        with running_sink(directory) as sink:
            before = sink.stats()[0]
            drains: list[float] = []
            directs: list[float] = []
            for path in (single, batched):
                drains.append(asyncio.run(timed_drain(path, sink, concurrency)))
                directs.append(asyncio.run(timed_direct(messages, sink, concurrency)))
            received = sink.stats()[0] - before
        expected = 2 * n + 2 * n + 2 * concurrency
        if received != expected:
            raise RuntimeError(f"the sink received {received} messages, expected {expected}")

    drain_rate = 2 * n / sum(drains)
    direct_rate = 2 * n / sum(directs)
    ratio = drain_rate / direct_rate
    print()
    print(f"{'phase':<42} {'msgs/s':>9} {'ms/msg':>8}")
    rows = [
        ("enqueue (one by one, fsync each)", n / one_by_one),
        (f"enqueue_many (batches of {args.batch})", n / in_batches),
        ("drain: outbox worker -> sink", drain_rate),
        ("direct: AsyncMailer.send_many -> sink", direct_rate),
    ]
    for name, rate in rows:
        print(f"{name:<42} {rate:>9.0f} {1000 / rate:>8.3f}")
    print()
    rounds = ", ".join(f"{n / d:.0f}/{n / s:.0f}" for d, s in zip(drains, directs, strict=True))
    print(f"rounds (drain/direct msgs/s): {rounds}")
    verdict = "met" if ratio >= GOAL else "NOT met"
    print(f"drain / direct = {ratio:.0%} (goal >= {GOAL:.0%}: {verdict})")


if __name__ == "__main__":
    main()
