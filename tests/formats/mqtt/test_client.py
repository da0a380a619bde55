"""The sans-I/O MQTT client: what it sends, what it makes of the server's bytes, and what
survives a lost connection."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jumpstart.formats.mqtt import (
    ConnAck,
    Connect,
    Disconnect,
    MqttError,
    Packet,
    PacketReader,
    PingReq,
    PingResp,
    ProtocolVersion,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    encode_packet,
)
from jumpstart.formats.mqtt.client import (
    ClientState,
    Connected,
    ConnectionRefused,
    MessageReceived,
    MqttClient,
    PublishAcked,
    ServerDisconnected,
    Subscribed,
)

V3 = ProtocolVersion.MQTT311


class FakeServer:
    """Decodes what the client sends, as a broker would."""

    def __init__(self) -> None:
        self.reader = PacketReader(None)

    def take(self, client: MqttClient) -> list[Packet]:
        return list(self.reader.feed(client.data_to_send()))


def wire(*packets: Packet) -> bytes:
    return b"".join(encode_packet(p, V3) for p in packets)


def connected(client: MqttClient, session_present: bool = False) -> FakeServer:
    server = FakeServer()
    client.connect()
    server.take(client)
    assert client.receive(wire(ConnAck(session_present))) == [Connected(session_present)]
    return server


def test_connect_sends_the_identity_and_session_choice() -> None:
    client = MqttClient("engines", keep_alive=30, clean_start=False)
    client.connect()
    (connect,) = FakeServer().take(client)
    assert isinstance(connect, Connect)
    assert (connect.client_id, connect.keep_alive, connect.clean_start) == ("engines", 30, False)
    assert client.state is ClientState.CONNECTING


def test_refused_connack_and_packets_before_connack() -> None:
    client = MqttClient("c")
    client.connect()
    assert client.receive(wire(ConnAck(reason_code=5))) == [ConnectionRefused(5)]
    assert client.state is ClientState.DISCONNECTED
    client.connect()
    with pytest.raises(MqttError, match="before CONNACK"):
        client.receive(wire(Publish("t", b"x")))


def test_subscriptions_are_restored_on_a_new_session_only() -> None:
    client = MqttClient("c")
    assert client.subscribe([("a/+", 1), ("b/#", 0)]) is None  # not connected yet: deferred
    server = connected(client)
    (subscribe,) = server.take(client)  # sent with the CONNACK's handling
    assert isinstance(subscribe, Subscribe)
    assert [(s.topic_filter, s.qos) for s in subscribe.subscriptions] == [("a/+", 1), ("b/#", 0)]
    events = client.receive(wire(SubAck(subscribe.packet_id, (1, 0x80))))
    assert events == [Subscribed(subscribe.packet_id, ("a/+", "b/#"), (1, 0x80))]
    assert events[0].refused == ["b/#"]  # type: ignore[union-attr]
    client.connection_lost()
    assert server.take(client) == []
    # The broker kept the session: nothing to ask again...
    server = connected(client, session_present=True)
    assert server.take(client) == []
    # ...but it lost it this time: every filter again.
    client.connection_lost()
    server = connected(client, session_present=False)
    (again,) = server.take(client)
    assert isinstance(again, Subscribe)
    assert [s.topic_filter for s in again.subscriptions] == ["a/+", "b/#"]


def test_unconfirmed_subscription_is_asked_for_again_in_a_kept_session() -> None:
    client = MqttClient("c")
    server = connected(client)
    client.subscribe([("x", 1)])
    client.connection_lost()  # before the SUBACK came
    server = connected(client, session_present=True)
    (subscribe,) = server.take(client)
    assert isinstance(subscribe, Subscribe)
    assert [s.topic_filter for s in subscribe.subscriptions] == ["x"]


def test_qos1_publish_is_kept_until_puback_and_resent_with_dup() -> None:
    client = MqttClient("c")
    server = connected(client)
    packet_id = client.publish("t", b"1", qos=1)
    (first,) = server.take(client)
    assert isinstance(first, Publish)
    assert (first.packet_id, first.dup) == (packet_id, False)
    client.connection_lost()
    queued = client.publish("t", b"2", qos=1)  # made while offline
    assert client.publish("t", b"lost", qos=0) is None
    server = connected(client, session_present=True)
    resent = server.take(client)
    assert [(p.payload, p.dup) for p in resent if isinstance(p, Publish)] == [
        (b"1", True),
        (b"2", False),
    ]
    assert client.receive(wire(PubAck(packet_id), PubAck(queued))) == [  # type: ignore[arg-type]
        PublishAcked(packet_id, 0),  # type: ignore[arg-type]
        PublishAcked(queued, 0),  # type: ignore[arg-type]
    ]
    assert client.unacked == 0
    client.connection_lost()
    server = connected(client, session_present=True)
    assert server.take(client) == []


def test_incoming_qos1_message_is_acknowledged() -> None:
    client = MqttClient("c")
    server = connected(client)
    events = client.receive(wire(Publish("req", b"{}", 1, packet_id=7)))
    assert events == [MessageReceived("req", b"{}", 1, False)]
    assert server.take(client) == [PubAck(7)]
    with pytest.raises(MqttError, match="QoS 2"):
        client.publish("t", b"", qos=2)


def test_keep_alive_pings_and_detects_a_silent_server() -> None:
    client = MqttClient("c", keep_alive=10)
    client.connect(now=100.0)
    server = FakeServer()
    server.take(client)
    client.receive(wire(ConnAck()))
    assert client.tick(105.0)
    assert server.take(client) == []
    assert client.tick(110.0)
    assert server.take(client) == [PingReq()]
    client.receive(wire(PingResp()))
    assert client.tick(121.0)  # answered: the next ping goes out
    assert server.take(client) == [PingReq()]
    assert client.tick(130.0)
    assert not client.tick(131.0)  # no PINGRESP within keep_alive


def test_server_disconnect_is_an_event() -> None:
    client = MqttClient("c", version=ProtocolVersion.MQTT5)
    client.connect()
    FakeServer().take(client)
    v5 = ProtocolVersion.MQTT5
    client.receive(encode_packet(ConnAck(), v5))
    assert client.receive(encode_packet(Disconnect(0x8E), v5)) == [ServerDisconnected(0x8E)]
    assert client.state is ClientState.DISCONNECTED


SERVER_STREAM = wire(
    ConnAck(),
    Publish("a/b", b"hello", 1, packet_id=1),
    Publish("$aws/things/x/shadow/update", b'{"state":{}}'),
    PubAck(1),
    PingResp(),
    Publish("c", b"x" * 300, 1, retain=True, packet_id=2),
)


@given(st.lists(st.integers(min_value=0, max_value=len(SERVER_STREAM)), max_size=12))
def test_events_do_not_depend_on_how_the_bytes_are_split(cuts: list[int]) -> None:
    whole = MqttClient("c")
    whole.connect()
    whole.publish("out", b"", qos=1)
    expected = whole.receive(SERVER_STREAM)
    split = MqttClient("c")
    split.connect()
    split.publish("out", b"", qos=1)
    events = []
    bounds = [0, *sorted(cuts), len(SERVER_STREAM)]
    for start, end in itertools.pairwise(bounds):
        events += split.receive(SERVER_STREAM[start:end])
    assert events == expected
    assert len(expected) == 5  # CONNACK, three messages, one PUBACK
    assert split.data_to_send() == whole.data_to_send()
