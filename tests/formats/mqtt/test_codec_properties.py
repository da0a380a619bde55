"""Property tests: every packet round-trips through bytes fed in random chunks; random and
mutated input only ever raises MqttError."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

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
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
    encode_packet,
)

V3, V5 = ProtocolVersion.MQTT311, ProtocolVersion.MQTT5
P = PropertyId

text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
level = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/+#"), max_size=6
)
topic = st.lists(level, min_size=1, max_size=5).map("/".join).filter(bool)
topic_filter = st.one_of(
    topic,
    st.lists(st.one_of(level, st.just("+")), min_size=1, max_size=4).map("/".join),
    st.lists(level, max_size=3).map(lambda levels: "/".join([*levels, "#"])),
).filter(bool)
packet_id = st.integers(1, 0xFFFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
user_props = st.lists(st.tuples(text, text), min_size=1, max_size=3).map(tuple)


def props(**choices: st.SearchStrategy[object]) -> st.SearchStrategy[dict[PropertyId, object]]:
    return st.fixed_dictionaries({}, optional={P[k]: v for k, v in choices.items()})


publish_props = props(
    PAYLOAD_FORMAT_INDICATOR=st.just(0),
    MESSAGE_EXPIRY_INTERVAL=u32,
    CONTENT_TYPE=text,
    RESPONSE_TOPIC=topic,
    CORRELATION_DATA=st.binary(max_size=8),
    USER_PROPERTY=user_props,
    SUBSCRIPTION_IDENTIFIER=st.lists(st.integers(1, 268435455), min_size=1, max_size=3).map(tuple),
)
reason_props = props(REASON_STRING=text, USER_PROPERTY=user_props)
reason = st.sampled_from([0, 0x10, 0x80, 0x87, 0x91, 0x97])


@st.composite
def publish(draw: st.DrawFn, v5: bool) -> Publish:
    qos = draw(st.integers(0, 2))
    return Publish(
        draw(topic),
        draw(st.binary(max_size=64)),
        qos,
        draw(st.booleans()),
        draw(st.booleans()) if qos else False,
        draw(packet_id) if qos else None,
        draw(publish_props) if v5 else {},
    )


@st.composite
def subscription(draw: st.DrawFn, v5: bool) -> Subscription:
    if not v5:
        return Subscription(draw(topic_filter), draw(st.integers(0, 2)))
    return Subscription(
        draw(topic_filter),
        draw(st.integers(0, 2)),
        draw(st.booleans()),
        draw(st.booleans()),
        draw(st.integers(0, 2)),
    )


def ack(cls: type[PubAck | PubRec | PubRel | PubComp], v5: bool) -> st.SearchStrategy[Packet]:
    if not v5:
        return st.builds(cls, packet_id)
    return st.builds(cls, packet_id, reason, reason_props)


def packets(v5: bool) -> st.SearchStrategy[Packet]:
    version = V5 if v5 else V3
    opt = (lambda s: s) if v5 else (lambda s: st.just({}))
    choices: list[st.SearchStrategy[Packet]] = [
        st.builds(
            Connect,
            text,
            st.just(version),
            st.booleans(),
            u16,
            st.none() | text,
            st.none(),
            st.none()
            | st.builds(
                Will,
                topic,
                st.binary(max_size=16),
                st.integers(0, 2),
                st.booleans(),
                opt(props(WILL_DELAY_INTERVAL=u32, CONTENT_TYPE=text)),
            ),
            opt(props(SESSION_EXPIRY_INTERVAL=u32, RECEIVE_MAXIMUM=st.integers(1, 0xFFFF))),
        ),
        st.builds(
            ConnAck,
            st.booleans(),
            st.sampled_from([0, 1, 2, 3, 4, 5]) if not v5 else reason,
            opt(props(ASSIGNED_CLIENT_IDENTIFIER=text, MAXIMUM_QOS=st.integers(0, 1))),
        ),
        publish(v5),
        ack(PubAck, v5),
        ack(PubRec, v5),
        ack(PubRel, v5),
        ack(PubComp, v5),
        st.builds(
            Subscribe,
            packet_id,
            st.lists(subscription(v5), min_size=1, max_size=4).map(tuple),
            opt(props(SUBSCRIPTION_IDENTIFIER=st.integers(1, 1000).map(lambda i: (i,)))),
        ),
        st.builds(
            SubAck,
            packet_id,
            st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1, max_size=4).map(tuple),
            opt(reason_props),
        ),
        st.builds(
            Unsubscribe,
            packet_id,
            st.lists(topic_filter, min_size=1, max_size=4).map(tuple),
            opt(props(USER_PROPERTY=user_props)),
        ),
        st.builds(UnsubAck, packet_id)
        if not v5
        else st.builds(
            UnsubAck,
            packet_id,
            st.lists(st.sampled_from([0, 0x11, 0x80]), min_size=1, max_size=3).map(tuple),
            reason_props,
        ),
        st.just(PingReq()),
        st.just(PingResp()),
        st.builds(Disconnect) if not v5 else st.builds(Disconnect, reason, reason_props),
    ]
    if v5:
        choices.append(st.builds(Auth, st.sampled_from([0, 0x18, 0x19]), reason_props))
    return st.one_of(choices)


def _roundtrip(version: ProtocolVersion, packet: Packet, cuts: list[int]) -> None:
    wire = encode_packet(packet, version)
    reader = PacketReader(None if isinstance(packet, Connect) else version)
    got: list[Packet] = []
    start = 0
    for cut in [*sorted(c % (len(wire) + 1) for c in cuts), len(wire)]:
        got += reader.feed(wire[start:cut])
        start = max(start, cut)
    assert got == [packet]


@settings(max_examples=400)
@given(packets(v5=False), st.lists(st.integers(0, 10_000), max_size=4))
def test_311_packets_round_trip(packet: Packet, cuts: list[int]) -> None:
    _roundtrip(V3, packet, cuts)


@settings(max_examples=400)
@given(packets(v5=True), st.lists(st.integers(0, 10_000), max_size=4))
def test_5_packets_round_trip(packet: Packet, cuts: list[int]) -> None:
    _roundtrip(V5, packet, cuts)


@settings(max_examples=500)
@given(st.sampled_from([None, V3, V5]), st.binary(max_size=200))
def test_random_bytes_only_raise_mqtt_error(version: ProtocolVersion | None, data: bytes) -> None:
    reader = PacketReader(version)
    with contextlib.suppress(MqttError):
        list(reader.feed(data))


@settings(max_examples=500)
@given(
    st.booleans().flatmap(lambda v5: st.tuples(st.just(v5), packets(v5))),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_mutated_packets_only_raise_mqtt_error(
    case: tuple[bool, Packet], flips: list[tuple[int, int]]
) -> None:
    v5, packet = case
    version = V5 if v5 else V3
    wire = bytearray(encode_packet(packet, version))
    for position, value in flips:
        wire[position % len(wire)] = value
    reader = PacketReader(None if isinstance(packet, Connect) else version)
    try:
        for decoded in reader.feed(bytes(wire)):
            # whatever decodes must encode again: no value the encoder cannot represent
            encode_packet(decoded, reader.version or version)
    except MqttError:
        pass
