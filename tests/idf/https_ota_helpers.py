"""Servers for OTA tests: the cloud's firmware server, and a link that drops mid-way."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from jumpstart.cloud.firmware import FirmwareServer
from jumpstart.cloud.home import CloudHome


@contextlib.asynccontextmanager
async def firmware_server(home: CloudHome) -> AsyncIterator[int]:
    home.ensure()
    server = FirmwareServer(home)
    port = await server.start("127.0.0.1", 0)
    try:
        yield port
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def cutting_proxy(port: int, cut_after: int) -> AsyncIterator[int]:
    """A TCP relay to ``port`` that drops the connection after ``cut_after`` bytes downstream."""

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, limit: int) -> None:
            sent = 0
            while sent < limit and (data := await src.read(4096)):
                data = data[: limit - sent]
                dst.write(data)
                await dst.drain()
                sent += len(data)
            dst.close()

        await asyncio.gather(
            pump(reader, up_writer, 1 << 40),
            pump(up_reader, writer, cut_after),
            return_exceptions=True,
        )

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
