"""10,000 mutated and random inputs against the gateway's connection core (with the real
shadow and jobs services behind it): nothing raises, every input the codec rejects closes
its connection, and a bystander client keeps being served throughout."""

from __future__ import annotations

import itertools
import random
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from jumpstart.cloud.gateway.broker import Broker
from jumpstart.cloud.gateway.connection import ClientConnection, State
from jumpstart.cloud.jobs.mqtt import JobsRequests
from jumpstart.cloud.jobs.service import JobsService
from jumpstart.cloud.jobs.store import SqliteJobStore
from jumpstart.cloud.policy import Principal
from jumpstart.cloud.registry import Role
from jumpstart.cloud.shadow.mqtt import ShadowRequests
from jumpstart.cloud.shadow.service import ShadowService
from jumpstart.cloud.shadow.store import SqliteShadowStore
from jumpstart.formats.mqtt import (
    Connect,
    PacketReader,
    ProtocolVersion,
    Publish,
    Subscribe,
    Subscription,
    encode_packet,
)
from tests.cloud.conftest import ONLY_EMBEDDED, RunningCloud
from tests.cloud.fuzz_inputs import FUZZ_SCALE, FuzzInput, fuzz_inputs
from tests.cloud.mqtt_helpers import PahoDevice, tls_context

INPUTS = 10_000 * FUZZ_SCALE
WIRE_INPUTS = 1000 * FUZZ_SCALE  # each a TLS handshake: the codec's share is covered above
BYSTANDER = "zz-bystander"


class BufferLink:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "wrote after close"
        self.data += data

    def close(self) -> None:
        self.closed = True


def _bystander(broker: Broker) -> tuple[ClientConnection, BufferLink]:
    link = BufferLink()
    connection = ClientConnection(broker, link, Principal("operator", Role.ADMIN))
    v5 = ProtocolVersion.MQTT5
    connection.receive_data(
        encode_packet(Connect(client_id=BYSTANDER, protocol_version=v5), v5)
        + encode_packet(Subscribe(1, (Subscription("alive/#", qos=1),)), v5)
    )
    assert connection.state is State.CONNECTED
    return connection, link


def _still_served(broker: Broker, link: BufferLink, n: int) -> None:
    link.data.clear()
    broker.publish(f"alive/{n}", str(n).encode(), qos=0)
    packets = list(PacketReader(ProtocolVersion.MQTT5).feed(bytes(link.data)))
    assert packets == [Publish(f"alive/{n}", str(n).encode())], f"bystander lost at input {n}"


def test_gateway_survives_fuzzed_input(tmp_path: Path) -> None:
    shadows = ShadowService(SqliteShadowStore(tmp_path / "shadows.db"))
    jobs = JobsService(SqliteJobStore(tmp_path / "jobs.db"))
    broker = Broker([ShadowRequests(shadows), JobsRequests(jobs)])
    bystander, bystander_link = _bystander(broker)
    principals = [
        Principal("fuzz1", Role.DEVICE),
        Principal("operator", Role.ADMIN),
        None,  # an unknown certificate
    ]
    rng = random.Random(7)
    malformed = 0
    for n, item in enumerate(fuzz_inputs(INPUTS, "fuzz1")):
        link = BufferLink()
        connection = ClientConnection(broker, link, principals[n % 3])
        connection.receive_data(item.connect)
        data = item.data
        while data:  # in random pieces, as TCP may deliver them
            cut = rng.randint(1, len(data))
            connection.receive_data(data[:cut])
            data = data[cut:]
        if item.malformed() and (item.connect == b"" or principals[n % 3] is not None):
            malformed += 1
            assert connection.state is State.CLOSED, f"input {n} left open: {item}"
        if connection.state is State.CLOSED:
            assert link.closed
        connection.connection_lost()
        assert connection not in broker.connections
        if n % 500 == 0:
            _still_served(broker, bystander_link, n)
    _still_served(broker, bystander_link, INPUTS)
    assert bystander.state is State.CONNECTED
    assert broker.connections == {bystander}
    # The generator must really produce garbage, not just valid traffic.
    assert malformed > INPUTS // 3


