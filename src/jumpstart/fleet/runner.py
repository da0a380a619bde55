"""``jumpstart fleet run``: a fleet against a cloud started alongside, with optional
provisioning, toggles and churn, a live table, and a summary at the end."""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from jumpstart.cloud.admin import operator_credentials
from jumpstart.cloud.home import CloudHome
from jumpstart.errors import InputError
from jumpstart.fleet.cloud_process import fleet_cloud
from jumpstart.fleet.fleet import (
    Fleet,
    FleetDevice,
    FleetStats,
    build_fleet,
    collector_for_fleets,
    open_files_for,
)
from jumpstart.fleet.provisioning import provision_all
from jumpstart.fleet.toggles import Percentiles, RestClient, client_context, relay_switch
from jumpstart.idf.flash import SparseFlash
from jumpstart.idf.nvs import NvsError, NvsFlash, OpenMode
from jumpstart.idf.partition import PartitionMap
from jumpstart.idf.radio import RadioWorld
from jumpstart.idf.wifi import NVS_NAMESPACE, NVS_SSID_KEY

__all__ = ["Churn", "FleetRunOptions", "FleetSummary", "parse_rate", "run_fleet"]

SETTLE_S = 90.0  # after the churn stops: time for every device to be back in sync
OUTAGE_S = (2.0, 8.0)  # a home's Wi-Fi outage lasts this long (uniform)


class Churn(Enum):
    """What happens to a device at random, at the churn rate."""

    POWER_CUT = "power cut"
    REBOOT = "reboot"
    WIFI_OUTAGE = "Wi-Fi outage"


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
    toggle_per_s: float = 0.0
    broker: str = "embedded"
    provision: bool = False
    home: Path | None = None  # the jumpstart home whose cloud an mqtts:// broker trusts
    seed: int = 1


