"""N outlets, each a full virtual device, made by the factory tools and run side by side.

Every outlet boots the same outlet image from a copy-on-write flash (one shared image: the
bootloader, the table, the app), with its own factory partition from ``mfg generate`` (its
thing, certificate, key, PoP) and, unless it is to be provisioned, the home network already in
its NVS. They share one asyncio loop and one radio world; their consoles are not kept, only
the states they announce (connected, in sync).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from jumpstart.cloud.home import CloudHome
from jumpstart.errors import InputError
from jumpstart.formats.nvs import FormatVersion
from jumpstart.formats.partition_table import PartitionTable
from jumpstart.host.app_build import load_app_package
from jumpstart.host.image_tools import bootloader_build, image_build
from jumpstart.host.layouts import OUTLET_PARTITIONS_CSV
from jumpstart.host.mfg.credentials import CredentialsJob, run_credentials
from jumpstart.host.mfg.generate import MfgJob, run_mfg
from jumpstart.host.mfg.tables import read_config, read_values
from jumpstart.host.nvs_gen import NvsImageBuilder, parse_nvs_size
from jumpstart.idf.device import Device, DeviceState
from jumpstart.idf.efuse import VirtualEfuse
from jumpstart.idf.flash import SharedImage, SparseFlash
from jumpstart.idf.radio import AccessPoint, RadioWorld
from jumpstart.idf.wifi import NVS_NAMESPACE, NVS_PASSWORD_KEY, NVS_SSID_KEY

__all__ = [
    "Announced",
    "Fleet",
    "FleetDevice",
    "FleetStats",
    "build_fleet",
    "collector_for_fleets",
    "home_ap",
    "open_files_for",
]

FLASH_SIZE = 4 * 1024 * 1024
BOOTLOADER_OFFSET, TABLE_OFFSET, OTA_0 = 0x1000, 0x8000, 0x20000
NVS_OFFSET, FCTRY_OFFSET = 0x9000, 0x340000
MAC_BASE = 0x240AC4000000  # Espressif's OUI; device n gets MAC_BASE + n
BUILD_TIME = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)  # the fleet's release, built once


@dataclass(slots=True)
class Announced:
    """What one outlet's console announced; the lines themselves are not kept."""

    connected: bool = False
    in_sync: bool = False
    errors: int = 0
    connects: int = 0

    def console(self, line: str) -> None:
        # Only what the statistics need: a fleet keeps no console lines.
        if "Shadow in sync" in line:
            self.in_sync = True
        elif "mqtt_client: Connected" in line:
            self.connected = True
            self.connects += 1
        elif "mqtt_client: Reconnecting" in line or "rst:" in line:
            self.connected = self.in_sync = False
        elif line.startswith("E ("):
            self.errors += 1


def home_ap(n: int) -> AccessPoint:
    """Outlet ``n``'s home network: every outlet lives in a home of its own, so one home's
    Wi-Fi outage is one device's."""
    return AccessPoint(f"home-{n:05d}", f"home-password-{n:05d}")


@dataclass(slots=True)
class FleetDevice:
    """One outlet of the fleet, its home network and the PoP on its box label."""

    thing: str
    device: Device
    state: Announced
    home: AccessPoint
    pop: str

    @property
    def connected(self) -> bool:
        return self.state.connected

    @property
    def in_sync(self) -> bool:
        return self.state.in_sync


@dataclass
class FleetStats:
    devices: int
    running: int
    connected: int
    in_sync: int
    errors: int
    connects: int


FILES_HEADROOM = 1024  # the cloud's servers, stores, logs, and the odd extra connection


def open_files_for(devices: int, sockets_per_device: int) -> int:
    """Make room for the fleet's sockets: raise this process's open-file limit (soft, and the
    hard one where allowed); a limit that cannot be raised is an InputError saying what to
    run. Returns the soft limit now in force."""
    needed = devices * sockets_per_device + FILES_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))
    except (ValueError, OSError):
        if hard < needed:
            raise InputError(
                f"{devices} devices need {needed} open files and this shell allows {hard}: "
                f"run `ulimit -n {needed}` as root first, or use fewer devices"
            ) from None
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed


# A booting fleet allocates millions of objects that live as long as the fleet; with the
# collector's default (a young collection every 700 net allocations, older ones scanning the
# whole heap in proportion) a quarter of the boot went to collections that found nothing.
FLEET_GC_THRESHOLDS = (50_000, 20, 20)


