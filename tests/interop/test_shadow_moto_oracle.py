"""Our shadow engine against moto's iot-data, an implementation we did not write.

500 random update sequences (nested objects, arrays, null leaves, state: null, versions
right and wrong, deletes) must agree on state, delta, version and the 200/404/409 outcome.
Compared as spec/cloud.md section 4 recommends: never timestamps or messages, delta with
empty objects dropped (moto row 2), and none of the inputs where moto departs from the AWS
documentation (rows 3, 5-7, 10); ``test_listed_departures`` pins those down.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from jumpstart.cloud.shadow.engine import (
    ShadowError,
    StoredShadow,
    delete_shadow,
    get_shadow,
    update_shadow,
)

pytestmark = pytest.mark.interop

SEQUENCES = 500
KEYS = ("a", "b", "c")
T0 = 1_700_000_000


@pytest.fixture(scope="module")
def iot_data() -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        yield (
            boto3.client("iot", region_name="us-east-1"),
            boto3.client("iot-data", region_name="us-east-1"),
        )


def _value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.3:
        return {k: _value(rng, depth + 1) for k in rng.sample(KEYS, rng.randint(1, 3))}
    if roll < 0.4:
        return [rng.choice([2, 3, "x"]) for _ in range(rng.randint(0, 3))]
    if roll < 0.5:
        return None
    # no 0/1 beside booleans: moto compares with Python's ==, where True == 1
    return rng.choice([2, 3, 3.0, "on", "off", True, False])


def _section(rng: random.Random) -> dict[str, Any]:
    return {k: _value(rng, 1) for k in rng.sample(KEYS, rng.randint(1, 3))}


def _request(rng: random.Random, version: int, exists: bool) -> dict[str, Any]:
    if rng.random() < 0.05:
        request: dict[str, Any] = {"state": None}
    else:
        state = {s: _section(rng) for s in ("desired", "reported") if rng.random() < 0.6}
        request = {"state": state or {"desired": _section(rng)}}
    if exists and rng.random() < 0.3:
        request["version"] = version if rng.random() < 0.7 else version + rng.choice([-1, 1, 5])
    return request


def _drop_empty(value: Any) -> Any:
    if isinstance(value, dict):
        pruned = {k: _drop_empty(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v != {}}
    return value


def _view(doc: dict[str, Any]) -> tuple[Any, ...]:
    state = doc["state"]
    return (
        state.get("desired"),
        state.get("reported"),
        _drop_empty(state.get("delta")) or None,
        doc["version"],
    )


def _moto(call: Any, **kwargs: Any) -> tuple[int, dict[str, Any] | None]:
    try:
        response = call(**kwargs)
    except ClientError as err:
        return err.response["ResponseMetadata"]["HTTPStatusCode"], None
    return 200, json.loads(response["payload"].read())


def test_random_sequences_agree_with_moto(iot_data: tuple[Any, Any]) -> None:
    iot, data = iot_data
    rng = random.Random(20261124)
    compared = 0
    for seq in range(SEQUENCES):
        thing = f"thing{seq}"
        iot.create_thing(thingName=thing)
        ours: StoredShadow | None = None
        for step in range(rng.randint(1, 8)):
            now = T0 + step
            exists = ours is not None and ours.exists
            if exists and rng.random() < 0.1:
                assert ours is not None
                ours, _ = delete_shadow(ours, thing, now)
                status, _ = _moto(data.delete_thing_shadow, thingName=thing)
                assert status == 200
                continue
            request = _request(rng, ours.version if ours else 0, exists)
            payload = json.dumps(request).encode()
            try:
                ours = update_shadow(ours, payload, now).shadow
                our_status = 200
            except ShadowError as err:
                our_status = err.code
            status, _ = _moto(data.update_thing_shadow, thingName=thing, payload=payload)
            assert our_status == status, (seq, step, request)
            status, theirs = _moto(data.get_thing_shadow, thingName=thing)
            try:
                mine: dict[str, Any] | None = get_shadow(ours, thing, now)
                our_status = 200
            except ShadowError as err:
                mine, our_status = None, err.code
            assert our_status == status, (seq, step, request)
            if mine is not None and theirs is not None:
                assert _view(mine) == _view(theirs), (seq, step, request)
                compared += 1
    assert compared > SEQUENCES


def test_listed_departures(iot_data: tuple[Any, Any]) -> None:
    """Where moto differs from the AWS documentation, we follow the documentation."""
    iot, data = iot_data
    iot.create_thing(thingName="departures")
    first = json.dumps({"state": {"desired": {"a": 1}, "reported": {"a": 1}}}).encode()
    ours = update_shadow(None, first, T0).shadow
    data.update_thing_shadow(thingName="departures", payload=first)

    # Row 3: "desired": null removes the section (moto keeps it).
    section_null = json.dumps({"state": {"desired": None}}).encode()
    assert "desired" not in update_shadow(ours, section_null, T0).shadow.state
    _, theirs = _moto(data.update_thing_shadow, thingName="departures", payload=section_null)
    _, theirs = _moto(data.get_thing_shadow, thingName="departures")
    assert theirs is not None
    assert "desired" in theirs["state"]

    # Row 5: clientToken longer than 64 bytes is refused (moto accepts it).
    long_token = json.dumps({"state": {}, "clientToken": "x" * 65}).encode()
    with pytest.raises(ShadowError):
        update_shadow(ours, long_token, T0)
    assert _moto(data.update_thing_shadow, thingName="departures", payload=long_token)[0] == 200

    # Row 6: a non-object desired is a 400 (moto fails inside).
    bad = json.dumps({"state": {"desired": 5}}).encode()
    with pytest.raises(ShadowError) as caught:
        update_shadow(ours, bad, T0)
    assert caught.value.code == 400
    with pytest.raises(TypeError):  # in process, moto's internal failure surfaces as is
        data.update_thing_shadow(thingName="departures", payload=bad)

    # Deleting a deleted shadow: 404 for us (no shadow exists), moto bumps the version.
    deleted, _ = delete_shadow(ours, "departures", T0)
    with pytest.raises(ShadowError):
        delete_shadow(deleted, "departures", T0)
    assert _moto(data.delete_thing_shadow, thingName="departures")[0] == 200
    assert _moto(data.delete_thing_shadow, thingName="departures")[0] == 200
