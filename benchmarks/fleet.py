"""Fleet benchmark: ``jumpstart fleet bench`` on the embedded gateway and again on mosquitto.

N complete outlets in this process (``FLEET_DEVICES``, 10,000 by default: the issue's size),
the cloud in its own. Each run prints its table (boot and connect time, peak connects/s,
memory per device, REST and MQTT toggles to the relay's GPIO against the raw paho round trip
measured in the same run, the reconnect storm); then the two brokers' raw round trips side by
side, the ratio the issue asks of the gateway (within 1.5x of mosquitto's).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from rich.console import Console

from jumpstart.fleet.bench import FleetBenchOptions, FleetBenchReport, print_bench, run_bench

APPS = Path(__file__).resolve().parent.parent / "apps"
DEVICES = int(os.environ.get("FLEET_DEVICES", "10000"))


def _target(ok: bool, text: str) -> str:
    return f"target {text}: {'met' if ok else 'MISSED'}"


def _verdicts(report: FleetBenchReport) -> None:
    rest, raw = report.rest_to_relay_ms, report.raw_round_trip_ms
    print(f"  {_target(report.all_in_sync_s < 60, 'all connected in < 60 s')}")
    print(f"  {_target(report.memory_per_device_kib < 64, '< 64 KiB private per device')}")
    if rest is not None and raw is not None:
        print(f"  {_target(rest.p99 <= 10, 'REST -> relay p99 <= 10 ms')}")
        ratio = rest.p50 / raw.p50
        print(f"  REST -> relay p50 / raw p50 = {ratio:.2f}: {_target(ratio <= 2, '<= 2')}")
    if report.storm is not None:
        storm = report.storm
        back = storm.back_s < 60 and storm.left_behind == 0
        print(f"  {_target(back, 'all back within 60 s of a cloud restart')}")
        calm = storm.peak_connects_per_s <= report.peak_connects_per_s
        print(
            f"  storm peak {storm.peak_connects_per_s:.0f}/s against the "
            f"{report.peak_connects_per_s:.0f}/s the cloud accepted at boot: "
            f"{_target(calm, 'no spike above it')}"
        )


def main() -> None:
    console = Console()
    reports = {}
    brokers = ["embedded"] + (["mosquitto"] if shutil.which("mosquitto") or Path(
        "/usr/sbin/mosquitto"
    ).exists() else [])  # fmt: skip
    for broker in brokers:
        options = FleetBenchOptions(DEVICES, APPS, broker)
        report = asyncio.run(run_bench(options, console))
        print_bench(report, console)
        _verdicts(report)
        reports[broker] = report
    gateway, mosquitto = reports.get("embedded"), reports.get("mosquitto")
    if gateway and mosquitto and gateway.raw_round_trip_ms and mosquitto.raw_round_trip_ms:
        ratio = gateway.raw_round_trip_ms.p50 / mosquitto.raw_round_trip_ms.p50
        print(
            f"raw publish -> receive p50 with {DEVICES:,} online: gateway "
            f"{gateway.raw_round_trip_ms.p50:.2f} ms, mosquitto "
            f"{mosquitto.raw_round_trip_ms.p50:.2f} ms, ratio {ratio:.2f} "
            f"({_target(ratio <= 1.5, '<= 1.5')})"
        )


if __name__ == "__main__":
    main()
