"""NATS as the cloud's broker: the configuration ``cloud nats-config`` writes, checked by
Debian's nats-server itself, and ``cloud serve --broker nats``. A device certificate reaches
only its own thing's topics; an app makes requests but cannot forge the services' replies; a
name whose certificates are all revoked is refused; three nodes form a cluster that carries
a message across; the engines serve a thing's shadow through NATS."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from cryptography import x509
from paho.mqtt.enums import CallbackAPIVersion

from jumpstart.cli import main
from jumpstart.cloud.admin import shadow_request
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.nats import (
    NatsNode,
    mqtt_to_subject,
    nats_config,
    nats_nodes,
    registry_view,
    user_permissions,
)
from jumpstart.cloud.pki import certificate_id
from jumpstart.cloud.registry import Role
from tests.cloud.cloud_process import serve
from tests.system_tools import require

NATS = "/usr/sbin/nats-server"
WAIT_S = 10.0


@pytest.mark.parametrize(
    ("topic", "subject"),
    [
        ("$aws/things/lamp/shadow/update", "$aws.things.lamp.shadow.update"),
        ("$aws/things/+/shadow/get", "$aws.things.*.shadow.get"),
        ("$aws/things/lamp/#", "$aws.things.lamp.>"),
        ("a/b", "a.b"),
    ],
)
def test_topics_become_subjects(topic: str, subject: str) -> None:
    assert mqtt_to_subject(topic) == subject


def test_a_device_publishes_its_requests_and_reads_its_own_topics() -> None:
    permissions = user_permissions("lamp", Role.DEVICE)
    publish = permissions["publish"]
    assert isinstance(publish, list)
    assert all(s.startswith("$aws.things.lamp.") for s in publish)  # any shadow name: '*'
    assert "$aws.things.lamp.shadow.name.*.update" in publish
    # MQTT's '#' matches the parent level too; NATS's '>' does not: both are listed.
    assert permissions["subscribe"] == ["$aws.things.lamp", "$aws.things.lamp.>", "$MQTT.sub.>"]


# -- against nats-server ---------------------------------------------------------------------


def _free_base() -> int:
    """A base port whose client, MQTT and cluster ports (for three nodes) are all free."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base > 60000:
            continue
        ports = [base + offset + i for offset in (0, 1000, 2000) for i in range(3)]
        if all(_free(port) for port in ports):
            return base
    raise RuntimeError("no free ports")


def _config_check(config: Path) -> subprocess.CompletedProcess[bytes]:
    """``nats-server -t``: the server's own verdict on a configuration."""
    return subprocess.run([NATS, "-t", "-c", str(config)], capture_output=True, check=False)


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Identities:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.home = CloudHome(folder / "cloud")
        self.home.ensure()

    def issue(self, name: str, role: Role) -> tuple[Path, Path]:
        with self.home.registry() as registry:
            if role is Role.DEVICE and registry.thing(name) is None:
                registry.create_thing(name)
            issued = registry.issue(name, role)
        cert = self.folder / f"{name}-{issued.certificate_id[:8]}.pem"
        key = cert.with_suffix(".key")
        cert.write_bytes(issued.cert_pem)
        key.write_bytes(issued.key_pem)
        return cert, key


@contextlib.contextmanager
def running(ids: Identities, nodes: list[NatsNode]) -> Iterator[list[subprocess.Popen[bytes]]]:
    with ids.home.registry() as registry:
        view = registry_view(registry)
    processes = []
    try:
        for node in nodes:
            config = ids.folder / f"{node.name}.conf"
            config.write_text(nats_config(ids.home, ids.folder, node, nodes, view))
            check = _config_check(config)
            assert check.returncode == 0, check.stderr
            log = (ids.folder / f"{node.name}.log").open("wb")
            processes.append(subprocess.Popen([NATS, "-c", str(config)], stdout=log, stderr=log))
        for node in nodes:
            deadline = time.monotonic() + WAIT_S
            while _free(node.mqtt_port):
                assert time.monotonic() < deadline, f"{node.name} did not listen"
                time.sleep(0.05)
        yield processes
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


