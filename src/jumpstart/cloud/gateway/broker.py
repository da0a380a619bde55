"""The gateway's routing core: sessions, subscriptions, retained messages, request handlers.

Transport-free. Connections (``ClientConnection``) hand it authorized publishes; it routes
them to matching sessions and passes requests on reserved topics to the handlers (shadow,
jobs), whose replies it routes the same way, or delivers straight to the requester when a
handler says so (AWS delivers jobs replies without a subscription, spec/cloud.md 3).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from jumpstart.cloud.gateway.presence import Presence
from jumpstart.cloud.gateway.retained import RetainedStore
from jumpstart.cloud.gateway.session import Outgoing, Session, SubscriptionIndex
from jumpstart.formats.mqtt import PropertyId
from jumpstart.formats.mqtt.packets import NO_PROPERTIES

if TYPE_CHECKING:
    from jumpstart.cloud.gateway.connection import ClientConnection
    from jumpstart.cloud.policy import Principal

__all__ = ["Broker", "BrokerLimits", "Delivery", "RequestHandler", "find_handler"]


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    # AWS IoT message broker quotas (spec/cloud.md 2.8, 2.10).
    max_payload: int = 128 * 1024
    max_session_expiry_s: int = 3600  # persistent sessions: one hour by default
    max_inflight_requests: int = 10  # shadow requests in flight per connection -> 429
    min_keep_alive_s: int = 0


@dataclass(frozen=True, slots=True)
class Delivery:
    """A handler's output: routed to subscribers, or sent to the session ``to_client`` (a
    session key) only."""

    topic: str
    payload: bytes
    to_client: str | None = None


class RequestHandler(Protocol):
    def accepts(self, topic: str) -> bool: ...

    def handle(
        self, topic: str, payload: bytes, principal: Principal, requester: str
    ) -> Sequence[Delivery]: ...

    def throttled(self, topic: str, payload: bytes, requester: str) -> Sequence[Delivery]:
        """The reply to a request over the in-flight limit."""


def find_handler(handlers: Sequence[RequestHandler], topic: str) -> RequestHandler | None:
    """The handler whose requests arrive on ``topic``, if any."""
    return next((handler for handler in handlers if handler.accepts(topic)), None)


class Broker:
    retains = True  # MessageBus: retained messages are kept (gateway/retained.py)

    def __init__(
        self,
        handlers: Sequence[RequestHandler] = (),
        limits: BrokerLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        retained_store: RetainedStore | None = None,
        owner_of: Callable[[str], str | None] = lambda _name: None,
    ) -> None:
        self.handlers = list(handlers)
        # The identity a client id belongs to when it names a registered thing or principal.
        self.owner_of = owner_of
        self.limits = limits or BrokerLimits()
        self.clock = clock
        self.sessions: dict[str, Session] = {}
        self.index = SubscriptionIndex()
        self.retained_store = retained_store
        stored = retained_store.load() if retained_store is not None else {}
        self.retained: dict[str, Outgoing] = {
            topic: Outgoing(topic, payload, qos, True) for topic, (payload, qos) in stored.items()
        }
        self.connections: set[ClientConnection] = set()
        # Principal name -> its connections that hold a session: "is this thing online?" in
        # one lookup, not a scan of every connection (the dashboard asks on each event).
        self.online: Counter[str] = Counter()
        self.routed = 0
        self.presence = Presence()
        # In-process listeners (the dashboard): they see every message as it is routed.
        self.observers: list[Callable[[str, bytes], None]] = []

    # sessions ----------------------------------------------------------------------------

    def attach(
        self,
        connection: ClientConnection,
        client_id: str,
        clean: bool,
        expiry_s: int,
        key: str | None = None,
    ) -> tuple[Session, bool]:
        """The session ``key`` (default: ``client_id``), taken over from an older connection,
        and whether it was present."""
        key = client_id if key is None else key
        session = self.sessions.get(key)
        if session is not None and session.connection is not None:
            session.connection.taken_over()
        if session is not None and (clean or session.expired(self.clock())):
            self.discard(session)
            session = None
        present = session is not None
        if session is None:
            session = Session(client_id, expiry_s, key)
            self.sessions[key] = session
        session.expiry_s = expiry_s
        session.connection = connection
        session.disconnected_at = None
        return session, present

    def note_online(self, principal: str) -> None:
        self.online[principal] += 1

    def note_offline(self, principal: str) -> None:
        self.online[principal] -= 1
        if self.online[principal] <= 0:
            del self.online[principal]

    def detach(self, session: Session) -> None:
        session.connection = None
        session.disconnected_at = self.clock()
        if session.expiry_s == 0:
            self.discard(session)

    def discard(self, session: Session) -> None:
        self.index.remove_session(session)
        if self.sessions.get(session.key) is session:
            del self.sessions[session.key]

    def expire_sessions(self) -> int:
        now = self.clock()
        expired = [s for s in self.sessions.values() if s.expired(now)]
        for session in expired:
            self.discard(session)
        return len(expired)

    # routing -----------------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        origin: Session | None = None,
    ) -> int:
        """Route to every matching subscription; the number of sessions reached."""
        for observer in self.observers:
            observer(topic, payload)
        if retain:
            self._retain(topic, payload, qos)
        reached: dict[str, tuple[Session, int, int | None, bool]] = {}
        for _topic_filter, session in self.index.matches(topic):
            options = session.subscriptions.get(_topic_filter)
            if options is None or (options.no_local and session is origin):
                continue
            granted = min(qos, options.qos)
            previous = reached.get(session.key)
            ids = options.subscription_id
            if previous is None or granted > previous[1]:
                reached[session.key] = (
                    session,
                    granted,
                    ids,
                    retain and options.retain_as_published,
                )
        for session, granted, sub_id, keep_retain in reached.values():
            properties = (
                {PropertyId.SUBSCRIPTION_IDENTIFIER: (sub_id,)} if sub_id else NO_PROPERTIES
            )
            self.send(session, Outgoing(topic, payload, granted, keep_retain, properties))
        self.routed += 1
        return len(reached)

    def _retain(self, topic: str, payload: bytes, qos: int) -> None:
        store = self.retained_store
        if payload:
            self.retained[topic] = Outgoing(topic, payload, qos, True)
            if store is not None:
                store.put(topic, payload, qos)
        elif self.retained.pop(topic, None) is not None and store is not None:
            store.delete(topic)

    def send(self, session: Session, message: Outgoing) -> None:
        if session.connection is not None:
            session.connection.deliver(message)
        elif message.qos > 0:
            session.queue.append(message)

    def deliver_to(self, requester: str, topic: str, payload: bytes) -> None:
        """Send to one session (its key) whether or not it subscribed (AWS's jobs replies),
        at the QoS of its best matching subscription (0 without one)."""
        session = self.sessions.get(requester)
        if session is None or session.connection is None:
            return
        qos = 0
        for topic_filter, subscriber in self.index.matches(topic):
            options = subscriber.subscriptions.get(topic_filter)
            if subscriber is session and options is not None:
                qos = max(qos, options.qos)
        session.connection.deliver(Outgoing(topic, payload, qos))

    def dispatch(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            if delivery.to_client is not None:
                self.deliver_to(delivery.to_client, delivery.topic, delivery.payload)
            else:
                self.publish(delivery.topic, delivery.payload)

    def publish_request(
        self, topic: str, payload: bytes, qos: int, retain: bool, principal: Principal
    ) -> None:
        """A publish from outside MQTT (REST): routed, and served when it is a request."""
        self.publish(topic, payload, qos, retain)
        handler = self.handler_for(topic)
        if handler is not None:
            # No MQTT client asked, so replies meant for the requester go nowhere.
            self.dispatch(handler.handle(topic, payload, principal, ""))

    def health(self) -> tuple[bool, dict[str, object]]:
        return True, {"broker": "embedded", "connections": len(self.connections)}

    def handler_for(self, topic: str) -> RequestHandler | None:
        return find_handler(self.handlers, topic)

    def drop_revoked(self, revoked: set[str]) -> int:
        """Close every connection opened with a certificate in ``revoked``; how many."""
        doomed = [
            c
            for c in self.connections
            if c.principal is not None and c.principal.certificate_id in revoked
        ]
        for connection in doomed:
            connection.revoke()
        return len(doomed)

    def check_keep_alive(self) -> None:
        now = self.clock()
        for connection in list(self.connections):
            connection.check_keep_alive(now)