@dataclass
class FleetSummary:
    devices: int
    broker: str
    provisioned: int = 0
    all_in_sync_s: float = 0.0
    churn: Counter[str] = field(default_factory=Counter)
    final: FleetStats | None = None
    nvs_intact: int = 0
    own_flash_kib: float = 0.0
    rss_mib: float = 0.0
    toggles: int = 0
    toggle_ms: Percentiles | None = None

    @property
    def ok(self) -> bool:
        final = self.final
        return (
            final is not None
            and final.in_sync == self.devices
            and self.nvs_intact == self.devices
            and (self.provisioned == self.devices or not self.provisioned)
        )


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class _Live:
    """What the live table shows."""

    began: float = field(default_factory=time.perf_counter)
    provisioned: int = 0
    churn: int = 0
    samples: list[float] = field(default_factory=list)
    connects: list[tuple[float, int]] = field(default_factory=list)

    def table(self, stats: FleetStats, title: str) -> Table:
        now = time.perf_counter()
        self.connects = [(t, c) for t, c in self.connects if now - t <= 1.0]
        self.connects.append((now, stats.connects))
        (t0, c0), (t1, c1) = self.connects[0], self.connects[-1]
        rate = (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0
        table = Table(title=f"{title}, {now - self.began:5.1f} s")
        columns = ["running", "provisioned", "connected", "in sync", "errors", "connects/s"]
        columns += ["churn", "toggle p50/p99 ms", "RSS MiB"]
        for column in columns:
            table.add_column(column, justify="right")
        latency = Percentiles.of(self.samples) if self.samples else None
        table.add_row(
            str(stats.running),
            str(self.provisioned),
            str(stats.connected),
            str(stats.in_sync),
            str(stats.errors),
            f"{rate:.0f}",
            str(self.churn),
            f"{latency.p50:.1f} / {latency.p99:.1f}" if latency else "-",
            f"{_rss_mib():.0f}",
        )
        return table


def _nvs_kept(member: FleetDevice) -> bool:
    """The home network committed to NVS (by the factory or by provisioning) is still there."""
    try:
        nvs = NvsFlash(PartitionMap.load(member.device.flash))
        nvs.init()
        with nvs.open(NVS_NAMESPACE, OpenMode.READONLY) as handle:
            return handle.get_str(NVS_SSID_KEY) == member.home.ssid
    except NvsError:
        return False


class _Churner:
    """Power cuts, reboots and home Wi-Fi outages at random devices, at a rate."""

    def __init__(self, fleet: Fleet, world: RadioWorld, rate: float, seed: int) -> None:
        self.fleet, self.world, self.rate = fleet, world, rate
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.next_at = time.perf_counter()
        self.outages: set[asyncio.TimerHandle] = set()

    def tick(self, now: float) -> None:
        if self.rate <= 0 or now < self.next_at:
            return
        member = self.rng.choice(self.fleet.members)
        kind = self.rng.choice(list(Churn))
        if kind is Churn.POWER_CUT:
            member.device.power_cut()
        elif kind is Churn.REBOOT:
            member.device.restart()
        elif self.world.find(member.home.ssid) is not None:
            ssid = member.home.ssid
            self.world.set_up(ssid, False)
            back = asyncio.get_running_loop().call_later(
                self.rng.uniform(*OUTAGE_S), self._restore, ssid
            )
            self.outages.add(back)
        self.counts[kind.value] += 1
        self.next_at = now + self.rng.expovariate(self.rate)

    def _restore(self, ssid: str) -> None:
        self.world.set_up(ssid, True)

    async def end_outages(self) -> None:
        """Wait for every home's Wi-Fi to be back: past the last restore's time."""
        loop = asyncio.get_running_loop()
        last = max((handle.when() for handle in self.outages), default=0.0)
        while loop.time() <= last:
            await asyncio.sleep(max(0.01, last - loop.time()))
        await asyncio.sleep(0)  # a restore due at ``last`` runs before we go on
        self.outages.clear()


async def _toggle(member: FleetDevice, rest: RestClient, live: _Live) -> None:
    async def send(on: bool) -> None:
        await asyncio.to_thread(rest.post, member.thing, on)

    with contextlib.suppress(TimeoutError, OSError, RuntimeError):
        live.samples.append(await relay_switch(member, send))


async def run_fleet(options: FleetRunOptions, console: Console, live: bool = True) -> FleetSummary:
    """Start a cloud, build and boot the fleet (provisioning it if asked), toggle and churn
    it for the duration, let it settle, and report."""
    open_files_for(options.devices, 1)
    summary = FleetSummary(options.devices, options.broker)
    fleet: Fleet | None = None
    with tempfile.TemporaryDirectory(prefix="jumpstart-fleet-") as work:
        workdir = Path(work)
        async with fleet_cloud(options.broker, workdir, options.home) as cloud:
            world = RadioWorld(None)
            console.print(f"making {options.devices} outlets with the factory tools...")
            members = await asyncio.to_thread(
                build_fleet, cloud.home, cloud.mqtt_port, options.devices, options.apps, workdir,
                world=world, provisioned=not options.provision, endpoint=cloud.host,
                prefix=cloud.prefix,
            )  # fmt: skip
            if cloud.dashboard:
                console.print(f"dashboard: {cloud.dashboard}")
            fleet = Fleet(members)
            try:
                with collector_for_fleets():
                    await _run(
                        options, summary, fleet, world, cloud.home, cloud.rest_port, console, live
                    )
            finally:
                await fleet.stop()
    if fleet is not None:
        summary.nvs_intact = sum(_nvs_kept(m) for m in fleet.members)
        flashes = [m.device.flash for m in fleet.members]
        own = [f.own_bytes for f in flashes if isinstance(f, SparseFlash)]
        summary.own_flash_kib = sum(own) / max(1, len(own)) / 1024
    summary.rss_mib = _rss_mib()
    return summary


async def _run(
    options: FleetRunOptions,
    summary: FleetSummary,
    fleet: Fleet,
    world: RadioWorld,
    home: CloudHome,
    rest_port: int,
    console: Console,
    show: bool,
) -> None:
    cert, key = operator_credentials(home)
    rest = RestClient(rest_port, client_context(home.ca_pem, cert, key))
    state = _Live()
    title = f"fleet: {options.devices} outlets, {options.broker}"
    update: Callable[[Table], None] = lambda _table: None  # noqa: E731
    with contextlib.ExitStack() as stack:
        if show:
            view = Live(state.table(fleet.stats(), title), console=console, refresh_per_second=4)
            update = stack.enter_context(view).update
        await fleet.start()
        provisioning: asyncio.Task[int] | None = None
        if options.provision:

            def provisioned() -> None:
                state.provisioned += 1

            provisioning = asyncio.create_task(provision_all(fleet.members, world, provisioned))
        churner = _Churner(fleet, world, options.churn_per_s, options.seed)
        rng = random.Random(options.seed + 1)
        toggles: set[asyncio.Task[None]] = set()
        next_toggle = time.perf_counter()
        while (now := time.perf_counter()) - state.began < options.duration_s:
            churner.tick(now)
            state.churn = churner.counts.total()
            if options.toggle_per_s > 0 and now >= next_toggle:
                ready = [m for m in fleet.members if m.in_sync]
                if ready:
                    task = asyncio.create_task(_toggle(rng.choice(ready), rest, state))
                    toggles.add(task)
                    task.add_done_callback(toggles.discard)
                next_toggle = now + 1 / options.toggle_per_s
            update(state.table(fleet.stats(), title))
            await asyncio.sleep(0.05 if options.toggle_per_s > 10 else 0.1)
        if toggles:
            await asyncio.wait(toggles, timeout=15)
        await churner.end_outages()
        if provisioning is not None:
            summary.provisioned = await provisioning
        try:
            await fleet.wait_all(lambda m: m.in_sync, SETTLE_S)
        except TimeoutError as err:
            console.print(f"[red]{err}[/]")
        summary.all_in_sync_s = time.perf_counter() - state.began
        summary.final = fleet.stats()
        summary.churn = churner.counts
        summary.toggles = len(state.samples)
        summary.toggle_ms = Percentiles.of(state.samples) if state.samples else None
        update(state.table(summary.final, title))
