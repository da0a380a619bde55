"""ShadowService over a store: what a request hears when another engine wins every race."""

from __future__ import annotations

import json
from pathlib import Path

from jumpstart.cloud.shadow.engine import StoredShadow
from jumpstart.cloud.shadow.service import SAVE_ATTEMPTS, ShadowService
from jumpstart.cloud.shadow.store import SqliteShadowStore, StaleShadowError
from jumpstart.cloud.topics import parse_shadow_topic


class AlwaysStale(SqliteShadowStore):
    """A store where another instance commits between every load and save."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.saves = 0

    def save(self, thing: str, name: str, shadow: StoredShadow, loaded: int | None) -> None:
        self.saves += 1
        raise StaleShadowError(thing, name)


def test_a_request_that_loses_every_race_is_rejected_with_500(tmp_path: Path) -> None:
    store = AlwaysStale(tmp_path / "shadows.db")
    service = ShadowService(store)
    topic = parse_shadow_topic("$aws/things/lamp/shadow/update")
    assert topic is not None
    reply = service.handle(topic, b'{"state":{"reported":{"on":true}},"clientToken":"t"}')
    assert reply.status == 500
    assert store.saves == SAVE_ATTEMPTS
    (message,) = reply.messages
    assert message.topic == "$aws/things/lamp/shadow/update/rejected"
    assert json.loads(message.payload)["code"] == 500
    # REST callers get the status and the document, no MQTT reply.
    rest = service.handle(topic, b'{"state":{"reported":{"on":false}}}', via_mqtt=False)
    assert (rest.status, rest.messages) == (500, ())
