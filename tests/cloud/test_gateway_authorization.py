"""Authorization and refusal on the gateway and on mosquitto, checked by delivery, not by
SUBACK. Where mosquitto behaves otherwise than AWS (README, "External broker"), the
test asserts the documented difference."""

from __future__ import annotations

import http.client
import json
import queue
import socket
import ssl
import time
from pathlib import Path

import pytest

from jumpstart.cloud.registry import Role
from jumpstart.formats.mqtt import ProtocolVersion, Publish, encode_packet
from tests.cloud.conftest import Credentials, RunningCloud
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
        if not cloud.keeps_violators:
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
        if not cloud.keeps_violators:
            assert a.disconnected.get(timeout=5) is not None
        assert watcher.nothing() == []  # a forged delta reaches nobody
    finally:
        a.close()
        watcher.close()


def test_device_cannot_take_another_things_client_id(cloud: RunningCloud) -> None:
    a = PahoDevice(cloud, cloud.creds["outlet1"], client_id="outlet2")
    try:
        # mosquitto replaces the client id by the certificate's name: connected as outlet1.
        # NATS binds no client id to a certificate: connected under outlet2's id
        # (test_nats.py shows that nothing of outlet2's reaches it).
        assert (a.connect()[0] == 0) == cloud.external
    finally:
        a.close()


def _thing_creds(cloud: RunningCloud, name: str, folder: Path) -> Credentials:
    registry = cloud.service.registry
    if registry.thing(name) is None:
        registry.create_thing(name)
    issued = registry.issue(name, Role.DEVICE)
    cert, key = folder / f"{name}.cert", folder / f"{name}.key"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    cloud.settle()
    return Credentials(name, cert, key)


@pytest.mark.parametrize("v5", [False, True], ids=["mqtt311", "mqtt5"])
def test_prefix_client_id_cannot_reach_another_things_session(
    cloud: RunningCloud, tmp_path: Path, v5: bool
) -> None:
    """outlet1 may use ``outlet1-suffix`` client ids, but not when that names another thing:
    it neither resumes that thing's persistent session, receives its queued delta, nor
    disconnects it."""
    if v5:
        cloud.skip_mqtt5()
    victim_name = "outlet1-evil"
    victim_creds = _thing_creds(cloud, victim_name, tmp_path)
    delta = f"$aws/things/{victim_name}/shadow/update/delta"
    victim = PahoDevice(cloud, victim_creds, v5=v5, clean=False)
    victim.connect()
    assert victim.subscribe(delta) == [1]
    victim.close()
    admin = PahoDevice(cloud, cloud.creds["admin"], client_id="takeover-admin")
    admin.connect()
    try:
        admin.publish(
            f"$aws/things/{victim_name}/shadow/update", {"state": {"desired": {"output": True}}}
        )
        time.sleep(0.3)  # the delta is queued for the victim's offline session
    finally:
        admin.close()
    attacker = PahoDevice(cloud, cloud.creds["outlet1"], v5=v5, client_id=victim_name, clean=False)
    try:
        code, present = attacker.connect()
        if cloud.on_mosquitto:  # connected, but as itself: a fresh session of outlet1's
            assert (code, present) == (0, False)
        elif cloud.on_nats:  # it takes the session over, but not what outlet1 may not read
            assert (code, present) == (0, True)
            assert attacker.nothing(0.5) == []
            return  # the README's table: what NATS does to the victim's session differs
        else:  # AWS's rule: a client id that names another thing is not this certificate's
            assert code in (5, 0x87)
        assert attacker.nothing(0.5) == []
    finally:
        attacker.close()
    # The victim's session kept its queued delta, and a live victim is not disconnected.
    victim = PahoDevice(cloud, victim_creds, v5=v5, clean=False)
    try:
        assert victim.connect()[1] is True
        assert victim.expect(delta)["state"] == {"output": True}
        intruder = PahoDevice(cloud, cloud.creds["outlet1"], v5=v5, client_id=victim_name)
        try:
            intruder.connect()
            assert victim.disconnected.empty()
            time.sleep(0.3)
            assert victim.disconnected.empty()
        finally:
            intruder.close()
    finally:
        victim.close()


def test_identities_never_share_a_session_under_a_free_client_id(cloud: RunningCloud) -> None:
    """Two identities using one unregistered client id get a session each: neither
    disconnects the other (AWS keys sessions by client id; ours by identity and client id)."""
    topic = "$aws/things/outlet1/shadow/update/accepted"
    app = PahoDevice(cloud, cloud.creds["app"], client_id="shared-id")
    admin = PahoDevice(cloud, cloud.creds["admin"], client_id="shared-id")
    app.client.reconnect_delay_set(60, 120)  # no quick comeback that would take over again
    app.connect()
    try:
        assert app.subscribe(topic) == [1]
        admin.connect()
        try:
            if cloud.on_nats:  # sessions are keyed by client id alone (README's table)
                assert app.disconnected.get(timeout=5) is not None
                return
            time.sleep(0.3)
            assert app.disconnected.empty()
            device = PahoDevice(cloud, cloud.creds["outlet1"])
            device.connect()
            try:
                device.publish("$aws/things/outlet1/shadow/update", {"state": {"reported": {}}})
                assert app.expect(topic) is not None
                assert admin.nothing(0.3) == []  # the app's subscription is not the admin's
            finally:
                device.close()
        finally:
            admin.close()
    finally:
        app.close()


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
        # An external broker's engines serve requests as they come: no per-connection limit.
        throttled = [] if cloud.external else [429, 429]
        assert sorted(results.values()) == [200] * (12 - len(throttled)) + throttled
    except queue.Empty:
        pytest.fail("not every request was answered")
    finally:
        dev.close()


def test_revocation_ends_live_mqtt_and_rest_connections(
    cloud: RunningCloud, tmp_path: Path
) -> None:
    """Revoking a certificate (as `cloud cert revoke` does, from another registry handle)
    closes its open MQTT connection and REST keep-alive connection within two seconds."""
    creds = _thing_creds(cloud, f"live-{cloud.broker}", tmp_path)
    device = PahoDevice(cloud, creds)
    device.client.reconnect_delay_set(0.1, 0.2)  # comes straight back if it still can
    assert device.connect()[0] == 0
    rest = http.client.HTTPSConnection(
        "localhost", cloud.rest_port, context=tls_context(cloud, creds), timeout=5
    )
    try:
        rest.request("GET", f"/things/{creds.name}/shadow")
        assert rest.getresponse().read()  # a keep-alive connection, open
        with cloud.service.home.registry() as registry:
            (record,) = registry.certificates(creds.name)
            registry.revoke(record.certificate_id)
        revoked_at = time.monotonic()
        assert device.disconnected.get(timeout=2.5) is not None
        assert rest.sock is not None
        rest.sock.settimeout(2.5)
        try:
            closed = rest.sock.recv(1) == b""
        except (ConnectionError, ssl.SSLError):
            closed = True
        assert closed
        assert time.monotonic() - revoked_at < 2.5
        time.sleep(0.5)
        assert not device.client.is_connected()  # and it cannot come back
    finally:
        rest.close()
        device.close()
