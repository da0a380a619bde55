"""The jobs service as a gateway request handler (``$aws/things/+/jobs/...``)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from jumpstart.cloud import json_input
from jumpstart.cloud.gateway.broker import Delivery
from jumpstart.cloud.jobs.model import JobsError, JobsErrorCode
from jumpstart.cloud.jobs.service import JobsService
from jumpstart.cloud.policy import Principal
from jumpstart.cloud.topics import parse_jobs_topic

__all__ = ["JobsRequests"]


class JobsRequests:
    def __init__(self, service: JobsService) -> None:
        self.service = service

    def accepts(self, topic: str) -> bool:
        return parse_jobs_topic(topic) is not None

    def handle(
        self, topic: str, payload: bytes, principal: Principal, requester: str
    ) -> Sequence[Delivery]:
        request = parse_jobs_topic(topic)
        assert request is not None
        result = self.service.handle(request, payload)
        reply = Delivery(result.reply.topic, result.reply.payload, to_client=requester)
        return [reply, *(Delivery(m.topic, m.payload) for m in result.notifications)]

    def throttled(self, topic: str, payload: bytes, requester: str) -> Sequence[Delivery]:
        token = None
        try:
            body = json_input.parse(payload)
            if isinstance(body, dict) and isinstance(body.get("clientToken"), str):
                token = body["clientToken"]
        except json_input.JsonInputError:
            pass
        error = JobsError(JobsErrorCode.REQUEST_THROTTLED, "Rate exceeded", token)
        doc = error.document(int(time.time()))
        return [Delivery(f"{topic}/rejected", json_input.encode(doc), to_client=requester)]
