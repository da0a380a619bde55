"""A running local cloud with two things, an app client and a revoked certificate."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jumpstart.cloud.endpoints import parse_broker
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.registry import Role
from jumpstart.cloud.service import CloudConfig, CloudService, open_stores
from tests.postgres_cluster import fresh_schema
from tests.system_tools import require


@dataclass
class Credentials:
    name: str
    cert: Path
    key: Path


@dataclass
class RunningCloud:
    service: CloudService
    loop: asyncio.AbstractEventLoop
    ca: Path
    mqtt_port: int
    rest_port: int
    creds: dict[str, Credentials]
    broker: str  # "embedded" (the gateway), "mosquitto" or "nats" (three nodes)

    @property
    def on_mosquitto(self) -> bool:
        return self.broker == "mosquitto"

    @property
    def on_nats(self) -> bool:
        return self.broker == "nats"

    @property
    def external(self) -> bool:
        """A generic broker: no per-connection throttling, replies routed to subscribers."""
        return self.broker != "embedded"

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until the broker runs with the registry as it is now. NATS restarts its
        nodes one by one on a change (mosquitto reloads in place, the gateway reads the
        registry at each connection)."""
        nats = self.service.nats
        deadline = time.monotonic() + timeout
        while nats is not None and not nats.in_step():
            assert time.monotonic() < deadline, "the NATS nodes did not follow the registry"
            time.sleep(0.1)

    def skip_mqtt5(self) -> None:
        if self.on_nats:
            pytest.skip(NOT_ON_NATS_MQTT5)

    @property
    def keeps_violators(self) -> bool:
        """A forbidden publish is dropped and its client stays connected (AWS IoT and the
        gateway disconnect it)."""
        return self.broker in ("mosquitto", "nats")


def _write(folder: Path, name: str, service: CloudService, role: Role) -> Credentials:
    issued = service.registry.issue(name, role)
    cert, key = folder / f"{name}.cert", folder / f"{name}.key"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    return Credentials(name, cert, key)


STORES = ("sqlite", "postgresql")
# For modules about the embedded gateway itself: pytestmark = ONLY_EMBEDDED.
ONLY_EMBEDDED = pytest.mark.parametrize("cloud", STORES, indirect=True)


# MQTT 5 clients cannot connect to nats-server 2.9 (MQTT 3.1.1 only).
NOT_ON_NATS_MQTT5 = "nats-server 2.9 speaks MQTT 3.1.1 only: MQTT 5 is refused at CONNACK"
NATS_NODES = 3


@pytest.fixture(scope="module", params=[*STORES, "mosquitto", "nats"])
def cloud(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningCloud]:
    """The cloud on each store backend, with mosquitto as its MQTT endpoint (SQLite store),
    and on a three-node NATS cluster with its engines in a queue group (PostgreSQL store
    and registry): every test of tests/cloud runs on all four."""
    folder = tmp_path_factory.mktemp("cloud")
    home = CloudHome(folder / "jumpstart" / "cloud")  # as default_home() lays it out
    loop = asyncio.new_event_loop()
    url = None
    if request.param in ("postgresql", "nats"):
        url = fresh_schema(request.getfixturevalue("postgres_url"))
    broker = request.param if request.param in ("mosquitto", "nats") else "embedded"
    if broker == "mosquitto":
        require("mosquitto")
    if broker == "nats":
        require("nats-server")
        require("haproxy")
    if broker == "nats":
        assert url is not None
        home.use_registry(url)  # as engine instances on several hosts keep it
    stores = open_stores(home, url)
    config = CloudConfig(
        mqtt_port=0,
        rest_port=0,
        firmware_port=0,
        broker=parse_broker(broker),
        nodes=NATS_NODES if broker == "nats" else 1,
    )
    service = CloudService(home, config, *stores)
    creds = {}
    for thing in ("outlet1", "outlet2"):
        service.registry.create_thing(thing)
        creds[thing] = _write(folder, thing, service, Role.DEVICE)
    creds["app"] = _write(folder, "phone", service, Role.APP)
    creds["admin"] = _write(folder, "operator", service, Role.ADMIN)
    service.registry.create_thing("revoked1")
    creds["revoked"] = _write(folder, "revoked1", service, Role.DEVICE)
    service.registry.revoke(service.registry.certificates("revoked1")[0].certificate_id)
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(service.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="cloud", daemon=True)
    thread.start()
    assert started.wait(30)
    yield RunningCloud(
        service, loop, home.ca_pem, service.mqtt_port, service.rest_port, creds, broker
    )
    asyncio.run_coroutine_threadsafe(service.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
