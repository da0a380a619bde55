"""Encode and decode MQTT 3.1.1 / 5.0 packets; ``PacketReader`` is the sans-I/O byte feeder.

Decoding is strict, as a server facing the internet must be: every reserved bit, length,
UTF-8 rule and property placement of the standards is checked, and a violation raises
``MqttError`` carrying the MQTT 5 reason code a server answers with (MALFORMED_PACKET,
PROTOCOL_ERROR, PACKET_TOO_LARGE, UNSUPPORTED_PROTOCOL_VERSION). Section numbers below refer to
the MQTT 5.0 standard unless marked 3.1.1.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from jumpstart.errors import InputError, UsageError
from jumpstart.formats.mqtt.constants import (
    PROPERTY_SPECS,
    WILL,
    PacketType,
    PropertyId,
    PropertyType,
    ProtocolVersion,
    ReasonCode,
)
from jumpstart.formats.mqtt.packets import (
    NO_PROPERTIES,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    Properties,
    PropertyValue,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
)
from jumpstart.formats.mqtt.topics import TopicError, validate_topic_filter, validate_topic_name

__all__ = [
    "MAX_REMAINING_LENGTH",
    "MqttError",
    "PacketReader",
    "decode_packet",
    "decode_varint",
    "encode_packet",
    "encode_varint",
]

# Section 1.5.5: a Variable Byte Integer has at most four bytes, so 268,435,455 at most.
MAX_REMAINING_LENGTH = 268_435_455
PROTOCOL_NAME = "MQTT"
# 3.1.1 section 3.1.2.1 / 5.0 section 3.1.2.1: CONNECT's protocol name is "MQTT".
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
# Section 2.1.3: the flags nibble each packet type must carry (PUBLISH's are its own).
_REQUIRED_FLAGS = {
    PacketType.PUBREL: 0b0010,
    PacketType.SUBSCRIBE: 0b0010,
    PacketType.UNSUBSCRIBE: 0b0010,
}
_REPEATABLE = {PropertyId.USER_PROPERTY, PropertyId.SUBSCRIPTION_IDENTIFIER}


class MqttError(InputError):
    """A packet breaks the standard; ``reason`` is what a server answers (or closes) with."""

    def __init__(self, message: str, reason: ReasonCode = ReasonCode.MALFORMED_PACKET) -> None:
        super().__init__(message)
        self.reason = reason


def _protocol_error(message: str) -> MqttError:
    return MqttError(message, ReasonCode.PROTOCOL_ERROR)


# --- primitives (section 1.5) ------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    """Section 1.5.5 Variable Byte Integer."""
    if not 0 <= value <= MAX_REMAINING_LENGTH:
        raise UsageError(f"{value} does not fit a variable byte integer")
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def decode_varint(data: bytes | bytearray | memoryview, offset: int) -> tuple[int, int] | None:
    """(value, next offset), or None when ``data`` ends inside the integer.

    A fifth byte or a non-minimal encoding (a trailing zero continuation) is malformed.
    """
    value = 0
    for index in range(4):
        if offset + index >= len(data):
            return None
        byte = data[offset + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if index and byte == 0:
                raise MqttError("variable byte integer is not minimally encoded")
            return value, offset + index + 1
    raise MqttError("variable byte integer longer than four bytes")


class _Cursor:
    """Reads the primitives of one packet body; running past its end is malformed."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, count: int) -> bytes:
        if count > self.remaining():
            raise MqttError("packet ends inside a field")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def varint(self) -> int:
        decoded = decode_varint(self.data, self.pos)
        if decoded is None:
            raise MqttError("packet ends inside a variable byte integer")
        value, self.pos = decoded
        return value

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        raw = self.binary()
        try:
            text = raw.decode("utf-8")  # rejects surrogates and overlong forms (1.5.4)
        except UnicodeDecodeError:
            raise MqttError("string is not well-formed UTF-8") from None
        if "\x00" in text:
            raise MqttError("string contains U+0000")
        return text

    def end(self, what: str) -> None:
        if self.remaining():
            raise MqttError(f"{self.remaining()} unexpected bytes after the {what}")


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return _binary(raw)


def _binary(raw: bytes) -> bytes:
    if len(raw) > 0xFFFF:
        raise UsageError("a string or binary field holds at most 65,535 bytes")
    return _U16.pack(len(raw)) + raw


