"""AWS IoT lifecycle events: ``$aws/events/presence/connected|disconnected/<clientId>``.

The message broker publishes one when a client's CONNECT is accepted and one when that
connection ends, with AWS's JSON fields (clientId, timestamp in ms, eventType,
sessionIdentifier, principalIdentifier, ipAddress, versionNumber; disconnects add
clientInitiatedDisconnect and disconnectReason). ``versionNumber`` grows with every event of
a client id, so a subscriber can order events that arrive out of order. Client ids with ``+``
or ``#`` get no events (AWS: they cannot be topic levels).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from enum import Enum

__all__ = ["PRESENCE_PREFIX", "DisconnectReason", "Presence"]

PRESENCE_PREFIX = "$aws/events/presence/"


class DisconnectReason(Enum):
    """AWS's ``disconnectReason`` values that this broker produces."""

    AUTH_ERROR = "AUTH_ERROR"  # e.g. the certificate was revoked
    CLIENT_INITIATED_DISCONNECT = "CLIENT_INITIATED_DISCONNECT"
    CLIENT_ERROR = "CLIENT_ERROR"  # a protocol error, an oversized packet...
    CONNECTION_LOST = "CONNECTION_LOST"
    DUPLICATE_CLIENTID = "DUPLICATE_CLIENTID"
    MQTT_KEEP_ALIVE_TIMEOUT = "MQTT_KEEP_ALIVE_TIMEOUT"
    SERVER_INITIATED_DISCONNECT = "SERVER_INITIATED_DISCONNECT"


class Presence:
    """The lifecycle events of one broker: topic and payload of each, version numbers kept
    per client id."""

    __slots__ = ("_versions", "clock_ms")

    def __init__(self, clock_ms: Callable[[], int] | None = None) -> None:
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._versions: dict[str, int] = {}

    def _event(
        self,
        event_type: str,
        client_id: str,
        session_id: str,
        principal_id: str,
        ip_address: str,
        extra: dict[str, object],
    ) -> tuple[str, bytes] | None:
        if "+" in client_id or "#" in client_id or not client_id:
            return None
        version = self._versions.get(client_id, -1) + 1
        self._versions[client_id] = version
        document = {
            "clientId": client_id,
            "timestamp": self.clock_ms(),
            "eventType": event_type,
            "sessionIdentifier": session_id,
            "principalIdentifier": principal_id,
            **extra,
            "ipAddress": ip_address,
            "versionNumber": version,
        }
        payload = json.dumps(document, separators=(",", ":")).encode()
        return f"{PRESENCE_PREFIX}{event_type}/{client_id}", payload

    def connected(
        self, client_id: str, session_id: str, principal_id: str, ip_address: str
    ) -> tuple[str, bytes] | None:
        return self._event("connected", client_id, session_id, principal_id, ip_address, {})

    def disconnected(
        self,
        client_id: str,
        session_id: str,
        principal_id: str,
        ip_address: str,
        reason: DisconnectReason,
    ) -> tuple[str, bytes] | None:
        extra: dict[str, object] = {
            "clientInitiatedDisconnect": reason is DisconnectReason.CLIENT_INITIATED_DISCONNECT,
            "disconnectReason": reason.value,
        }
        return self._event("disconnected", client_id, session_id, principal_id, ip_address, extra)