class Client:
    """A paho MQTT 3.1.1 client (nats-server 2.9 speaks no MQTT 5) with its certificate."""

    def __init__(
        self,
        ids: Identities,
        creds: tuple[Path, Path],
        node: NatsNode,
        client_id: str | None = None,
        protocol: int = paho.MQTTv311,
        clean: bool = True,
    ) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.subacks: list[list[int]] = []
        self.disconnects = 0
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or creds[0].stem,
            protocol=protocol,
            clean_session=clean if protocol != paho.MQTTv5 else None,
        )
        self.client.on_disconnect = lambda *_args: self._disconnected()
        self.client.tls_set(
            ca_certs=str(ids.home.ca_pem), certfile=str(creds[0]), keyfile=str(creds[1])
        )
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        self.client.on_subscribe = lambda _c, _u, _m, codes, _p: self.subacks.append(
            [int(code.value) for code in codes]
        )
        connected = threading.Event()
        answers: list[bool] = []

        def on_connect(_c: object, _u: object, _f: object, code: object, _p: object) -> None:
            answers.append(bool(getattr(code, "is_failure", True)))
            connected.set()

        self.client.on_connect = on_connect
        self.client.connect("localhost", node.mqtt_port)
        self.client.loop_start()
        refused = not connected.wait(WAIT_S) or answers[0]
        if refused:
            self.client.loop_stop()
        assert not refused, "no CONNACK, or CONNACK refused"

    def _disconnected(self) -> None:
        self.disconnects += 1

    def subscribe(self, topic: str, qos: int = 1) -> list[int]:
        before = len(self.subacks)
        self.client.subscribe(topic, qos)
        _eventually(lambda: len(self.subacks) > before)
        return self.subacks[-1]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _eventually(check: object, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the time limit"
        time.sleep(0.05)


@pytest.fixture
def ids(tmp_path: Path) -> Identities:
    require("nats-server")
    return Identities(tmp_path)


@pytest.mark.interop
def test_a_device_reaches_only_its_own_things_topics(ids: Identities) -> None:
    lamp, fan = ids.issue("lamp", Role.DEVICE), ids.issue("fan", Role.DEVICE)
    operator, phone = ids.issue("operator", Role.ADMIN), ids.issue("phone", Role.APP)
    nodes = nats_nodes(1, base_port=_free_base())
    with running(ids, nodes):
        device, other = Client(ids, lamp, nodes[0]), Client(ids, fan, nodes[0])
        engine, app = Client(ids, operator, nodes[0]), Client(ids, phone, nodes[0])
        try:
            assert device.subscribe("$aws/things/lamp/#") == [1]  # QoS 1 granted
            assert device.subscribe("$aws/things/fan/#") == [0x80]
            assert device.subscribe("$MQTT/sub/#") == [0x80]  # NATS's own plumbing
            assert other.subscribe("$aws/things/fan/#") == [1]
            assert engine.subscribe("$aws/things/+/shadow/update") == [1]
            device.client.publish("$aws/things/lamp/shadow/update", b'{"n":1}', qos=1)
            device.client.publish("$aws/things/fan/shadow/update", b'{"n":2}', qos=1)
            device.client.publish("$aws/things/lamp/shadow/update/accepted", b"{}", qos=1)
            app.client.publish("$aws/things/fan/shadow/update", b'{"n":3}', qos=1)
            app.client.publish("$aws/things/fan/shadow/update/delta", b"{}", qos=1)
            _eventually(lambda: len(engine.messages) >= 2)
            time.sleep(0.5)  # what was dropped would have arrived by now
            assert sorted(engine.messages) == [
                ("$aws/things/fan/shadow/update", b'{"n":3}'),  # the app's request
                ("$aws/things/lamp/shadow/update", b'{"n":1}'),  # the device's own
            ]
            # fan hears the app's request on its topic, nothing lamp sent, no forged delta.
            assert other.messages == [("$aws/things/fan/shadow/update", b'{"n":3}')]
            assert device.messages == [("$aws/things/lamp/shadow/update", b'{"n":1}')]
        finally:
            for client in (device, other, engine, app):
                client.close()


@pytest.mark.interop
def test_revocation_is_by_name(ids: Identities) -> None:
    lamp = ids.issue("lamp", Role.DEVICE)
    old, new = ids.issue("fan", Role.DEVICE), ids.issue("fan", Role.DEVICE)
    with ids.home.registry() as registry:
        for creds in (lamp, old):
            registry.revoke(certificate_id(x509.load_pem_x509_certificate(creds[0].read_bytes())))
    nodes = nats_nodes(1, base_port=_free_base())
    with running(ids, nodes):
        with pytest.raises((OSError, AssertionError)):
            Client(ids, lamp, nodes[0])  # its only certificate revoked: no user any more
        Client(ids, new, nodes[0]).close()
        # nats-server maps a certificate to a user by subject: beside an active certificate
        # of the same name, a revoked one is still admitted (the README's NATS column).
        Client(ids, old, nodes[0]).close()


@pytest.mark.interop
def test_what_differs_from_the_gateway_on_nats_2_9(ids: Identities) -> None:
    """The README's NATS column: QoS 2 granted as 1, MQTT 5 refused, and a client id is
    not bound to a certificate (another thing's id takes its session over; the newcomer
    still gets nothing of that thing's topics)."""
    lamp, fan = ids.issue("lamp", Role.DEVICE), ids.issue("fan", Role.DEVICE)
    operator = ids.issue("operator", Role.ADMIN)
    nodes = nats_nodes(1, base_port=_free_base())
    with running(ids, nodes):
        node = nodes[0]
        with pytest.raises(AssertionError, match="CONNACK"):
            Client(ids, lamp, node, protocol=paho.MQTTv5)
        victim = Client(ids, fan, node, client_id="fan", clean=False)
        engine = Client(ids, operator, node, client_id="engine")
        try:
            assert victim.subscribe("$aws/things/fan/#", qos=2) == [1]  # QoS 2 -> 1
            # fan's id and persistent session, lamp's certificate
            intruder = Client(ids, lamp, node, client_id="fan", clean=False)
            try:
                _eventually(lambda: victim.disconnects > 0)  # the session was taken over
                victim.client.disconnect()  # paho would take it back: stop the tug of war
                engine.client.publish("$aws/things/fan/shadow/update/delta", b"{}", qos=1)
                time.sleep(1.0)
                # The resumed session's subscription is checked against lamp's permissions.
                assert intruder.messages == []
            finally:
                intruder.close()
        finally:
            victim.close()
            engine.close()


@pytest.mark.interop
def test_three_nodes_carry_a_device_message_across(ids: Identities) -> None:
    lamp, operator = ids.issue("lamp", Role.DEVICE), ids.issue("operator", Role.ADMIN)
    nodes = nats_nodes(3, base_port=_free_base())
    with running(ids, nodes):
        engine = Client(ids, operator, nodes[0])
        assert engine.subscribe("$aws/things/+/shadow/update") == [1]
        time.sleep(1.0)  # the interest reaches the other nodes over the routes
        device = Client(ids, lamp, nodes[2])
        try:
            device.client.publish("$aws/things/lamp/shadow/update", b'{"from":"n3"}', qos=1)
            _eventually(
                lambda: engine.messages == [("$aws/things/lamp/shadow/update", b'{"from":"n3"}')]
            )
        finally:
            device.close()
            engine.close()


def test_the_cli_writes_one_valid_configuration_per_node(
    ids: Identities, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(ids.folder))
    ids.issue("lamp", Role.DEVICE)
    out = ids.folder / "nats"
    assert main(["cloud", "nats-config", "--nodes", "3", "--out", str(out)]) == 0
    configs = sorted(out.glob("n*.conf"))
    assert [c.name for c in configs] == ["n1.conf", "n2.conf", "n3.conf"]
    for config in configs:
        check = _config_check(config)
        assert check.returncode == 0, check.stderr
        text = config.read_text()
        assert '"user": "CN=lamp"' in text
        assert "verify_and_map: true" in text
    assert "nats-route://127.0.0.1:16223" in configs[0].read_text()
    printed = capsys.readouterr().out
    assert "mqtts://127.0.0.1:15222" in printed
    # The next steps, as printed, are whole commands: each checks out with nats-server -t.
    commands = [line.split() for line in printed.splitlines() if "nats-server -c" in line]
    assert [Path(c[-1]).name for c in commands] == ["n1.conf", "n2.conf", "n3.conf"]
    for command in commands:
        assert Path(command[-1]).is_absolute()
        checked = subprocess.run([NATS, "-t", *command[1:]], capture_output=True, check=False)
        assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("args", [["--nodes", "0"], ["--nodes", "10"], ["--base-port", "80"]])
def test_bad_cluster_shapes_are_refused(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path))
    assert main(["cloud", "nats-config", "--out", str(tmp_path / "n"), *args]) == 2