# --- properties (section 2.2.2) -----------------------------------------------------------


def _encode_properties(properties: Properties) -> bytes:
    out = bytearray()
    for pid, value in properties.items():
        kind = PROPERTY_SPECS[pid][0]
        values = value if pid in _REPEATABLE and isinstance(value, tuple) else (value,)
        for item in values:
            out.append(pid)
            out += _encode_property_value(kind, item)
    return encode_varint(len(out)) + bytes(out)


def _encode_property_value(kind: PropertyType, value: object) -> bytes:
    match kind, value:
        case PropertyType.BYTE, int():
            return bytes([value])
        case PropertyType.TWO_BYTE, int():
            return _U16.pack(value)
        case PropertyType.FOUR_BYTE, int():
            return _U32.pack(value)
        case PropertyType.VARINT, int():
            return encode_varint(value)
        case PropertyType.STRING, str():
            return _string(value)
        case PropertyType.BINARY, bytes():
            return _binary(value)
        case PropertyType.STRING_PAIR, (str() as key, str() as text):
            return _string(key) + _string(text)
    raise UsageError(f"property value {value!r} does not match its type {kind.value}")


def _decode_properties(cursor: _Cursor, where: object) -> Properties:
    length = cursor.varint()
    body = _Cursor(cursor.take(length))
    found: dict[PropertyId, PropertyValue] = {}
    pairs: list[tuple[str, str]] = []
    ids: list[int] = []
    while body.remaining():
        raw_id = body.varint()
        try:
            pid = PropertyId(raw_id)
        except ValueError:
            raise MqttError(f"unknown property identifier 0x{raw_id:02x}") from None
        kind, allowed = PROPERTY_SPECS[pid]
        if where not in allowed:
            raise _protocol_error(f"property {pid.name} is not allowed in {_where_name(where)}")
        value = _decode_property_value(body, kind)
        if pid is PropertyId.USER_PROPERTY:
            assert isinstance(value, tuple)
            pairs.append(value)  # type: ignore[arg-type]
            continue
        if pid is PropertyId.SUBSCRIPTION_IDENTIFIER:
            if value == 0:
                raise _protocol_error("subscription identifier 0 is not allowed")
            if where is PacketType.SUBSCRIBE and ids:
                raise _protocol_error("SUBSCRIBE carries at most one subscription identifier")
            assert isinstance(value, int)
            ids.append(value)
            continue
        if pid in found:
            raise _protocol_error(f"property {pid.name} appears twice")
        _check_property_range(pid, value)
        found[pid] = value
    if pairs:
        found[PropertyId.USER_PROPERTY] = tuple(pairs)
    if ids:
        found[PropertyId.SUBSCRIPTION_IDENTIFIER] = tuple(ids)
    return found if found else NO_PROPERTIES


def _where_name(where: object) -> str:
    return where.name if isinstance(where, PacketType) else "a will"


def _decode_property_value(cursor: _Cursor, kind: PropertyType) -> PropertyValue:
    match kind:
        case PropertyType.BYTE:
            return cursor.byte()
        case PropertyType.TWO_BYTE:
            return cursor.u16()
        case PropertyType.FOUR_BYTE:
            return cursor.u32()
        case PropertyType.VARINT:
            return cursor.varint()
        case PropertyType.STRING:
            return cursor.string()
        case PropertyType.BINARY:
            return cursor.binary()
        case PropertyType.STRING_PAIR:
            return (cursor.string(), cursor.string())  # type: ignore[return-value]
    raise AssertionError(kind)  # pragma: no cover


# Properties whose value range the standard limits (section 3.1.2.11, 3.2.2.3, 3.3.2.3).
_BOOLEAN_PROPERTIES = {
    PropertyId.PAYLOAD_FORMAT_INDICATOR,
    PropertyId.REQUEST_PROBLEM_INFORMATION,
    PropertyId.REQUEST_RESPONSE_INFORMATION,
    PropertyId.MAXIMUM_QOS,
    PropertyId.RETAIN_AVAILABLE,
    PropertyId.WILDCARD_SUBSCRIPTION_AVAILABLE,
    PropertyId.SUBSCRIPTION_IDENTIFIER_AVAILABLE,
    PropertyId.SHARED_SUBSCRIPTION_AVAILABLE,
}
_NON_ZERO_PROPERTIES = {
    PropertyId.RECEIVE_MAXIMUM,
    PropertyId.MAXIMUM_PACKET_SIZE,
    PropertyId.TOPIC_ALIAS,
}


