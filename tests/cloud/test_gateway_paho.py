"""The gateway with paho-mqtt (3.1.1 and 5) as the device: the shadow flow of the guide."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cloud.conftest import RunningCloud
from tests.cloud.mqtt_helpers import PahoDevice

pytestmark = pytest.mark.interop


@pytest.fixture(params=[False, True], ids=["mqtt311", "mqtt5"])
def device(request: pytest.FixtureRequest, cloud: RunningCloud) -> Iterator[PahoDevice]:
    if request.param:
        cloud.skip_mqtt5()
    dev = PahoDevice(cloud, cloud.creds["outlet1"], v5=request.param)
    assert dev.connect()[0] == 0
    yield dev
    dev.close()


def test_shadow_flow(device: PahoDevice, cloud: RunningCloud) -> None:
    name = f"flow{'5' if device.v5 else '3'}"
    p = f"$aws/things/outlet1/shadow/name/{name}"
    codes = device.subscribe(
        f"{p}/get/accepted",
        f"{p}/get/rejected",
        f"{p}/update/accepted",
        f"{p}/update/rejected",
        f"{p}/update/delta",
    )
    assert codes == [1] * 5
    device.publish(f"{p}/get", {"clientToken": "g1"})
    rejected = device.expect(f"{p}/get/rejected")
    assert (rejected["code"], rejected["clientToken"]) == (404, "g1")

    device.publish(f"{p}/update", {"state": {"reported": {"output": False}}, "clientToken": "r"})
    accepted = device.expect(f"{p}/update/accepted")
    assert (accepted["version"], accepted["clientToken"]) == (1, "r")

    device.publish(f"{p}/update", {"state": {"desired": {"output": True}}})
    delta = device.expect(f"{p}/update/delta")
    assert delta["state"] == {"output": True}
    assert delta["version"] == 2

    device.publish(f"{p}/update", {"state": {"reported": {"output": True}}, "version": 1})
    conflict = device.expect(f"{p}/update/rejected")
    assert (conflict["code"], conflict["message"]) == (409, "Version conflict")

    device.publish(f"{p}/get")
    doc = device.expect(f"{p}/get/accepted")
    assert doc["state"] == {
        "desired": {"output": True},
        "reported": {"output": False},
        "delta": {"output": True},
    }
    assert doc["version"] == 2


def test_classic_shadow_and_documents(device: PahoDevice) -> None:
    p = "$aws/things/outlet1/shadow"
    device.subscribe(f"{p}/update/documents", f"{p}/update/accepted", f"{p}/delete/accepted")
    device.publish(f"{p}/update", {"state": {"reported": {"v": device.v5}}})
    documents = device.expect(f"{p}/update/documents")
    assert documents["current"]["state"]["reported"] == {"v": device.v5}
    device.publish(f"{p}/delete")
    deleted = device.expect(f"{p}/delete/accepted")
    assert deleted["version"] == documents["current"]["version"] + 1
