"""The device's shadow client asks again when its ``get`` goes unanswered or is throttled,
and stops asking once it has the document or the connection is gone. The MQTT connection
is a recorder fed the broker's replies as esp-mqtt events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from jumpstart.idf import aws_shadow
from jumpstart.idf.aws_shadow import ShadowClient, ShadowHandlers
from jumpstart.idf.event import EventLoop
from jumpstart.idf.log import EspLog
from jumpstart.idf.mqtt import MqttEvent, MqttEventData

THING = "lamp"
GET = f"$aws/things/{THING}/shadow/get"


class RecordingMqtt:
    """What the shadow client needs of esp-mqtt: publishes are recorded."""

    def __init__(self) -> None:
        self.connected = True
        self.published: list[tuple[str, dict[str, Any]]] = []

    def subscribe(self, topic: str, qos: int = 0) -> int:
        return 1

    def publish(self, topic: str, data: bytes | str, qos: int = 0, retain: bool = False) -> int:
        self.published.append((topic, json.loads(data)))
        return len(self.published)

    def gets(self) -> list[dict[str, Any]]:
        return [body for topic, body in self.published if topic == GET]


async def _client() -> tuple[ShadowClient, RecordingMqtt, EventLoop, list[Any]]:
    events = EventLoop()
    events.start()
    mqtt = RecordingMqtt()
    documents: list[Any] = []
    log = EspLog(lambda: 0, lambda _line: None)
    handlers = ShadowHandlers(documents.append, lambda _state: None)
    client = ShadowClient(mqtt, THING, events, log, handlers)  # type: ignore[arg-type]
    await events.dispatch(MqttEvent.CONNECTED, MqttEventData())
    return client, mqtt, events, documents


async def _reply(events: EventLoop, outcome: str, body: dict[str, Any]) -> None:
    data = MqttEventData(topic=f"{GET}/{outcome}", data=json.dumps(body).encode())
    await events.dispatch(MqttEvent.DATA, data)


@pytest.fixture(autouse=True)
def quick_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aws_shadow, "GET_TIMEOUT_S", 0.1)
    monkeypatch.setattr(aws_shadow, "GET_TIMEOUT_CAP_S", 0.4)


def test_an_unanswered_get_is_asked_again_with_a_growing_wait() -> None:
    async def main() -> None:
        _shadow, mqtt, events, documents = await _client()
        assert len(mqtt.gets()) == 1
        await asyncio.sleep(0.6)  # ~0.1, then ~0.2, then ~0.4: three more
        assert 3 <= len(mqtt.gets()) <= 4
        latest = mqtt.gets()[-1]["clientToken"]
        await _reply(events, "accepted", {"state": {}, "version": 3, "clientToken": latest})
        assert documents == [{"state": {}, "version": 3, "clientToken": latest}]
        asked = len(mqtt.gets())
        await asyncio.sleep(0.6)
        assert len(mqtt.gets()) == asked  # synced: no more asking
        await events.stop()

    asyncio.run(main())


def test_a_throttled_get_is_asked_again_and_a_refused_one_is_not() -> None:
    async def main() -> None:
        _shadow, mqtt, events, documents = await _client()
        token = mqtt.gets()[-1]["clientToken"]
        await _reply(events, "rejected", {"code": 429, "message": "slow", "clientToken": token})
        await asyncio.sleep(0.2)
        assert len(mqtt.gets()) == 2
        token = mqtt.gets()[-1]["clientToken"]
        await _reply(events, "rejected", {"code": 403, "message": "no", "clientToken": token})
        await asyncio.sleep(0.6)
        assert len(mqtt.gets()) == 2  # not retryable: the application hears of it instead
        assert documents == []
        await events.stop()

    asyncio.run(main())


def test_a_lost_connection_stops_the_asking() -> None:
    async def main() -> None:
        _shadow, mqtt, events, _documents = await _client()
        mqtt.connected = False
        await events.dispatch(MqttEvent.DISCONNECTED, MqttEventData())
        await asyncio.sleep(0.4)
        assert len(mqtt.gets()) == 1
        await events.stop()

    asyncio.run(main())