def _check_property_range(pid: PropertyId, value: PropertyValue) -> None:
    if pid in _BOOLEAN_PROPERTIES and value not in (0, 1):
        raise _protocol_error(f"property {pid.name} must be 0 or 1, not {value!r}")
    if pid in _NON_ZERO_PROPERTIES and value == 0:
        raise _protocol_error(f"property {pid.name} must not be 0")


# --- encoding ------------------------------------------------------------------------------


def encode_packet(packet: Packet, version: ProtocolVersion) -> bytes:
    """The wire bytes of ``packet`` under ``version`` (fixed header included)."""
    v5 = version is ProtocolVersion.MQTT5
    flags = 0
    match packet:
        case Connect():
            body = _encode_connect(packet)
        case ConnAck():
            body = bytes([int(packet.session_present), packet.reason_code])
            body += _encode_properties(packet.properties) if v5 else b""
        case Publish():
            body, flags = _encode_publish(packet, v5)
        case PubAck() | PubRec() | PubRel() | PubComp():
            body = _check_packet_id(packet.packet_id)
            if v5 and (packet.reason_code or packet.properties):
                body += bytes([packet.reason_code])
                if packet.properties:
                    body += _encode_properties(packet.properties)
            flags = _REQUIRED_FLAGS.get(packet.TYPE, 0)
        case Subscribe():
            body = _check_packet_id(packet.packet_id)
            body += _encode_properties(packet.properties) if v5 else b""
            for sub in packet.subscriptions:
                options = sub.qos
                if v5:
                    options |= sub.no_local << 2 | sub.retain_as_published << 3
                    options |= sub.retain_handling << 4
                body += _string(sub.topic_filter) + bytes([options])
            flags = 0b0010
        case SubAck():
            body = _check_packet_id(packet.packet_id)
            body += _encode_properties(packet.properties) if v5 else b""
            body += bytes(packet.reason_codes)
        case Unsubscribe():
            body = _check_packet_id(packet.packet_id)
            body += _encode_properties(packet.properties) if v5 else b""
            body += b"".join(_string(f) for f in packet.topic_filters)
            flags = 0b0010
        case UnsubAck():
            body = _check_packet_id(packet.packet_id)
            if v5:
                body += _encode_properties(packet.properties) + bytes(packet.reason_codes)
        case PingReq() | PingResp():
            body = b""
        case Disconnect() | Auth():
            if isinstance(packet, Auth) and not v5:
                raise UsageError("AUTH exists only in MQTT 5")
            body = b""
            if v5 and (packet.reason_code or packet.properties):
                body = bytes([packet.reason_code])
                if packet.properties:
                    body += _encode_properties(packet.properties)
    return bytes([packet.TYPE << 4 | flags]) + encode_varint(len(body)) + body


def _check_packet_id(packet_id: int | None) -> bytes:
    if packet_id is None or not 1 <= packet_id <= 0xFFFF:
        raise UsageError(f"packet identifier {packet_id} is not in 1..65535")
    return _U16.pack(packet_id)


def _encode_connect(packet: Connect) -> bytes:
    v5 = packet.protocol_version is ProtocolVersion.MQTT5
    flags = int(packet.clean_start) << 1
    if packet.will is not None:
        flags |= 0x04 | packet.will.qos << 3 | int(packet.will.retain) << 5
    if packet.password is not None:
        flags |= 0x40
    if packet.username is not None:
        flags |= 0x80
    body = _string(PROTOCOL_NAME) + bytes([packet.protocol_version, flags])
    body += _U16.pack(packet.keep_alive)
    body += _encode_properties(packet.properties) if v5 else b""
    body += _string(packet.client_id)
    if packet.will is not None:
        body += _encode_properties(packet.will.properties) if v5 else b""
        body += _string(packet.will.topic) + _binary(packet.will.payload)
    if packet.username is not None:
        body += _string(packet.username)
    if packet.password is not None:
        body += _binary(packet.password)
    return body


