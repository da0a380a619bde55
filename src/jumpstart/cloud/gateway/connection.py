"""One client connection to the gateway, sans-I/O: bytes in, bytes out through a ``Link``.

Theory of the connection (AWS IoT Core's broker behaviour, spec/cloud.md 2.10, 5.4):

* The peer is already authenticated by its TLS client certificate (``principal``); None means
  the certificate is unknown or revoked: CONNACK "not authorized", then close. User names
  (awsiotsdk sends ``?SDK=...`` metrics there) are ignored.
* A forbidden PUBLISH, QoS 2, RETAIN on a reserved topic, a payload over 128 KB or a
  malformed packet closes the connection (MQTT 5: DISCONNECT with the reason first). A
  forbidden SUBSCRIBE is answered with failure code 0x80 (MQTT 5: 0x87) and nothing else.
* Requests to the service (shadow, jobs) are acknowledged, routed like any publish, and
  queued; ``process_requests`` serves the queue after each read, so a burst of more than 10
  requests in flight gets 429 for the excess.
* Keep-alive: silence for 1.5 x the keep-alive interval closes the connection.
"""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Protocol

from jumpstart.cloud.gateway.broker import Broker, RequestHandler
from jumpstart.cloud.gateway.presence import DisconnectReason
from jumpstart.cloud.gateway.session import (
    MAX_INFLIGHT,
    Outgoing,
    Session,
    SubscriptionOptions,
    session_key,
)
from jumpstart.cloud.policy import Principal
from jumpstart.formats.mqtt import (
    Auth,
    ConnAck,
    ConnackReturnCode,
    Connect,
    Disconnect,
    MqttError,
    Packet,
    PacketReader,
    PingReq,
    PingResp,
    PropertyId,
    ProtocolVersion,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    ReasonCode,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    encode_packet,
)
from jumpstart.formats.mqtt.packets import NO_PROPERTIES, Will
from jumpstart.formats.mqtt.topics import is_shared

__all__ = ["ClientConnection", "Link"]

# Fixed header (5) + topic length (2) + a 7-slash topic of names (~400) + properties: room
# around the 128 KB payload quota before a packet counts as too large.
PACKET_OVERHEAD = 4096
KEEP_ALIVE_GRACE = 1.5  # MQTT 3.1.1 section 3.1.2.10
SUBACK_FAILURE_311 = 0x80


