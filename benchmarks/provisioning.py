"""Provisioning benchmark: `jumpstart prov` start to Connected, per security level and transport.

The device's 1 s connect delay (ApplyConfig answers first, the connection starts a second
later) and the client's poll interval are protocol waits, not work; they are taken out. What
remains is handshake + credentials + the simulated air time of association and DHCP. The
baseline is Security 0 over the same transport, measured in the same run.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from jumpstart.formats.partition_table import PartitionTable
from jumpstart.host.app_build import build_app_image
from jumpstart.host.layouts import OUTLET_PARTITIONS_CSV
from jumpstart.host.prov_client import ProvOptions, provision
from jumpstart.host.prov_connect import open_device
from jumpstart.idf.device import Device
from jumpstart.idf.efuse import VirtualEfuse, random_mac
from jumpstart.idf.flash import MemoryFlash
from jumpstart.idf.radio import AccessPoint, RadioWorld
from jumpstart.idf.wifi import ASSOCIATE_S, DHCP_S
from jumpstart.idf.wifi_prov.manager import CONNECT_DELAY_S

APPS = Path(__file__).resolve().parent.parent / "apps"
POLL_S = 0.005
RUNS = 5
LEVELS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("sec0", {"prov_security": 0}, {}),
    ("sec1", {"prov_security": 1}, {"pop": "abcd1234"}),
    ("sec2", {"prov_security": 2}, {"sec_ver": 2, "sec2_password": "abcd1234"}),
]


async def _one(transport: str, config: dict[str, Any], client: dict[str, Any]) -> dict[str, float]:
    world = RadioWorld(None, [AccessPoint("HomeNet", "correct-horse")])
    flash = MemoryFlash(4 * 1024 * 1024)
    flash.write(0x8000, PartitionTable.from_csv(OUTLET_PARTITIONS_CSV).to_binary())
    image = build_app_image(
        APPS / "4_network_config", overrides={"prov_transport": transport, **config}
    )
    flash.write(0x20000, image)
    lines: list[str] = []
    mac = random_mac()
    device = Device("bench", flash, VirtualEfuse(mac), console=lines.append, world=world)
    task = asyncio.create_task(device.run())
    name = f"PROV_{mac[3]:02X}{mac[4]:02X}{mac[5]:02X}"
    while not any("QR payload" in line for line in lines):
        await asyncio.sleep(0.01)
    options = ProvOptions(
        transport=transport, ssid="HomeNet", passphrase="correct-horse", poll_interval_s=POLL_S
    )
    for key, value in client.items():
        setattr(options, key, value)

    def run() -> None:
        link = open_device(world, transport, name)
        try:
            assert provision(link, options, lambda _line: None)
        finally:
            link.close()

    await asyncio.to_thread(run)
    await device.stop()
    await task
    timings = options.timings
    # Polls run during the connect delay too, so only the delay itself is taken out; what is
    # left of the polling is at most one interval (5 ms) after the device got its address.
    waits = CONNECT_DELAY_S
    return {
        "session": timings["session"],
        "total": timings["connected"],
        "work": timings["connected"] - waits,
    }


def bench_provisioning() -> None:
    air = ASSOCIATE_S + DHCP_S
    print(f"provisioning to Connected, median of {RUNS} (1 s connect delay removed, polled every")
    print(f"  {POLL_S * 1000:.0f} ms; includes {air * 1000:.0f} ms simulated association + DHCP)")
    for transport in ("softap", "ble"):
        results: dict[str, dict[str, float]] = {}
        for label, config, client in LEVELS:
            runs = [asyncio.run(_one(transport, config, client)) for _ in range(RUNS)]
            results[label] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        base = results["sec0"]
        for label, figures in results.items():
            print(
                f"  {transport:<6} {label}: handshake {figures['session'] * 1000:6.1f} ms   "
                f"start->Connected {figures['work'] * 1000:6.1f} ms   "
                f"ratio vs sec0 {figures['work'] / base['work']:5.2f}"
            )


def main() -> None:
    started = time.perf_counter()
    bench_provisioning()
    print(f"  (benchmark took {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