def _encode_publish(packet: Publish, v5: bool) -> tuple[bytes, int]:
    if packet.qos not in (0, 1, 2):
        raise UsageError(f"QoS {packet.qos} is not 0, 1 or 2")
    flags = int(packet.dup) << 3 | packet.qos << 1 | int(packet.retain)
    body = _string(packet.topic)
    if packet.qos:
        body += _check_packet_id(packet.packet_id)
    elif packet.packet_id is not None:
        raise UsageError("a QoS 0 PUBLISH has no packet identifier")
    body += _encode_properties(packet.properties) if v5 else b""
    return body + packet.payload, flags


# --- decoding ------------------------------------------------------------------------------


def decode_packet(first_byte: int, body: bytes, version: ProtocolVersion | None) -> Packet:
    """Decode one packet from its first byte and body (the bytes after the remaining length).

    ``version`` is the session's protocol; None before CONNECT, when only CONNECT is valid.
    """
    try:
        ptype = PacketType(first_byte >> 4)
    except ValueError:
        raise MqttError("packet type 0 is reserved") from None
    flags = first_byte & 0x0F
    if ptype is not PacketType.PUBLISH and flags != _REQUIRED_FLAGS.get(ptype, 0):
        raise MqttError(f"{ptype.name} has reserved flags 0x{flags:x}")
    if ptype is PacketType.CONNECT:
        return _decode_connect(_Cursor(body))
    if version is None:
        raise _protocol_error(f"the first packet must be CONNECT, not {ptype.name}")
    v5 = version is ProtocolVersion.MQTT5
    if ptype is PacketType.AUTH and not v5:
        raise MqttError("AUTH exists only in MQTT 5")
    cursor = _Cursor(body)
    decoder = _DECODERS[ptype]
    packet = decoder(cursor, flags, v5)
    cursor.end(ptype.name)
    return packet


def _decode_connect(cursor: _Cursor) -> Connect:
    name = cursor.string()
    level = cursor.byte()
    if name != PROTOCOL_NAME or level not in (ProtocolVersion.MQTT311, ProtocolVersion.MQTT5):
        raise MqttError(
            f"protocol {name!r} level {level} is not MQTT 3.1.1 or 5",
            ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
        )
    version = ProtocolVersion(level)
    v5 = version is ProtocolVersion.MQTT5
    flags = cursor.byte()
    if flags & 0x01:
        raise MqttError("CONNECT's reserved flag is set")
    will_flag, will_qos, will_retain = bool(flags & 0x04), (flags >> 3) & 0x03, bool(flags & 0x20)
    if will_qos == 3:
        raise MqttError("will QoS 3")
    if not will_flag and (will_qos or will_retain):
        raise MqttError("will QoS or retain set without a will")
    has_password, has_username = bool(flags & 0x40), bool(flags & 0x80)
    if has_password and not has_username and not v5:
        raise MqttError("MQTT 3.1.1 allows no password without a user name")
    keep_alive = cursor.u16()
    properties = _decode_properties(cursor, PacketType.CONNECT) if v5 else NO_PROPERTIES
    client_id = cursor.string()
    will = None
    if will_flag:
        will_properties = _decode_properties(cursor, WILL) if v5 else NO_PROPERTIES
        topic = cursor.string()
        _topic_name(topic, v5=False)
        will = Will(topic, cursor.binary(), will_qos, will_retain, will_properties)
    username = cursor.string() if has_username else None
    password = cursor.binary() if has_password else None
    cursor.end("CONNECT payload")
    return Connect(
        client_id=client_id,
        protocol_version=version,
        clean_start=bool(flags & 0x02),
        keep_alive=keep_alive,
        username=username,
        password=password,
        will=will,
        properties=properties,
    )


def _topic_name(topic: str, *, v5: bool, alias: bool = False) -> None:
    try:
        validate_topic_name(topic, allow_empty=v5 and alias)
    except TopicError as err:
        raise MqttError(str(err), ReasonCode.TOPIC_NAME_INVALID) from None


def _packet_id(cursor: _Cursor) -> int:
    packet_id = cursor.u16()
    if packet_id == 0:
        raise MqttError("packet identifier 0")
    return packet_id


