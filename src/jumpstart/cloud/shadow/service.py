"""The shadow service: requests in, documents out, over one store.

Transport-free: the gateway feeds it MQTT requests and publishes what it returns; the REST
API calls ``get``/``update``/``delete`` and publishes the returned messages the same way, so
a phone app's POST reaches the device as ``update/delta`` (spec/cloud.md 2.2, 2.9).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jumpstart.cloud import json_input
from jumpstart.cloud.messages import Message
from jumpstart.cloud.shadow.engine import (
    ShadowError,
    ShadowSettings,
    delete_shadow,
    get_shadow,
    parse_token_request,
    update_shadow,
)
from jumpstart.cloud.shadow.store import ShadowStore, StaleShadowError
from jumpstart.cloud.topics import ShadowOp, ShadowTopic, shadow_prefix

__all__ = ["Message", "ShadowReply", "ShadowService"]

# A save that loses a race with another engine instance retries this often.
SAVE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class ShadowReply:
    """The answer to one request: ``status`` 200 with ``body``, or the error's code and
    document; ``messages`` are what MQTT subscribers receive."""

    status: int
    body: dict[str, Any]
    messages: tuple[Message, ...]


def _encode(doc: dict[str, Any]) -> bytes:
    return json_input.encode(doc)


class ShadowService:
    def __init__(
        self,
        store: ShadowStore,
        settings: ShadowSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings or ShadowSettings()
        self.clock = clock

    def _name(self, request: ShadowTopic) -> str:
        return request.name or request.thing

    def handle(self, request: ShadowTopic, payload: bytes, *, via_mqtt: bool = True) -> ShadowReply:
        """Serve one request; MQTT requests also get their ``accepted``/``rejected`` reply
        among the messages, REST requests only the side effects (delta, documents)."""
        now = int(self.clock())
        prefix = f"{shadow_prefix(request.thing, request.name)}/{request.op.value}"
        for _ in range(SAVE_ATTEMPTS):
            try:
                with self.store.exclusive(request.thing, request.name):
                    reply = self._serve(request, payload, now, prefix)
            except StaleShadowError:
                continue
            except ShadowError as err:
                doc = err.document(now)
                messages = (Message(f"{prefix}/rejected", _encode(doc)),) if via_mqtt else ()
                return ShadowReply(err.code, doc, messages)
            if not via_mqtt:
                reply = ShadowReply(
                    reply.status,
                    reply.body,
                    tuple(m for m in reply.messages if m.topic != f"{prefix}/accepted"),
                )
            return reply
        # Lost the race every time: said to the requester, as AWS says it, not left silent.
        doc = ShadowError(500, "Internal service failure").document(now)
        messages = (Message(f"{prefix}/rejected", _encode(doc)),) if via_mqtt else ()
        return ShadowReply(500, doc, messages)

    def _serve(self, request: ShadowTopic, payload: bytes, now: int, prefix: str) -> ShadowReply:
        stored = self.store.load(request.thing, request.name)
        loaded = stored.version if stored is not None else None
        if request.op is ShadowOp.GET:
            token = parse_token_request(payload, self.settings)
            doc = get_shadow(stored, self._name(request), now, token)
            return ShadowReply(200, doc, (Message(f"{prefix}/accepted", _encode(doc)),))
        if request.op is ShadowOp.DELETE:
            token = parse_token_request(payload, self.settings)
            deleted, doc = delete_shadow(stored, self._name(request), now, token)
            self.store.save(request.thing, request.name, deleted, loaded)
            return ShadowReply(200, doc, (Message(f"{prefix}/accepted", _encode(doc)),))
        result = update_shadow(stored, payload, now, self.settings)
        self.store.save(request.thing, request.name, result.shadow, loaded)
        # The accepted reply first; AWS does not promise an order between it and delta.
        messages = [Message(f"{prefix}/accepted", _encode(result.accepted))]
        if result.delta is not None:
            messages.append(Message(f"{prefix}/delta", _encode(result.delta)))
        messages.append(Message(f"{prefix}/documents", _encode(result.documents)))
        return ShadowReply(200, result.accepted, tuple(messages))

    def named_shadows(self, thing: str) -> list[str]:
        return self.store.named_shadows(thing)
