"""The cloud as a process: ``kill -9`` in the middle of a burst of shadow updates loses no
accepted update and versions stay monotonic across the restart (SQLite and PostgreSQL);
retained messages survive it too; Ctrl-C and SIGTERM stop it cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from jumpstart.cloud.admin import operator_credentials, rest_request, shadow_request
from jumpstart.cloud.home import CloudHome
from tests.cloud.cloud_process import JUMPSTART, serve
from tests.postgres_cluster import fresh_schema

THINGS = ("outlet1", "outlet2")
SHADOWS = ("", "power")  # the classic shadow and a named one, per thing
KILL_AFTER = 300  # accepted updates before the kill


def _topic(thing: str, name: str) -> str:
    base = f"$aws/things/{thing}/shadow"
    return f"{base}/name/{name}/update" if name else f"{base}/update"


@dataclass
class Burst:
    """One device publishing updates as fast as the broker takes them, recording every
    ``update/accepted`` version per shadow."""

    thing: str
    folder: Path
    port: int
    accepted: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, stop: threading.Event) -> None:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.thing)
        client.tls_set(
            ca_certs=str(self.folder / "server.cert"),
            certfile=str(self.folder / "device.cert"),
            keyfile=str(self.folder / "device.key"),
        )

        def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
            doc = json.loads(message.payload)
            shadow = message.topic.split("/")[5] if "/name/" in message.topic else ""
            with self.lock:
                self.accepted.setdefault(shadow, []).append(
                    (doc["version"], doc["state"]["reported"]["n"])
                )

        client.on_message = on_message
        client.connect("localhost", self.port)
        client.subscribe(f"$aws/things/{self.thing}/shadow/update/accepted", 1)
        client.subscribe(f"$aws/things/{self.thing}/shadow/name/+/update/accepted", 1)
        client.loop_start()
        n = 0
        try:
            while not stop.is_set():
                n += 1
                for name in SHADOWS:
                    body = {"state": {"reported": {"n": n}}, "clientToken": str(n)}
                    info = client.publish(_topic(self.thing, name), json.dumps(body), qos=1)
                    if info.rc != mqtt.MQTT_ERR_SUCCESS:
                        return  # the server is gone
                time.sleep(0.002)  # keep below the 10-in-flight limit
        finally:
            client.loop_stop()

    def count(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.accepted.values())


def _things(home: Path, tmp_path: Path) -> dict[str, Path]:
    env = {**os.environ, "JUMPSTART_HOME": str(home)}
    folders = {}
    for thing in THINGS:
        folders[thing] = tmp_path / thing
        subprocess.run(
            [JUMPSTART, "cloud", "thing", "create", thing, "-o", str(folders[thing])],
            env=env,
            check=True,
            capture_output=True,
        )
    return folders


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite"
    return fresh_schema(request.getfixturevalue("postgres_url"))


def test_kill_9_during_a_burst_loses_no_accepted_update(tmp_path: Path, store: str) -> None:
    home = tmp_path / "jumpstart"
    folders = _things(home, tmp_path)
    server = serve(home, store)
    bursts = [Burst(thing, folders[thing], server.mqtt_port) for thing in THINGS]
    stop = threading.Event()
    threads = [threading.Thread(target=b.run, args=(stop,), daemon=True) for b in bursts]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while sum(b.count() for b in bursts) < KILL_AFTER and time.monotonic() < deadline:
        time.sleep(0.01)
    server.process.send_signal(signal.SIGKILL)  # mid-burst: no chance to flush anything
    server.process.wait(10)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert sum(b.count() for b in bursts) >= KILL_AFTER

    restarted = serve(home, store)
    try:
        cloud_home = CloudHome(home / "cloud")
        for burst in bursts:
            for name in SHADOWS:
                accepted = burst.accepted.get(name, [])
                versions = [version for version, _ in accepted]
                assert versions == sorted(set(versions)), "versions not monotonic"
                # One connection, in order: a later version holds a later update. (Not
                # version == n: requests over the in-flight limit get 429 and no version.)
                numbers = [n for _, n in accepted]
                assert numbers == sorted(set(numbers))
                reply = shadow_request(
                    cloud_home, "GET", burst.thing, name, port=restarted.rest_port
                )
                assert reply.status == 200
                stored = reply.document["version"]
                assert stored >= max(versions), f"lost accepted updates of {burst.thing}"
                assert reply.document["state"]["reported"]["n"] >= numbers[-1]
                # And the next update carries on from there.
                body = json.dumps({"state": {"reported": {"n": 0}}}).encode()
                after = shadow_request(
                    cloud_home, "POST", burst.thing, name, body, port=restarted.rest_port
                )
                assert after.document["version"] == stored + 1
    finally:
        restarted.process.send_signal(signal.SIGINT)
        assert restarted.process.wait(15) == 0  # Ctrl-C: a clean stop
        assert restarted.process.stdout is not None
        output = restarted.process.stdout.read()
        assert "Traceback" not in output, output


def _retained(cloud_home: CloudHome, port: int, topic: str) -> bytes | None:
    """What a new subscriber to ``topic`` gets at once (None: nothing retained)."""
    cert, key = operator_credentials(cloud_home)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="retained-reader")
    client.tls_set(ca_certs=str(cloud_home.ca_pem), certfile=str(cert), keyfile=str(key))
    got: list[bytes] = []
    client.on_message = lambda _c, _u, message: got.append(message.payload)
    client.connect("localhost", port)
    client.loop_start()
    try:
        client.subscribe(topic, 1)
        deadline = time.monotonic() + 1.0
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0] if got else None


def test_retained_messages_survive_kill_9(tmp_path: Path) -> None:
    home = tmp_path / "jumpstart"
    cloud_home = CloudHome(home / "cloud")
    server = serve(home)
    for topic, body in (("fleet/firmware", b'{"version":"1.1"}'), ("fleet/gone", b"x")):
        reply = rest_request(
            cloud_home, "POST", f"/topics/{topic}?retain=true", body, server.rest_port
        )
        assert reply.status == 200
    # An empty retained publish clears the topic.
    rest_request(cloud_home, "POST", "/topics/fleet/gone?retain=true", b"", server.rest_port)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)

    restarted = serve(home)
    try:
        assert _retained(cloud_home, restarted.mqtt_port, "fleet/firmware") == b'{"version":"1.1"}'
        assert _retained(cloud_home, restarted.mqtt_port, "fleet/gone") is None
    finally:
        restarted.process.send_signal(signal.SIGINT)
        restarted.process.wait(15)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    server = serve(tmp_path / "jumpstart")
    server.process.send_signal(sig)
    assert server.process.wait(15) == 0
    assert server.process.stdout is not None
    output = server.process.stdout.read()
    assert "Traceback" not in output
    assert "stopped" in output
