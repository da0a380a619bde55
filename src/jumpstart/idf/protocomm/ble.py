"""Protocomm over a BLE-style link: the GATT service of ``gatt`` served on a loopback socket.

The socket stands in for the radio link: each connection is one BLE connection whose id is
the protocomm session (opened on connect, closed on disconnect). ATT PDUs travel framed by a
2-byte little-endian length. The device advertises in the radio world under its name with the
advertising data a phone would scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid

from jumpstart.idf.log import EspLog
from jumpstart.idf.protocomm.gatt import AttServer, GattDatabase
from jumpstart.idf.protocomm.protocomm import Protocomm

__all__ = [
    "DEFAULT_SERVICE_UUID",
    "ProtocommBle",
    "advertising_data",
    "read_frame",
    "scan_response",
    "write_frame",
]

TAG = "protocomm_ble"
# scheme_ble's default; the wifi_prov_mgr example (and esp_prov's fallback) use 021a9004-...
DEFAULT_SERVICE_UUID = uuid.UUID("021a9004-0382-4aea-bff4-6b3f1c5adfb4")
FRAME = struct.Struct("<H")
MAX_PDU = 1024
# AD types (Core Supplement part A): flags, complete 128-bit UUID list, complete local name.
AD_FLAGS, AD_UUID128, AD_NAME = 0x01, 0x07, 0x09
FLAGS_LE_GENERAL_NO_BREDR = 0x06
NAME_MAX = 29


def advertising_data(service: uuid.UUID) -> bytes:
    flags = bytes([2, AD_FLAGS, FLAGS_LE_GENERAL_NO_BREDR])
    return flags + bytes([17, AD_UUID128]) + service.bytes[::-1]


def scan_response(name: str) -> bytes:
    raw = name.encode()[:NAME_MAX]
    return bytes([len(raw) + 1, AD_NAME]) + raw


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    (length,) = FRAME.unpack(await reader.readexactly(FRAME.size))
    if length > MAX_PDU:
        raise ConnectionError(f"PDU of {length} bytes")
    return await reader.readexactly(length)


def write_frame(writer: asyncio.StreamWriter, pdu: bytes) -> None:
    writer.write(FRAME.pack(len(pdu)) + pdu)


class ProtocommBle:
    """``protocomm_ble_start``: serve the GATT database of ``endpoints`` (name -> 16-bit id)."""

    def __init__(
        self,
        protocomm: Protocomm,
        log: EspLog,
        service: uuid.UUID,
        endpoints: dict[str, int],
        host: str = "127.0.0.1",
    ) -> None:
        self.protocomm = protocomm
        self.log = log
        self.service = service
        self.endpoints = endpoints
        self.host = host
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._next_conn = 0

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self.log.i(TAG, f"BLE provisioning service {self.service} up")

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._links):
            writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn_id = self._next_conn
        self._next_conn += 1
        self._links.add(writer)
        self.protocomm.open_session(conn_id)
        self.log.i(TAG, f"BLE connection {conn_id} established")
        # Each connection gets its own copy of the database: stored responses are per link.
        db = GattDatabase.for_endpoints(self.service, self.endpoints)
        server = AttServer(db, lambda name, data: self.protocomm.handle(name, conn_id, data))
        try:
            while not server.disconnect:
                pdu = await read_frame(reader)
                write_frame(writer, server.receive(pdu))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._links.discard(writer)
            self.protocomm.close_session(conn_id)
            writer.close()
            self.log.i(TAG, f"BLE connection {conn_id} closed")
