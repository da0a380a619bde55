"""External broker mode: mosquitto configured from the registry (reloaded when it changes),
the engines as its client (reconnecting, with a persistent session), ``--broker
mqtts://HOST:PORT`` for a broker that runs elsewhere, and ``serve --broker mosquitto`` as a
process that leaves nothing behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from jumpstart.cloud.admin import engine_credentials
from jumpstart.cloud.broker_link import BrokerLinkError
from jumpstart.cloud.endpoints import Shard, parse_broker, parse_shard
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.mosquitto import Mosquitto
from jumpstart.cloud.registry import Role
from jumpstart.cloud.service import CloudConfig, CloudService, open_stores
from jumpstart.errors import InputError
from tests.cloud.cloud_process import JUMPSTART, serve
from tests.cloud.conftest import Credentials, RunningCloud
from tests.cloud.mqtt_helpers import PahoDevice
from tests.postgres_cluster import fresh_schema
from tests.system_tools import require

pytestmark = pytest.mark.interop
ON_MOSQUITTO = pytest.mark.parametrize("cloud", ["mosquitto"], indirect=True)
T = TypeVar("T")


def _on_loop(cloud: RunningCloud, work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(work, cloud.loop).result(15)


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time limit"
        time.sleep(0.2)


def _issue(cloud: RunningCloud, folder: Path, name: str, role: Role) -> Credentials:
    async def issue() -> Credentials:
        if role is Role.DEVICE:
            cloud.service.registry.create_thing(name)
        issued = cloud.service.registry.issue(name, role)
        cert, key = folder / f"{name}.cert", folder / f"{name}.key"
        cert.write_bytes(issued.cert_pem)
        key.write_bytes(issued.key_pem)
        return Credentials(name, cert, key)

    return _on_loop(cloud, issue())


def _connects(cloud: RunningCloud, creds: Credentials) -> bool:
    device = PahoDevice(cloud, creds, client_id=f"{creds.name}-probe")
    try:
        return device.connect(timeout=3)[0] == 0
    except Exception:  # no CONNACK: refused in the TLS handshake
        return False
    finally:
        device.close()


@ON_MOSQUITTO
def test_revocation_reaches_a_running_mosquitto(cloud: RunningCloud, tmp_path: Path) -> None:
    creds = _issue(cloud, tmp_path, "soon-revoked", Role.DEVICE)
    assert _connects(cloud, creds)
    registry = cloud.service.registry
    _on_loop(cloud, _revoke(registry, "soon-revoked"))
    # The CRL is rewritten and mosquitto reloaded (SIGHUP) within the registry poll.
    _eventually(lambda: not _connects(cloud, creds))


async def _revoke(registry: Any, principal: str) -> None:
    registry.revoke(registry.certificates(principal)[0].certificate_id)


@ON_MOSQUITTO
def test_new_app_gets_its_rights_and_no_more(cloud: RunningCloud, tmp_path: Path) -> None:
    app = _issue(cloud, tmp_path, "late-phone", Role.APP)
    outlet = PahoDevice(cloud, cloud.creds["outlet1"], client_id="outlet1-late")
    outlet.connect()
    phone = PahoDevice(cloud, app)
    phone.connect()
    try:
        accepted = "$aws/things/outlet1/shadow/name/late/update/accepted"
        outlet.subscribe(accepted, "$aws/things/outlet1/shadow/name/late/update/delta")

        def phone_can_update() -> bool:
            phone.subscribe(accepted)  # again, once mosquitto has read the new ACL
            phone.publish(accepted[: -len("/accepted")], {"state": {"desired": {"on": 1}}})
            return bool(phone.nothing(0.5))

        _eventually(phone_can_update)
        assert outlet.expect(accepted)["state"]["desired"] == {"on": 1}
        # An app writes requests, not the service's topics: a forged delta reaches nobody.
        outlet.nothing(0.3)
        phone.publish("$aws/things/outlet1/shadow/name/late/update/delta", {"state": {}})
        assert outlet.nothing() == []
    finally:
        outlet.close()
        phone.close()


@ON_MOSQUITTO
def test_requests_wait_in_the_broker_while_the_engines_reconnect(cloud: RunningCloud) -> None:
    link = cloud.service.link
    assert link is not None
    device = PahoDevice(cloud, cloud.creds["outlet2"], client_id="outlet2-patient")
    device.connect()
    try:
        prefix = "$aws/things/outlet2/shadow/name/patient"
        device.subscribe(f"{prefix}/update/accepted")
        served = link.served

        async def cut() -> None:
            assert link._writer is not None
            link._writer.transport.abort()  # the TCP connection dies under the engines

        _on_loop(cloud, cut())
        device.publish(f"{prefix}/update", {"state": {"reported": {"n": 1}}, "clientToken": "p"})
        reply = device.expect(f"{prefix}/update/accepted", timeout=10)
        assert (reply["clientToken"], reply["version"]) == ("p", 1)
        assert link.served == served + 1  # served once, after the reconnect
        assert link.connected.is_set()
    finally:
        device.close()


def _home(tmp_path: Path) -> CloudHome:
    home = CloudHome(tmp_path / "cloud")
    home.ensure()
    return home


def test_engines_on_a_broker_that_runs_elsewhere(tmp_path: Path) -> None:
    home = _home(tmp_path)

    # The broker's operator lets the cloud's engines certificate in (here: mosquitto's ACL
    # written from the same registry).
    engine_credentials(home, Shard())
    registry = home.registry()

    async def scenario() -> dict[str, Any]:
        broker = Mosquitto(home, registry, "127.0.0.1", 0)
        await broker.start()
        try:
            mode = parse_broker(f"mqtts://127.0.0.1:{broker.port}")
            config = CloudConfig(mqtt_port=0, rest_port=0, firmware_port=0, broker=mode)
            async with CloudService(home, config) as cloud:
                assert cloud.mosquitto is None  # not ours to start
                cloud.bus.publish("$aws/things/x1/shadow/update", b'{"state":{"reported":{}}}')
                link = cloud.link
                assert link is not None
                await asyncio.sleep(0.3)
                return {"served": link.served, "health": link.health()}
        finally:
            await broker.close()

    try:
        result = asyncio.run(scenario())
    finally:
        registry.close()
    assert result["served"] == 1  # a REST-style publish reached the engines via the broker
    up, details = result["health"]
    assert up
    assert details["link"] == "connected"


def test_unreachable_broker_says_what_to_check(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    mode = parse_broker(f"mqtts://127.0.0.1:{closed_port}")
    config = CloudConfig(
        mqtt_port=0, rest_port=0, firmware_port=0, broker=mode, broker_timeout_s=1.0
    )

    async def start() -> None:
        async with CloudService(home, config):
            pass

    with pytest.raises(BrokerLinkError, match="Check that the broker runs"):
        asyncio.run(start())
    with pytest.raises(InputError, match="mqtts://HOST:PORT"):
        parse_broker("http://example.com")
    for bad in ("2/2", "1", "a/b", "-1/2"):
        with pytest.raises(InputError, match="--shard must be I/N"):
            parse_shard(bad)
    assert parse_shard("1/3") == Shard(1, 3)
    with pytest.raises(InputError, match="external broker"):
        CloudService(home, CloudConfig(shard=Shard(0, 2), firmware_port=0))


def test_serve_with_mosquitto_as_a_process(tmp_path: Path) -> None:
    require("mosquitto")
    root = tmp_path / "jumpstart"
    env = {**os.environ, "JUMPSTART_HOME": str(root)}
    folder = tmp_path / "cloud_cfg"
    subprocess.run(
        [JUMPSTART, "cloud", "thing", "create", "outlet7", "-o", str(folder)], env=env, check=True
    )
    server = serve(root, broker="mosquitto")
    try:
        assert (root / "cloud" / "mosquitto" / "mosquitto.conf").exists()
        creds = Credentials("outlet7", folder / "device.cert", folder / "device.key")
        running = RunningCloud(
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            folder / "server.cert",
            server.mqtt_port,
            server.rest_port,
            {},
            "mosquitto",
        )
        device = PahoDevice(running, creds)
        device.connect()
        try:
            device.subscribe("$aws/things/outlet7/shadow/update/accepted")
            device.publish("$aws/things/outlet7/shadow/update", {"state": {"reported": {"x": 1}}})
            assert device.expect("$aws/things/outlet7/shadow/update/accepted")["version"] == 1
        finally:
            device.close()
        server.process.send_signal(signal.SIGINT)
        out, _ = server.process.communicate(timeout=20)
        assert server.process.returncode == 0
        assert "cloud stopped" in out
        # mosquitto went with it: its port is free again.
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", server.mqtt_port)) != 0
    finally:
        server.process.kill()
        server.process.wait()


def test_a_thing_cannot_take_an_operators_name(tmp_path: Path) -> None:
    # An external broker knows clients by certificate name only: one name, one role.
    home = _home(tmp_path)
    with home.registry() as registry:
        registry.issue("ops", Role.ADMIN)
        with pytest.raises(InputError, match="already used by a principal with role admin"):
            registry.create_thing("ops")
        registry.create_thing("lamp")
        registry.issue("lamp", Role.DEVICE)
        with pytest.raises(InputError, match="already used by a principal with role device"):
            registry.issue("lamp", Role.APP)
        registry.issue("ops", Role.ADMIN)  # the same role again is fine


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_two_engine_shards_serve_each_request_exactly_once(
    tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    """Two instances on one broker and one store: every request is served by the instance
    that owns its thing, never twice."""
    require("mosquitto")
    home = _home(tmp_path)
    url = None
    if store == "postgresql":
        url = fresh_schema(request.getfixturevalue("postgres_url"))
    folder = tmp_path / "creds"
    folder.mkdir()
    things = [f"lamp{n}" for n in range(12)]
    with home.registry() as registry:
        for thing in things:
            registry.create_thing(thing)
        issued = registry.issue("watcher", Role.APP)
    app = Credentials("watcher", folder / "app.cert", folder / "app.key")
    app.cert.write_bytes(issued.cert_pem)
    app.key.write_bytes(issued.key_pem)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> list[CloudService]:
        first = CloudService(
            home,
            CloudConfig(
                mqtt_port=0,
                rest_port=0,
                firmware_port=0,
                broker=parse_broker("mosquitto"),
                shard=Shard(0, 2),
            ),
            *open_stores(home, url),
        )
        await first.start()
        address = f"mqtts://127.0.0.1:{first.mqtt_port}"
        second = CloudService(
            home,
            CloudConfig(
                mqtt_port=0,
                rest_port=0,
                firmware_port=0,
                broker=parse_broker(address),
                shard=Shard(1, 2),
            ),
            *open_stores(home, url),
        )
        await second.start()
        return [first, second]

    services = asyncio.run_coroutine_threadsafe(start(), loop).result(20)
    try:
        running = RunningCloud(
            services[0], loop, home.ca_pem, services[0].mqtt_port, 0, {}, "mosquitto"
        )
        watcher = PahoDevice(running, app)
        watcher.connect()
        try:
            watcher.subscribe("$aws/things/+/shadow/update/accepted")
            for thing in things:
                body = {"state": {"reported": {"on": True}}}
                watcher.publish(f"$aws/things/{thing}/shadow/update", body)
            replies = [watcher.expect_any(timeout=5) for _ in things]
            assert watcher.nothing(0.5) == []  # no second reply for any request
        finally:
            watcher.close()
        assert sorted(topic.split("/")[2] for topic, _ in replies) == sorted(things)
        assert {json.loads(payload)["version"] for _, payload in replies} == {1}
        served = [service.link.served for service in services]  # type: ignore[union-attr]
        assert sum(served) == len(things)
        assert min(served) > 0  # both instances took their share
    finally:
        for service in reversed(services):
            asyncio.run_coroutine_threadsafe(service.close(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
