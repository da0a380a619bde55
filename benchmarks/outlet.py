"""Outlet benchmarks: REST POST -> relay switched, and an OTA of a 1.5 MiB image.

* Toggles: 200 REST updates of ``desired.output``; each is timed from the POST to the relay's
  GPIO changing. Baseline, in the same run and from the same POST: a paho-mqtt client
  subscribed to the thing's delta topic (the cloud's own latency, without the device).
* OTA: a 1.5 MiB release from the desired ``ota_url`` to the new firmware connected and
  confirmed, split into download + write, verify, reboot to connected. Baseline: the same
  file fetched from the same firmware server with curl.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json
import random
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.cloud_device import OUTPUT_GPIO, CloudOutlet, cloud_outlet, wait_until
from tests.idf.device_helpers import APPS
from tests.idf.ota_helpers import WHEN

from jumpstart.cloud.admin import operator_credentials
from jumpstart.cloud.firmware import FirmwareStore, firmware_url
from jumpstart.host.app_build import load_app_package
from jumpstart.host.image_tools import image_build

TOGGLES = 200
OTA_IMAGE_SIZE = 1536 * 1024


class Operator:
    """A keep-alive HTTPS connection to the REST API with the operator's certificate."""

    def __init__(self, outlet: CloudOutlet) -> None:
        home = outlet.cloud.home
        cert, key = operator_credentials(home)
        context = ssl.create_default_context(cafile=str(home.ca_pem))
        context.load_cert_chain(cert, key)
        self.path = f"/things/{outlet.creds.thing}/shadow"
        self.connection = http.client.HTTPSConnection(
            "localhost", outlet.cloud.rest_port, context=context
        )

    def post(self, document: dict[str, object]) -> None:
        self.connection.request("POST", self.path, json.dumps(document).encode())
        response = self.connection.getresponse()
        response.read()
        assert response.status == 200


class DeltaWatcher:
    """paho-mqtt on the thing's delta topic: when each delta reached a plain client."""

    def __init__(self, outlet: CloudOutlet) -> None:
        home = outlet.cloud.home
        cert, key = operator_credentials(home)
        self.arrivals: list[float] = []
        self.ready = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-watcher")
        self.client.tls_set(ca_certs=str(home.ca_pem), certfile=str(cert), keyfile=str(key))
        topic = f"$aws/things/{outlet.creds.thing}/shadow/update/delta"
        self.client.on_connect = lambda c, *_: c.subscribe(topic, 1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = lambda *_: self.arrivals.append(time.perf_counter())
        self.client.connect("localhost", outlet.cloud.mqtt_port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _toggles(outlet: CloudOutlet) -> tuple[list[float], list[float]]:
    operator = Operator(outlet)
    watcher = await asyncio.to_thread(DeltaWatcher, outlet)  # paho connects blocking
    assert await asyncio.to_thread(watcher.ready.wait, 10)
    switched = asyncio.Event()
    outlet.device.gpio.watch_outputs(
        lambda pin, _level: switched.set() if pin == OUTPUT_GPIO else None
    )
    device, cloud = [], []
    try:
        for n in range(TOGGLES):
            switched.clear()
            before = len(watcher.arrivals)
            start = time.perf_counter()
            await asyncio.to_thread(operator.post, {"state": {"desired": {"output": n % 2 == 0}}})
            await asyncio.wait_for(switched.wait(), 5)
            device.append(time.perf_counter() - start)
            await wait_until(lambda b=before: len(watcher.arrivals) > b, 5, "delta at paho")
            cloud.append(watcher.arrivals[before] - start)
    finally:
        watcher.close()
    return device, cloud


def _release(outlet: CloudOutlet) -> bytes:
    port = outlet.cloud.mqtt_port
    package = load_app_package(APPS / "6_ota", {"mqtt_port": port}, outlet.creds.cloud_cfg(port))
    filler = random.Random(1).randbytes(OTA_IMAGE_SIZE - 10_000)  # image: just over 1.5 MiB
    package = dataclasses.replace(
        package, version="2.0.0", embedded={**package.embedded, "filler.bin": filler}
    )
    return image_build(package.name, "2.0.0", package.to_bytes(), when=WHEN)


def _line_time(outlet: CloudOutlet, text: str) -> float:
    found = [t for t, line in outlet.timed if text in line]
    assert found, f"the console never printed {text!r}"
    return found[0]


async def _ota(outlet: CloudOutlet, tmp: Path) -> tuple[dict[str, float], float, int]:
    image = _release(outlet)
    name = FirmwareStore(outlet.cloud.home).upload(image, "release-2.bin").name
    url = firmware_url("localhost", outlet.cloud.firmware_port, name)
    # Baseline: curl fetches the same file from the same server.
    curl = ["curl", "-s", "--cacert", str(outlet.cloud.home.ca_pem), "-o", str(tmp / "x"), url]
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        await asyncio.to_thread(subprocess.run, curl, check=True)
        runs.append(time.perf_counter() - start)
    start = time.perf_counter()
    await outlet.rest("POST", {"state": {"desired": {"ota_url": url}}})
    await wait_until(lambda: outlet.logged("Firmware 2.0.0 confirmed"), 60, "the new release")
    phases = {
        "download + write": _line_time(outlet, "OTA verifying") - start,
        "verify + switch": _line_time(outlet, "OTA rebooting")
        - _line_time(outlet, "OTA verifying"),
        "reboot to connected": _line_time(outlet, "Firmware 2.0.0 confirmed")
        - _line_time(outlet, "OTA rebooting"),
    }
    return phases, min(runs), len(image)


async def _main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        async with cloud_outlet(tmp, "6_ota") as outlet:
            device, cloud = await _toggles(outlet)
            for name, values in (("device relay", device), ("paho delta (baseline)", cloud)):
                print(
                    f"REST POST -> {name:<24} p50 {statistics.median(values) * 1e3:7.2f} ms   "
                    f"p99 {_percentile(values, 0.99) * 1e3:7.2f} ms   ({len(values)} toggles)"
                )
            ratio = statistics.median(device) / statistics.median(cloud)
            print(f"REST POST -> relay vs -> paho delta: p50 ratio {ratio:6.2f}")
            phases, baseline, size = await _ota(outlet, tmp)
            total = sum(phases.values())
            detail = ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in phases.items())
            print(f"OTA of {size / 1048576:.2f} MiB: {total * 1e3:.0f} ms ({detail})")
            print(
                f"OTA total vs curl download of the same file ({baseline * 1e3:.0f} ms): "
                f"ratio {total / baseline:6.2f}"
            )


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