@contextlib.contextmanager
def collector_for_fleets() -> Iterator[None]:
    """Tune the cyclic garbage collector for a fleet's lifetime: what exists now (the built
    fleet, imported code) is frozen out of its scans and young collections run less often;
    both are restored after. For the process that runs the fleet (a ``fleet`` command)."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*FLEET_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def _wifi_nvs(ap: AccessPoint) -> bytes:
    builder = NvsImageBuilder(parse_nvs_size("0x6000"), FormatVersion.V2)
    ns = builder.namespace(NVS_NAMESPACE)
    builder.string(ns, NVS_SSID_KEY, ap.ssid)
    builder.string(ns, NVS_PASSWORD_KEY, ap.password)
    return builder.to_bytes()


def _shared_image(apps: Path) -> SharedImage:
    """What every outlet's flash starts with: bootloader, table, the outlet app in ota_0."""
    flash = bytearray(b"\xff" * (OTA_0 + 2 * 1024 * 1024))
    loader = bootloader_build()
    flash[BOOTLOADER_OFFSET : BOOTLOADER_OFFSET + len(loader)] = loader
    table = PartitionTable.from_csv(OUTLET_PARTITIONS_CSV, flash_size=FLASH_SIZE).to_binary()
    flash[TABLE_OFFSET : TABLE_OFFSET + len(table)] = table
    package = load_app_package(apps / "outlet")
    app = image_build(package.name, package.version, package.to_bytes(), when=BUILD_TIME)
    flash[OTA_0 : OTA_0 + len(app)] = app
    return SharedImage(bytes(flash).rstrip(b"\xff"), FLASH_SIZE)


def build_fleet(
    cloud_home: CloudHome,
    mqtt_port: int,
    count: int,
    apps: Path,
    workdir: Path,
    *,
    world: RadioWorld,
    provisioned: bool = True,
    endpoint: str = "localhost",
    prefix: str = "outlet",
) -> list[FleetDevice]:
    """``count`` outlets: identities and factory images from the manufacturing tools (the
    things ``{prefix}-N`` registered in the cloud, reaching MQTT at ``endpoint:mqtt_port``),
    each on a copy-on-write flash over one shared image, each with its home AP added to
    ``world``; ``provisioned``: that network already in NVS."""
    factory = workdir / "factory"
    job = CredentialsJob(
        cloud_home, count, factory, prefix=prefix, endpoint=endpoint, mqtt_port=mqtt_port
    )
    run_credentials(job)
    config = read_config(factory / "config.csv")
    values = read_values(factory / "values.csv", config)
    run_mfg(MfgJob(config, values, prefix, "0x6000", factory))
    image = _shared_image(apps)
    fleet = []
    for n, row in enumerate(values.devices, 1):
        home = home_ap(n)
        world.add(home)
        flash = SparseFlash(FLASH_SIZE, base=image)
        flash.write(FCTRY_OFFSET, (factory / "bin" / f"{prefix}-{n}.bin").read_bytes())
        if provisioned:
            flash.write(NVS_OFFSET, _wifi_nvs(home))
        mac = (MAC_BASE + n).to_bytes(6, "big")
        state = Announced()
        thing = row.cells["device_id"]
        device = Device(thing, flash, VirtualEfuse(mac), console=state.console, world=world)
        fleet.append(FleetDevice(thing, device, state, home, row.cells["pop"]))
    return fleet


@dataclass
class Fleet:
    """The fleet's devices, run on the current loop."""

    members: list[FleetDevice]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    started: float = 0.0

    async def start(self, stagger_s: float = 0.0) -> None:
        self.started = time.perf_counter()
        for member in self.members:
            self.tasks.append(asyncio.create_task(member.device.run()))
            if stagger_s:
                await asyncio.sleep(stagger_s)

    @property
    def shared_bytes(self) -> int:
        """The flash image every member boots, held once."""
        images = {
            id(m.device.flash.base): m.device.flash.base
            for m in self.members
            if isinstance(m.device.flash, SparseFlash) and m.device.flash.base is not None
        }
        return sum(image.nbytes for image in images.values())

    def stats(self) -> FleetStats:
        members = self.members
        return FleetStats(
            devices=len(members),
            running=sum(m.device.state is DeviceState.RUNNING for m in members),
            connected=sum(m.connected for m in members),
            in_sync=sum(m.in_sync for m in members),
            errors=sum(m.state.errors for m in members),
            connects=sum(m.state.connects for m in members),
        )

    async def wait_all(self, check: Callable[[FleetDevice], bool], timeout: float) -> float:
        """Seconds until every device passes ``check``; TimeoutError after ``timeout``."""
        deadline = time.perf_counter() + timeout
        while not all(check(m) for m in self.members):
            if time.perf_counter() > deadline:
                missing = [m.thing for m in self.members if not check(m)][:5]
                raise TimeoutError(f"not all devices got there; first missing: {missing}")
            await asyncio.sleep(0.05)
        return time.perf_counter() - self.started

    async def stop(self) -> None:
        for member in self.members:
            await member.device.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 30)
