"""Fleet benchmark: N complete outlets in this process against the embedded cloud.

Measures the time to boot and connect them all and the peak connect rate, the process memory
per device, and REST POST desired -> relay switched at a device's GPIO (p50/p95/p99) at a
steady toggle rate with all online, against the raw broker round trip (a bare MQTT client
publishing to another on the same broker) measured in the same run. The issue's targets are
for 10,000 devices; ``FLEET_DEVICES`` sets how many this run makes.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import http.client
import json
import os
import ssl
import statistics
import tempfile
import time
from pathlib import Path

from cloud import Credentials, _context, _percentile, _round_trips  # benchmarks/cloud.py
from jumpstart.cloud.admin import operator_credentials
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.service import CloudConfig, CloudService
from jumpstart.fleet import Fleet, build_fleet
from jumpstart.fleet.fleet import HOME_AP
from jumpstart.idf.radio import RadioWorld

APPS = Path(__file__).resolve().parent.parent / "apps"
DEVICES = int(os.environ.get("FLEET_DEVICES", "1000"))
TOGGLES = 300
TOGGLE_RATE = 100.0  # per second
RELAY = 27
asyncio.sslproto.SSLProtocol.max_size = 16 * 1024  # see benchmarks/cloud.py


def _rss_anon_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


class _Rest:
    """One kept-alive HTTPS connection to the REST API as the operator."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.conn = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)

    def post(self, thing: str, on: bool) -> None:
        body = json.dumps({"state": {"desired": {"output": on}}})
        self.conn.request("POST", f"/things/{thing}/shadow", body=body)
        response = self.conn.getresponse()
        response.read()
        assert response.status == 200, response.status


async def _toggles(fleet: Fleet, rest: _Rest) -> list[float]:
    """REST POST -> the device's relay GPIO, in ms, paced at TOGGLE_RATE."""
    loop = asyncio.get_running_loop()
    samples: list[float] = []
    members = fleet.members
    for n in range(TOGGLES):
        member = members[(n * 7919) % len(members)]
        gpio = member.device.gpio
        wanted = 0 if gpio.output_level(RELAY) else 1
        switched: asyncio.Future[float] = loop.create_future()

        def watch(
            pin: int, level: int, want: int = wanted, done: asyncio.Future[float] = switched
        ) -> None:
            if pin == RELAY and level == want and not done.done():
                done.set_result(time.perf_counter())

        gpio.watch_outputs(watch)
        sent = time.perf_counter()
        await asyncio.to_thread(rest.post, member.thing, bool(wanted))
        samples.append((await asyncio.wait_for(switched, 10) - sent) * 1000)
        gpio.unwatch_outputs(watch)
        await asyncio.sleep(max(0.0, 1 / TOGGLE_RATE - samples[-1] / 1000))
    return samples


async def _run(workdir: Path) -> None:
    home = CloudHome(workdir / "cloud")
    config = CloudConfig(mqtt_port=0, rest_port=0, firmware_port=0, dashboard_port=0)
    async with CloudService(home, config) as cloud:
        world = RadioWorld(None, [HOME_AP])
        members = await asyncio.to_thread(
            build_fleet, home, cloud.mqtt_port, DEVICES, APPS, workdir, world=world
        )
        fleet = Fleet(members)
        before = _rss_anon_kib()
        peak_rate, last, last_t = 0.0, 0, time.perf_counter()
        await fleet.start()
        while fleet.stats().in_sync < DEVICES:
            await asyncio.sleep(0.25)
            now, count = time.perf_counter(), fleet.stats().connects
            peak_rate = max(peak_rate, (count - last) / (now - last_t))
            last, last_t = count, now
            if now - fleet.started > 300:
                raise TimeoutError(f"{fleet.stats()} after 300 s")
        all_in = time.perf_counter() - fleet.started
        per_device = (_rss_anon_kib() - before) / DEVICES
        cert, key = operator_credentials(home)
        context = _context(home.ca_pem, Credentials(cert, key))
        raw = await _round_trips(cloud.mqtt_port, context, "fleet")
        rest = _Rest(cloud.rest_port, context)
        toggles = await _toggles(fleet, rest)
        await fleet.stop()
    raw_p50 = statistics.median(raw)
    p50, p95, p99 = (_percentile(toggles, p) for p in (50, 95, 99))
    print(f"fleet, {DEVICES:,} outlets in one process (embedded gateway):")
    print(
        f"  boot + connect + shadow sync, all       {all_in:7.1f} s   (target for 10,000: < 60 s)"
    )
    print(f"  peak connects                           {peak_rate:7.0f} /s")
    print(f"  private memory per device               {per_device:7.1f} KiB (target < 64 KiB)")
    print(
        f"  REST -> relay at {TOGGLE_RATE:.0f}/s: p50 {p50:5.1f} ms  p95 {p95:5.1f} ms  "
        f"p99 {p99:5.1f} ms (target p99 <= 10 ms)"
    )
    print(
        f"  raw broker round trip p50 {raw_p50:5.2f} ms; REST -> relay p50 / raw "
        f"{p50 / raw_p50:5.2f} (target <= 2)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="jumpstart-fleet-bench-") as work:
        asyncio.run(_run(Path(work)))


if __name__ == "__main__":
    main()
