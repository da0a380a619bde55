"""A three-node NATS cluster behind HAProxy with the engines as a queue group on PostgreSQL:
each request served once by one of two engine processes, a killed engine's share taken by
the other, a killed node's devices back through the front, and the differences of native
NATS replies (QoS 0, no retained REST publishes)."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from jumpstart.cloud.admin import rest_request, shadow_request
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.registry import Role
from tests.cloud.cloud_process import JUMPSTART, Server, serve
from tests.cloud.conftest import RunningCloud
from tests.cloud.mqtt_helpers import PahoDevice
from tests.postgres_cluster import fresh_schema
from tests.system_tools import require

pytestmark = pytest.mark.interop
ON_NATS = pytest.mark.parametrize("cloud", ["nats"], indirect=True)
DEVICES = 100
UPDATES_EACH = 100  # 10,000 in all
ANSWER_S = 5.0  # a device asks again when an update is not answered within this
ASKS = 6


@dataclass(frozen=True)
class Node:
    name: str
    mqtt_port: int
    monitor_port: int


def _nodes(folder: Path) -> list[Node]:
    """The nodes of the cluster a cloud wrote into ``folder`` (its n*.conf files)."""
    nodes = []
    for conf in sorted(folder.glob("n*.conf")):
        text = conf.read_text()
        mqtt_port = re.search(r"mqtt \{\s*listen: [\d.]+:(\d+)", text)
        monitor = re.search(r"http: 127\.0\.0\.1:(\d+)", text)
        assert mqtt_port, text
        assert monitor, text
        nodes.append(Node(conf.stem, int(mqtt_port[1]), int(monitor[1])))
    return nodes


def _node_of(nodes: list[Node], client_id: str) -> Node:
    """The node ``client_id``'s MQTT connection is on (nats-server's /connz)."""
    for node in nodes:
        url = f"http://127.0.0.1:{node.monitor_port}/connz?limit=1024"
        with urllib.request.urlopen(url, timeout=5) as answer:
            connections = json.load(answer)["connections"] or []
        if any(c.get("mqtt_client") == client_id for c in connections):
            return node
    raise AssertionError(f"{client_id} is on no node")


class Updater:
    """One device's paho client that sends numbered shadow updates one after another, each
    asked again (as a device does) until its accepted reply arrives."""

    def __init__(self, ca: Path, folder: Path, thing: str, port: int, wait: float = 20) -> None:
        self.thing = thing
        self.replies: queue.Queue[dict[str, object]] = queue.Queue()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=thing, protocol=mqtt.MQTTv311
        )
        self.client.tls_set(
            ca_certs=str(ca),
            certfile=str(folder / f"{thing}.cert"),
            keyfile=str(folder / f"{thing}.key"),
        )
        self.client.on_message = lambda _c, _u, m: self.replies.put(json.loads(m.payload))
        connected = threading.Event()

        def on_connect(client: mqtt.Client, _u: object, _f: object, code: Any, _p: object) -> None:
            if not code.is_failure:  # refused: paho tries again after its backoff
                client.subscribe(f"$aws/things/{thing}/shadow/update/accepted", 1)
                connected.set()

        self.client.on_connect = on_connect
        self.client.connect("localhost", port, keepalive=30)
        self.client.loop_start()
        assert connected.wait(wait), f"{thing} not connected"
        time.sleep(0.1)  # the SUBACK
        self.asked_again = 0
        self.stuck = ""

    def send(self, first: int, count: int) -> None:
        topic = f"$aws/things/{self.thing}/shadow/update"
        self.stuck = ""
        for n in range(first, first + count):
            token = f"{self.thing}-{n}"
            body = json.dumps({"state": {"reported": {"n": n}}, "clientToken": token})
            for _ in range(ASKS):
                self.client.publish(topic, body, qos=1)
                if self._answered(token):
                    break
                self.asked_again += 1
            else:
                self.stuck = f"{token} unanswered {ASKS} times"
                return

    def _answered(self, token: str) -> bool:
        deadline = time.monotonic() + ANSWER_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                if self.replies.get(timeout=left).get("clientToken") == token:
                    return True
            except queue.Empty:
                return False
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str) -> tuple[Path, str]:
    require("nats-server")
    require("haproxy")
    return tmp_path, fresh_schema(postgres_url)


def test_two_engine_processes_serve_each_update_once_and_take_over_from_a_killed_one(
    cluster: tuple[Path, str],
) -> None:
    root, url = cluster
    home = CloudHome(root / "cloud")
    folder = root / "creds"
    folder.mkdir()
    things = [f"plug{n:03d}" for n in range(DEVICES)]
    _register(home, folder, things)
    first = serve(root, url, "nats", "--nodes", "3", "--registry", url)
    other = _other_host(root / "host-b", home)
    second: Server | None = None
    updaters: list[Updater] = []
    try:
        engines = next(line for line in first.banner if "queue group on" in line)
        servers = engines.split("queue group on ")[1].strip()
        # The second instance attaches to the running cluster: its own process and folder,
        # the same registry and store, its devices' port the first one's front.
        second = serve(other, url, servers, "--mqtt-port", str(first.mqtt_port), "--registry", url)
        _thing_from_the_other_host(other, home, first)
        nodes = _nodes(home.path / "nats")
        assert len(nodes) == 3
        updaters = [
            Updater(home.ca_pem, folder, thing, nodes[i % 3].mqtt_port)
            for i, thing in enumerate(things)
        ]
        before = [int(_health(home, s)["served"]) for s in (first, second)]  # lamp-b's
        _run(updaters, 0, UPDATES_EACH)
        after = [int(_health(home, s)["served"]) for s in (first, second)]
        counts = [b - a for a, b in zip(before, after, strict=True)]
        print(f"served per engine instance: {counts}")
        assert sum(counts) == DEVICES * UPDATES_EACH
        assert min(counts) > 0
        for thing in things[:: DEVICES // 10]:
            shadow = shadow_request(home, "GET", thing, "", b"", first.rest_port).document
            # Each update served once: one version per update, the last one stored.
            assert shadow["version"] == UPDATES_EACH
            assert shadow["state"]["reported"] == {"n": UPDATES_EACH - 1}

        _no_lost_update_on_one_thing(home, folder, things[:4], nodes, first, second)

        # kill -9 one instance while updates flow: the other takes the rest.
        served_before = int(_health(home, first)["served"])
        killer = threading.Timer(1.0, second.process.send_signal, (signal.SIGKILL,))
        killer.start()
        _run(updaters, UPDATES_EACH, 20)
        killer.join()
        assert second.process.wait(10) == -signal.SIGKILL
        took = int(_health(home, first)["served"]) - served_before
        print(f"in the kill run the first instance served {took} (of {DEVICES * 20})")
        assert took > 0
        for thing in things:
            shadow = shadow_request(home, "GET", thing, "", b"", first.rest_port).document
            # Every accepted update is stored: each device's last is the shadow's state.
            assert shadow["state"]["reported"] == {"n": UPDATES_EACH + 19}, thing
            assert shadow["version"] >= UPDATES_EACH + 20
    finally:
        for updater in updaters:
            updater.close()
        for server in (second, first):
            if server is not None and server.process.poll() is None:
                server.process.terminate()
                server.process.wait(30)


def _register(home: CloudHome, folder: Path, things: list[str]) -> None:
    with home.registry() as registry:
        for thing in [*things, "shared-lamp"]:
            registry.create_thing(thing)
            issued = registry.issue(thing, Role.DEVICE)
            (folder / f"{thing}.cert").write_bytes(issued.cert_pem)
            (folder / f"{thing}.key").write_bytes(issued.key_pem)
        issued = registry.issue("race-app", Role.APP)
    (folder / "race-app.cert").write_bytes(issued.cert_pem)
    (folder / "race-app.key").write_bytes(issued.key_pem)


def _other_host(root: Path, home: CloudHome) -> Path:
    """Another host's folder: the cloud's CA and server certificate copied, nothing else."""
    (root / "cloud").mkdir(parents=True)
    for name in ("ca.pem", "ca.key", "server.pem", "server.key"):
        shutil.copy(home.path / name, root / "cloud" / name)
    return root


def _no_lost_update_on_one_thing(
    home: CloudHome,
    folder: Path,
    writers: list[str],
    nodes: list[Node],
    first: Server,
    second: Server,
) -> None:
    """Four clients on three nodes update one shadow at once through an app certificate,
    each its own key: both instances serve them, each request holding the shadow's lock in
    PostgreSQL, and none is lost or refused (one version per update)."""
    before = [int(_health(home, s)["served"]) for s in (first, second)]
    per_writer = 50
    clients = [
        _app_client(home, folder, f"race-{writer}", nodes[i % 3].mqtt_port)
        for i, writer in enumerate(writers)
    ]
    rejected: queue.Queue[bytes] = queue.Queue()
    try:
        deadline = time.monotonic() + 30
        while not all(c.is_connected() for c in clients):
            assert time.monotonic() < deadline, "the race clients were not admitted"
            time.sleep(0.1)
        clients[0].on_message = lambda _c, _u, m: rejected.put(m.payload)
        clients[0].subscribe("$aws/things/shared-lamp/shadow/update/rejected", 1)
        time.sleep(0.2)
        topic = "$aws/things/shared-lamp/shadow/update"
        for n in range(per_writer):
            for i, client in enumerate(clients):
                body = json.dumps({"state": {"reported": {f"w{i}": n}}})
                client.publish(topic, body, qos=1)
        total = per_writer * len(clients)
        deadline = time.monotonic() + 30
        while True:
            doc = shadow_request(home, "GET", "shared-lamp", "", b"", first.rest_port).document
            if doc.get("version") == total or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        for client in clients:
            client.disconnect()
            client.loop_stop()
    assert rejected.empty(), rejected.get()
    assert doc["version"] == total  # every update applied once
    # One writer's updates in quick succession may be served by both instances at once,
    # and so applied in either order (README): every writer is there, not always its last.
    assert sorted(doc["state"]["reported"]) == [f"w{i}" for i in range(len(clients))]
    after = [int(_health(home, s)["served"]) for s in (first, second)]
    shares = [b - a for a, b in zip(before, after, strict=True)]
    print(f"one thing, {total} concurrent updates: served per instance {shares}")
    assert min(shares) > 0


def _app_client(home: CloudHome, folder: Path, client_id: str, port: int) -> mqtt.Client:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
    )
    client.tls_set(
        ca_certs=str(home.ca_pem),
        certfile=str(folder / "race-app.cert"),
        keyfile=str(folder / "race-app.key"),
    )
    client.connect("localhost", port)
    client.loop_start()
    return client


def _thing_from_the_other_host(other: Path, home: CloudHome, first: Server) -> None:
    """A thing registered with the other host's command line is admitted by the cluster
    the first host runs (it follows the shared registry) and served."""
    files = other / "lamp-b"
    subprocess.run(
        [JUMPSTART, "cloud", "thing", "create", "lamp-b", "--out", str(files)],
        env={**os.environ, "JUMPSTART_HOME": str(other)},
        check=True,
        capture_output=True,
    )
    shutil.copy(files / "device.cert", files / "lamp-b.cert")
    shutil.copy(files / "device.key", files / "lamp-b.key")
    # Refused until the nodes have restarted with the new user; paho tries again.
    device = Updater(home.ca_pem, files, "lamp-b", first.mqtt_port, wait=30)
    try:
        device.send(0, 1)
    finally:
        device.close()
    shadow = shadow_request(home, "GET", "lamp-b", "", b"", first.rest_port).document
    assert shadow["state"]["reported"] == {"n": 0}


def _run(updaters: list[Updater], first: int, count: int) -> None:
    threads = [threading.Thread(target=u.send, args=(first, count), daemon=True) for u in updaters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not any(thread.is_alive() for thread in threads)
    stuck = [u.stuck for u in updaters if u.stuck]
    assert not stuck, f"{len(stuck)} devices stuck, e.g. {stuck[:3]}"


def _health(home: CloudHome, server: Server) -> dict[str, object]:
    reply = rest_request(home, "GET", "/health", port=server.rest_port)
    assert reply.status == 200, reply.document
    return reply.document


@ON_NATS
def test_replies_reach_mqtt_subscribers_at_qos_0(cloud: RunningCloud) -> None:
    device = PahoDevice(cloud, cloud.creds["outlet1"], client_id="qos-probe")
    qos: queue.Queue[int] = queue.Queue()
    device.client.on_message = lambda _c, _u, m: qos.put(m.qos)
    device.connect()
    try:
        assert device.subscribe("$aws/things/outlet1/shadow/get/+", qos=1) == [1]
        device.publish("$aws/things/outlet1/shadow/get", b"")
        assert qos.get(timeout=5) == 0  # granted 1, delivered 0: published by a NATS client
    finally:
        device.close()


@ON_NATS
def test_rest_refuses_a_retained_publish(cloud: RunningCloud) -> None:
    home = cloud.service.home
    reply = rest_request(home, "POST", "/topics/lamps/all?retain=true", b"{}", cloud.rest_port)
    assert reply.status == 400
    assert "Retained messages are not available" in reply.document["message"]
    reply = rest_request(home, "POST", "/topics/lamps/all?retain=false", b"{}", cloud.rest_port)
    assert reply.status == 200


@ON_NATS
def test_a_killed_node_s_devices_come_back_through_the_front(cloud: RunningCloud) -> None:
    """Six persistent sessions through the front (two per node): the node with most of
    them is killed; its clients come back through the front to the others within their
    backoff, the rest are not touched, and every session still receives the thing's
    replies; the update accepted before the kill is kept."""
    nats = cloud.service.nats
    assert nats is not None
    assert nats.clustered
    nodes = [Node(n.name, n.mqtt_port, n.monitor_port) for n in nats.nodes]
    accepted = "$aws/things/outlet2/shadow/update/accepted"
    device = PahoDevice(cloud, cloud.creds["outlet2"], client_id="outlet2", clean=False)
    watchers = [
        PahoDevice(cloud, cloud.creds["app"], client_id=f"failover-{n}", clean=False)
        for n in range(5)
    ]
    clients = [device, *watchers]
    node: Node | None = None
    try:
        for client in clients:
            assert client.connect()[0] == 0
            assert client.subscribe(accepted) == [1]
        assert device.subscribe("$aws/things/outlet2/shadow/get/accepted") == [1]
        device.publish("$aws/things/outlet2/shadow/update", {"state": {"reported": {"k": 1}}})
        version = device.expect(accepted)["version"]
        for watcher in watchers:
            assert watcher.expect(accepted)["version"] == version
        ids = ["outlet2", *(f"failover-{n}" for n in range(5))]
        placed = {client_id: _node_of(nodes, client_id) for client_id in ids}
        node = max(nodes, key=lambda n: sum(1 for at in placed.values() if at == n))
        moved = [c for c, client_id in zip(clients, ids, strict=True) if placed[client_id] == node]
        stayed = [c for c in clients if c not in moved]
        assert len(moved) >= 2
        killed_at = time.monotonic()
        _on_loop(cloud, nats.stop_node(node.name))
        for client in moved:
            assert client.disconnected.get(timeout=5) is not None
            code, present = client.connack.get(timeout=60)  # paho's backoff: 1, 2, 4... s
            assert (code, present) == (0, True)  # its session, from JetStream
        back = time.monotonic() - killed_at
        print(f"{len(moved)} clients back through the front {back:.1f} s after the kill")
        assert all(c.disconnected.empty() for c in stayed)
        survivors = [n for n in nodes if n != node]
        assert all(_node_of(survivors, client_id) != node for client_id in ids)
        _publish_as_a_device(
            device, "$aws/things/outlet2/shadow/update", {"state": {"reported": {"k": 2}}}
        )
        for client in clients:  # (a publish cut off as above may have been asked twice)
            assert client.expect(accepted, timeout=10)["version"] > version
        _publish_as_a_device(device, "$aws/things/outlet2/shadow/get", b"")
        document = device.expect("$aws/things/outlet2/shadow/get/accepted", timeout=10)
        assert document["state"]["reported"] == {"k": 2}
    finally:
        for client in clients:
            client.close()
        if node is not None:
            _on_loop(cloud, nats.restart_node(node.name))


def _publish_as_a_device(device: PahoDevice, topic: str, payload: Any) -> None:
    """Publish, waiting out a reconnect: for a few seconds after a node is lost, storing a
    QoS 1 message in JetStream can time out, and nats-server 2.9 then closes the
    publisher's connection (README); paho comes back with its backoff."""
    deadline = time.monotonic() + 30
    while True:
        try:
            device.publish(topic, payload)
            return
        except RuntimeError:  # not connected
            assert time.monotonic() < deadline, "the device did not come back"
            time.sleep(0.5)


def _on_loop(cloud: RunningCloud, work: Coroutine[Any, Any, None]) -> None:
    asyncio.run_coroutine_threadsafe(work, cloud.loop).result(60)
