"""The BLE provisioning transport on the client side: a GATT client over the device's link.

Discovery is what Espressif's clients do: find the advertised service, list its
characteristics, and name each by reading its 0x2901 user description. A request is written
to the endpoint's characteristic (Prepare/Execute Write when it exceeds the MTU) and the
response read back (Read Blob past the MTU).
"""

from __future__ import annotations

import socket
import struct
import uuid

from jumpstart.errors import InputError
from jumpstart.host.prov_transport import ProvTransport, TransportError
from jumpstart.idf.protocomm.ble import FRAME, MAX_PDU
from jumpstart.idf.protocomm.gatt import (
    CHARACTERISTIC,
    PRIMARY_SERVICE,
    USER_DESCRIPTION,
    AttOpcode,
)
from jumpstart.idf.radio import RadioWorld

__all__ = ["BleTransport", "open_ble"]

# Android asks for 512; the ATT MTU exchange settles on the smaller of both sides.
CLIENT_MTU = 512
TIMEOUT_S = 30.0


class BleTransport(ProvTransport):
    def __init__(self, endpoint: str, service: uuid.UUID, timeout: float = TIMEOUT_S) -> None:
        host, _, port = endpoint.rpartition(":")
        try:
            self._sock = socket.create_connection((host, int(port)), timeout=timeout)
        except OSError as err:
            raise TransportError(f"cannot connect to the BLE device at {endpoint}: {err}") from None
        self.service = service
        self.mtu = 23
        self.handles: dict[str, int] = {}
        self._exchange_mtu()
        self._discover()

    # -- ATT plumbing ------------------------------------------------------------------
    def _request(self, pdu: bytes) -> bytes:
        try:
            self._sock.sendall(FRAME.pack(len(pdu)) + pdu)
            (length,) = FRAME.unpack(self._recv(FRAME.size))
            if length > MAX_PDU:
                raise TransportError(f"device sent a PDU of {length} bytes")
            answer = self._recv(length)
        except OSError as err:
            raise TransportError(f"BLE link lost: {err}") from None
        if answer and answer[0] == AttOpcode.ERROR_RSP:
            _, opcode, handle, code = struct.unpack("<BBHB", answer)
            raise TransportError(
                f"GATT error 0x{code:02x} on opcode 0x{opcode:02x} handle {handle}: "
                "the device refused the request"
            )
        return answer

    def _recv(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self._sock.recv(n - len(data))
            if not chunk:
                raise TransportError("the device disconnected")
            data += chunk
        return bytes(data)

    def _exchange_mtu(self) -> None:
        answer = self._request(struct.pack("<BH", AttOpcode.EXCHANGE_MTU_REQ, CLIENT_MTU))
        (server_mtu,) = struct.unpack("<H", answer[1:3])
        self.mtu = min(CLIENT_MTU, server_mtu)

    def _discover(self) -> None:
        answer = self._request(
            struct.pack("<BHHH", AttOpcode.READ_BY_GROUP_TYPE_REQ, 1, 0xFFFF, PRIMARY_SERVICE)
        )
        size = answer[1]
        start = end = 0
        for off in range(2, len(answer), size):
            handle, group_end = struct.unpack("<HH", answer[off : off + 4])
            if uuid.UUID(bytes=answer[off + 4 : off + size][::-1]) == self.service:
                start, end = handle, group_end
        if not start:
            raise TransportError(f"the device has no service {self.service}")
        # Characteristic declarations, then each value's user description.
        chars: list[int] = []
        handle = start
        while handle <= end:
            try:
                answer = self._request(
                    struct.pack("<BHHH", AttOpcode.READ_BY_TYPE_REQ, handle, end, CHARACTERISTIC)
                )
            except TransportError:
                break
            size = answer[1]
            for off in range(2, len(answer), size):
                decl = struct.unpack("<H", answer[off : off + 2])[0]
                chars.append(struct.unpack("<H", answer[off + 3 : off + 5])[0])
                handle = decl + 1
        for value_handle in chars:
            answer = self._request(
                struct.pack("<BHH", AttOpcode.FIND_INFORMATION_REQ, value_handle + 1, end)
            )
            if answer[1] != 1:
                continue
            for off in range(2, len(answer), 4):
                desc, kind = struct.unpack("<HH", answer[off : off + 4])
                if kind == USER_DESCRIPTION:
                    name = self._read(desc).decode("latin-1")
                    self.handles[name] = value_handle
                    break
                if kind == CHARACTERISTIC:
                    break

    def _read(self, handle: int) -> bytes:
        value = self._request(struct.pack("<BH", AttOpcode.READ_REQ, handle))[1:]
        while len(value) % (self.mtu - 1) == 0 and value:
            more = self._request(struct.pack("<BHH", AttOpcode.READ_BLOB_REQ, handle, len(value)))
            if len(more) == 1:
                break
            value += more[1:]
        return value

    def _write(self, handle: int, data: bytes) -> None:
        if len(data) <= self.mtu - 3:
            self._request(struct.pack("<BH", AttOpcode.WRITE_REQ, handle) + data)
            return
        step = self.mtu - 5
        for offset in range(0, len(data), step):
            part = data[offset : offset + step]
            self._request(struct.pack("<BHH", AttOpcode.PREPARE_WRITE_REQ, handle, offset) + part)
        self._request(struct.pack("<BB", AttOpcode.EXECUTE_WRITE_REQ, 1))

    # -- ProvTransport -----------------------------------------------------------------
    def send(self, endpoint: str, data: bytes) -> bytes:
        handle = self.handles.get(endpoint)
        if handle is None:
            raise TransportError(f"the device has no endpoint {endpoint!r}")
        self._write(handle, data)
        return self._read(handle)

    def close(self) -> None:
        self._sock.close()


def open_ble(world: RadioWorld, name: str | None) -> BleTransport:
    """Connect to the device advertising ``name`` (the only one, if None)."""
    adverts = world.adverts()
    if name is None:
        if len(adverts) != 1:
            found = ", ".join(a.name for a in adverts) or "none"
            raise InputError(f"pass --service_name: devices advertising provisioning: {found}")
        advert = adverts[0]
    else:
        match = world.find_advert(name)
        if match is None:
            found = ", ".join(a.name for a in adverts) or "none"
            raise InputError(f"no BLE device {name!r} is advertising (advertising: {found})")
        advert = match
    return BleTransport(advert.endpoint, uuid.UUID(advert.service_uuid))
