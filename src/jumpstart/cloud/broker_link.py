"""The shadow and jobs engines as one client of an external MQTT broker (mosquitto, EMQX...).

The link subscribes to the request topics (``REQUEST_FILTERS``) with the operator's
certificate, hands each request to its handler and publishes the replies. What AWS's broker
does that a generic broker cannot, and so this mode does not (README, "External broker"):

* replies meant for the requester alone (jobs) are published on their topic, so only
  subscribers receive them, and every subscriber does;
* the broker enforces the ACL it was given (a forbidden subscription is granted and then
  stays silent on mosquitto), not the gateway's policy;
* requests are served one at a time as they arrive: no per-connection 429.

It is a persistent session (clean start off, a fixed client id): requests published while
the engines restart wait in the broker and are served on reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

from jumpstart.cloud.endpoints import Shard
from jumpstart.cloud.gateway.broker import Delivery, RequestHandler, find_handler
from jumpstart.cloud.policy import Principal
from jumpstart.cloud.registry import Role
from jumpstart.cloud.topics import REQUEST_FILTERS, thing_of
from jumpstart.errors import InputError
from jumpstart.formats.mqtt import MqttError
from jumpstart.formats.mqtt.client import (
    ClientEvent,
    Connected,
    ConnectionRefused,
    MessageReceived,
    MqttClient,
    ServerDisconnected,
    Subscribed,
)

__all__ = ["BrokerLink", "BrokerLinkError", "ExternalBus", "serve_request"]

log = logging.getLogger(__name__)

LINK_CLIENT_ID = "jumpstart-cloud-engines"
KEEP_ALIVE_S = 30
# Reconnect backoff: doubled from the first delay up to the cap, with +-25 % jitter so that
# several engines do not reconnect in step.
BACKOFF_FIRST_S = 0.25
BACKOFF_CAP_S = 15.0
READ_SIZE = 64 * 1024


class BrokerLinkError(InputError):
    """The engines could not attach to the external broker."""


def serve_request(
    handlers: Sequence[RequestHandler], topic: str, payload: bytes, shard: Shard | None = None
) -> Sequence[Delivery] | None:
    """A request that came through an external broker, served: the replies, or None when
    no handler takes ``topic`` (or another shard owns its thing, or the handler failed)."""
    handler = find_handler(handlers, topic)
    thing = thing_of(topic)
    if handler is None or thing is None or (shard is not None and not shard.owns(thing)):
        return None
    # The broker's ACL already decided that the publisher may send this request.
    principal = Principal(thing, Role.DEVICE)
    try:
        return handler.handle(topic, payload, principal, "")
    except Exception:  # a store outage must not take the link down with it
        log.exception("request on %s failed", topic)
        return None


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"mqtts://{self.host}:{self.port}"


class ExternalBus:
    """What the cloud's bus does the same way on any external broker, in terms of the
    link's own ``publish``: the broker routes a request to the engines like any message."""

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        raise NotImplementedError

    def publish_request(
        self, topic: str, payload: bytes, qos: int, retain: bool, principal: Principal
    ) -> None:
        """A REST publish; a request reaches the engines through their subscription."""
        self.publish(topic, payload, qos, retain)

    def dispatch(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            self.publish(delivery.topic, delivery.payload)


class BrokerLink(ExternalBus):
    """Request handlers served over an external broker; also the cloud's way to publish."""

    retains = True

    def __init__(
        self,
        address: BrokerAddress,
        context: ssl.SSLContext,
        handlers: Sequence[RequestHandler],
        shard: Shard | None = None,
        client_id: str = LINK_CLIENT_ID,
    ) -> None:
        self.address = address
        self.context = context
        self.handlers = list(handlers)
        self.shard = shard or Shard()
        # One persistent session per shard (its own client id): a restarted instance finds
        # its own queue.
        self.client = MqttClient(client_id, keep_alive=KEEP_ALIVE_S, clean_start=False)
        self.client.subscribe([(f, 1) for f in REQUEST_FILTERS])
        self.connected = asyncio.Event()
        self.served = 0
        self.refused_filters: list[str] = []
        self.last_error = ""
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # the cloud's bus ---------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish now, or when the broker is back (QoS 1 waits; QoS 0 is dropped)."""
        self.client.publish(topic, payload, qos, retain, now=time.monotonic())
        self._flush()

    def health(self) -> tuple[bool, dict[str, object]]:
        up = self.connected.is_set() and not self.refused_filters
        details: dict[str, object] = {
            "broker": str(self.address),
            "link": "connected" if self.connected.is_set() else "reconnecting",
            "served": self.served,
            "shard": str(self.shard),
        }
        if self.refused_filters:
            details["refusedFilters"] = self.refused_filters
        if self.last_error:
            details["lastError"] = self.last_error
        return up, details

    @property
    def mqtt_port(self) -> int:
        """Where devices connect: the broker's port."""
        return self.address.port

    # lifecycle ---------------------------------------------------------------------------

    async def start(self, timeout: float = 10.0) -> None:
        """Connect and subscribe; raises BrokerLinkError (what to check) when the broker
        cannot be reached within ``timeout``."""
        self._task = asyncio.create_task(self._run(), name="broker-link")
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except TimeoutError:
            await self.close()
            raise BrokerLinkError(
                f"cannot attach the engines to {self.address}: {self.last_error or 'timeout'}."
                " Check that the broker runs, trusts this cloud's CA (require_certificate,"
                " use_identity_as_username) and lets the operator certificate subscribe to"
                " $aws/things/+/shadow/... and $aws/things/+/jobs/..."
            ) from None

    async def close(self) -> None:
        self._closing = True
        if self._writer is not None and self.connected.is_set():
            self.client.disconnect()
            self._flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay = BACKOFF_FIRST_S
        while not self._closing:
            try:
                await self._session()
                delay = BACKOFF_FIRST_S
            except (OSError, ssl.SSLError, MqttError, ConnectionError) as err:
                self.last_error = str(err) or type(err).__name__
                log.warning("broker link to %s: %s", self.address, self.last_error)
            finally:
                self.connected.clear()
                self.client.connection_lost()
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
            if self._closing:
                return
            await asyncio.sleep(delay * random.uniform(0.75, 1.25))
            delay = min(delay * 2, BACKOFF_CAP_S)

    async def _session(self) -> None:
        reader, writer = await asyncio.open_connection(
            self.address.host, self.address.port, ssl=self.context, server_hostname="localhost"
        )
        # Replies must not wait for a delayed ACK (spec/cloud.md 5.4 item 6).
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writer = writer
        self.client.connect(time.monotonic())
        self._flush()
        pinger = asyncio.create_task(self._keep_alive())
        try:
            while data := await reader.read(READ_SIZE):
                self._events(self.client.receive(data))
                self._flush()
        finally:
            pinger.cancel()
        raise ConnectionError("the broker closed the connection")

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if not self.client.tick(time.monotonic()):
                log.warning("broker link to %s: no answer to PINGREQ", self.address)
                if self._writer is not None:
                    self._writer.close()
                return
            self._flush()

    def _events(self, events: list[ClientEvent]) -> None:
        for event in events:
            if isinstance(event, MessageReceived):
                self._serve(event.topic, event.payload)
            elif isinstance(event, Connected):
                self.last_error = ""
                self.connected.set()
                log.info("engines attached to %s", self.address)
            elif isinstance(event, Subscribed) and event.refused:
                self.refused_filters = event.refused
                log.error("%s refused the request filters %s", self.address, self.refused_filters)
            elif isinstance(event, ConnectionRefused):
                raise ConnectionError(f"CONNACK refused with code {event.reason_code}")
            elif isinstance(event, ServerDisconnected):
                raise ConnectionError(f"DISCONNECT from the broker ({event.reason_code:#04x})")

    def _serve(self, topic: str, payload: bytes) -> None:
        deliveries = serve_request(self.handlers, topic, payload, self.shard)
        if deliveries is not None:
            self.served += 1
            self.dispatch(deliveries)

    def _flush(self) -> None:
        data = self.client.data_to_send()
        if data and self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)
