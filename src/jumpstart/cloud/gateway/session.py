"""MQTT sessions and the subscription index of the gateway.

A session outlives its connection when the client asked for it (3.1.1 clean session 0, or
MQTT 5 session expiry > 0): its subscriptions keep collecting QoS 1 messages, bounded by
``MAX_QUEUED`` (the oldest is dropped first), until it expires (AWS default: one hour).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jumpstart.formats.mqtt import Properties, topic_matches
from jumpstart.formats.mqtt.packets import NO_PROPERTIES

if TYPE_CHECKING:
    from jumpstart.cloud.gateway.connection import ClientConnection

__all__ = [
    "MAX_QUEUED",
    "Outgoing",
    "Session",
    "SubscriptionIndex",
    "SubscriptionOptions",
    "session_key",
]

# Messages kept for an offline persistent session; beyond this the oldest go first.
MAX_QUEUED = 1000
# QoS 1 messages sent and not yet acknowledged before the rest wait (backpressure).
MAX_INFLIGHT = 100


@dataclass(frozen=True, slots=True)
class SubscriptionOptions:
    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    subscription_id: int | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message on its way to one session."""

    topic: str
    payload: bytes
    qos: int
    retain: bool = False
    properties: Properties = field(default_factory=lambda: NO_PROPERTIES)


def session_key(identity: str, client_id: str) -> str:
    """Sessions belong to an identity and a client id: one identity never resumes or takes
    over another's session, whatever client id it sends. Principal names have no ``/``."""
    return f"{identity}/{client_id}"


class Session:
    __slots__ = (
        "client_id",
        "connection",
        "disconnected_at",
        "expiry_s",
        "inflight",
        "key",
        "next_packet_id",
        "queue",
        "subscriptions",
    )

    def __init__(self, client_id: str, expiry_s: int, key: str | None = None) -> None:
        self.client_id = client_id
        self.key = key if key is not None else client_id
        self.expiry_s = expiry_s
        self.subscriptions: dict[str, SubscriptionOptions] = {}
        self.queue: deque[Outgoing] = deque(maxlen=MAX_QUEUED)
        self.inflight: dict[int, Outgoing] = {}
        self.next_packet_id = 1
        self.connection: ClientConnection | None = None
        self.disconnected_at: float | None = None

    def allocate_packet_id(self) -> int:
        for _ in range(0xFFFF):
            packet_id = self.next_packet_id
            self.next_packet_id = packet_id % 0xFFFF + 1
            if packet_id not in self.inflight:
                return packet_id
        raise RuntimeError("no free packet identifier")  # pragma: no cover (MAX_INFLIGHT)

    def expired(self, now: float) -> bool:
        return (
            self.connection is None
            and self.disconnected_at is not None
            and now - self.disconnected_at >= self.expiry_s
        )


class SubscriptionIndex:
    """Filter -> subscribed sessions; exact filters by dict lookup, wildcards scanned."""

    __slots__ = ("_exact", "_wild")

    def __init__(self) -> None:
        self._exact: dict[str, dict[str, Session]] = {}
        self._wild: dict[str, dict[str, Session]] = {}

    def add(self, topic_filter: str, session: Session) -> None:
        table = self._wild if "+" in topic_filter or "#" in topic_filter else self._exact
        table.setdefault(topic_filter, {})[session.key] = session

    def remove(self, topic_filter: str, session: Session) -> None:
        table = self._wild if "+" in topic_filter or "#" in topic_filter else self._exact
        subscribers = table.get(topic_filter)
        if subscribers is not None:
            subscribers.pop(session.key, None)
            if not subscribers:
                del table[topic_filter]

    def remove_session(self, session: Session) -> None:
        for topic_filter in list(session.subscriptions):
            self.remove(topic_filter, session)

    def matches(self, topic: str) -> Iterator[tuple[str, Session]]:
        """(filter, session) for every subscription matching ``topic``."""
        for session in self._exact.get(topic, {}).values():
            yield topic, session
        for topic_filter, subscribers in self._wild.items():
            if topic_matches(topic_filter, topic):
                for session in subscribers.values():
                    yield topic_filter, session
