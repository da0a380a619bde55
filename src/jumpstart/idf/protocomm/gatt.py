"""The BLE provisioning service as a GATT database and a sans-I/O ATT server.

One primary service; each protocomm endpoint is a READ|WRITE characteristic whose UUID is the
service UUID with bytes 12..13 (LSB-first) replaced by the endpoint id, and whose 0x2901 user
description is the endpoint name. A client writes a request (long writes go through Prepare /
Execute Write), the server runs it through protocomm, and the client reads the answer back
(Read Blob for the part beyond the MTU). PDUs follow the ATT protocol of the Bluetooth Core
specification (Vol 3, Part F), so the link carries the same bytes a radio would.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

__all__ = [
    "ATT_MTU_MAX",
    "AttError",
    "AttOpcode",
    "AttServer",
    "GattDatabase",
    "characteristic_uuid",
]


# ATT opcodes (Core spec Vol 3 Part F 3.4).
class AttOpcode(IntEnum):
    ERROR_RSP = 0x01
    EXCHANGE_MTU_REQ = 0x02
    EXCHANGE_MTU_RSP = 0x03
    FIND_INFORMATION_REQ = 0x04
    FIND_INFORMATION_RSP = 0x05
    READ_BY_TYPE_REQ = 0x08
    READ_BY_TYPE_RSP = 0x09
    READ_REQ = 0x0A
    READ_RSP = 0x0B
    READ_BLOB_REQ = 0x0C
    READ_BLOB_RSP = 0x0D
    READ_BY_GROUP_TYPE_REQ = 0x10
    READ_BY_GROUP_TYPE_RSP = 0x11
    WRITE_REQ = 0x12
    WRITE_RSP = 0x13
    PREPARE_WRITE_REQ = 0x16
    PREPARE_WRITE_RSP = 0x17
    EXECUTE_WRITE_REQ = 0x18
    EXECUTE_WRITE_RSP = 0x19


class AttError(IntEnum):
    INVALID_HANDLE = 0x01
    READ_NOT_PERMITTED = 0x02
    WRITE_NOT_PERMITTED = 0x03
    INVALID_PDU = 0x04
    REQUEST_NOT_SUPPORTED = 0x06
    INVALID_OFFSET = 0x07
    PREPARE_QUEUE_FULL = 0x09
    ATTRIBUTE_NOT_FOUND = 0x0A
    INVALID_ATTRIBUTE_VALUE_LENGTH = 0x0D
    UNLIKELY_ERROR = 0x0E


# GATT attribute types (Assigned Numbers).
PRIMARY_SERVICE = 0x2800
CHARACTERISTIC = 0x2803
USER_DESCRIPTION = 0x2901
PROP_READ, PROP_WRITE = 0x02, 0x08
ATT_MTU_DEFAULT = 23
ATT_MTU_MAX = 517
# NimBLE's limit on a characteristic value (protocomm_nimble); also caps a prepared write.
MAX_VALUE = 512
BASE_UUID_SUFFIX = bytes.fromhex("00001000800000805f9b34fb")


def characteristic_uuid(service: uuid.UUID, endpoint_id: int) -> uuid.UUID:
    """Service UUID with LSB-first bytes 12..13 = the endpoint id (big-endian bytes 2..3)."""
    raw = bytearray(service.bytes)
    raw[2:4] = endpoint_id.to_bytes(2, "big")
    return uuid.UUID(bytes=bytes(raw))


def _uuid_le(value: uuid.UUID | int) -> bytes:
    if isinstance(value, int):
        return value.to_bytes(2, "little")
    return value.bytes[::-1]


@dataclass(slots=True)
class Attribute:
    handle: int
    type: uuid.UUID | int
    value: bytes = b""
    endpoint: str | None = None
    """Set on characteristic values: writes go to this protocomm endpoint."""
    group_end: int = 0


@dataclass
class GattDatabase:
    """The provisioning service's attributes, handles from 1."""

    service: uuid.UUID
    attributes: list[Attribute] = field(default_factory=list)

    @classmethod
    def for_endpoints(cls, service: uuid.UUID, endpoints: dict[str, int]) -> GattDatabase:
        db = cls(service)
        db._add(PRIMARY_SERVICE, _uuid_le(service))
        for name, endpoint_id in endpoints.items():
            char = characteristic_uuid(service, endpoint_id)
            declaration = len(db.attributes) + 1
            props = bytes([PROP_READ | PROP_WRITE])
            db._add(CHARACTERISTIC, props + struct.pack("<H", declaration + 1) + _uuid_le(char))
            db._add(char, b"", endpoint=name)
            db._add(USER_DESCRIPTION, name.encode())
        db.attributes[0].group_end = len(db.attributes)
        return db

    def _add(self, kind: uuid.UUID | int, value: bytes, endpoint: str | None = None) -> None:
        self.attributes.append(Attribute(len(self.attributes) + 1, kind, value, endpoint))

    def get(self, handle: int) -> Attribute | None:
        if 1 <= handle <= len(self.attributes):
            return self.attributes[handle - 1]
        return None

    def value_handle(self, endpoint: str) -> int:
        for attribute in self.attributes:
            if attribute.endpoint == endpoint:
                return attribute.handle
        raise KeyError(endpoint)


