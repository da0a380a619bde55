"""The shadow service as a gateway request handler (``$aws/things/+/shadow/...``)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from jumpstart.cloud import json_input
from jumpstart.cloud.gateway.broker import Delivery
from jumpstart.cloud.policy import Principal
from jumpstart.cloud.shadow.engine import ShadowError, parse_token_request
from jumpstart.cloud.shadow.service import ShadowService
from jumpstart.cloud.topics import parse_shadow_topic

__all__ = ["ShadowRequests"]


class ShadowRequests:
    def __init__(self, service: ShadowService) -> None:
        self.service = service

    def accepts(self, topic: str) -> bool:
        return parse_shadow_topic(topic) is not None

    def handle(
        self, topic: str, payload: bytes, principal: Principal, requester: str
    ) -> Sequence[Delivery]:
        request = parse_shadow_topic(topic)
        assert request is not None
        reply = self.service.handle(request, payload)
        return [Delivery(m.topic, m.payload) for m in reply.messages]

    def throttled(self, topic: str, payload: bytes, requester: str) -> Sequence[Delivery]:
        token = parse_token_request(payload, self.service.settings)
        doc = ShadowError(429, "Too Many Requests", token).document(int(time.time()))
        return [Delivery(f"{topic}/rejected", json_input.encode(doc))]
