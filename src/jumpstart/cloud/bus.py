"""Where the cloud's services publish: the embedded gateway or a link to an external broker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from jumpstart.cloud.gateway.broker import Delivery
from jumpstart.cloud.policy import Principal

__all__ = ["MessageBus"]


class MessageBus(Protocol):
    """Implemented by ``gateway.broker.Broker``, ``broker_link.BrokerLink`` and
    ``nats_link.NatsLink``."""

    retains: bool  # whether a message published with retain=True is kept for subscribers

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> object:
        """Route a message to its subscribers."""

    def publish_request(
        self, topic: str, payload: bytes, qos: int, retain: bool, principal: Principal
    ) -> None:
        """Publish on behalf of ``principal`` (REST); requests reach the services."""

    def dispatch(self, deliveries: Sequence[Delivery]) -> None: ...

    def health(self) -> tuple[bool, dict[str, object]]:
        """Whether MQTT clients are served, and details for the health endpoint."""
