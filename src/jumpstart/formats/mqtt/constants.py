"""MQTT 3.1.1 and 5.0 codes: packet types, reason codes, property identifiers.

Numbers from the OASIS standards: MQTT 3.1.1 (2014) section 2.2 and 3.x, MQTT 5.0 (2019)
section 2.1.2 (packet types), 2.4 (reason codes) and 2.2.2.2 (properties).
"""

from __future__ import annotations

from enum import Enum, IntEnum

__all__ = [
    "PROPERTY_SPECS",
    "ConnackReturnCode",
    "PacketType",
    "PropertyId",
    "PropertyType",
    "ProtocolVersion",
    "ReasonCode",
]


class ProtocolVersion(IntEnum):
    """The CONNECT protocol level byte."""

    MQTT311 = 4
    MQTT5 = 5


class PacketType(IntEnum):
    """The upper four bits of the fixed header's first byte."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15  # MQTT 5 only


class ConnackReturnCode(IntEnum):
    """MQTT 3.1.1 CONNACK return codes (section 3.2.2.3)."""

    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USERNAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


class ReasonCode(IntEnum):
    """MQTT 5 reason codes (section 2.4); values below 0x80 are successes."""

    SUCCESS = 0x00  # also NORMAL_DISCONNECTION and GRANTED_QOS_0
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    DISCONNECT_WITH_WILL = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    CONTINUE_AUTHENTICATION = 0x18
    RE_AUTHENTICATE = 0x19
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USER_NAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_BUSY = 0x89
    BANNED = 0x8A
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_IDENTIFIER_IN_USE = 0x91
    PACKET_IDENTIFIER_NOT_FOUND = 0x92
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    MESSAGE_RATE_TOO_HIGH = 0x96
    QUOTA_EXCEEDED = 0x97
    ADMINISTRATIVE_ACTION = 0x98
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    USE_ANOTHER_SERVER = 0x9C
    SERVER_MOVED = 0x9D
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    CONNECTION_RATE_EXCEEDED = 0x9F
    MAXIMUM_CONNECT_TIME = 0xA0
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2


class PropertyType(Enum):
    """How a property value is encoded (MQTT 5 section 1.5)."""

    BYTE = "byte"
    TWO_BYTE = "u16"
    FOUR_BYTE = "u32"
    VARINT = "varint"
    STRING = "utf8"
    BINARY = "binary"
    STRING_PAIR = "utf8-pair"


class PropertyId(IntEnum):
    """MQTT 5 property identifiers (section 2.2.2.2)."""

    PAYLOAD_FORMAT_INDICATOR = 0x01
    MESSAGE_EXPIRY_INTERVAL = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTHENTICATION_METHOD = 0x15
    AUTHENTICATION_DATA = 0x16
    REQUEST_PROBLEM_INFORMATION = 0x17
    WILL_DELAY_INTERVAL = 0x18
    REQUEST_RESPONSE_INFORMATION = 0x19
    RESPONSE_INFORMATION = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A


_P = PacketType
_ACKS = frozenset({_P.PUBACK, _P.PUBREC, _P.PUBREL, _P.PUBCOMP})
_REASONED = _ACKS | {_P.CONNACK, _P.SUBACK, _P.UNSUBACK, _P.DISCONNECT, _P.AUTH}
# "WILL" stands for the will properties inside CONNECT's payload.
WILL = "will"

# (type, packets where it may appear) per identifier: MQTT 5 table 2-4.
PROPERTY_SPECS: dict[PropertyId, tuple[PropertyType, frozenset[object]]] = {
    PropertyId.PAYLOAD_FORMAT_INDICATOR: (PropertyType.BYTE, frozenset({_P.PUBLISH, WILL})),
    PropertyId.MESSAGE_EXPIRY_INTERVAL: (PropertyType.FOUR_BYTE, frozenset({_P.PUBLISH, WILL})),
    PropertyId.CONTENT_TYPE: (PropertyType.STRING, frozenset({_P.PUBLISH, WILL})),
    PropertyId.RESPONSE_TOPIC: (PropertyType.STRING, frozenset({_P.PUBLISH, WILL})),
    PropertyId.CORRELATION_DATA: (PropertyType.BINARY, frozenset({_P.PUBLISH, WILL})),
    PropertyId.SUBSCRIPTION_IDENTIFIER: (
        PropertyType.VARINT,
        frozenset({_P.PUBLISH, _P.SUBSCRIBE}),
    ),
    PropertyId.SESSION_EXPIRY_INTERVAL: (
        PropertyType.FOUR_BYTE,
        frozenset({_P.CONNECT, _P.CONNACK, _P.DISCONNECT}),
    ),
    PropertyId.ASSIGNED_CLIENT_IDENTIFIER: (PropertyType.STRING, frozenset({_P.CONNACK})),
    PropertyId.SERVER_KEEP_ALIVE: (PropertyType.TWO_BYTE, frozenset({_P.CONNACK})),
    PropertyId.AUTHENTICATION_METHOD: (
        PropertyType.STRING,
        frozenset({_P.CONNECT, _P.CONNACK, _P.AUTH}),
    ),
    PropertyId.AUTHENTICATION_DATA: (
        PropertyType.BINARY,
        frozenset({_P.CONNECT, _P.CONNACK, _P.AUTH}),
    ),
    PropertyId.REQUEST_PROBLEM_INFORMATION: (PropertyType.BYTE, frozenset({_P.CONNECT})),
    PropertyId.WILL_DELAY_INTERVAL: (PropertyType.FOUR_BYTE, frozenset({WILL})),
    PropertyId.REQUEST_RESPONSE_INFORMATION: (PropertyType.BYTE, frozenset({_P.CONNECT})),
    PropertyId.RESPONSE_INFORMATION: (PropertyType.STRING, frozenset({_P.CONNACK})),
    PropertyId.SERVER_REFERENCE: (PropertyType.STRING, frozenset({_P.CONNACK, _P.DISCONNECT})),
    PropertyId.REASON_STRING: (PropertyType.STRING, frozenset(_REASONED)),
    PropertyId.RECEIVE_MAXIMUM: (PropertyType.TWO_BYTE, frozenset({_P.CONNECT, _P.CONNACK})),
    PropertyId.TOPIC_ALIAS_MAXIMUM: (PropertyType.TWO_BYTE, frozenset({_P.CONNECT, _P.CONNACK})),
    PropertyId.TOPIC_ALIAS: (PropertyType.TWO_BYTE, frozenset({_P.PUBLISH})),
    PropertyId.MAXIMUM_QOS: (PropertyType.BYTE, frozenset({_P.CONNACK})),
    PropertyId.RETAIN_AVAILABLE: (PropertyType.BYTE, frozenset({_P.CONNACK})),
    PropertyId.USER_PROPERTY: (PropertyType.STRING_PAIR, frozenset(set(_P) | {WILL})),
    PropertyId.MAXIMUM_PACKET_SIZE: (PropertyType.FOUR_BYTE, frozenset({_P.CONNECT, _P.CONNACK})),
    PropertyId.WILDCARD_SUBSCRIPTION_AVAILABLE: (PropertyType.BYTE, frozenset({_P.CONNACK})),
    PropertyId.SUBSCRIPTION_IDENTIFIER_AVAILABLE: (PropertyType.BYTE, frozenset({_P.CONNACK})),
    PropertyId.SHARED_SUBSCRIPTION_AVAILABLE: (PropertyType.BYTE, frozenset({_P.CONNACK})),
}
