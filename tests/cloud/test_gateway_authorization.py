"""Authorization and refusal on the gateway and on mosquitto, checked by delivery, not by
SUBACK. Where mosquitto behaves otherwise than AWS (README, "External broker"), the
test asserts the documented difference."""

from __future__ import annotations

import json
import queue
import socket
import ssl

import pytest

from jumpstart.formats.mqtt import ProtocolVersion, Publish, encode_packet
from tests.cloud.conftest import RunningCloud
from tests.cloud.mqtt_helpers import PahoDevice, tls_context

pytestmark = pytest.mark.interop


def test_thing_a_cannot_subscribe_to_or_publish_on_thing_b(cloud: RunningCloud) -> None:
    a = PahoDevice(cloud, cloud.creds["outlet1"])
    b = PahoDevice(cloud, cloud.creds["outlet2"])
    a.connect()
    b.connect()
    try:
        pb = "$aws/things/outlet2/shadow"
        # AWS refuses the filters; mosquitto grants them and then stays silent.
        granted = 1 if cloud.on_mosquitto else 0x80
        filters = (f"{pb}/update/accepted", f"{pb}/#", "$aws/things/+/shadow/#")
        assert a.subscribe(*filters) == [granted] * 3
        assert b.subscribe(f"{pb}/update/accepted") == [1]
        b.publish(f"{pb}/update", {"state": {"reported": {"x": 1}}})
        b.expect(f"{pb}/update/accepted")
        assert a.nothing() == []  # nothing of thing B reached A
        # A publishing on B's topics is disconnected (mosquitto: dropped), and B's shadow
        # does not change
        a.client.publish(f"{pb}/update", json.dumps({"state": {"reported": {"x": 666}}}))
        if not cloud.on_mosquitto:
            assert a.disconnected.get(timeout=5) is not None
        assert b.nothing() == []
    finally:
        a.close()
        b.close()


def test_device_cannot_publish_service_topics(cloud: RunningCloud) -> None:
    a = PahoDevice(cloud, cloud.creds["outlet1"])
    watcher = PahoDevice(cloud, cloud.creds["app"], client_id="delta-watcher")
    a.connect()
    watcher.connect()
    try:
        delta = "$aws/things/outlet1/shadow/update/delta"
        watcher.subscribe(delta)
        a.client.publish(delta, b'{"state":{"output":true}}', qos=1)
        if not cloud.on_mosquitto:
            assert a.disconnected.get(timeout=5) is not None
        assert watcher.nothing() == []  # a forged delta reaches nobody
    finally:
        a.close()
        watcher.close()


def test_device_cannot_take_another_things_client_id(cloud: RunningCloud) -> None:
    a = PahoDevice(cloud, cloud.creds["outlet1"], client_id="outlet2")
    try:
        # mosquitto has no per-user client id rule: a documented difference.
        assert (a.connect()[0] == 0) == cloud.on_mosquitto
    finally:
        a.close()


def test_revoked_certificate_is_refused(cloud: RunningCloud) -> None:
    if cloud.on_mosquitto:
        # mosquitto checks the CRL in the TLS handshake: no CONNACK at all
        assert not _raw_tls(cloud, tls_context(cloud, cloud.creds["revoked"])).startswith(b"\x20")
        return
    dev = PahoDevice(cloud, cloud.creds["revoked"])
    try:
        code, _ = dev.connect()
        assert code in (5, 0x87)  # "not authorized" (paho reports 3.1.1's 5 as 0x87)
    finally:
        dev.close()


CONNECT_OUTLET1 = bytes.fromhex("1013 00044d515454 04 02 003c 00076f75746c657431")


def _raw_tls(cloud: RunningCloud, context: ssl.SSLContext) -> bytes:
    """Send a CONNECT; the answer, or b"" when the server closed, or the TLS error."""
    try:
        with (
            socket.create_connection(("127.0.0.1", cloud.mqtt_port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(CONNECT_OUTLET1)
            return tls.recv(100)
    except (ssl.SSLError, ConnectionError) as err:
        return str(err).encode()


def test_missing_client_certificate_and_plain_tcp_are_refused(cloud: RunningCloud) -> None:
    # TLS 1.3 reports the refusal after the handshake: an alert or a closed socket
    assert not _raw_tls(cloud, tls_context(cloud, None)).startswith(b"\x20")
    assert _raw_tls(cloud, tls_context(cloud, cloud.creds["outlet1"])) == bytes.fromhex("20020000")
    with socket.create_connection(("127.0.0.1", cloud.mqtt_port), timeout=5) as plain:
        plain.sendall(CONNECT_OUTLET1)
        try:
            answer = plain.recv(100)
        except ConnectionResetError:  # mosquitto resets instead of closing
            answer = b""
        assert answer == b""


def test_second_connection_with_same_client_id_takes_over(cloud: RunningCloud) -> None:
    first = PahoDevice(cloud, cloud.creds["outlet2"])
    first.client.reconnect_delay_set(60, 120)  # no quick comeback that would take over again
    first.connect()
    second = PahoDevice(cloud, cloud.creds["outlet2"])
    try:
        second.connect()
        assert first.disconnected.get(timeout=5) is not None
    finally:
        first.close()
        second.close()


def test_more_than_ten_requests_in_flight_get_429(cloud: RunningCloud) -> None:
    dev = PahoDevice(cloud, cloud.creds["outlet1"])
    dev.connect()
    p = "$aws/things/outlet1/shadow/name/burst"
    dev.subscribe(f"{p}/update/accepted", f"{p}/update/rejected")
    try:
        # twelve requests in one TLS write: the gateway reads them as one burst
        sock = dev.client.socket()
        assert sock is not None
        dev.client.loop_stop()
        burst = b"".join(
            encode_packet(
                Publish(
                    f"{p}/update",
                    json.dumps({"state": {"reported": {"n": i}}, "clientToken": str(i)}).encode(),
                ),
                ProtocolVersion.MQTT311,
            )
            for i in range(12)
        )
        sock.sendall(burst)
        dev.client.loop_start()
        results: dict[str, int] = {}
        while len(results) < 12:
            _topic, payload = dev.messages.get(timeout=5)
            doc = json.loads(payload)
            results[doc["clientToken"]] = doc.get("code", 200)
        # mosquitto serves requests one by one as they come: no per-connection limit.
        throttled = [] if cloud.on_mosquitto else [429, 429]
        assert sorted(results.values()) == [200] * (12 - len(throttled)) + throttled
    except queue.Empty:
        pytest.fail("not every request was answered")
    finally:
        dev.close()
