"""MQTT codec: one vector table per protocol version, used for encoding and decoding."""

from __future__ import annotations

import pytest

from jumpstart.errors import UsageError
from jumpstart.formats.mqtt import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    MqttError,
    Packet,
    PacketReader,
    PingReq,
    PingResp,
    PropertyId,
    ProtocolVersion,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    ReasonCode,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
    encode_packet,
)
from jumpstart.formats.mqtt.codec import decode_varint, encode_varint

V3 = ProtocolVersion.MQTT311
V5 = ProtocolVersion.MQTT5
P = PropertyId

# (packet, wire bytes as hex) under MQTT 3.1.1. Hand-assembled from the standard's figures.
VECTORS_311: list[tuple[Packet, str]] = [
    (Connect("c1", keep_alive=60), "100e 00044d515454 04 02 003c 00026331"),
    (
        Connect(
            "c",
            clean_start=False,
            keep_alive=10,
            username="u",
            password=b"p",
            will=Will("w", b"x", qos=1, retain=True),
        ),
        "1019 00044d515454 04 ec 000a 000163 000177 000178 000175 000170",
    ),
    (ConnAck(session_present=True), "2002 01 00"),
    (ConnAck(reason_code=5), "2002 00 05"),
    (Publish("a/b", b"hi"), "3007 0003612f62 6869"),
    (Publish("t", b"", qos=1, retain=True, dup=True, packet_id=10), "3b05 000174 000a"),
    (Publish("t", b"x", qos=2, packet_id=0xFFFF), "3406 000174 ffff 78"),
    (PubAck(10), "4002 000a"),
    (PubRec(5), "5002 0005"),
    (PubRel(5), "6202 0005"),
    (PubComp(5), "7002 0005"),
    (
        Subscribe(1, (Subscription("a/+", 1), Subscription("#", 0))),
        "820c 0001 0003612f2b 01 000123 00",
    ),
    (SubAck(1, (1, 0x80)), "9004 0001 01 80"),
    (Unsubscribe(2, ("a/+",)), "a207 0002 0003612f2b"),
    (UnsubAck(2), "b002 0002"),
    (PingReq(), "c000"),
    (PingResp(), "d000"),
    (Disconnect(), "e000"),
]

VECTORS_5: list[tuple[Packet, str]] = [
    (
        Connect("c1", V5, keep_alive=60, properties={P.SESSION_EXPIRY_INTERVAL: 3600}),
        "1014 00044d515454 05 02 003c 05 1100000e10 00026331",
    ),
    (Connect("c1", V5, keep_alive=60), "100f 00044d515454 05 02 003c 00 00026331"),
    (
        Connect(
            "c",
            V5,
            keep_alive=0,
            password=b"p",
            will=Will("w", b"x", properties={P.WILL_DELAY_INTERVAL: 5}),
        ),
        "101d 00044d515454 05 46 0000 00 000163 05 1800000005 000177 000178 000170",
    ),
    (
        ConnAck(properties={P.ASSIGNED_CLIENT_IDENTIFIER: "x", P.TOPIC_ALIAS_MAXIMUM: 10}),
        "200a 00 00 07 12000178 22000a",
    ),
    (ConnAck(reason_code=ReasonCode.NOT_AUTHORIZED), "2003 00 87 00"),
    (
        Publish(
            "t",
            b"{}",
            qos=1,
            packet_id=1,
            properties={
                P.PAYLOAD_FORMAT_INDICATOR: 1,
                P.RESPONSE_TOPIC: "r",
                P.CORRELATION_DATA: b"\x01",
                P.USER_PROPERTY: (("k", "v"),),
            },
        ),
        "3219 000174 0001 11 0101 08000172 09000101 2600016b000176 7b7d",
    ),
    (Publish("", properties={P.TOPIC_ALIAS: 3}), "3006 0000 03 230003"),
    (
        Publish("t", properties={P.SUBSCRIPTION_IDENTIFIER: (1, 200)}),
        "3009 000174 05 0b01 0bc801",
    ),
    (PubAck(1), "4002 0001"),
    (PubAck(1, ReasonCode.NO_MATCHING_SUBSCRIBERS), "4003 0001 10"),
    (
        PubAck(1, ReasonCode.NOT_AUTHORIZED, {P.REASON_STRING: "no"}),
        "4009 0001 87 05 1f00026e6f",
    ),
    (PubRec(2, ReasonCode.UNSPECIFIED_ERROR), "5003 0002 80"),
    (PubRel(2, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND), "6203 0002 92"),
    (PubComp(2), "7002 0002"),
    (
        Subscribe(
            3,
            (Subscription("a/#", 1, no_local=True, retain_as_published=True, retain_handling=2),),
            {P.SUBSCRIPTION_IDENTIFIER: (7,)},
        ),
        "820b 0003 02 0b07 0003612f23 2d",
    ),
    (SubAck(3, (1, 0x87)), "9005 0003 00 01 87"),
    (Unsubscribe(4, ("a",)), "a206 0004 00 000161"),
    (UnsubAck(4, (0x11,)), "b004 0004 00 11"),
    (PingReq(), "c000"),
    (PingResp(), "d000"),
    (Disconnect(), "e000"),
    (Disconnect(ReasonCode.SESSION_TAKEN_OVER), "e001 8e"),
    (Disconnect(properties={P.SESSION_EXPIRY_INTERVAL: 0}), "e007 00 05 1100000000"),
    (Auth(), "f000"),
    (
        Auth(ReasonCode.CONTINUE_AUTHENTICATION, {P.AUTHENTICATION_METHOD: "m"}),
        "f006 18 04 1500016d",
    ),
]

