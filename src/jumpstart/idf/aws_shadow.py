"""The device side of an AWS IoT Device Shadow (what esp-aws-iot's shadow library does).

``ShadowClient`` subscribes to one thing's shadow reply topics, asks for the document on
every (re)connection and hands the application three things: the whole document (``get``
accepted, or None when the thing has no shadow yet), each delta that is newer than what the
device already wrote, and rejections. Stale deltas are dropped by version: a delta whose
version is not above the version of the device's own last accepted update was produced
before that update, so applying it would undo the device's newer change.

A ``get`` with no answer (a broker that dropped it under load) or answered with a
retryable rejection (429 throttled, 5xx) is asked again after a timeout that doubles, with
jitter, up to a cap, while the connection lasts: a fleet reconnecting at once must not leave
devices that never learn their desired state.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from jumpstart.formats.aws_iot import ShadowOp, shadow_topic
from jumpstart.idf.event import EventLoop
from jumpstart.idf.log import EspLog
from jumpstart.idf.mqtt import EspMqttClient, MqttEvent, MqttEventData

__all__ = ["ShadowClient", "ShadowHandlers"]

TAG = "shadow"
NOT_FOUND = 404  # get/rejected when the thing has no shadow yet
RETRYABLE = frozenset({429, 500, 503})  # throttled, or the service failed: ask again
GET_TIMEOUT_S = 10.0  # no get reply within this: ask again (doubling, jittered, capped)
GET_TIMEOUT_CAP_S = 80.0


@dataclass
class ShadowHandlers:
    """What the application does with shadow replies."""

    on_document: Callable[[dict[str, Any] | None], None]
    """The document after (re)connecting; None when no shadow exists yet."""
    on_delta: Callable[[dict[str, Any]], None]
    """``state`` of a delta newer than the device's own last update."""
    on_rejected: Callable[[str, int, str], None] | None = None
    """(operation, code, message) of a rejected get or update."""


class ShadowClient:
    """One thing's classic shadow over a device's MQTT connection."""

    def __init__(
        self,
        mqtt: EspMqttClient,
        thing: str,
        events: EventLoop,
        log: EspLog,
        handlers: ShadowHandlers,
    ) -> None:
        self.mqtt = mqtt
        self.thing = thing
        self.log = log
        self.handlers = handlers
        self.version = 0
        """The newest version the device knows it caused or read."""
        self.synced = False
        """A document was received on the current connection."""
        self._tokens: set[str] = set()
        self._retry: asyncio.TimerHandle | None = None
        self._wait_s = GET_TIMEOUT_S
        self._rng = random.Random()
        self._topics = {
            shadow_topic(thing, ShadowOp.UPDATE, "delta"): self._delta,
            shadow_topic(thing, ShadowOp.GET, "accepted"): self._get_accepted,
            shadow_topic(thing, ShadowOp.GET, "rejected"): self._get_rejected,
            shadow_topic(thing, ShadowOp.UPDATE, "accepted"): self._update_accepted,
            shadow_topic(thing, ShadowOp.UPDATE, "rejected"): self._update_rejected,
        }
        events.register(MqttEvent, self._on_event)
        for topic in self._topics:
            mqtt.subscribe(topic, 1)

    def _token(self) -> str:
        token = uuid.uuid4().hex[:16]
        self._tokens.add(token)
        return token

    def get(self) -> None:
        """Ask for the document (the reply arrives through ``on_document``); asked again
        if no answer comes (module doc)."""
        payload = json.dumps({"clientToken": self._token()})
        self.mqtt.publish(shadow_topic(self.thing, ShadowOp.GET), payload, qos=1)
        self._arm_retry()

    def _arm_retry(self) -> None:
        self._cancel_retry()
        wait = self._wait_s * self._rng.uniform(0.75, 1.25)
        self._retry = asyncio.get_running_loop().call_later(wait, self._ask_again)

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def _ask_again(self) -> None:
        self._retry = None
        if self.synced or not self.mqtt.connected:
            return
        self._wait_s = min(GET_TIMEOUT_CAP_S, self._wait_s * 2)
        self.log.w(TAG, "no reply to the shadow get: asking again")
        self.get()

    def update(
        self, reported: dict[str, Any] | None = None, desired: dict[str, Any] | None = None
    ) -> int:
        """Publish a partial update; the MQTT message id, or < 0 when it could not be queued."""
        state: dict[str, Any] = {}
        if reported is not None:
            state["reported"] = reported
        if desired is not None:
            state["desired"] = desired
        document = {"state": state, "clientToken": self._token()}
        payload = json.dumps(document, separators=(",", ":"))
        return self.mqtt.publish(shadow_topic(self.thing, ShadowOp.UPDATE), payload, qos=1)

    # -- replies ---------------------------------------------------------------------------
    def _on_event(self, event: Enum, data: Any) -> None:
        if event is MqttEvent.CONNECTED:
            self.synced = False
            self._wait_s = GET_TIMEOUT_S
            # The subscriptions went out first on this connection; the reply cannot be missed.
            self.get()
        elif event is MqttEvent.DISCONNECTED:
            self.synced = False
            self._cancel_retry()
        elif event is MqttEvent.DATA:
            assert isinstance(data, MqttEventData)
            handler = self._topics.get(data.topic)
            if handler is None:
                return
            document = data.json_object()
            if document is None:
                self.log.w(TAG, f"{data.topic}: not a JSON object, ignored")
                return
            handler(document)

    def _own(self, document: dict[str, Any]) -> bool:
        token = document.get("clientToken")
        if isinstance(token, str) and token in self._tokens:
            self._tokens.discard(token)
            return True
        return False

    def _seen(self, document: dict[str, Any]) -> None:
        version = document.get("version")
        if isinstance(version, int) and version > self.version:
            self.version = version

    def _get_accepted(self, document: dict[str, Any]) -> None:
        if not self._own(document):
            return  # another client's get
        self._seen(document)
        self.synced = True
        self._cancel_retry()
        self.handlers.on_document(document)

    def _get_rejected(self, document: dict[str, Any]) -> None:
        if not self._own(document):
            return
        code = document.get("code")
        if code == NOT_FOUND:
            self.synced = True
            self._cancel_retry()
            self.handlers.on_document(None)
            return
        if code in RETRYABLE:
            self._arm_retry()  # the armed timeout asks again
        else:
            self._cancel_retry()
        if self.handlers.on_rejected is not None:
            self.handlers.on_rejected("get", int(code or 0), str(document.get("message", "")))

    def _update_accepted(self, document: dict[str, Any]) -> None:
        if self._own(document):
            self._seen(document)

    def _update_rejected(self, document: dict[str, Any]) -> None:
        if not self._own(document):
            return
        code, message = int(document.get("code") or 0), str(document.get("message", ""))
        self.log.w(TAG, f"update rejected: {code} {message}")
        if self.handlers.on_rejected is not None:
            self.handlers.on_rejected("update", code, message)

    def _delta(self, document: dict[str, Any]) -> None:
        version = document.get("version")
        state = document.get("state")
        if not isinstance(state, dict):
            return
        if isinstance(version, int) and version <= self.version:
            self.log.d(TAG, f"delta version {version} predates our update {self.version}: ignored")
            return
        self._seen(document)
        self.handlers.on_delta(state)