class Link(Protocol):
    """Where a connection's bytes go (a TLS transport, or a test's buffer)."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class State(Enum):
    AWAIT_CONNECT = "await-connect"
    CONNECTED = "connected"
    CLOSED = "closed"


class ClientConnection:
    __slots__ = (
        "broker",
        "client_id",
        "ending",
        "keep_alive_s",
        "last_seen",
        "link",
        "peer",
        "principal",
        "reader",
        "requests",
        "session",
        "session_id",
        "state",
        "version",
        "will",
    )

    def __init__(
        self, broker: Broker, link: Link, principal: Principal | None, peer: str = ""
    ) -> None:
        self.broker = broker
        self.link = link
        self.principal = principal
        self.peer = peer  # the client's IP address, for lifecycle events
        self.session_id = uuid.uuid4().hex  # AWS's sessionIdentifier
        # Why the connection ends (the lifecycle event's disconnectReason).
        self.ending = DisconnectReason.CONNECTION_LOST
        self.reader = PacketReader(max_packet_size=broker.limits.max_payload + PACKET_OVERHEAD)
        self.state = State.AWAIT_CONNECT
        self.version = ProtocolVersion.MQTT311
        self.session: Session | None = None
        self.client_id = ""
        self.keep_alive_s = 0
        self.last_seen = broker.clock()
        self.will: Will | None = None
        self.requests: list[tuple[RequestHandler, str, bytes]] = []
        broker.connections.add(self)

    # input -------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self.state is State.CLOSED:
            return
        self.last_seen = self.broker.clock()
        try:
            for packet in self.reader.feed(data):
                self._handle(packet)
                if self._closed():
                    return
        except MqttError as err:
            self.ending = DisconnectReason.CLIENT_ERROR
            self._fail(err.reason)
        self.process_requests()

    def process_requests(self) -> None:
        """Serve the requests of the last read; over the in-flight limit -> 429."""
        requests, self.requests = self.requests, []
        limit = self.broker.limits.max_inflight_requests
        for count, (handler, topic, payload) in enumerate(requests):
            if self.state is State.CLOSED or self.principal is None:
                return
            if count >= limit:
                deliveries = handler.throttled(topic, payload, self._requester)
            else:
                deliveries = handler.handle(topic, payload, self.principal, self._requester)
            self.broker.dispatch(deliveries)

    @property
    def _requester(self) -> str:
        """Where replies meant for this client go (its session's key)."""
        return self.session.key if self.session is not None else ""

    def connection_lost(self) -> None:
        """The transport closed; a will is published unless DISCONNECT came first."""
        if self.state is State.CLOSED:
            return
        self._close(publish_will=True)

    def check_keep_alive(self, now: float) -> None:
        if self.state is State.AWAIT_CONNECT and now - self.last_seen > 30:
            self._close(publish_will=False)  # no CONNECT within 30 s
        elif self.keep_alive_s and now - self.last_seen > KEEP_ALIVE_GRACE * self.keep_alive_s:
            self.ending = DisconnectReason.MQTT_KEEP_ALIVE_TIMEOUT
            self._fail(ReasonCode.KEEP_ALIVE_TIMEOUT)

    def revoke(self) -> None:
        """The certificate was revoked: end the connection (MQTT 5: with the reason)."""
        self.ending = DisconnectReason.AUTH_ERROR
        self._fail(ReasonCode.NOT_AUTHORIZED)

    def taken_over(self) -> None:
        """Another connection claimed this client id (AWS drops the older one)."""
        if self.session is not None and self.principal is not None:
            self.broker.note_offline(self.principal.name)
        self.session = None  # the new connection owns it now
        self.ending = DisconnectReason.DUPLICATE_CLIENTID
        self._fail(ReasonCode.SESSION_TAKEN_OVER)

    # output ------------------------------------------------------------------------------

    def _send(self, packet: Packet) -> None:
        self.link.write(encode_packet(packet, self.version))

    def deliver(self, message: Outgoing) -> None:
        session = self.session
        if session is None or self.state is not State.CONNECTED:
            return
        if message.qos == 0:
            self._send(
                Publish(
                    message.topic,
                    message.payload,
                    0,
                    message.retain,
                    properties=message.properties if self._v5 else NO_PROPERTIES,
                )
            )
            return
        if len(session.inflight) >= MAX_INFLIGHT:
            session.queue.append(message)
            return
        packet_id = session.allocate_packet_id()
        session.inflight[packet_id] = message
        self._send_publish(message, packet_id, dup=False)

    def _send_publish(self, message: Outgoing, packet_id: int, dup: bool) -> None:
        properties = message.properties if self._v5 else NO_PROPERTIES
        self._send(
            Publish(message.topic, message.payload, 1, message.retain, dup, packet_id, properties)
        )

    @property
    def _v5(self) -> bool:
        return self.version is ProtocolVersion.MQTT5

    def _drain(self) -> None:
        session = self.session
        while session is not None and session.queue and len(session.inflight) < MAX_INFLIGHT:
            self.deliver(session.queue.popleft())

    # packets -----------------------------------------------------------------------------

    def _handle(self, packet: Packet) -> None:
        if isinstance(packet, Connect):
            self._connect(packet)
            return
        if self.state is not State.CONNECTED:
            raise MqttError("no CONNECT yet", ReasonCode.PROTOCOL_ERROR)
        match packet:
            case Publish():
                self._publish(packet)
            case PubAck():
                assert self.session is not None
                self.session.inflight.pop(packet.packet_id, None)
                self._drain()
            case Subscribe():
                self._subscribe(packet)
            case Unsubscribe():
                self._unsubscribe(packet)
            case PingReq():
                self._send(PingResp())
            case Disconnect():
                if packet.properties.get(PropertyId.SESSION_EXPIRY_INTERVAL) is not None and (
                    self.session is not None
                ):
                    expiry = packet.properties[PropertyId.SESSION_EXPIRY_INTERVAL]
                    assert isinstance(expiry, int)
                    self.session.expiry_s = min(expiry, self.broker.limits.max_session_expiry_s)
                self.ending = DisconnectReason.CLIENT_INITIATED_DISCONNECT
                self._close(publish_will=packet.reason_code == ReasonCode.DISCONNECT_WITH_WILL)
            case PubRec() | PubRel() | PubComp():
                raise MqttError("QoS 2 is not supported", ReasonCode.QOS_NOT_SUPPORTED)
            case Auth():
                raise MqttError("no extended authentication", ReasonCode.BAD_AUTHENTICATION_METHOD)
            case _:
                raise MqttError(
                    f"a client does not send {type(packet).__name__}", ReasonCode.PROTOCOL_ERROR
                )

    def _connect(self, packet: Connect) -> None:
        self.version = packet.protocol_version
        v5 = self._v5
        principal = self.principal
        if principal is None or not principal.may_connect_as(
            packet.client_id or principal.name, self.broker.owner_of(packet.client_id)
        ):
            code = ReasonCode.NOT_AUTHORIZED if v5 else ConnackReturnCode.NOT_AUTHORIZED
            self._send(ConnAck(False, code))
            self._close(publish_will=False)
            return
        client_id, assigned = packet.client_id, False
        if not client_id:
            if not packet.clean_start and not v5:
                self._send(ConnAck(False, ConnackReturnCode.IDENTIFIER_REJECTED))
                self._close(publish_will=False)
                return
            client_id, assigned = f"{principal.name}-{id(self):x}", True
        limits = self.broker.limits
        if v5:
            requested = packet.properties.get(PropertyId.SESSION_EXPIRY_INTERVAL, 0)
            assert isinstance(requested, int)
            expiry = min(requested, limits.max_session_expiry_s)
        else:
            expiry = 0 if packet.clean_start else limits.max_session_expiry_s
        self.client_id = client_id
        self.keep_alive_s = packet.keep_alive
        self.will = packet.will
        session, present = self.broker.attach(
            self, client_id, packet.clean_start, expiry, session_key(principal.name, client_id)
        )
        self.session = session
        self.broker.note_online(principal.name)
        self.state = State.CONNECTED
        properties: dict[PropertyId, object] = {}
        if v5:
            properties = {
                PropertyId.MAXIMUM_QOS: 1,
                PropertyId.RETAIN_AVAILABLE: 1,
                PropertyId.SHARED_SUBSCRIPTION_AVAILABLE: 0,
                PropertyId.MAXIMUM_PACKET_SIZE: limits.max_payload + PACKET_OVERHEAD,
            }
            if assigned:
                properties[PropertyId.ASSIGNED_CLIENT_IDENTIFIER] = client_id
            if expiry != packet.properties.get(PropertyId.SESSION_EXPIRY_INTERVAL, 0):
                properties[PropertyId.SESSION_EXPIRY_INTERVAL] = expiry
        self._send(ConnAck(present, 0, properties))  # type: ignore[arg-type]
        self._announce(self.broker.presence.connected(*self._presence_ids()))
        for packet_id, message in list(session.inflight.items()):
            self._send_publish(message, packet_id, dup=True)
        self._drain()

    def _presence_ids(self) -> tuple[str, str, str, str]:
        principal = self.principal.certificate_id if self.principal is not None else ""
        return self.client_id, self.session_id, principal, self.peer

    def _announce(self, event: tuple[str, bytes] | None) -> None:
        """Publish a lifecycle event (as the service: reserved topic, QoS 1)."""
        if event is not None:
            self.broker.publish(event[0], event[1], 1, False)

    def _publish(self, packet: Publish) -> None:
        principal, session = self.principal, self.session
        assert principal is not None
        assert session is not None
        if packet.qos == 2:
            raise MqttError("QoS 2 is not supported", ReasonCode.QOS_NOT_SUPPORTED)
        if PropertyId.TOPIC_ALIAS in packet.properties:
            raise MqttError("topic aliases are not accepted", ReasonCode.TOPIC_ALIAS_INVALID)
        if len(packet.payload) > self.broker.limits.max_payload:
            raise MqttError("payload over 128 KB", ReasonCode.PACKET_TOO_LARGE)
        if not principal.may_publish(packet.topic):
            raise MqttError(
                f"not authorized to publish to {packet.topic}", ReasonCode.NOT_AUTHORIZED
            )
        if packet.retain and packet.topic.startswith("$"):
            raise MqttError("no RETAIN on reserved topics", ReasonCode.RETAIN_NOT_SUPPORTED)
        if packet.qos == 1:
            assert packet.packet_id is not None
            self._send(PubAck(packet.packet_id))
        self.broker.publish(packet.topic, packet.payload, packet.qos, packet.retain, session)
        handler = self.broker.handler_for(packet.topic)
        if handler is not None:
            self.requests.append((handler, packet.topic, packet.payload))

    def _subscribe(self, packet: Subscribe) -> None:
        principal, session = self.principal, self.session
        assert principal is not None
        assert session is not None
        v5 = self._v5
        ids = packet.properties.get(PropertyId.SUBSCRIPTION_IDENTIFIER, ())
        sub_id = ids[0] if isinstance(ids, tuple) and ids else None
        codes: list[int] = []
        fresh: list[tuple[str, int]] = []
        for sub in packet.subscriptions:
            if is_shared(sub.topic_filter):
                codes.append(
                    ReasonCode.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED if v5 else SUBACK_FAILURE_311
                )
                continue
            if not principal.may_subscribe(sub.topic_filter):
                codes.append(ReasonCode.NOT_AUTHORIZED if v5 else SUBACK_FAILURE_311)
                continue
            granted = min(sub.qos, 1)
            is_new = sub.topic_filter not in session.subscriptions
            session.subscriptions[sub.topic_filter] = SubscriptionOptions(
                granted,
                sub.no_local,
                sub.retain_as_published,
                sub_id,  # type: ignore[arg-type]
            )
            self.broker.index.add(sub.topic_filter, session)
            codes.append(granted)
            if sub.retain_handling == 0 or (sub.retain_handling == 1 and is_new):
                fresh.append((sub.topic_filter, granted))
        self._send(SubAck(packet.packet_id, tuple(codes)))
        # AWS delivers retained messages to exact (wildcard-free) subscriptions only.
        for topic_filter, granted in fresh:
            retained = self.broker.retained.get(topic_filter)
            if retained is not None:
                self.deliver(
                    Outgoing(topic_filter, retained.payload, min(granted, retained.qos), True)
                )

    def _unsubscribe(self, packet: Unsubscribe) -> None:
        session = self.session
        assert session is not None
        codes = []
        for topic_filter in packet.topic_filters:
            existed = session.subscriptions.pop(topic_filter, None) is not None
            self.broker.index.remove(topic_filter, session)
            codes.append(ReasonCode.SUCCESS if existed else ReasonCode.NO_SUBSCRIPTION_EXISTED)
        self._send(UnsubAck(packet.packet_id, tuple(codes) if self._v5 else ()))

    # closing -----------------------------------------------------------------------------

    def _fail(self, reason: ReasonCode) -> None:
        if self.state is State.CONNECTED and self._v5:
            self._send(Disconnect(reason))
        self._close(publish_will=True)

    def _close(self, publish_will: bool) -> None:
        if self.state is State.CLOSED:
            return
        was_connected = self.state is State.CONNECTED
        self.state = State.CLOSED
        self.broker.connections.discard(self)
        session, self.session = self.session, None
        if session is not None and self.principal is not None:
            self.broker.note_offline(self.principal.name)
        if session is not None and session.connection is self:
            self.broker.detach(session)
        will, self.will = self.will, None
        if (
            was_connected
            and publish_will
            and will is not None
            and self.principal is not None
            and self.principal.may_publish(will.topic)
            and will.qos < 2
            and not (will.retain and will.topic.startswith("$"))
        ):
            self.broker.publish(will.topic, will.payload, will.qos, will.retain)
        if was_connected:
            ids = self._presence_ids()
            self._announce(self.broker.presence.disconnected(*ids, self.ending))
        self.link.close()

    def _closed(self) -> bool:
        return self.state is State.CLOSED
