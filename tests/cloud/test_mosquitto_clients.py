"""mosquitto_pub and mosquitto_sub with the guide's five files of a thing, on the gateway and
on mosquitto: the quick-setup files are all a generic MQTT client needs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from jumpstart.cloud.admin import thing_create
from tests.cloud.conftest import RunningCloud
from tests.system_tools import require

pytestmark = pytest.mark.interop


def _tool(name: str) -> str:
    require("mosquitto-clients")
    found = shutil.which(name)
    assert found is not None
    return found


def _tls_args(cloud: RunningCloud, files: Path) -> list[str]:
    return [
        "-h",
        (files / "endpoint.txt").read_text(),
        "-p",
        str(cloud.mqtt_port),
        "--cafile",
        str(files / "server.cert"),
        "--cert",
        str(files / "device.cert"),
        "--key",
        str(files / "device.key"),
        "-i",
        (files / "deviceid.txt").read_text(),
    ]


def test_guide_files_work_with_mosquitto_clients(cloud: RunningCloud, tmp_path: Path) -> None:
    thing = f"guide-{cloud.broker}-{tmp_path.name[-6:]}"
    files = tmp_path / "cloud_cfg"
    thing_create(cloud.service.home, thing, files)
    cloud.settle()
    accepted = f"$aws/things/{thing}/shadow/update/accepted"
    sub_files = files
    if cloud.on_mosquitto:
        # mosquitto makes the certificate's name the client id: a second connection with
        # the thing's files would take over the first, so an app watches instead.
        sub_files = tmp_path / "app_cfg"
        sub_files.mkdir()
        for name, path in (("device.cert", "cert"), ("device.key", "key")):
            (sub_files / name).write_bytes(getattr(cloud.creds["app"], path).read_bytes())
        for name in ("server.cert", "endpoint.txt", "deviceid.txt"):
            (sub_files / name).write_bytes((files / name).read_bytes())
    sub_args = [*_tls_args(cloud, sub_files), "-t", accepted, "-C", "1", "-W", "10", "-q", "1"]
    # The subscriber's client id differs from the publisher's (same thing: allowed).
    sub_args[sub_args.index("-i") + 1] = f"{thing}-sub"
    # stdbuf: line-buffered, so the SUBACK line (-d) shows before the publisher starts.
    subscriber = subprocess.Popen(
        ["stdbuf", "-oL", _tool("mosquitto_sub"), *sub_args, "-d"],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = []
    try:
        assert subscriber.stdout is not None
        for line in subscriber.stdout:
            if "SUBACK" in line:
                break
        body = json.dumps({"state": {"reported": {"output": True}}, "clientToken": "sub-1"})
        topic = f"$aws/things/{thing}/shadow/update"
        published = subprocess.run(
            [_tool("mosquitto_pub"), *_tls_args(cloud, files), "-t", topic, "-m", body, "-q", "1"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert published.returncode == 0, published.stderr
        lines = [line for line in subscriber.stdout if line.startswith("{")]
    finally:
        subscriber.kill()
        subscriber.wait()
    doc = json.loads(lines[-1])
    assert doc["state"] == {"reported": {"output": True}}
    assert (doc["version"], doc["clientToken"]) == (1, "sub-1")


def test_mosquitto_pub_cannot_reach_another_thing(cloud: RunningCloud, tmp_path: Path) -> None:
    thing = f"intruder-{cloud.broker}-{tmp_path.name[-6:]}"
    files = tmp_path / "cloud_cfg"
    thing_create(cloud.service.home, thing, files)
    cloud.settle()
    sub = subprocess.run(
        [
            _tool("mosquitto_sub"),
            *_tls_args(cloud, files),
            "-t",
            "$aws/things/outlet1/shadow/#",
            "-W",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    # The gateway refuses the filter (0x80: mosquitto_sub gives up); mosquitto grants it and
    # delivers nothing until the -W timeout. Either way, nothing of outlet1 is printed.
    assert "$aws" not in sub.stdout
    assert sub.stdout.strip() == ""
