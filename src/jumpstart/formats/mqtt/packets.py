"""MQTT control packets as frozen values, one class per packet type (3.1.1 and 5.0).

Fields that only MQTT 5 carries (reason codes on acknowledgements, properties) keep their
defaults under 3.1.1 and the encoder leaves them out. Properties are a mapping from
``PropertyId`` to the value; the two identifiers that may repeat (USER_PROPERTY,
SUBSCRIPTION_IDENTIFIER) map to tuples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from jumpstart.formats.mqtt.constants import PacketType, PropertyId, ProtocolVersion

__all__ = [
    "Auth",
    "ConnAck",
    "Connect",
    "Disconnect",
    "Packet",
    "PingReq",
    "PingResp",
    "Properties",
    "PropertyValue",
    "PubAck",
    "PubComp",
    "PubRec",
    "PubRel",
    "Publish",
    "SubAck",
    "Subscribe",
    "Subscription",
    "UnsubAck",
    "Unsubscribe",
    "Will",
]

PropertyValue = int | str | bytes | tuple[tuple[str, str], ...] | tuple[int, ...]
Properties = Mapping[PropertyId, PropertyValue]
NO_PROPERTIES: Properties = MappingProxyType({})


def _props() -> Properties:
    return NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = field(default_factory=_props)


@dataclass(frozen=True, slots=True)
class Connect:
    TYPE = PacketType.CONNECT
    client_id: str
    protocol_version: ProtocolVersion = ProtocolVersion.MQTT311
    clean_start: bool = True
    keep_alive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: Properties = field(default_factory=_props)


@dataclass(frozen=True, slots=True)
class ConnAck:
    TYPE = PacketType.CONNACK
    session_present: bool = False
    reason_code: int = 0  # a ConnackReturnCode under 3.1.1, a ReasonCode under 5
    properties: Properties = field(default_factory=_props)


@dataclass(frozen=True, slots=True)
class Publish:
    TYPE = PacketType.PUBLISH
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None  # present exactly when qos > 0
    properties: Properties = field(default_factory=_props)


@dataclass(frozen=True, slots=True)
class _PublishAck:
    """The four QoS acknowledgements share one layout (MQTT 5 section 3.4-3.7)."""

    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=_props)


@dataclass(frozen=True, slots=True)
class PubAck(_PublishAck):
    TYPE = PacketType.PUBACK


@dataclass(frozen=True, slots=True)
class PubRec(_PublishAck):
    TYPE = PacketType.PUBREC


@dataclass(frozen=True, slots=True)
class PubRel(_PublishAck):
    TYPE = PacketType.PUBREL


@dataclass(frozen=True, slots=True)
class PubComp(_PublishAck):
    TYPE = PacketType.PUBCOMP


@dataclass(frozen=True, slots=True)
class Subscription:
    """One topic filter of a SUBSCRIBE with its options byte."""

    topic_filter: str
    qos: int = 0
    no_local: bool = False  # MQTT 5 only, as are the two below
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass(frozen=True, slots=True)
class Subscribe:
    TYPE = PacketType.SUBSCRIBE
    packet_id: int
    subscriptions: tuple[Subscription, ...]
    properties: Properties = field(default_factory=_props)


@dataclass(frozen=True, slots=True)
class SubAck:
    TYPE = PacketType.SUBACK
    packet_id: int
    reason_codes: tuple[int, ...]
    properties: Properties = field(default_factory=_props)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    TYPE = PacketType.UNSUBSCRIBE
    packet_id: int
    topic_filters: tuple[str, ...]
    properties: Properties = field(default_factory=_props)


@dataclass(frozen=True, slots=True)
class UnsubAck:
    TYPE = PacketType.UNSUBACK
    packet_id: int
    reason_codes: tuple[int, ...] = ()  # MQTT 5 only; 3.1.1's UNSUBACK has no payload
    properties: Properties = field(default_factory=_props)


@dataclass(frozen=True, slots=True)
class PingReq:
    TYPE = PacketType.PINGREQ


@dataclass(frozen=True, slots=True)
class PingResp:
    TYPE = PacketType.PINGRESP


@dataclass(frozen=True, slots=True)
class _Reasoned:
    """DISCONNECT and AUTH: a reason code and properties, both optional on the wire."""

    reason_code: int = 0
    properties: Properties = field(default_factory=_props)


@dataclass(frozen=True, slots=True)
class Disconnect(_Reasoned):
    TYPE = PacketType.DISCONNECT


@dataclass(frozen=True, slots=True)
class Auth(_Reasoned):
    """MQTT 5 only: extended authentication exchange."""

    TYPE = PacketType.AUTH


Packet = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | PubRec
    | PubRel
    | PubComp
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
    | Auth
)