def _decode_connack(cursor: _Cursor, flags: int, v5: bool) -> ConnAck:
    ack_flags = cursor.byte()
    if ack_flags & 0xFE:
        raise MqttError("CONNACK's reserved flags are set")
    code = cursor.byte()
    properties = _decode_properties(cursor, PacketType.CONNACK) if v5 else NO_PROPERTIES
    return ConnAck(bool(ack_flags & 1), code, properties)


def _decode_publish(cursor: _Cursor, flags: int, v5: bool) -> Publish:
    qos = (flags >> 1) & 0x03
    dup = bool(flags & 0x08)
    if qos == 3:
        raise MqttError("PUBLISH with QoS 3")
    if qos == 0 and dup:
        raise MqttError("DUP set on a QoS 0 PUBLISH")
    topic = cursor.string()
    packet_id = _packet_id(cursor) if qos else None
    properties = _decode_properties(cursor, PacketType.PUBLISH) if v5 else NO_PROPERTIES
    _topic_name(topic, v5=v5, alias=PropertyId.TOPIC_ALIAS in properties)
    payload = cursor.take(cursor.remaining())
    if properties.get(PropertyId.PAYLOAD_FORMAT_INDICATOR) == 1:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            raise MqttError(
                "payload marked UTF-8 is not UTF-8", ReasonCode.PAYLOAD_FORMAT_INVALID
            ) from None
    return Publish(topic, payload, qos, bool(flags & 1), dup, packet_id, properties)


def _decode_ack(
    cls: type[PubAck | PubRec | PubRel | PubComp],
) -> Callable[[_Cursor, int, bool], Packet]:
    def decode(cursor: _Cursor, flags: int, v5: bool) -> Packet:
        packet_id = _packet_id(cursor)
        code, properties = 0, NO_PROPERTIES
        if v5 and cursor.remaining():
            code = cursor.byte()
            if cursor.remaining():
                properties = _decode_properties(cursor, cls.TYPE)
        return cls(packet_id, code, properties)

    return decode


def _decode_subscribe(cursor: _Cursor, flags: int, v5: bool) -> Subscribe:
    packet_id = _packet_id(cursor)
    properties = _decode_properties(cursor, PacketType.SUBSCRIBE) if v5 else NO_PROPERTIES
    subscriptions = []
    while cursor.remaining():
        topic_filter = cursor.string()
        options = cursor.byte()
        reserved = 0xC0 if v5 else 0xFC
        if options & reserved:
            raise MqttError("subscription options use reserved bits")
        qos, retain_handling = options & 0x03, (options >> 4) & 0x03
        if qos == 3 or retain_handling == 3:
            raise MqttError("subscription QoS or retain handling is 3")
        try:
            validate_topic_filter(topic_filter)
        except TopicError as err:
            raise MqttError(str(err), ReasonCode.TOPIC_FILTER_INVALID) from None
        subscriptions.append(
            Subscription(
                topic_filter, qos, bool(options & 0x04), bool(options & 0x08), retain_handling
            )
        )
    if not subscriptions:
        raise _protocol_error("SUBSCRIBE without a topic filter")
    return Subscribe(packet_id, tuple(subscriptions), properties)


def _decode_suback(cursor: _Cursor, flags: int, v5: bool) -> SubAck:
    packet_id = _packet_id(cursor)
    properties = _decode_properties(cursor, PacketType.SUBACK) if v5 else NO_PROPERTIES
    codes = tuple(cursor.take(cursor.remaining()))
    if not codes:
        raise MqttError("SUBACK without a return code")
    if not v5 and any(code not in (0, 1, 2, 0x80) for code in codes):
        raise MqttError("SUBACK return code is not 0, 1, 2 or 0x80")
    return SubAck(packet_id, codes, properties)


def _decode_unsubscribe(cursor: _Cursor, flags: int, v5: bool) -> Unsubscribe:
    packet_id = _packet_id(cursor)
    properties = _decode_properties(cursor, PacketType.UNSUBSCRIBE) if v5 else NO_PROPERTIES
    filters = []
    while cursor.remaining():
        topic_filter = cursor.string()
        try:
            validate_topic_filter(topic_filter)
        except TopicError as err:
            raise MqttError(str(err), ReasonCode.TOPIC_FILTER_INVALID) from None
        filters.append(topic_filter)
    if not filters:
        raise _protocol_error("UNSUBSCRIBE without a topic filter")
    return Unsubscribe(packet_id, tuple(filters), properties)


