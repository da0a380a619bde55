"""OTA test kit: apps built from source, images for other chips, a flash booted like a device."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

from jumpstart.formats.app_image import AppImage, ChipId
from jumpstart.formats.app_package import AppPackage
from jumpstart.formats.otadata import OtaImgState, OtaSelectEntry, otadata_image, parse_otadata
from jumpstart.formats.partition_table import PartitionType
from jumpstart.host.image_tools import image_build
from jumpstart.idf.bootloader import load_boot_image
from jumpstart.idf.flash import MemoryFlash
from jumpstart.idf.log import EspLog
from jumpstart.idf.ota import EspOta
from jumpstart.idf.partition import EspPartition, PartitionMap
from jumpstart.targets import ESP32, ChipProfile
from tests.idf.device_helpers import app_image, outlet_flash, partition_offset

WHEN = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def app_from_source(
    name: str,
    source: str,
    *,
    version: str = "1.0.0",
    embedded: dict[str, bytes] | None = None,
    config: dict[str, object] | None = None,
) -> bytes:
    """An app image whose ``main`` module is ``source``."""
    package = AppPackage(
        name=name,
        version=version,
        entry=f"{name}.main",
        modules={f"{name}.__init__": b"", f"{name}.main": source.encode()},
        embedded=embedded or {},
        config=config or {},
    )
    return image_build(name, version, package.to_bytes(), when=WHEN)


def padded_app(name: str, size: int, source: str = "def app_main(ctx):\n    pass\n") -> bytes:
    """An app image of about ``size`` bytes (an embedded filler file makes up the rest)."""
    filler = random.Random(size).randbytes(size)  # does not compress
    return app_from_source(name, source, embedded={"filler.bin": filler})


def for_chip(image: bytes, chip_id: ChipId) -> bytes:
    """The same app rebuilt for another chip (a correct image, just not for an ESP32)."""
    parsed = AppImage.parse(image)
    header = dataclasses.replace(parsed.header, chip_id=chip_id)
    return AppImage.build(parsed.segments, header=header).to_bytes()


def flip_byte(image: bytes, offset: int | None = None) -> bytes:
    """``image`` with one byte inverted (by default in the middle of the payload)."""
    where = len(image) // 2 if offset is None else offset
    return image[:where] + bytes([image[where] ^ 0xFF]) + image[where + 1 :]


CHUNK = 512


class Board:
    """A flash with the guide's layout, booted by the bootloader like a device would be."""

    def __init__(
        self, flash: MemoryFlash, digests: list[bytes] | None = None, chip: ChipProfile = ESP32
    ) -> None:
        self.flash = flash
        self.chip = chip
        self.lines: list[str] = []
        self.log = EspLog(lambda: 0, self.lines.append)
        self.restarts = 0
        self.digests = digests or []
        self.parts = PartitionMap.load(flash)
        self.ota = self.boot()

    def boot(self) -> EspOta:
        rollback = self.chip.app_rollback
        booted = load_boot_image(
            self.parts,
            self.log,
            rollback=rollback,
            chip=self.chip,
            trusted_key_digests=self.digests,
        )
        self.running = booted.partition
        self.app = booted.package.name
        self.ota = EspOta(
            self.parts,
            booted.partition,
            self.log,
            self._restart,
            rollback=rollback,
            chip=self.chip,
            trusted_key_digests=self.digests,
        )
        return self.ota

    def _restart(self) -> None:
        self.restarts += 1

    def slot(self, label: str) -> EspPartition:
        return self.parts.find_first(PartitionType.APP, label=label)

    def entries(self) -> tuple[OtaSelectEntry, OtaSelectEntry]:
        return parse_otadata(self.flash.read(partition_offset("otadata", self.chip), 0x2000))

    def update(self, image: bytes) -> EspPartition:
        """The whole esp_ota_begin/write/end/set_boot_partition sequence."""
        target = self.ota.get_next_update_partition()
        assert target is not None
        handle = self.ota.begin(target)
        for start in range(0, len(image), CHUNK):
            handle.write(image[start : start + CHUNK])
        handle.end()
        self.ota.set_boot_partition(target)
        return target


def board_on_ota_0(app: str = "2_drivers", chip: ChipProfile = ESP32) -> Board:
    """ota_0 holds ``app`` and is confirmed (otadata seq 1, VALID; no state on ESP8266)."""
    flash = outlet_flash(chip, ota_0=app_image(app, chip))
    state = OtaImgState.VALID if chip.app_rollback else OtaImgState.UNDEFINED
    flash.write(
        partition_offset("otadata", chip), otadata_image(OtaSelectEntry.new(1, state), None)
    )
    return Board(flash, chip=chip)
