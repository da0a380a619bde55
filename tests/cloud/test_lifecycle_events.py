"""AWS IoT lifecycle events from the embedded gateway, seen by an operator with paho-mqtt:
connected, then disconnected for a clean DISCONNECT, a dropped connection and a keep-alive
timeout, with AWS's fields; devices and apps cannot subscribe to them."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from jumpstart.formats.mqtt import ProtocolVersion
from jumpstart.formats.mqtt.codec import encode_packet
from jumpstart.formats.mqtt.packets import Connect
from tests.cloud.conftest import ONLY_EMBEDDED, Credentials, RunningCloud
from tests.cloud.mqtt_helpers import PahoDevice

pytestmark = [pytest.mark.interop, ONLY_EMBEDDED]
PRESENCE = "$aws/events/presence"
SUBACK_FAILURE = 0x80


@pytest.fixture
def operator(cloud: RunningCloud) -> Iterator[PahoDevice]:
    watcher = PahoDevice(cloud, cloud.creds["admin"], client_id="operator-watch")
    assert watcher.connect()[0] == 0
    assert watcher.subscribe(f"{PRESENCE}/#") == [1]
    yield watcher
    watcher.close()


def event(watcher: PahoDevice, kind: str, client_id: str) -> dict[str, object]:
    document = watcher.expect(f"{PRESENCE}/{kind}/{client_id}")
    assert isinstance(document, dict)
    return document


def raw_connect(cloud: RunningCloud, creds: Credentials, keep_alive: int) -> ssl.SSLSocket:
    """A device's TLS connection with CONNECT sent and CONNACK read, then left alone."""
    context = ssl.create_default_context(cafile=str(cloud.ca))
    context.load_cert_chain(str(creds.cert), str(creds.key))
    sock = context.wrap_socket(
        socket.create_connection(("localhost", cloud.mqtt_port), timeout=5),
        server_hostname="localhost",
    )
    connect = Connect(creds.name, ProtocolVersion.MQTT311, keep_alive=keep_alive)
    sock.sendall(encode_packet(connect, ProtocolVersion.MQTT311))
    assert sock.recv(4)[0] == 0x20  # CONNACK
    return sock


def test_connected_then_a_clean_disconnect(cloud: RunningCloud, operator: PahoDevice) -> None:
    device = PahoDevice(cloud, cloud.creds["outlet1"])
    assert device.connect()[0] == 0
    connected = event(operator, "connected", "outlet1")
    assert connected["eventType"] == "connected"
    assert connected["clientId"] == "outlet1"
    assert connected["ipAddress"] == "127.0.0.1"
    assert isinstance(connected["timestamp"], int)
    assert abs(connected["timestamp"] - time.time() * 1000) < 10_000
    principal = connected["principalIdentifier"]
    assert isinstance(principal, str)
    assert principal
    assert "disconnectReason" not in connected
    device.close()
    gone = event(operator, "disconnected", "outlet1")
    assert gone["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT"
    assert gone["clientInitiatedDisconnect"] is True
    assert gone["sessionIdentifier"] == connected["sessionIdentifier"]
    assert gone["principalIdentifier"] == principal
    assert isinstance(gone["versionNumber"], int)
    assert isinstance(connected["versionNumber"], int)
    assert gone["versionNumber"] > connected["versionNumber"]


def test_a_dropped_connection_and_a_keep_alive_timeout(
    cloud: RunningCloud, operator: PahoDevice
) -> None:
    dropped = raw_connect(cloud, cloud.creds["outlet2"], keep_alive=60)
    event(operator, "connected", "outlet2")
    dropped.close()  # no DISCONNECT: the link just ends
    lost = event(operator, "disconnected", "outlet2")
    assert lost["disconnectReason"] == "CONNECTION_LOST"
    assert lost["clientInitiatedDisconnect"] is False

    silent = raw_connect(cloud, cloud.creds["outlet2"], keep_alive=1)
    try:
        event(operator, "connected", "outlet2")
        timed_out = event(operator, "disconnected", "outlet2")  # after 1.5 x keep-alive
        assert timed_out["disconnectReason"] == "MQTT_KEEP_ALIVE_TIMEOUT"
    finally:
        silent.close()


@pytest.mark.parametrize("who", ["outlet1", "app"])
def test_devices_and_apps_cannot_subscribe(cloud: RunningCloud, who: str) -> None:
    client = PahoDevice(cloud, cloud.creds[who], client_id=f"{cloud.creds[who].name}-watch")
    assert client.connect()[0] == 0
    try:
        assert client.subscribe(f"{PRESENCE}/#") == [SUBACK_FAILURE]
        assert client.subscribe(f"{PRESENCE}/connected/outlet2") == [SUBACK_FAILURE]
    finally:
        client.close()


def test_events_are_json_with_aws_field_names(cloud: RunningCloud, operator: PahoDevice) -> None:
    device = PahoDevice(cloud, cloud.creds["outlet1"], client_id="outlet1-second")
    assert device.connect()[0] == 0
    topic, payload = operator.expect_any()
    while not topic.endswith("/outlet1-second"):
        topic, payload = operator.expect_any()
    document = json.loads(payload)
    assert set(document) == {
        "clientId",
        "timestamp",
        "eventType",
        "sessionIdentifier",
        "principalIdentifier",
        "ipAddress",
        "versionNumber",
    }
    device.close()
