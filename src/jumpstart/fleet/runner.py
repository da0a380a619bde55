"""``jumpstart fleet run``: a fleet against a cloud started alongside, with optional churn,
a live table, and a summary at the end."""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.service import CloudConfig, CloudService
from jumpstart.errors import InputError
from jumpstart.fleet.fleet import HOME_AP, Fleet, FleetStats, build_fleet
from jumpstart.idf.flash import SparseFlash
from jumpstart.idf.nvs import NvsError, NvsFlash, OpenMode
from jumpstart.idf.partition import PartitionMap
from jumpstart.idf.radio import RadioWorld
from jumpstart.idf.wifi import NVS_NAMESPACE, NVS_SSID_KEY

__all__ = ["FleetRunOptions", "FleetSummary", "parse_rate", "run_fleet"]

SETTLE_S = 60.0  # after the churn stops: time for every device to be back in sync


def parse_rate(text: str) -> float:
    """A rate like ``1/s``, ``0.5/s`` or ``10/min``, per second."""
    number, _, unit = text.partition("/")
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    seconds = {"s": 1.0, "min": 60.0}.get(unit or "s")
    if value < 0 or seconds is None:
        raise InputError(f"rate {text!r}: write it like 1/s or 10/min")
    return value / seconds


@dataclass(frozen=True)
class FleetRunOptions:
    devices: int
    apps: Path
    duration_s: float = 30.0
    churn_per_s: float = 0.0
    seed: int = 1


@dataclass(frozen=True)
class FleetSummary:
    devices: int
    all_in_sync_s: float
    churn_events: int
    final: FleetStats
    nvs_intact: int
    own_flash_kib: float
    rss_mib: float

    @property
    def ok(self) -> bool:
        return self.final.in_sync == self.devices and self.nvs_intact == self.devices


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _table(stats: FleetStats, elapsed: float, churn: int) -> Table:
    table = Table(title=f"fleet: {stats.devices} outlets, {elapsed:5.1f} s")
    for column in ("running", "connected", "in sync", "errors", "connects", "churn", "RSS MiB"):
        table.add_column(column, justify="right")
    table.add_row(
        str(stats.running),
        str(stats.connected),
        str(stats.in_sync),
        str(stats.errors),
        str(stats.connects),
        str(churn),
        f"{_rss_mib():.0f}",
    )
    return table


def _nvs_kept(flash: SparseFlash) -> bool:
    """The home network committed to NVS before the churn is still there."""
    try:
        nvs = NvsFlash(PartitionMap.load(flash))
        nvs.init()
        with nvs.open(NVS_NAMESPACE, OpenMode.READONLY) as handle:
            return handle.get_str(NVS_SSID_KEY) == HOME_AP.ssid
    except NvsError:
        return False


async def run_fleet(options: FleetRunOptions, console: Console, live: bool = True) -> FleetSummary:
    """Start a cloud, build and boot the fleet, churn it, and report."""
    with tempfile.TemporaryDirectory(prefix="jumpstart-fleet-") as work:
        workdir = Path(work)
        home = CloudHome(workdir / "cloud")
        config = CloudConfig(mqtt_port=0, rest_port=0, firmware_port=0, dashboard_port=0)
        async with CloudService(home, config) as cloud:
            world = RadioWorld(None, [HOME_AP])
            console.print(f"making {options.devices} outlets with the factory tools...")
            members = await asyncio.to_thread(
                build_fleet, home, cloud.mqtt_port, options.devices, options.apps, workdir,
                world=world,
            )  # fmt: skip
            console.print(f"dashboard: {cloud.dashboard.url}")
            fleet = Fleet(members)
            await fleet.start()
            rng = random.Random(options.seed)
            churn = 0
            began = time.perf_counter()
            updater: Callable[[Table], None] = lambda _t: None  # noqa: E731
            with contextlib.ExitStack() as stack:
                if live:
                    view = stack.enter_context(
                        Live(_table(fleet.stats(), 0, 0), console=console, refresh_per_second=4)
                    )
                    updater = view.update
                next_churn = began
                while (now := time.perf_counter()) - began < options.duration_s:
                    if options.churn_per_s > 0 and now >= next_churn:
                        rng.choice(members).device.power_cut()
                        churn += 1
                        next_churn = now + rng.expovariate(options.churn_per_s)
                    updater(_table(fleet.stats(), now - began, churn))
                    await asyncio.sleep(0.1)
                try:
                    await fleet.wait_all(lambda m: m.in_sync, SETTLE_S)
                except TimeoutError as err:
                    console.print(f"[red]{err}[/]")
                all_in_sync = time.perf_counter() - began
                final = fleet.stats()
                updater(_table(final, all_in_sync, churn))
            await fleet.stop()
            flashes = [m.device.flash for m in members if isinstance(m.device.flash, SparseFlash)]
            intact = sum(_nvs_kept(flash) for flash in flashes)
            own = sum(flash.own_bytes for flash in flashes) / max(1, len(flashes)) / 1024
            return FleetSummary(
                options.devices,
                all_in_sync,
                churn,
                final,
                intact,
                own,
                _rss_mib(),
            )