@pytest.mark.interop
def test_cloud_serve_on_nats_serves_a_things_shadow_and_revokes(ids: Identities) -> None:
    server = serve(ids.folder, broker="nats")  # JUMPSTART_HOME: its cloud is ids.home
    try:
        node = NatsNode("n1", "127.0.0.1", 0, server.mqtt_port, 0, 0)
        lamp = ids.issue("lamp", Role.DEVICE)  # after the start: the registry is followed
        device = _eventually_connected(ids, lamp, node)
        try:
            assert device.subscribe("$aws/things/lamp/shadow/update/accepted") == [1]
            body = json.dumps({"state": {"reported": {"output": True}}, "clientToken": "t1"})
            # The thing's registration restarted the server: a request made before the
            # engines are back in the queue group is lost (core NATS), and asked again, as
            # a device asks when no answer comes.
            for _ in range(int(WAIT_S)):
                device.client.publish("$aws/things/lamp/shadow/update", body, qos=1)
                with contextlib.suppress(AssertionError):
                    _eventually(lambda: bool(device.messages), 1.0)
                    break
            topic, payload = device.messages[0]
            assert topic == "$aws/things/lamp/shadow/update/accepted"
            accepted = json.loads(payload)
            assert accepted["state"] == {"reported": {"output": True}}
            assert accepted["clientToken"] == "t1"
            assert accepted["version"] == 1
            reply = shadow_request(ids.home, "GET", "lamp", "", b"", server.rest_port)
            assert reply.status == 200
            assert reply.document["state"]["reported"] == {"output": True}
            with ids.home.registry() as registry:
                cert = x509.load_pem_x509_certificate(lamp[0].read_bytes())
                registry.revoke(certificate_id(cert))
            # Within two seconds the configuration is rewritten and reloaded: the connection
            # is closed and a new one refused.
            _eventually(lambda: not device.client.is_connected(), 2.5)
            with pytest.raises((OSError, AssertionError)):
                Client(ids, lamp, node)
        finally:
            device.close()
    finally:
        server.process.terminate()
        server.process.wait(30)


def _eventually_connected(ids: Identities, creds: tuple[Path, Path], node: NatsNode) -> Client:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            return Client(ids, creds, node)
        except (OSError, AssertionError):
            assert time.monotonic() < deadline, "never admitted"
            time.sleep(0.3)
