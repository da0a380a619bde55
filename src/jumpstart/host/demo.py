"""A walk through the flash of a virtual outlet: what ``make run`` shows today.

Builds the guide's flash layout in a file-backed flash, puts a signed app image into ota_0,
points otadata at it, and reads everything back the way the bootloader will.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from jumpstart.errors import InputError
from jumpstart.formats.app_image import AppImage
from jumpstart.formats.bootloader_image import BOOTLOADER_OFFSET
from jumpstart.formats.otadata import (
    OtaImgState,
    OtaSelectEntry,
    otadata_image,
    parse_otadata,
    select_entry,
    slot_for_seq,
)
from jumpstart.formats.partition_table import PartitionTable, PartitionType
from jumpstart.formats.secure_boot import key_digest, verify_signed
from jumpstart.host.image_tools import bootloader_build, image_build, image_sign, signed_image_of
from jumpstart.host.layouts import OUTLET_PARTITIONS_CSV
from jumpstart.idf.flash import FileFlash
from jumpstart.idf.partition import PartitionMap

__all__ = ["DemoResult", "flash_demo"]


@dataclass(frozen=True, slots=True)
class DemoResult:
    flash_path: Path
    table: PartitionTable
    boot_label: str
    project: str
    version: str
    signed_bytes: int
    key_digest: str


def flash_demo(home: Path, *, when: dt.datetime | None = None) -> DemoResult:
    """Write the outlet layout and a signed hello-world image into ``home``/demo/flash.bin."""
    folder = home / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "flash.bin"
    path.unlink(missing_ok=True)
    table = PartitionTable.from_csv(OUTLET_PARTITIONS_CSV, flash_size=4 * 1024 * 1024)
    key = ec.generate_private_key(ec.SECP256R1())
    image = image_build(
        "hello_world",
        "1.0.0",
        b"[%d] Hello world!\n",
        when=when or dt.datetime.now(dt.UTC),
    )
    signed = image_sign(image, key)
    with FileFlash(path) as flash:
        flash.write(BOOTLOADER_OFFSET, bootloader_build(when=when))
        flash.write(0x8000, table.to_binary())
        parts = PartitionMap.load(flash)
        ota_0 = parts.find_first(PartitionType.APP, label="ota_0")
        ota_0.erase_range(0, len(signed) + (-len(signed) % 0x1000))
        ota_0.write(0, signed)
        otadata = parts.find_first(PartitionType.DATA, subtype=0x00)
        otadata.erase()
        otadata.write(0, otadata_image(OtaSelectEntry.new(1, OtaImgState.VALID), None))

        # Read back as the bootloader does.
        entries = parse_otadata(otadata.read(0, otadata.size))
        chosen = select_entry(entries)
        apps = parts.table.ota_apps
        slot = 0 if chosen is None else slot_for_seq(entries[chosen].ota_seq, len(apps))
        boot = parts.find_first(PartitionType.APP, label=apps[slot].name)
        content = boot.read(0, boot.size)
        booted = AppImage.parse(content)
        booted.verify()
        span = signed_image_of(content)
        if span is None:
            raise InputError(f"the image in {boot.label} is not signed")
        trusted = [key_digest(key.public_key())]
        verify_signed(content[: span.signed_length], trusted_key_digests=trusted)
        desc = booted.app_description
        assert desc is not None
    return DemoResult(
        path,
        parts.table,
        boot.label,
        desc.project_name,
        desc.version,
        len(signed),
        key_digest(key.public_key()).hex(),
    )
