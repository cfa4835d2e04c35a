"""A loopback TCP proxy that adds a fixed round-trip time, for the throughput benchmark.

    /work/venv/bin/python benchmarks/_latency_proxy.py --rtt-ms 20 PORT [PORT ...]
    # prints "READY <proxy port for PORT> ..." ; stops when its standard input closes

For every target port on 127.0.0.1 it listens on a free loopback port. Each chunk read from
either side is written to the other side ``rtt / 2`` after it was read, in order, so a command
and its reply take one full RTT, as with a real provider across the internet, while bandwidth is
not limited (chunks in flight overlap: a pipelined client gains what it would gain for real).
TLS passes through untouched (the proxy only moves bytes). It runs in its own process so that
its event loop never competes with the client being measured for a GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

HOST = "127.0.0.1"
# Bytes in flight per direction before the reader waits: bounds memory, far above one message.
_QUEUE_CHUNKS = 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds after it arrived."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_QUEUE_CHUNKS)

    async def read() -> None:
        try:
            while True:
                chunk = await reader.read(65536)
                await queue.put((loop.time() + delay, chunk))
                if not chunk:
                    return
        except OSError:
            await queue.put((loop.time() + delay, b""))

    async def write() -> None:
        try:
            while True:
                due, chunk = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not chunk:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(chunk)
                await writer.drain()
        except OSError:
            return

    reading = asyncio.create_task(read())
    try:
        await write()
    finally:
        reading.cancel()


async def _connection(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    target: int,
    delay: float,
) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection(HOST, target)
    except OSError:
        client_writer.close()
        return
    try:
        await asyncio.gather(
            _pump(client_reader, server_writer, delay),
            _pump(server_reader, client_writer, delay),
        )
    finally:
        for writer in (client_writer, server_writer):
            writer.close()


async def serve(targets: list[int], rtt: float) -> None:
    delay = rtt / 2
    servers = []
    for target in targets:

        async def handle(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: int = target
        ) -> None:
            # Connections still open when the proxy stops are cancelled: that is the end of
            # the run, not an error worth a traceback.
            with contextlib.suppress(asyncio.CancelledError):
                await _connection(reader, writer, target, delay)

        servers.append(await asyncio.start_server(handle, HOST, 0, backlog=128))
    ports = [server.sockets[0].getsockname()[1] for server in servers]
    sys.stdout.write("READY " + " ".join(str(port) for port in ports) + "\n")
    sys.stdout.flush()
    try:
        await asyncio.to_thread(_wait_for_stdin_eof)
    finally:
        for server in servers:
            server.close()


def _wait_for_stdin_eof() -> None:
    while True:
        try:
            if not os.read(sys.stdin.fileno(), 1024):
                return
        except OSError:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description="A loopback TCP proxy adding a fixed RTT.")
    parser.add_argument("--rtt-ms", type=float, required=True, help="round-trip time to add")
    parser.add_argument("ports", type=int, nargs="+", help="target ports on 127.0.0.1")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.ports, args.rtt_ms / 1000))


if __name__ == "__main__":
    main()