CASES = [(V3, p, h) for p, h in VECTORS_311] + [(V5, p, h) for p, h in VECTORS_5]
IDS = [f"{v.name}-{type(p).__name__}-{i}" for i, (v, p, _) in enumerate(CASES)]


def _reader_for(version: ProtocolVersion, packet: Packet) -> PacketReader:
    return PacketReader(None if isinstance(packet, Connect) else version)


@pytest.mark.parametrize(("version", "packet", "wire"), CASES, ids=IDS)
def test_encodes_to_vector(version: ProtocolVersion, packet: Packet, wire: str) -> None:
    assert encode_packet(packet, version) == bytes.fromhex(wire)


@pytest.mark.parametrize(("version", "packet", "wire"), CASES, ids=IDS)
def test_decodes_vector_whole_and_byte_by_byte(
    version: ProtocolVersion, packet: Packet, wire: str
) -> None:
    raw = bytes.fromhex(wire)
    assert list(_reader_for(version, packet).feed(raw)) == [packet]
    reader = _reader_for(version, packet)
    got = [p for i in range(len(raw)) for p in reader.feed(raw[i : i + 1])]
    assert got == [packet]


@pytest.mark.parametrize(("version", "packet", "wire"), CASES, ids=IDS)
def test_trailing_bytes_stay_for_the_next_packet(
    version: ProtocolVersion, packet: Packet, wire: str
) -> None:
    reader = _reader_for(version, packet)
    assert list(reader.feed(bytes.fromhex(wire) + b"\xc0")) == [packet]
    assert list(reader.feed(b"\x00")) == [PingReq()]