def _decode_unsuback(cursor: _Cursor, flags: int, v5: bool) -> UnsubAck:
    packet_id = _packet_id(cursor)
    if not v5:
        return UnsubAck(packet_id)
    properties = _decode_properties(cursor, PacketType.UNSUBACK)
    codes = tuple(cursor.take(cursor.remaining()))
    if not codes:
        raise MqttError("UNSUBACK without a reason code")
    return UnsubAck(packet_id, codes, properties)


def _decode_ping(cls: type[PingReq | PingResp]) -> Callable[[_Cursor, int, bool], Packet]:
    def decode(cursor: _Cursor, flags: int, v5: bool) -> Packet:
        return cls()

    return decode


def _decode_reasoned(cls: type[Disconnect | Auth]) -> Callable[[_Cursor, int, bool], Packet]:
    def decode(cursor: _Cursor, flags: int, v5: bool) -> Packet:
        code, properties = 0, NO_PROPERTIES
        if v5 and cursor.remaining():
            code = cursor.byte()
            if cursor.remaining():
                properties = _decode_properties(cursor, cls.TYPE)
        return cls(code, properties)

    return decode


def _never(cursor: _Cursor, flags: int, v5: bool) -> Packet:  # pragma: no cover
    raise AssertionError("CONNECT is decoded before the table")


_DECODERS: dict[PacketType, Callable[[_Cursor, int, bool], Packet]] = {
    PacketType.CONNECT: _never,
    PacketType.CONNACK: _decode_connack,
    PacketType.PUBLISH: _decode_publish,
    PacketType.PUBACK: _decode_ack(PubAck),
    PacketType.PUBREC: _decode_ack(PubRec),
    PacketType.PUBREL: _decode_ack(PubRel),
    PacketType.PUBCOMP: _decode_ack(PubComp),
    PacketType.SUBSCRIBE: _decode_subscribe,
    PacketType.SUBACK: _decode_suback,
    PacketType.UNSUBSCRIBE: _decode_unsubscribe,
    PacketType.UNSUBACK: _decode_unsuback,
    PacketType.PINGREQ: _decode_ping(PingReq),
    PacketType.PINGRESP: _decode_ping(PingResp),
    PacketType.DISCONNECT: _decode_reasoned(Disconnect),
    PacketType.AUTH: _decode_reasoned(Auth),
}


class PacketReader:
    """Sans-I/O: feed bytes as they arrive, iterate the complete packets.

    ``version`` starts as given (a client knows it; a server passes None and learns it from
    CONNECT). A packet larger than ``max_packet_size`` (fixed header included) is refused as
    soon as its length is known, before its body is buffered. After an error the reader is
    dead: the connection must be closed.
    """

    __slots__ = ("_buffer", "_failed", "max_packet_size", "version")

    def __init__(
        self, version: ProtocolVersion | None = None, max_packet_size: int = MAX_REMAINING_LENGTH
    ) -> None:
        self.version = version
        self.max_packet_size = max_packet_size
        self._buffer = bytearray()
        self._failed = False

    def feed(self, data: bytes) -> Iterator[Packet]:
        """Add ``data``; yield every packet it completes."""
        if self._failed:
            raise UsageError("the reader failed before; close the connection")
        self._buffer += data
        try:
            while True:
                packet = self._next()
                if packet is None:
                    return
                yield packet
        except MqttError:
            self._failed = True
            raise

    def _next(self) -> Packet | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        decoded = decode_varint(buffer, 1)
        if decoded is None:
            return None
        length, start = decoded
        if start + length > self.max_packet_size:
            raise MqttError(
                f"packet of {start + length} bytes exceeds {self.max_packet_size}",
                ReasonCode.PACKET_TOO_LARGE,
            )
        if len(buffer) < start + length:
            return None
        first, body = buffer[0], bytes(buffer[start : start + length])
        del buffer[: start + length]
        packet = decode_packet(first, body, self.version)
        if isinstance(packet, Connect):
            if self.version is not None:
                raise _protocol_error("a second CONNECT")
            self.version = packet.protocol_version
        return packet
