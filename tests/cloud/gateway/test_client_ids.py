"""Who may connect with which client id, and whose session it opens (sans-I/O)."""

from __future__ import annotations

import pytest

from jumpstart.cloud.gateway.broker import Broker
from jumpstart.cloud.gateway.connection import ClientConnection, State
from jumpstart.cloud.policy import Principal
from jumpstart.cloud.registry import Role
from jumpstart.formats.mqtt import (
    ConnAck,
    Connect,
    PacketReader,
    PropertyId,
    ProtocolVersion,
    encode_packet,
)
from tests.cloud.gateway.test_fuzz import BufferLink

V311, V5 = ProtocolVersion.MQTT311, ProtocolVersion.MQTT5
REGISTERED = {"lamp", "lamp-2", "phone", "operator"}
DEVICE, APP = Principal("lamp", Role.DEVICE), Principal("phone", Role.APP)


@pytest.mark.parametrize(
    ("principal", "client_id", "allowed"),
    [
        (DEVICE, "lamp", True),
        (DEVICE, "lamp-jobs", True),  # a second connection of its own
        (DEVICE, "lamp-2", False),  # the name of another registered thing
        (DEVICE, "lampshade", False),  # neither its name nor {name}-suffix
        (DEVICE, "phone", False),
        (APP, "phone", True),
        (APP, "dashboard-1", True),  # a free id
        (APP, "lamp", False),  # a thing's name
        (APP, "operator", False),  # another principal's name
    ],
)
def test_connect_rule(principal: Principal, client_id: str, allowed: bool) -> None:
    owner = client_id if client_id in REGISTERED else None
    assert principal.may_connect_as(client_id, owner) is allowed


def _connack(principal: Principal, connect: Connect) -> tuple[ConnAck, ClientConnection]:
    broker = Broker(owner_of=lambda name: name if name in REGISTERED else None)
    link = BufferLink()
    connection = ClientConnection(broker, link, principal)
    version = connect.protocol_version
    connection.receive_data(encode_packet(connect, version))
    (ack,) = list(PacketReader(version).feed(bytes(link.data)))
    assert isinstance(ack, ConnAck)
    return ack, connection


def test_empty_client_id_mqtt311_clean_session_gets_one_assigned() -> None:
    ack, connection = _connack(DEVICE, Connect(client_id="", clean_start=True))
    assert ack.reason_code == 0
    assert connection.client_id.startswith("lamp-")
    assert connection.state is State.CONNECTED


def test_empty_client_id_mqtt311_persistent_is_rejected() -> None:
    ack, connection = _connack(DEVICE, Connect(client_id="", clean_start=False))
    assert ack.reason_code == 0x02  # identifier rejected (MQTT 3.1.1 3.1.3.1)
    assert connection.state is State.CLOSED


def test_empty_client_id_mqtt5_is_assigned_in_connack() -> None:
    ack, connection = _connack(DEVICE, Connect(client_id="", protocol_version=V5))
    assert ack.reason_code == 0
    assigned = ack.properties[PropertyId.ASSIGNED_CLIENT_IDENTIFIER]
    assert assigned == connection.client_id
    assert isinstance(assigned, str)
    assert assigned.startswith("lamp-")


def test_another_things_name_is_not_authorized_in_both_versions() -> None:
    for version, code in ((V311, 0x05), (V5, 0x87)):
        ack, connection = _connack(DEVICE, Connect(client_id="lamp-2", protocol_version=version))
        assert ack.reason_code == code
        assert connection.state is State.CLOSED


def test_who_is_online_follows_connects_take_overs_and_closes() -> None:
    broker = Broker(owner_of=lambda name: name if name in REGISTERED else None)

    def connect(principal: Principal, client_id: str) -> ClientConnection:
        connection = ClientConnection(broker, BufferLink(), principal)
        connection.receive_data(encode_packet(Connect(client_id=client_id), V311))
        assert connection.state is State.CONNECTED
        return connection

    first = connect(DEVICE, "lamp")
    second = connect(DEVICE, "lamp-jobs")  # a second connection of its own
    phone = connect(APP, "phone")
    assert broker.online == {"lamp": 2, "phone": 1}
    again = connect(DEVICE, "lamp")  # takes the session over from the first
    assert first.state is State.CLOSED
    assert broker.online == {"lamp": 2, "phone": 1}
    for connection in (second, again):
        connection.connection_lost()
    assert broker.online == {"phone": 1}
    phone.connection_lost()
    assert broker.online == {}