def test_reader_learns_the_version_from_connect() -> None:
    reader = PacketReader()
    packets = list(
        reader.feed(bytes.fromhex("100f 00044d515454 05 02 003c 00 00026331" + "e001 8e"))
    )
    assert reader.version is V5
    assert packets[1] == Disconnect(ReasonCode.SESSION_TAKEN_OVER)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (0, "00"),
        (127, "7f"),
        (128, "8001"),
        (16383, "ff7f"),
        (16384, "808001"),
        (2097151, "ffff7f"),
        (2097152, "80808001"),
        (268435455, "ffffff7f"),
    ],
)
def test_varint_vectors(value: int, wire: str) -> None:
    assert encode_varint(value) == bytes.fromhex(wire)
    assert decode_varint(bytes.fromhex(wire) + b"\x00", 0) == (value, len(wire) // 2)


def test_varint_bounds() -> None:
    with pytest.raises(UsageError):
        encode_varint(268435456)
    assert decode_varint(b"\x80\x80", 0) is None


CONNECT_V3 = "100e 00044d515454 04 02 003c 00026331"

# (version of the session or None before CONNECT, wire bytes, reason the server answers with)
MALFORMED: list[tuple[ProtocolVersion | None, str, ReasonCode]] = [
    (V3, "0000", ReasonCode.MALFORMED_PACKET),  # reserved packet type 0
    (V3, "6002 0001", ReasonCode.MALFORMED_PACKET),  # PUBREL with flags 0
    (V3, "4102 0001", ReasonCode.MALFORMED_PACKET),  # PUBACK with flags 1
    (V3, "30ffffffff01", ReasonCode.MALFORMED_PACKET),  # five-byte remaining length
    (V3, "308000", ReasonCode.MALFORMED_PACKET),  # non-minimal remaining length
    (V3, "3605 000174 0001", ReasonCode.MALFORMED_PACKET),  # QoS 3
    (V3, "3803 000174", ReasonCode.MALFORMED_PACKET),  # DUP on QoS 0
    (V3, "3205 000174 0000", ReasonCode.MALFORMED_PACKET),  # packet id 0
    (V3, "3003 000123", ReasonCode.TOPIC_NAME_INVALID),  # wildcard in a topic name
    (V3, "3002 0000", ReasonCode.TOPIC_NAME_INVALID),  # empty topic name
    (V3, "3003 0001ff", ReasonCode.MALFORMED_PACKET),  # not UTF-8
    (V3, "3003 000100", ReasonCode.MALFORMED_PACKET),  # U+0000
    (V3, "3005 0003eda080", ReasonCode.MALFORMED_PACKET),  # a UTF-16 surrogate
    (V3, "3004 0005 6162", ReasonCode.MALFORMED_PACKET),  # string runs past the packet
    (None, "100e 00044d515454 04 03 003c 00026331", ReasonCode.MALFORMED_PACKET),  # reserved
    (None, "100e 00044d515454 04 1a 003c 00026331", ReasonCode.MALFORMED_PACKET),  # will qos w/o
    (None, "100e 00044d515454 04 42 003c 00026331", ReasonCode.MALFORMED_PACKET),  # pw w/o user
    (None, "100e 00044d515454 03 02 003c 00026331", ReasonCode.UNSUPPORTED_PROTOCOL_VERSION),
    (None, "1010 00064d514973647003 02003c00026331", ReasonCode.UNSUPPORTED_PROTOCOL_VERSION),
    (None, "c000", ReasonCode.PROTOCOL_ERROR),  # the first packet is not CONNECT
    (V3, "8202 0001", ReasonCode.PROTOCOL_ERROR),  # SUBSCRIBE without a filter
    (V3, "8206 0001 000161 04", ReasonCode.MALFORMED_PACKET),  # 3.1.1 reserved option bits
    (V3, "8206 0001 000161 03", ReasonCode.MALFORMED_PACKET),  # QoS 3 subscription
    (V3, "8207 0001 0002612b 00", ReasonCode.TOPIC_FILTER_INVALID),  # 'a+'
    (V3, "8207 0001 0002232f 00", ReasonCode.TOPIC_FILTER_INVALID),  # '#/'
    (V3, "a202 0001", ReasonCode.PROTOCOL_ERROR),  # UNSUBSCRIBE without a filter
    (V3, "c00100", ReasonCode.MALFORMED_PACKET),  # PINGREQ with a body
    (V3, "e00100", ReasonCode.MALFORMED_PACKET),  # 3.1.1 DISCONNECT with a body
    (V3, "f000", ReasonCode.MALFORMED_PACKET),  # AUTH in 3.1.1
    (V3, "9003 0001 03", ReasonCode.MALFORMED_PACKET),  # 3.1.1 SUBACK code 3
    (V5, "3006 000174 02 7f00", ReasonCode.MALFORMED_PACKET),  # unknown property
    (V5, "3009 000174 05 1100000001", ReasonCode.PROTOCOL_ERROR),  # property in wrong packet
    (V5, "3009 000174 05 0101 0101 00", ReasonCode.PROTOCOL_ERROR),  # duplicate property
    (V5, "3006 000174 02 0102", ReasonCode.PROTOCOL_ERROR),  # payload format 2
    (V5, "3006 000174 01 0b00", ReasonCode.MALFORMED_PACKET),  # property cut by its length
    (V5, "3006 000174 02 0b00", ReasonCode.PROTOCOL_ERROR),  # subscription id 0
    (V5, "3005 000174 03 01", ReasonCode.MALFORMED_PACKET),  # properties run past the packet
    (V5, "3007 000174 02 0101 ff", ReasonCode.PAYLOAD_FORMAT_INVALID),  # 'UTF-8' payload
    (V5, "8207 0001 00 000161 c0", ReasonCode.MALFORMED_PACKET),  # 5.0 reserved option bits
    (V5, "8207 0001 00 000161 30", ReasonCode.MALFORMED_PACKET),  # retain handling 3
    (V5, "b003 0001 00", ReasonCode.MALFORMED_PACKET),  # UNSUBACK without a code
    (V5, "e003 00 05 11", ReasonCode.MALFORMED_PACKET),  # property length past the end
]


@pytest.mark.parametrize(("version", "wire", "reason"), MALFORMED)
def test_malformed_packets_raise_with_reason(
    version: ProtocolVersion | None, wire: str, reason: ReasonCode
) -> None:
    reader = PacketReader(version)
    with pytest.raises(MqttError) as caught:
        list(reader.feed(bytes.fromhex(wire)))
    assert caught.value.reason is reason, str(caught.value)
    with pytest.raises(UsageError):
        list(reader.feed(b"\xc0\x00"))  # a failed reader stays failed


def test_second_connect_is_a_protocol_error() -> None:
    reader = PacketReader()
    list(reader.feed(bytes.fromhex(CONNECT_V3)))
    with pytest.raises(MqttError) as caught:
        list(reader.feed(bytes.fromhex(CONNECT_V3)))
    assert caught.value.reason is ReasonCode.PROTOCOL_ERROR


def test_packet_too_large_is_refused_before_buffering() -> None:
    reader = PacketReader(V3, max_packet_size=1000)
    with pytest.raises(MqttError) as caught:
        list(reader.feed(bytes.fromhex("30") + encode_varint(5000)))
    assert caught.value.reason is ReasonCode.PACKET_TOO_LARGE


@pytest.mark.parametrize(
    "packet",
    [
        Publish("t", qos=1),  # no packet id
        Publish("t", packet_id=3),  # QoS 0 with an id
        Publish("t", qos=3, packet_id=1),
        PubAck(0),
        Subscribe(70000, (Subscription("a"),)),
    ],
)
def test_encoder_refuses_impossible_packets(packet: Packet) -> None:
    with pytest.raises(UsageError):
        encode_packet(packet, V3)


def test_auth_cannot_be_encoded_for_311() -> None:
    with pytest.raises(UsageError):
        encode_packet(Auth(), V3)
