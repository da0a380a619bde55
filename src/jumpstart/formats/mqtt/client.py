"""The client side of an MQTT connection as a sans-I/O state machine.

``MqttClient`` is fed the bytes a transport reads (``receive``) and returns events; every
call that sends something (``connect``, ``publish``, ``subscribe``, ``ping``...) queues bytes
that the transport takes with ``data_to_send``. It keeps what outlives one connection: packet
ids, QoS 1 publishes waiting for their PUBACK (resent with DUP after a reconnect, MQTT 3.1.1
4.4 and 5.0 4.4), and the subscriptions to restore when the broker has lost the session.
Transports (the cloud's link to an external broker, the device's esp-mqtt) wrap it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace

from jumpstart.formats.mqtt.codec import MqttError, PacketReader, encode_packet
from jumpstart.formats.mqtt.constants import ProtocolVersion
from jumpstart.formats.mqtt.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
)

__all__ = [
    "ClientEvent",
    "ClientState",
    "Connected",
    "ConnectionRefused",
    "MessageReceived",
    "MqttClient",
    "PublishAcked",
    "ServerDisconnected",
    "Subscribed",
    "Unsubscribed",
]

# SUBACK return codes of 0x80 and above are failures in both versions (3.1.1 3.9.3, 5.0 3.9.3).
SUBACK_FAILURE = 0x80
MAX_PACKET_ID = 0xFFFF


class ClientState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"  # CONNECT sent, waiting for CONNACK
    CONNECTED = "connected"


@dataclass(frozen=True, slots=True)
class Connected:
    session_present: bool


@dataclass(frozen=True, slots=True)
class ConnectionRefused:
    reason_code: int


@dataclass(frozen=True, slots=True)
class MessageReceived:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class PublishAcked:
    packet_id: int
    reason_code: int


@dataclass(frozen=True, slots=True)
class Subscribed:
    packet_id: int
    filters: tuple[str, ...]
    reason_codes: tuple[int, ...]

    @property
    def refused(self) -> list[str]:
        """The filters the broker refused."""
        pairs = zip(self.filters, self.reason_codes, strict=False)
        return [f for f, code in pairs if code >= SUBACK_FAILURE]


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    packet_id: int


@dataclass(frozen=True, slots=True)
class ServerDisconnected:
    reason_code: int


ClientEvent = (
    Connected
    | ConnectionRefused
    | MessageReceived
    | PublishAcked
    | Subscribed
    | Unsubscribed
    | ServerDisconnected
)


class MqttClient:
    """One MQTT client identity across connections; feed it bytes, send what it queues."""

    def __init__(
        self,
        client_id: str,
        *,
        version: ProtocolVersion = ProtocolVersion.MQTT311,
        keep_alive: int = 60,
        clean_start: bool = True,
        username: str | None = None,
        will: Will | None = None,
    ) -> None:
        self.client_id = client_id
        self.version = version
        self.keep_alive = keep_alive
        self.clean_start = clean_start
        self.username = username
        self.will = will
        self.state = ClientState.DISCONNECTED
        self.subscriptions: dict[str, int] = {}  # filter -> QoS, restored on a new session
        self._reader = PacketReader(version)
        self._outbox = bytearray()
        self._next_id = 0
        self._unacked: dict[int, Publish] = {}  # QoS 1 publishes without PUBACK
        self._sent: set[int] = set()  # ...of which these went out at least once
        # SUBSCRIBE and UNSUBSCRIBE without their ack, with their filters
        self._pending: dict[int, tuple[str, ...]] = {}
        self._deferred: set[str] = set()  # filters to subscribe to on the next CONNACK
        self._last_sent = 0.0
        self._ping_sent_at: float | None = None

    # sending -------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        data = bytes(self._outbox)
        self._outbox.clear()
        return data

    def _send(self, packet: Packet, now: float | None = None) -> None:
        self._outbox += encode_packet(packet, self.version)
        if now is not None:
            self._last_sent = now

    def connect(self, now: float = 0.0) -> None:
        """Start a connection on a fresh transport."""
        self._reader = PacketReader(self.version)
        self._outbox.clear()
        self._ping_sent_at = None
        self.state = ClientState.CONNECTING
        connect = Connect(
            client_id=self.client_id,
            protocol_version=self.version,
            clean_start=self.clean_start,
            keep_alive=self.keep_alive,
            username=self.username,
            will=self.will,
        )
        self._send(connect, now)

    def _packet_id(self) -> int:
        for _ in range(MAX_PACKET_ID):
            self._next_id = self._next_id % MAX_PACKET_ID + 1
            if self._next_id not in self._unacked and self._next_id not in self._pending:
                return self._next_id
        raise MqttError("all 65535 packet ids are in use")

    def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, now: float = 0.0
    ) -> int | None:
        """Queue a PUBLISH; its packet id for QoS 1 (kept until PUBACK, resent on reconnect).
        A QoS 1 publish made while disconnected waits for the next connection."""
        if qos not in (0, 1):
            raise MqttError(f"QoS {qos} is not supported (0 or 1)")
        if qos == 0:
            if self.state is ClientState.CONNECTED:
                self._send(Publish(topic, payload, 0, retain), now)
            return None
        packet_id = self._packet_id()
        self._unacked[packet_id] = Publish(topic, payload, 1, retain, packet_id=packet_id)
        if self.state is ClientState.CONNECTED:
            self._send(self._unacked[packet_id], now)
            self._sent.add(packet_id)
        return packet_id

    def subscribe(self, filters: Sequence[tuple[str, int]], now: float = 0.0) -> int | None:
        """Subscribe now (the SUBSCRIBE's packet id) or, while disconnected, on the next
        CONNACK (None). Filters are remembered and restored whenever the broker has lost
        the session."""
        for topic_filter, qos in filters:
            self.subscriptions[topic_filter] = qos
        if self.state is not ClientState.CONNECTED:
            self._deferred.update(f for f, _ in filters)
            return None
        return self._send_subscribe(filters, now)

    def _send_subscribe(self, filters: Sequence[tuple[str, int]], now: float = 0.0) -> int:
        packet_id = self._packet_id()
        self._pending[packet_id] = tuple(f for f, _ in filters)
        subscriptions = tuple(Subscription(f, qos=q) for f, q in filters)
        self._send(Subscribe(packet_id, subscriptions), now)
        return packet_id

    def unsubscribe(self, filters: Sequence[str], now: float = 0.0) -> int | None:
        for topic_filter in filters:
            self.subscriptions.pop(topic_filter, None)
            self._deferred.discard(topic_filter)
        if self.state is not ClientState.CONNECTED:
            return None
        packet_id = self._packet_id()
        self._pending[packet_id] = tuple(filters)
        self._send(Unsubscribe(packet_id, tuple(filters)), now)
        return packet_id

    def disconnect(self) -> None:
        self._send(Disconnect())
        self.state = ClientState.DISCONNECTED

    def connection_lost(self) -> None:
        """The transport is gone; unacknowledged QoS 1 publishes wait for the next one."""
        self.state = ClientState.DISCONNECTED
        for filters in self._pending.values():
            # Unconfirmed subscriptions are asked for again on the next connection.
            self._deferred.update(f for f in filters if f in self.subscriptions)
        self._pending.clear()
        self._outbox.clear()

    @property
    def unacked(self) -> int:
        return len(self._unacked)

    # keep-alive ----------------------------------------------------------------------------

    def tick(self, now: float) -> bool:
        """Send PINGREQ when the link was quiet for keep_alive seconds. False when the server
        failed to answer a ping within keep_alive: the transport should drop the connection."""
        if self.state is not ClientState.CONNECTED or self.keep_alive == 0:
            return True
        if self._ping_sent_at is not None:
            return now - self._ping_sent_at < self.keep_alive
        if now - self._last_sent >= self.keep_alive:
            self._ping_sent_at = now
            self._send(PingReq(), now)
        return True

    def next_tick(self) -> float | None:
        """When ``tick`` next has something to do (a ping to send or an answer overdue),
        on the clock ``tick`` is given; None while not connected or without keep-alive. A
        transport sleeps until then instead of polling: a fleet of thousands stays idle."""
        if self.state is not ClientState.CONNECTED or self.keep_alive == 0:
            return None
        if self._ping_sent_at is not None:
            return self._ping_sent_at + self.keep_alive
        return self._last_sent + self.keep_alive

    # receiving -----------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[ClientEvent]:
        """Events for the packets in ``data``; raises MqttError on a protocol violation."""
        events: list[ClientEvent] = []
        for packet in self._reader.feed(data):
            event = self._handle(packet)
            if event is not None:
                events.append(event)
        return events

    def _handle(self, packet: Packet) -> ClientEvent | None:
        if isinstance(packet, ConnAck):
            return self._connack(packet)
        if self.state is not ClientState.CONNECTED:
            raise MqttError(f"{type(packet).__name__} before CONNACK")
        if isinstance(packet, Publish):
            if packet.qos == 1 and packet.packet_id is not None:
                # Acknowledged when the transport next sends, i.e. after its handlers ran.
                self._send(PubAck(packet.packet_id))
            elif packet.qos > 1:
                raise MqttError("QoS 2 was never subscribed to")
            return MessageReceived(packet.topic, packet.payload, packet.qos, packet.retain)
        if isinstance(packet, PubAck):
            self._unacked.pop(packet.packet_id, None)
            self._sent.discard(packet.packet_id)
            return PublishAcked(packet.packet_id, packet.reason_code)
        if isinstance(packet, SubAck):
            filters = self._pending.pop(packet.packet_id, ())
            return Subscribed(packet.packet_id, filters, packet.reason_codes)
        if isinstance(packet, UnsubAck):
            self._pending.pop(packet.packet_id, None)
            return Unsubscribed(packet.packet_id)
        if isinstance(packet, PingResp):
            self._ping_sent_at = None
            return None
        if isinstance(packet, Disconnect):
            self.state = ClientState.DISCONNECTED
            return ServerDisconnected(packet.reason_code)
        raise MqttError(f"unexpected {type(packet).__name__} from the server")

    def _connack(self, packet: ConnAck) -> ClientEvent:
        if self.state is not ClientState.CONNECTING:
            raise MqttError("CONNACK without CONNECT")
        if packet.reason_code != 0:
            self.state = ClientState.DISCONNECTED
            return ConnectionRefused(packet.reason_code)
        self.state = ClientState.CONNECTED
        # A new session knows none of our filters; an old one lacks those added meanwhile.
        restore = self.subscriptions if not packet.session_present else self._deferred
        if restore:
            self._send_subscribe([(f, self.subscriptions[f]) for f in restore])
        self._deferred.clear()
        for packet_id, publish in self._unacked.items():
            self._send(replace(publish, dup=packet_id in self._sent))
            self._sent.add(packet_id)
        return Connected(packet.session_present)