def _closed_by_server(context: ssl.SSLContext, port: int, item: FuzzInput) -> bool:
    raw = socket.create_connection(("localhost", port), timeout=10)
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(item.connect + item.data)
        try:
            while tls.recv(4096):
                pass
        except (ConnectionResetError, ssl.SSLError):
            pass  # closed without close_notify is closed too
        except TimeoutError:
            return False
    return True


@ONLY_EMBEDDED
def test_gateway_over_tls_closes_malformed_connections_only(cloud: RunningCloud) -> None:
    bystander = PahoDevice(cloud, cloud.creds["app"], client_id="fuzz-bystander")
    bystander.connect()
    try:
        bystander.subscribe("alive/#")
        context = tls_context(cloud, cloud.creds["outlet1"])
        bad = itertools.islice(
            (i for i in fuzz_inputs(5 * WIRE_INPUTS, "outlet1") if i.malformed()), WIRE_INPUTS
        )
        with ThreadPoolExecutor(8) as pool:
            closed = list(pool.map(lambda i: _closed_by_server(context, cloud.mqtt_port, i), bad))
        assert len(closed) == WIRE_INPUTS
        assert all(closed)
        bystander.publish("alive/after", b"yes")
        assert bystander.messages.get(timeout=5) == ("alive/after", b"yes")
        assert bystander.disconnected.empty()
        # Nothing leaked: the bystander is the only connection left.
        assert len(cloud.service.broker.connections) == 1
    finally:
        bystander.close()


# CONNECT as outlet1 (MQTT 3.1.1, clean session, keep-alive 60).
CONNECT = encode_packet(Connect(client_id="outlet1"), ProtocolVersion.MQTT311)
MALFORMED_WIRE = {
    "qos-3-publish": bytes([0x36, 0x0B, 0x00, 0x05]) + b"a/b/c" + b"\x00\x01" + b"xx",
    "wildcard-in-publish-topic": bytes([0x30, 0x07, 0x00, 0x03]) + b"a/#" + b"xx",
    "plus-in-publish-topic": bytes([0x30, 0x07, 0x00, 0x03]) + b"a/+" + b"xx",
    "invalid-utf8-topic": bytes([0x30, 0x07, 0x00, 0x03]) + b"a\xff\xfe" + b"xx",
    "nul-in-topic": bytes([0x30, 0x07, 0x00, 0x03]) + b"a\x00b" + b"xx",
    "five-byte-remaining-length": bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
    "huge-declared-length": bytes([0x30, 0xFF, 0xFF, 0xFF, 0x7F]) + b"\x00" * 64,
    "reserved-packet-type-0": bytes([0x00, 0x00]),
    "reserved-packet-type-15": bytes([0xF0, 0x00]),
    "subscribe-bad-flags": bytes([0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b"#"[0], 0x01]),
    "subscribe-qos-3": bytes([0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b"#"[0], 0x03]),
    "second-connect": CONNECT,
    "connack-from-client": bytes([0x20, 0x02, 0x00, 0x00]),
    "pubrel-qos-2-flow": bytes([0x62, 0x02, 0x00, 0x01]),
}


@ONLY_EMBEDDED
def test_each_malformed_packet_over_tls_is_closed_and_the_cloud_serves_on(
    cloud: RunningCloud,
) -> None:
    bystander = PahoDevice(cloud, cloud.creds["app"], client_id="vector-bystander")
    bystander.connect()
    try:
        bystander.subscribe("alive/#")
        context = tls_context(cloud, cloud.creds["outlet1"])
        for name, data in MALFORMED_WIRE.items():
            item = FuzzInput(ProtocolVersion.MQTT311, CONNECT, data)
            assert _closed_by_server(context, cloud.mqtt_port, item), name
            bystander.publish(f"alive/{name}", b"yes")
            assert bystander.messages.get(timeout=5) == (f"alive/{name}", b"yes"), name
    finally:
        bystander.close()
