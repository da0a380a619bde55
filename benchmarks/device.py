"""Device benchmarks: cold boot to GOT_IP, and memory per idle device in a 50-device process."""

from __future__ import annotations

import asyncio
import gc
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jumpstart.formats.bootloader_image import BOOTLOADER_OFFSET
from jumpstart.formats.partition_table import PartitionTable
from jumpstart.host.app_build import build_app_image
from jumpstart.host.image_tools import bootloader_build
from jumpstart.host.layouts import OUTLET_PARTITIONS_CSV
from jumpstart.idf import wifi as wifi_module
from jumpstart.idf.device import Device, DeviceState
from jumpstart.idf.efuse import VirtualEfuse, random_mac
from jumpstart.idf.flash import FileFlash, Flash, MemoryFlash
from jumpstart.idf.radio import AccessPoint, RadioWorld
from jumpstart.idf.wifi import IpEvent

APPS = Path(__file__).resolve().parent.parent / "apps"
FLASH_SIZE = 4 * 1024 * 1024
BOOTLOADER = bootloader_build()
OTA_0 = 0x20000


def _flash_with(flash: Flash, image: bytes) -> Flash:
    flash.write(BOOTLOADER_OFFSET, BOOTLOADER)
    flash.write(0x8000, PartitionTable.from_csv(OUTLET_PARTITIONS_CSV).to_binary())
    flash.write(OTA_0, image)
    return flash


async def _boot_to_ip(image: bytes, world: RadioWorld) -> float:
    got_ip = asyncio.Event()
    start = time.perf_counter()

    def watch(context: Any, _device: Device) -> None:
        context.events.register(IpEvent.STA_GOT_IP, lambda _e, _d: got_ip.set())

    device = Device(
        "bench",
        _flash_with(MemoryFlash(FLASH_SIZE), image),
        VirtualEfuse(random_mac()),
        console=lambda _line: None,
        world=world,
        peripherals=[watch],
    )
    task = asyncio.create_task(device.run())
    await got_ip.wait()
    elapsed = time.perf_counter() - start
    await device.stop()
    await task
    return elapsed


def bench_cold_boot(runs: int = 20) -> None:
    """Power-on to STA_GOT_IP of 3_wifi_connection, against the simulated air time alone."""
    image = build_app_image(APPS / "3_wifi_connection")
    world = RadioWorld(aps=[AccessPoint("myssid", "mypassword")])
    times = [asyncio.run(_boot_to_ip(image, world)) for _ in range(runs)]
    air = wifi_module.ASSOCIATE_S + wifi_module.DHCP_S
    boot = statistics.median(times)
    print(
        f"cold boot to GOT_IP (3_wifi_connection, median of {runs})  {boot * 1e3:7.1f} ms   "
        f"simulated association + DHCP alone {air * 1e3:5.1f} ms   ratio {boot / air:5.2f}"
    )


def _rss_kib() -> tuple[int, int]:
    """Private (anonymous) and file-backed resident memory now, in KiB (Linux /proc).

    File-backed pages are the flash files mapped from the page cache: the kernel maps them in
    large folios and shares them, so they are reported apart from the memory a device costs.
    """
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile"):
            fields[name] = int(value.split()[0])
    if not fields:  # not Linux: total RSS only
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 0
    return fields["RssAnon"], fields["RssFile"]


def bench_idle_memory(count: int = 50) -> None:
    """RSS added by ``count`` idle 2_drivers devices on file-backed flash, per device."""
    image = build_app_image(APPS / "2_drivers")

    async def main(folder: Path) -> tuple[tuple[int, int], tuple[int, int]]:
        gc.collect()
        before = _rss_kib()
        devices = [
            Device(
                f"d{n}",
                _flash_with(FileFlash(folder / f"flash{n}.bin", FLASH_SIZE), image),
                VirtualEfuse(random_mac()),
                console=lambda _line: None,
            )
            for n in range(count)
        ]
        tasks = [asyncio.create_task(d.run()) for d in devices]
        await asyncio.sleep(1.0)
        assert all(d.state is DeviceState.RUNNING for d in devices)
        gc.collect()
        after = _rss_kib()
        for device in devices:
            await device.stop()
        await asyncio.gather(*tasks)
        for device in devices:
            assert isinstance(device.flash, FileFlash)
            device.flash.close()
        return before, after

    with tempfile.TemporaryDirectory() as folder:
        before, after = asyncio.run(main(Path(folder)))
    private = (after[0] - before[0]) / count
    mapped = (after[1] - before[1]) / count
    print(
        f"idle memory, {count} devices in one process  {private:7.0f} KiB private per device "
        f"(+{mapped:.0f} KiB of mapped flash pages)   its flash {FLASH_SIZE // 1024} KiB   "
        f"ratio {private / (FLASH_SIZE / 1024):5.3f}"
    )


def main() -> None:
    bench_cold_boot()
    bench_idle_memory()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
