"""esp-mqtt against the local cloud's gateway: mutual TLS, QoS 1, reconnect, Wi-Fi."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.service import CloudService
from jumpstart.idf.event import EventLoop
from jumpstart.idf.log import EspLog
from jumpstart.idf.mqtt import AWS_MQTT_ALPN, EspMqttClient, MqttConfig, MqttEvent, MqttEventData
from jumpstart.idf.radio import AccessPoint, AuthMode, RadioWorld
from jumpstart.idf.wifi import StaConfig, Wifi, WifiEvent, WifiMode
from tests.cloud_device import register_thing, running_cloud

THING = "outlet1"
GET = f"$aws/things/{THING}/shadow/get"
ACCEPTED = f"$aws/things/{THING}/shadow/get/accepted"
UPDATE = f"$aws/things/{THING}/shadow/update"


@dataclass
class Cloud:
    service: CloudService
    home: CloudHome
    cert: bytes
    key: bytes

    def config(self, **options: Any) -> MqttConfig:
        base = MqttConfig(
            "localhost",
            THING,
            self.home.ca_pem.read_bytes(),
            self.cert,
            self.key,
            port=self.service.mqtt_port,
        )
        return dataclasses.replace(base, **options)


@contextlib.asynccontextmanager
async def cloud_with_thing(tmp_path: Path) -> AsyncIterator[Cloud]:
    home = CloudHome(tmp_path / "cloud")
    async with running_cloud(home) as service:
        creds = register_thing(service, THING)
        yield Cloud(service, home, creds.cert, creds.key)


class Recorder:
    """Collects a device's MQTT events; ``wait`` for one."""

    def __init__(self, events: EventLoop) -> None:
        self.seen: list[tuple[Enum, MqttEventData]] = []
        self._changed = asyncio.Event()
        events.register(MqttEvent, self._record)

    def _record(self, event: Enum, data: Any) -> None:
        self.seen.append((event, data))
        self._changed.set()

    def count(self, event: MqttEvent) -> int:
        return sum(1 for e, _ in self.seen if e is event)

    async def wait(self, event: MqttEvent, count: int = 1, timeout: float = 10) -> MqttEventData:
        async with asyncio.timeout(timeout):
            while self.count(event) < count:
                self._changed.clear()
                await self._changed.wait()
        return [d for e, d in self.seen if e is event][count - 1]


def device(
    config: MqttConfig, wifi: Wifi | None = None
) -> tuple[EspMqttClient, Recorder, list[str]]:
    lines: list[str] = []
    events = wifi.events if wifi is not None else EventLoop()
    events.start()
    recorder = Recorder(events)
    client = EspMqttClient(
        config, events, EspLog(lambda: 0, lines.append), wifi=wifi, rng=random.Random(1)
    )
    return client, recorder, lines


def test_mutual_tls_subscribe_publish_and_receive(tmp_path: Path) -> None:
    async def main() -> None:
        async with cloud_with_thing(tmp_path) as cloud:
            client, seen, _ = device(cloud.config())
            client.start()
            await seen.wait(MqttEvent.CONNECTED)
            assert client.subscribe(ACCEPTED, 1) > 0
            await seen.wait(MqttEvent.SUBSCRIBED)
            update = json.dumps({"state": {"reported": {"output": True}}})
            msg_id = client.publish(UPDATE, update, qos=1)
            assert (await seen.wait(MqttEvent.PUBLISHED)).msg_id == msg_id
            assert client.publish(GET, "", qos=0) == 0
            data = await seen.wait(MqttEvent.DATA)
            assert data.topic == ACCEPTED
            assert json.loads(data.data)["state"]["reported"] == {"output": True}
            await client.stop()
            await seen.wait(MqttEvent.DISCONNECTED)

    asyncio.run(main())


def test_server_from_another_ca_is_an_error_and_no_connection(tmp_path: Path) -> None:
    other = CloudHome(tmp_path / "other")
    other.ensure()

    async def main() -> str:
        async with cloud_with_thing(tmp_path) as cloud:
            config = cloud.config(ca_pem=other.ca_pem.read_bytes())
            client, seen, _ = device(config)
            client.start()
            error = await seen.wait(MqttEvent.ERROR)
            await client.stop()
            assert seen.count(MqttEvent.CONNECTED) == 0
            return error.error

    assert "server certificate not trusted" in asyncio.run(main())


def test_revoked_certificate_cannot_connect(tmp_path: Path) -> None:
    async def main() -> None:
        async with cloud_with_thing(tmp_path) as cloud:
            registry = cloud.service.registry
            registry.revoke(registry.certificates(THING)[0].certificate_id)
            client, seen, lines = device(cloud.config(reconnect_min_ms=50))
            client.start()
            await seen.wait(MqttEvent.ERROR, 2)  # it keeps trying, with backoff
            await client.stop()
            assert seen.count(MqttEvent.CONNECTED) == 0
            assert any("Reconnecting in" in line for line in lines)

    asyncio.run(main())


