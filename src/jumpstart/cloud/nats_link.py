"""The shadow and jobs engines as native NATS clients in one queue group.

Each engine instance connects to the cluster's client port with the engines' certificate
(``verify_and_map`` makes it the admin user) and subscribes to the request subjects in the
queue group ``jumpstart-engines``: NATS hands each request to exactly one member, so n
instances share the work without hash shards or an n-fold fan-out, and when one dies the
others receive what it would have. Replies, deltas and notifications are published on the
MQTT-mapped subjects (MQTT ``/`` is NATS ``.``).

What differs from the MQTT link (README, "External broker"): nats-server 2.9 delivers a
message published by a native client to MQTT subscribers at QoS 0, so a reply meant for a
device that is offline is not queued in its session (a device asks for its shadow again when
it reconnects); and only MQTT publishers can retain a message, so the REST API refuses
``retain=true`` in this mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING

from jumpstart.cloud.broker_link import BrokerLinkError, ExternalBus, serve_request
from jumpstart.cloud.endpoints import NatsAddress
from jumpstart.cloud.gateway.broker import RequestHandler
from jumpstart.cloud.nats import mqtt_to_subject
from jumpstart.cloud.topics import REQUEST_FILTERS
from jumpstart.errors import InputError

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

__all__ = ["QUEUE_GROUP", "NatsLink", "subject_to_topic"]

log = logging.getLogger(__name__)

QUEUE_GROUP = "jumpstart-engines"
# A lost server is retried at once on the next one of the list, then every half second
# per server, for as long as the cloud runs.
RECONNECT_WAIT_S = 0.5
CONNECT_TIMEOUT_S = 2
DRAIN_TIMEOUT_S = 5.0


def subject_to_topic(subject: str) -> str:
    """A NATS subject as the MQTT topic it carries. nats-server writes an MQTT ``.`` as
    ``//``; no request topic has one (thing and shadow names exclude it), so such a subject
    becomes a topic that no handler takes."""
    return subject.replace(".", "/")


class NatsLink(ExternalBus):
    """Request handlers served as one member of the engines' queue group; also the cloud's
    way to publish (its MessageBus)."""

    retains = False  # only MQTT publishers retain on nats-server 2.9

    def __init__(
        self,
        address: NatsAddress,
        context: ssl.SSLContext,
        handlers: Sequence[RequestHandler],
        mqtt_port: int,
        name: str = QUEUE_GROUP,
    ) -> None:
        self.address = address
        self.context = context
        self.handlers = list(handlers)
        self.mqtt_port = mqtt_port  # where devices connect (reported, not used here)
        self.name = name
        self.served = 0
        self.last_error = ""
        self._client: Client | None = None
        # Publishes leave in the order they were made (nats-py's publish is a coroutine).
        self._outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None

    # the cloud's bus ---------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish on the MQTT topic's subject (MQTT subscribers receive it at QoS 0)."""
        self._outbox.put_nowait((mqtt_to_subject(topic), payload))

    def health(self) -> tuple[bool, dict[str, object]]:
        client = self._client
        up = client is not None and client.is_connected
        details: dict[str, object] = {
            "broker": str(self.address),
            "link": "connected" if up else "reconnecting",
            "queueGroup": QUEUE_GROUP,
            "served": self.served,
        }
        if up and client is not None and client.connected_url is not None:
            details["server"] = client.connected_url.netloc
        if self.last_error:
            details["lastError"] = self.last_error
        return up, details

    # lifecycle ---------------------------------------------------------------------------

    async def start(self, timeout: float = 10.0) -> None:
        """Connect to a server of the list and join the queue group; BrokerLinkError (what
        to check) when none answers within ``timeout``."""
        try:
            import nats  # noqa: PLC0415 - optional: only this broker mode needs nats-py
        except ImportError:
            raise InputError(
                "the NATS broker mode needs nats-py: pip install 'jumpstart[nats]'"
            ) from None

        try:
            self._client = await asyncio.wait_for(self._connect(), timeout)
        except (TimeoutError, OSError, ssl.SSLError, nats.errors.Error) as err:
            # A timeout says less than the last refusal nats-py reported while retrying.
            if not (isinstance(err, TimeoutError) and self.last_error):
                self.last_error = str(err) or type(err).__name__
            raise BrokerLinkError(
                f"cannot attach the engines to {self.address}: {self.last_error}. Check that"
                " nats-server runs there with this cloud's configuration"
                " (jumpstart cloud nats-config) and that its client port is the one given"
            ) from None
        for topic_filter in REQUEST_FILTERS:
            await self._client.subscribe(
                mqtt_to_subject(topic_filter), queue=QUEUE_GROUP, cb=self._on_request
            )
        await self._client.flush(timeout=CONNECT_TIMEOUT_S)
        self._sender = asyncio.create_task(self._send(), name="nats-link-sender")
        log.info("engines joined queue group %s on %s", QUEUE_GROUP, self.address)

    async def _connect(self) -> Client:
        async def error(err: Exception) -> None:
            self.last_error = str(err) or type(err).__name__
            log.warning("nats link to %s: %s", self.address, self.last_error)

        async def reconnected() -> None:
            self.last_error = ""

        from nats.aio.client import Client  # noqa: PLC0415

        client = Client()
        await client.connect(
            servers=self.address.urls(),
            tls=self.context,
            tls_hostname="localhost",
            name=self.name,
            connect_timeout=CONNECT_TIMEOUT_S,
            reconnect_time_wait=RECONNECT_WAIT_S,  # type: ignore[arg-type]
            max_reconnect_attempts=-1,
            error_cb=error,
            reconnected_cb=reconnected,
        )
        return client

    async def _on_request(self, msg: Msg) -> None:
        deliveries = serve_request(self.handlers, subject_to_topic(msg.subject), msg.data)
        if deliveries is not None:
            self.served += 1
            self.dispatch(deliveries)

    async def _send(self) -> None:
        assert self._client is not None
        while True:
            subject, payload = await self._outbox.get()
            try:
                await self._client.publish(subject, payload)
            except Exception as err:  # closed, or the reconnect buffer full: lost, and logged
                log.warning("nats link: publish on %s failed: %s", subject, err)

    async def close(self) -> None:
        """Leave the queue group; the requests already taken are answered first (nats-py's
        drain: no new requests, the pending ones served, their replies flushed)."""
        client = self._client
        if client is not None and not client.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.drain(), DRAIN_TIMEOUT_S)
            with contextlib.suppress(Exception):
                await client.close()  # stops what a cut-short drain left running
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
