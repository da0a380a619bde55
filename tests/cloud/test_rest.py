"""The REST endpoint with tools we did not write: curl (the guide's lines) and boto3."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from jumpstart.cloud.admin import shadow_request
from tests.cloud.conftest import Credentials, RunningCloud
from tests.cloud.mqtt_helpers import PahoDevice, boto_client
from tests.system_tools import require

pytestmark = pytest.mark.interop


def _curl(cloud: RunningCloud, creds: Credentials, path: str, data: str | None = None) -> Any:
    """The guide's curl line: no --cacert, the CA comes from CURL_CA_BUNDLE."""
    require("curl")
    command = ["curl", "-sS", "--tlsv1.2", "--cert", str(creds.cert), "--key", str(creds.key)]
    if data is not None:
        command += ["-d", data]
    command.append(f"https://localhost:{cloud.rest_port}{path}")
    env = {**os.environ, "CURL_CA_BUNDLE": str(cloud.ca)}
    result = subprocess.run(command, capture_output=True, env=env, timeout=20, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_guide_curl_lines_update_reach_the_device_and_read_back(cloud: RunningCloud) -> None:
    creds = cloud.creds["outlet1"]
    device = PahoDevice(cloud, creds)
    device.connect()
    try:
        delta_topic = "$aws/things/outlet1/shadow/update/delta"
        device.subscribe(delta_topic)
        accepted = _curl(
            cloud, creds, "/things/outlet1/shadow", '{"state":{"desired":{"output":false}}}'
        )
        assert accepted["state"] == {"desired": {"output": False}}
        delta = device.expect(delta_topic)
        assert delta["version"] == accepted["version"]
        doc = _curl(cloud, creds, "/things/outlet1/shadow")
        assert doc["state"]["desired"] == {"output": False}
        # another thing's shadow is forbidden to this certificate
        assert _curl(cloud, creds, "/things/outlet2/shadow")["code"] == 403
    finally:
        device.close()


def test_no_client_certificate_is_refused_by_curl(cloud: RunningCloud) -> None:
    require("curl")
    result = subprocess.run(
        ["curl", "-sS", "--cacert", str(cloud.ca), f"https://localhost:{cloud.rest_port}/health"],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert result.returncode != 0


def test_boto3_iot_data_gets_updates_and_lists(cloud: RunningCloud) -> None:
    data = boto_client(cloud, cloud.creds["app"], "iot-data")
    with pytest.raises(ClientError) as caught:
        data.get_thing_shadow(thingName="outlet2", shadowName="never")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    payload = json.dumps({"state": {"desired": {"output": True}}}).encode()
    response = data.update_thing_shadow(thingName="outlet2", shadowName="boto", payload=payload)
    accepted = json.loads(response["payload"].read())
    version = accepted["version"]
    with pytest.raises(ClientError) as caught:
        data.update_thing_shadow(
            thingName="outlet2",
            shadowName="boto",
            payload=json.dumps({"state": {}, "version": version + 5}).encode(),
        )
    assert caught.value.response["Error"]["Code"] == "ConflictException"
    with pytest.raises(ClientError) as caught:
        data.update_thing_shadow(thingName="outlet2", payload=b"{bad json")
    assert caught.value.response["Error"]["Code"] == "InvalidRequestException"
    doc = json.loads(
        data.get_thing_shadow(thingName="outlet2", shadowName="boto")["payload"].read()
    )
    assert doc["state"]["delta"] == {"output": True}
    names = data.list_named_shadows_for_thing(thingName="outlet2")["results"]
    assert "boto" in names
    deleted = json.loads(
        data.delete_thing_shadow(thingName="outlet2", shadowName="boto")["payload"].read()
    )
    assert deleted["version"] == version + 1
    assert "boto" not in data.list_named_shadows_for_thing(thingName="outlet2")["results"]


def test_boto3_publish_reaches_subscriber(cloud: RunningCloud) -> None:
    device = PahoDevice(cloud, cloud.creds["outlet2"])
    device.connect()
    try:
        topic = "$aws/things/outlet2/shadow/name/pub/update/accepted"
        device.subscribe(topic)
        boto_client(cloud, cloud.creds["admin"], "iot-data").publish(
            topic="$aws/things/outlet2/shadow/name/pub/update",
            qos=1,
            payload=json.dumps({"state": {"reported": {"a": 1}}}).encode(),
        )
        assert device.expect(topic)["state"] == {"reported": {"a": 1}}
    finally:
        device.close()


def test_bad_requests_store_nothing(cloud: RunningCloud, tmp_path: Path) -> None:
    data = boto_client(cloud, cloud.creds["app"], "iot-data")
    data.update_thing_shadow(
        thingName="outlet2", shadowName="bad", payload=b'{"state":{"reported":{"keep":1}}}'
    )
    bad = [
        b"{not json",
        b'{"state": 5}',
        b'{"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}}',
        json.dumps({"state": {"reported": {"big": "x" * 9000}}}).encode(),
        b'{"state": {"reported": {"keep": 2}}, "version": 99}',
    ]
    for payload in bad:
        with pytest.raises(ClientError):
            data.update_thing_shadow(thingName="outlet2", shadowName="bad", payload=payload)
    doc = json.loads(data.get_thing_shadow(thingName="outlet2", shadowName="bad")["payload"].read())
    assert doc["state"] == {"reported": {"keep": 1}}
    assert doc["version"] == 1


def test_operator_shadow_commands_against_running_cloud(cloud: RunningCloud) -> None:
    home = cloud.service.home
    port = cloud.rest_port
    reply = shadow_request(home, "POST", "outlet1", "ops", b'{"state":{"desired":{"x":1}}}', port)
    assert (reply.status, reply.document["version"]) == (200, 1)
    assert shadow_request(home, "GET", "outlet1", "ops", port=port).document["state"]["delta"] == {
        "x": 1
    }
    assert shadow_request(home, "DELETE", "outlet1", "ops", port=port).status == 200
    assert shadow_request(home, "GET", "outlet1", "ops", port=port).status == 404