def test_reconnect_restores_subscriptions_and_delivers_offline_qos1(tmp_path: Path) -> None:
    home = CloudHome(tmp_path / "cloud")

    async def main() -> None:
        async with running_cloud(home) as service:
            port = service.mqtt_port
            creds = register_thing(service, THING)
            cloud = Cloud(service, home, creds.cert, creds.key)
            client, seen, _ = device(cloud.config(reconnect_min_ms=50, reconnect_max_ms=200))
            client.start()
            await seen.wait(MqttEvent.CONNECTED)
            client.subscribe(ACCEPTED, 1)
            await seen.wait(MqttEvent.SUBSCRIBED)
        # The cloud is down: QoS 1 waits in the outbox, QoS 0 fails.
        await seen.wait(MqttEvent.DISCONNECTED)
        update = json.dumps({"state": {"reported": {"output": False, "offline": 1}}})
        assert client.publish(UPDATE, update, qos=1) > 0
        assert client.publish(GET, "", qos=0) == -1
        async with running_cloud(home, port):
            await seen.wait(MqttEvent.CONNECTED, 2)
            await seen.wait(MqttEvent.PUBLISHED)
            client.publish(GET, "", qos=1)
            data = await seen.wait(MqttEvent.DATA)  # the restored subscription
            assert json.loads(data.data)["state"]["reported"]["offline"] == 1
            await client.stop()

    asyncio.run(main())


def test_outbox_is_bounded(tmp_path: Path) -> None:
    async def main() -> None:
        home = CloudHome(tmp_path / "cloud")
        home.ensure()
        config = MqttConfig("localhost", THING, home.ca_pem.read_bytes(), port=1, outbox_limit=3)
        client, _, lines = device(config)
        results = [client.publish(UPDATE, "{}", qos=1) for _ in range(5)]
        assert results[:3] == [1, 2, 3]
        assert results[3:] == [-2, -2]
        assert any("outbox full" in line for line in lines)

    asyncio.run(main())


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    config = MqttConfig("h", "c", b"", reconnect_min_ms=1000, reconnect_max_ms=8000)
    rng = random.Random(7)
    for attempt, ceiling in enumerate([1.0, 2.0, 4.0, 8.0, 8.0, 8.0]):
        delays = [config.backoff_s(attempt, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 40  # jittered: a fleet does not reconnect in lockstep


def test_aws_port_443_uses_alpn() -> None:
    on_443 = MqttConfig.for_aws("x.iot.eu-west-1.amazonaws.com", "t", b"", b"", b"", port=443)
    on_8883 = MqttConfig.for_aws("x.iot.eu-west-1.amazonaws.com", "t", b"", b"", b"")
    assert on_443.alpn == (AWS_MQTT_ALPN,)
    assert on_8883.alpn == ()
    assert on_8883.port == 8883


def test_follows_wifi_drops_and_resumes_on_got_ip(tmp_path: Path) -> None:
    world = RadioWorld(aps=[AccessPoint("home", "password1", AuthMode.WPA2_PSK)])

    async def main() -> None:
        async with cloud_with_thing(tmp_path) as cloud:
            events = EventLoop()
            wifi = Wifi(world, events, EspLog(lambda: 0, lambda _: None), bytes(6))

            def reconnect(event: Enum, _data: Any) -> None:
                if event in (WifiEvent.STA_START, WifiEvent.STA_DISCONNECTED):
                    wifi.connect()

            events.register(WifiEvent, reconnect)
            client, seen, lines = device(cloud.config(reconnect_min_ms=30_000), wifi)
            client.start()  # no IP yet: it waits, and does not count as a failure
            await asyncio.sleep(0.3)
            assert seen.count(MqttEvent.BEFORE_CONNECT) == 0
            wifi.set_mode(WifiMode.STA)
            wifi.set_config(StaConfig("home", "password1"))
            wifi.start()
            await seen.wait(MqttEvent.CONNECTED)
            world.set_up("home", False)
            await seen.wait(MqttEvent.DISCONNECTED)
            assert any("Wi-Fi lost" in line for line in lines)
            assert seen.count(MqttEvent.ERROR) == 0
            world.set_up("home", True)
            # Back long before the 30 s backoff: GOT_IP reconnects at once.
            await seen.wait(MqttEvent.CONNECTED, 2, timeout=15)
            await client.stop()
            await wifi.stop()

    asyncio.run(main())


def test_a_server_that_stops_answering_is_dropped_by_keepalive(tmp_path: Path) -> None:
    """A peer that accepts the connection, then never answers a PINGREQ (a half-dead link)."""
    home = CloudHome(tmp_path / "cloud")
    home.ensure()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(home.server_pem, home.server_key)

    async def silent_broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # CONNECT
        writer.write(bytes([0x20, 0x02, 0x00, 0x00]))  # CONNACK, accepted
        while await reader.read(1024):
            pass  # PINGREQs go unanswered

    async def main() -> tuple[str, float]:
        server = await asyncio.start_server(silent_broker, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        config = MqttConfig("localhost", THING, home.ca_pem.read_bytes(), port=port, keepalive_s=1)
        client, seen, _ = device(config)
        client.start()
        await seen.wait(MqttEvent.CONNECTED)
        started = asyncio.get_running_loop().time()
        error = await seen.wait(MqttEvent.ERROR, timeout=10)
        elapsed = asyncio.get_running_loop().time() - started
        await seen.wait(MqttEvent.DISCONNECTED)
        await client.stop()
        server.close()
        return error.error, elapsed

    error, elapsed = asyncio.run(main())
    assert "no PINGRESP within 1 s" in error
    assert elapsed < 4
