"""``esp-mqtt``: the device's MQTT client over mutual TLS, events on the device's event loop.

The protocol is the sans-I/O :class:`jumpstart.formats.mqtt.client.MqttClient`; this module
is its transport on a device:

* mutual TLS with the embedded CA and the device's certificate and key; ALPN
  ``x-amzn-mqtt-ca`` for AWS IoT on port 443 (:meth:`MqttConfig.for_aws`);
* keep-alive pings, and a dead server detected within one keep-alive period;
* reconnects with capped exponential backoff and jitter, so a fleet that lost its cloud does
  not come back in lockstep; subscriptions are restored and unacknowledged QoS 1 publishes
  resent (DUP) on the new connection;
* QoS 1 publishes made while offline wait in a bounded outbox (``outbox_limit``); a full
  outbox refuses new ones (-2) instead of dropping old ones silently; QoS 0 while offline
  fails (-1), as in esp-mqtt;
* it follows the station: the connection drops when Wi-Fi does and comes back on GOT_IP
  without waiting for the backoff.

Events (``MqttEvent``) are posted to the device's event loop with an :class:`MqttEventData`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any

from jumpstart.formats.mqtt.client import (
    ClientState,
    Connected,
    ConnectionRefused,
    MessageReceived,
    MqttClient,
    PublishAcked,
    ServerDisconnected,
    Subscribed,
    Unsubscribed,
)
from jumpstart.formats.mqtt.codec import MqttError
from jumpstart.idf.event import EventLoop
from jumpstart.idf.log import EspLog
from jumpstart.idf.tls import TlsConnection, client_context, open_tls_connection
from jumpstart.idf.wifi import IpEvent, Wifi, WifiEvent

__all__ = ["EspMqttClient", "MqttConfig", "MqttEvent", "MqttEventData"]

TAG = "mqtt_client"
MQTT_TLS_PORT = 8883
AWS_ALPN_PORT = 443
# AWS IoT Core: MQTT on 443 needs this ALPN protocol name (developer guide, "Protocols").
AWS_MQTT_ALPN = "x-amzn-mqtt-ca"
READ_SIZE = 16 * 1024
TICK_S = 1.0  # how often keep-alive is checked while the link is quiet


class MqttEvent(Enum):
    """``esp_mqtt_event_id_t``."""

    BEFORE_CONNECT = auto()
    CONNECTED = auto()
    DISCONNECTED = auto()
    SUBSCRIBED = auto()
    UNSUBSCRIBED = auto()
    PUBLISHED = auto()
    DATA = auto()
    ERROR = auto()


@dataclass(frozen=True, slots=True)
class MqttEventData:
    """``esp_mqtt_event_t``: the fields an event carries."""

    msg_id: int = 0
    topic: str = ""
    data: bytes = b""
    qos: int = 0
    retain: bool = False
    session_present: bool = False
    error: str = ""

    def json_object(self) -> dict[str, Any] | None:
        """The payload as a JSON object (what AWS IoT's services send), else None."""
        try:
            document = json.loads(self.data)
        except ValueError:
            return None
        return document if isinstance(document, dict) else None


@dataclass(frozen=True)
class MqttConfig:
    """``esp_mqtt_client_config_t``."""

    host: str
    client_id: str
    ca_pem: bytes
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    port: int = MQTT_TLS_PORT
    alpn: tuple[str, ...] = ()
    keepalive_s: int = 120  # esp-mqtt's MQTT_KEEPALIVE_TICK default
    clean_session: bool = True
    network_timeout_ms: int = 10_000
    reconnect_min_ms: int = 1_000
    reconnect_max_ms: int = 60_000
    outbox_limit: int = 64
    skip_cert_common_name_check: bool = False

    @classmethod
    def for_aws(
        cls,
        endpoint: str,
        thing: str,
        ca_pem: bytes,
        cert_pem: bytes,
        key_pem: bytes,
        port: int = MQTT_TLS_PORT,
    ) -> MqttConfig:
        """AWS IoT Core: client id = thing name; port 443 uses ALPN, 8883 plain TLS."""
        alpn = (AWS_MQTT_ALPN,) if port == AWS_ALPN_PORT else ()
        return cls(endpoint, thing, ca_pem, cert_pem, key_pem, port=port, alpn=alpn)

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Delay before reconnect ``attempt`` (0-based): doubling, capped, half of it random."""
        ceiling = min(self.reconnect_max_ms, self.reconnect_min_ms * (1 << min(attempt, 30)))
        return (ceiling / 2 + rng.uniform(0, ceiling / 2)) / 1000


Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


class EspMqttClient:
    """One device's MQTT connection; ``start`` it, then publish and subscribe."""

    def __init__(
        self,
        config: MqttConfig,
        events: EventLoop,
        log: EspLog,
        *,
        wifi: Wifi | None = None,
        spawn: Spawn | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.events = events
        self.log = log
        self.wifi = wifi
        self._spawn = spawn
        self._rng = rng or random.Random()
        self.mqtt = MqttClient(
            config.client_id, keep_alive=config.keepalive_s, clean_start=config.clean_session
        )
        self._context = client_context(
            config.ca_pem,
            config.cert_pem,
            config.key_pem,
            alpn=config.alpn,
            check_hostname=not config.skip_cert_common_name_check,
        )
        self._network_up = asyncio.Event()
        self._kick = asyncio.Event()
        self._writer: TlsConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._handlers: list[Any] = []
        self._announced = False  # CONNECTED was posted and DISCONNECTED not yet
        self.connects = 0
        """Successful connections since start (a reconnect counts again)."""

    @property
    def connected(self) -> bool:
        return self.mqtt.state is ClientState.CONNECTED

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """``esp_mqtt_client_start``: connect now (or once the station has an IP)."""
        if self._task is not None:
            return
        if self.wifi is None or self.wifi.ip is not None:
            self._network_up.set()
        if self.wifi is not None:
            self._handlers = [
                self.events.register(IpEvent.STA_GOT_IP, self._on_network),
                self.events.register(WifiEvent.STA_DISCONNECTED, self._on_network),
                self.events.register(IpEvent.STA_LOST_IP, self._on_network),
            ]
        coro = self._run()
        if self._spawn is not None:
            self._task = self._spawn(coro, "mqtt_task")
        else:
            self._task = asyncio.get_running_loop().create_task(coro, name="mqtt_task")

    async def stop(self) -> None:
        """``esp_mqtt_client_stop``: a clean DISCONNECT, then no reconnects."""
        for handler in self._handlers:
            self.events.unregister(handler)
        self._handlers = []
        if self.connected and self._writer is not None:
            self.mqtt.disconnect()
            self._flush()
            with contextlib.suppress(ConnectionError, ssl.SSLError, RuntimeError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._writer.drain()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._drop()

    def _on_network(self, event: Enum, _data: Any) -> None:
        if event is IpEvent.STA_GOT_IP:
            self._network_up.set()
            self._kick.set()  # reconnect now, not after the backoff
        else:
            self._network_up.clear()
            if self._writer is not None:
                self.log.w(TAG, "Wi-Fi lost: closing the MQTT connection")
                self._drop()

    # -- API -------------------------------------------------------------------------------
    def publish(self, topic: str, data: bytes | str, qos: int = 0, retain: bool = False) -> int:
        """``esp_mqtt_client_publish``: the message id (0 for QoS 0), -1 not connected
        (QoS 0), -2 outbox full (QoS 1)."""
        payload = data.encode() if isinstance(data, str) else bytes(data)
        if qos == 0 and not self.connected:
            return -1
        if qos > 0 and self.mqtt.unacked >= self.config.outbox_limit:
            self.log.w(TAG, f"outbox full ({self.config.outbox_limit} messages): {topic} dropped")
            return -2
        packet_id = self.mqtt.publish(topic, payload, qos, retain, self._now())
        self._flush()
        return packet_id or 0

    def subscribe(self, topic_filter: str, qos: int = 0) -> int:
        """``esp_mqtt_client_subscribe``: the message id, or 0 when it waits for a connection
        (every subscription is restored after a reconnect)."""
        packet_id = self.mqtt.subscribe([(topic_filter, qos)], self._now())
        self._flush()
        return packet_id or 0

    def unsubscribe(self, topic_filter: str) -> int:
        packet_id = self.mqtt.unsubscribe([topic_filter], self._now())
        self._flush()
        return packet_id or 0

    # -- connection ------------------------------------------------------------------------
    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def _post(self, event: MqttEvent, data: MqttEventData | None = None) -> None:
        self.events.post(event, data or MqttEventData())

    def _flush(self) -> None:
        if self._writer is None:
            return
        data = self.mqtt.data_to_send()
        if data:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self._writer.write(data)

    def _drop(self) -> None:
        writer, self._writer = self._writer, None
        self.mqtt.connection_lost()
        if writer is not None:
            writer.close()
        if self._announced:
            self._announced = False
            self._post(MqttEvent.DISCONNECTED)

    async def _run(self) -> None:
        attempt = 0
        while True:
            await self._network_up.wait()
            self._post(MqttEvent.BEFORE_CONNECT)
            self._kick.clear()
            connects = self.connects
            try:
                await self._session()
            except (OSError, ssl.SSLError, TimeoutError, MqttError) as err:
                if self._network_up.is_set():  # else Wi-Fi went, which was logged
                    reason = _describe(err)
                    self.log.e(TAG, f"{self.config.host}:{self.config.port}: {reason}")
                    self._post(MqttEvent.ERROR, MqttEventData(error=reason))
            self._drop()
            if self.connects > connects or not self._network_up.is_set():
                attempt = 0  # it worked (or Wi-Fi went): the backoff starts over
            if not self._network_up.is_set():
                continue
            delay = self.config.backoff_s(attempt, self._rng)
            attempt += 1
            self.log.i(TAG, f"Reconnecting in {delay * 1000:.0f} ms")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._kick.wait()

    async def _session(self) -> None:
        config = self.config
        timeout = config.network_timeout_ms / 1000
        async with asyncio.timeout(timeout):
            writer = await open_tls_connection(config.host, config.port, self._context)
            reader = writer
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # A device's small request/response exchanges must not wait for Nagle.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writer = writer
        self.mqtt.connect(self._now())
        self._flush()
        connack_deadline = self._now() + timeout
        while True:
            wake = self.mqtt.next_tick()
            if self.mqtt.state is ClientState.CONNECTING:
                wake = connack_deadline
            # Sleep until the state machine has work (a ping due, CONNACK overdue), not
            # polling every TICK_S: a fleet of thousands of quiet clients stays idle.
            quiet = TICK_S if wake is None else max(TICK_S, wake - self._now())
            try:
                async with asyncio.timeout(quiet):
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                data = None
            if data == b"":
                raise ConnectionError("the server closed the connection")
            if data:
                for event in self.mqtt.receive(data):
                    if not self._dispatch(event):
                        return
            if self.mqtt.state is ClientState.CONNECTING and self._now() > connack_deadline:
                raise TimeoutError(f"no CONNACK within {config.network_timeout_ms} ms")
            if not self.mqtt.tick(self._now()):
                raise TimeoutError(f"no PINGRESP within {config.keepalive_s} s")
            self._flush()
            if writer.is_closing():
                return

    def _dispatch(self, event: object) -> bool:
        """Post the esp-mqtt event for a protocol event; False ends the connection."""
        if isinstance(event, Connected):
            self.connects += 1
            self._announced = True
            self.log.i(TAG, f"Connected to {self.config.host}:{self.config.port}")
            self._post(MqttEvent.CONNECTED, MqttEventData(session_present=event.session_present))
        elif isinstance(event, MessageReceived):
            self._post(
                MqttEvent.DATA,
                MqttEventData(
                    topic=event.topic, data=event.payload, qos=event.qos, retain=event.retain
                ),
            )
        elif isinstance(event, PublishAcked):
            self._post(MqttEvent.PUBLISHED, MqttEventData(msg_id=event.packet_id))
        elif isinstance(event, Subscribed):
            refused = event.refused
            if refused:
                self.log.e(TAG, f"subscription refused: {', '.join(refused)}")
                error = f"subscription refused: {', '.join(refused)}"
                self._post(MqttEvent.ERROR, MqttEventData(msg_id=event.packet_id, error=error))
            self._post(MqttEvent.SUBSCRIBED, MqttEventData(msg_id=event.packet_id))
        elif isinstance(event, Unsubscribed):
            self._post(MqttEvent.UNSUBSCRIBED, MqttEventData(msg_id=event.packet_id))
        elif isinstance(event, ConnectionRefused):
            code = event.reason_code
            raise ConnectionRefusedError(f"CONNACK refused the connection (code {code})")
        elif isinstance(event, ServerDisconnected):
            self.log.w(TAG, f"server sent DISCONNECT (reason {event.reason_code})")
            return False
        return True


def _describe(err: BaseException) -> str:
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"server certificate not trusted ({err.verify_message})"
    if isinstance(err, ssl.SSLError):
        return f"TLS failed ({err.reason or err})"
    if isinstance(err, ConnectionRefusedError) and "CONNACK" in str(err):
        return str(err)
    if isinstance(err, TimeoutError):
        return str(err) or "timed out"
    return f"{type(err).__name__}: {err}"