class AttProtocolError(Exception):
    def __init__(self, opcode: int, handle: int, code: AttError) -> None:
        super().__init__(f"ATT error {code.name} for opcode 0x{opcode:02x} handle {handle}")
        self.opcode, self.handle, self.code = opcode, handle, code


Processor = Callable[[str, bytes], bytes]
"""``(endpoint, request) -> response``; raising means: answer an error and disconnect."""


class AttServer:
    """One connection's ATT server: ``receive(pdu)`` returns the response PDU.

    ``disconnect`` turns true after a protocomm failure: the link must then be dropped.
    """

    def __init__(self, db: GattDatabase, process: Processor) -> None:
        self.db = db
        self.process = process
        self.mtu = ATT_MTU_DEFAULT
        self.disconnect = False
        self._queue: list[tuple[int, int, bytes]] = []

    def receive(self, pdu: bytes) -> bytes:
        if not pdu:
            return _error(0, 0, AttError.INVALID_PDU)
        opcode = pdu[0]
        try:
            return self._dispatch(opcode, pdu[1:])
        except AttProtocolError as err:
            return _error(err.opcode, err.handle, err.code)
        except struct.error:
            return _error(opcode, 0, AttError.INVALID_PDU)

    def _dispatch(self, opcode: int, body: bytes) -> bytes:
        if opcode == AttOpcode.EXCHANGE_MTU_REQ:
            (client_mtu,) = struct.unpack("<H", body)
            self.mtu = max(ATT_MTU_DEFAULT, min(client_mtu, ATT_MTU_MAX))
            return struct.pack("<BH", AttOpcode.EXCHANGE_MTU_RSP, ATT_MTU_MAX)
        if opcode == AttOpcode.READ_BY_GROUP_TYPE_REQ:
            return self._read_by_group_type(body)
        if opcode == AttOpcode.READ_BY_TYPE_REQ:
            return self._read_by_type(body)
        if opcode == AttOpcode.FIND_INFORMATION_REQ:
            return self._find_information(body)
        if opcode == AttOpcode.READ_REQ:
            (handle,) = struct.unpack("<H", body)
            value = self._readable(opcode, handle).value
            return bytes([AttOpcode.READ_RSP]) + value[: self.mtu - 1]
        if opcode == AttOpcode.READ_BLOB_REQ:
            handle, offset = struct.unpack("<HH", body)
            value = self._readable(opcode, handle).value
            if offset > len(value):
                raise AttProtocolError(opcode, handle, AttError.INVALID_OFFSET)
            return bytes([AttOpcode.READ_BLOB_RSP]) + value[offset : offset + self.mtu - 1]
        if opcode == AttOpcode.WRITE_REQ:
            handle = struct.unpack("<H", body[:2])[0]
            self._write(opcode, handle, body[2:])
            return bytes([AttOpcode.WRITE_RSP])
        if opcode == AttOpcode.PREPARE_WRITE_REQ:
            handle, offset = struct.unpack("<HH", body[:4])
            self._writable(opcode, handle)
            if sum(len(part) for _, _, part in self._queue) + len(body) - 4 > MAX_VALUE:
                raise AttProtocolError(opcode, handle, AttError.PREPARE_QUEUE_FULL)
            self._queue.append((handle, offset, body[4:]))
            return bytes([AttOpcode.PREPARE_WRITE_RSP]) + body
        if opcode == AttOpcode.EXECUTE_WRITE_REQ:
            return self._execute(opcode, body)
        raise AttProtocolError(opcode, 0, AttError.REQUEST_NOT_SUPPORTED)

    def _range(self, opcode: int, body: bytes) -> tuple[int, int, int | uuid.UUID]:
        start, end = struct.unpack("<HH", body[:4])
        if start == 0 or start > end:
            raise AttProtocolError(opcode, start, AttError.INVALID_HANDLE)
        raw = body[4:]
        kind: int | uuid.UUID
        if len(raw) == 2:
            kind = int.from_bytes(raw, "little")
        elif len(raw) == 16:
            kind = uuid.UUID(bytes=raw[::-1])
        else:
            raise AttProtocolError(opcode, start, AttError.INVALID_PDU)
        return start, end, kind

    def _read_by_group_type(self, body: bytes) -> bytes:
        start, end, kind = self._range(AttOpcode.READ_BY_GROUP_TYPE_REQ, body)
        if kind != PRIMARY_SERVICE:
            raise AttProtocolError(
                AttOpcode.READ_BY_GROUP_TYPE_REQ, start, AttError.REQUEST_NOT_SUPPORTED
            )
        found = [a for a in self.db.attributes if start <= a.handle <= end and a.type == kind]
        if not found:
            raise AttProtocolError(
                AttOpcode.READ_BY_GROUP_TYPE_REQ, start, AttError.ATTRIBUTE_NOT_FOUND
            )
        service = found[0]
        entry = struct.pack("<HH", service.handle, service.group_end) + service.value
        return bytes([AttOpcode.READ_BY_GROUP_TYPE_RSP, len(entry)]) + entry

    def _read_by_type(self, body: bytes) -> bytes:
        start, end, kind = self._range(AttOpcode.READ_BY_TYPE_REQ, body)
        found = [a for a in self.db.attributes if start <= a.handle <= end and a.type == kind]
        if not found:
            raise AttProtocolError(AttOpcode.READ_BY_TYPE_REQ, start, AttError.ATTRIBUTE_NOT_FOUND)
        size = 2 + len(found[0].value)
        out = bytearray([AttOpcode.READ_BY_TYPE_RSP, size])
        for attribute in found:
            if 2 + len(attribute.value) != size or len(out) + size > self.mtu:
                break
            out += struct.pack("<H", attribute.handle) + attribute.value
        return bytes(out)

    def _find_information(self, body: bytes) -> bytes:
        start, end = struct.unpack("<HH", body)
        if start == 0 or start > end:
            raise AttProtocolError(AttOpcode.FIND_INFORMATION_REQ, start, AttError.INVALID_HANDLE)
        found = [a for a in self.db.attributes if start <= a.handle <= end]
        if not found:
            raise AttProtocolError(
                AttOpcode.FIND_INFORMATION_REQ, start, AttError.ATTRIBUTE_NOT_FOUND
            )
        short = isinstance(found[0].type, int)
        out = bytearray([AttOpcode.FIND_INFORMATION_RSP, 1 if short else 2])
        for attribute in found:
            if isinstance(attribute.type, int) != short:
                break
            entry = struct.pack("<H", attribute.handle) + _uuid_le(attribute.type)
            if len(out) + len(entry) > self.mtu:
                break
            out += entry
        return bytes(out)

    def _readable(self, opcode: int, handle: int) -> Attribute:
        attribute = self.db.get(handle)
        if attribute is None:
            raise AttProtocolError(opcode, handle, AttError.INVALID_HANDLE)
        return attribute

    def _writable(self, opcode: int, handle: int) -> Attribute:
        attribute = self._readable(opcode, handle)
        if attribute.endpoint is None:
            raise AttProtocolError(opcode, handle, AttError.WRITE_NOT_PERMITTED)
        return attribute

    def _write(self, opcode: int, handle: int, value: bytes) -> None:
        attribute = self._writable(opcode, handle)
        if len(value) > MAX_VALUE:
            raise AttProtocolError(opcode, handle, AttError.INVALID_ATTRIBUTE_VALUE_LENGTH)
        assert attribute.endpoint is not None
        try:
            response = self.process(attribute.endpoint, value)
        except Exception:
            self.disconnect = True
            attribute.value = b""
            raise AttProtocolError(opcode, handle, AttError.UNLIKELY_ERROR) from None
        if len(response) > MAX_VALUE:
            self.disconnect = True
            raise AttProtocolError(opcode, handle, AttError.UNLIKELY_ERROR)
        attribute.value = response

    def _execute(self, opcode: int, body: bytes) -> bytes:
        (flags,) = struct.unpack("<B", body)
        queue, self._queue = self._queue, []
        if flags == 0 or not queue:
            return bytes([AttOpcode.EXECUTE_WRITE_RSP])
        handle = queue[0][0]
        value = bytearray()
        for part_handle, offset, part in queue:
            if part_handle != handle or offset != len(value):
                raise AttProtocolError(opcode, part_handle, AttError.INVALID_OFFSET)
            value += part
        self._write(opcode, handle, bytes(value))
        return bytes([AttOpcode.EXECUTE_WRITE_RSP])


def _error(opcode: int, handle: int, code: AttError) -> bytes:
    return struct.pack("<BBHB", AttOpcode.ERROR_RSP, opcode, handle, code)
