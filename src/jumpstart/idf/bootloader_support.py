"""``bootloader_support``: what the bootloader and the running app share.

Two things, as in ESP-IDF's component of that name: ``esp_image_verify`` (is the image in an
app partition bootable on this chip?) and the otadata accessors of ``bootloader_common`` (read
both select entries, rewrite one sector). The bootloader, ``esp_ota_ops`` and ``esp_https_ota``
all verify images and touch otadata through this module, so they agree on every rule.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from jumpstart.errors import InputError
from jumpstart.formats.app_image import AppImage, ImageError, image_span
from jumpstart.formats.app_package import AppPackage
from jumpstart.formats.otadata import (
    OtadataError,
    OtaSelectEntry,
    parse_otadata,
    select_entry,
    slot_for_seq,
)
from jumpstart.formats.partition_table import PartitionType
from jumpstart.formats.secure_boot import SECTOR_SIZE as SIG_SECTOR_SIZE
from jumpstart.formats.secure_boot import SignatureError, SignatureVersion, verify_signed
from jumpstart.idf.partition import EspPartition, PartitionMap
from jumpstart.targets import ESP32, ChipProfile

__all__ = ["ESP32_SIGNATURE_VERSIONS", "Otadata", "VerifiedApp", "verify_app_partition"]

# ESP32 v3's Secure Boot V2 verifies RSA-3072 signature blocks only (SOC_SECURE_BOOT_V2_RSA).
ESP32_SIGNATURE_VERSIONS = frozenset({SignatureVersion.RSA})

IMAGE_MAGIC_BYTE = b"\xe9"  # ESP_IMAGE_HEADER_MAGIC
OTADATA_SUBTYPE = 0x00  # ESP_PARTITION_SUBTYPE_DATA_OTA
FACTORY_SUBTYPE = 0x00  # ESP_PARTITION_SUBTYPE_APP_FACTORY
OTADATA_SECTOR = 0x1000  # each select entry owns one erase sector (spec 4.1)


@dataclass(frozen=True)
class VerifiedApp:
    """An app partition whose image passed ``esp_image_verify``."""

    partition: EspPartition
    image: AppImage
    package: AppPackage


# Devices that boot the same bytes (a fleet's outlets, one release) share one parsed image and
# package: both are immutable and looked up by their whole content, so sharing them hides
# nothing of one device from another; each device still reads and verifies its own flash.
@functools.lru_cache(maxsize=8)  # a few releases at a time
def _parsed_image(data: bytes, extended_header: bool) -> AppImage:
    return AppImage.parse(data, extended_header=extended_header)


@functools.lru_cache(maxsize=8)  # a few releases at a time
def _parsed_package(payload: bytes) -> AppPackage:
    return AppPackage.from_bytes(payload)


def verify_app_partition(
    region: EspPartition,
    *,
    chip: ChipProfile = ESP32,
    trusted_key_digests: Sequence[bytes] = (),
) -> VerifiedApp:
    """``esp_image_verify`` on an app partition; :class:`ImageError` says what is wrong.

    Checks the magic byte, that the image fits the partition, chip id, segment rules, checksum,
    SHA-256, the app description and the app package. With secure boot key digests burned in
    eFuse, the image must also carry a signature block made with one of those keys.
    """
    if region.read(0, 1) != IMAGE_MAGIC_BYTE:
        raise ImageError("no image (bad magic byte)")
    length = image_span(region.read, region.size, extended_header=chip.extended_header)
    image = _parsed_image(region.read(0, length), chip.extended_header)
    image.verify(chip_id=chip.chip_id)
    if trusted_key_digests:
        # Secure Boot V2: the signature sector follows the image padded to 4 KiB.
        signed_length = length + (-length % SIG_SECTOR_SIZE) + SIG_SECTOR_SIZE
        if signed_length > region.size:
            raise ImageError("secure boot is enabled and the image has no signature sector")
        try:
            verify_signed(
                region.read(0, signed_length),
                trusted_key_digests=trusted_key_digests,
                versions=ESP32_SIGNATURE_VERSIONS,
            )
        except SignatureError as err:
            raise ImageError(f"secure boot: {err}") from None
    try:
        package = _parsed_package(image.payload)
    except InputError as err:
        raise ImageError(f"app package: {err}") from None
    return VerifiedApp(region, image, package)


class Otadata:
    """The ``data/ota`` partition: two select entries, one per erase sector."""

    def __init__(self, partition: EspPartition, app_count: int) -> None:
        self.partition = partition
        self.app_count = app_count

    @classmethod
    def find(cls, parts: PartitionMap) -> Otadata | None:
        """The otadata partition, or None when the table has none (or no OTA slots)."""
        found = parts.find(PartitionType.DATA, subtype=OTADATA_SUBTYPE)
        apps = parts.table.ota_apps
        return cls(found[0], len(apps)) if found and apps else None

    def read(self) -> list[OtaSelectEntry]:
        """Both entries; an unreadable partition reads as two blank entries."""
        try:
            return list(parse_otadata(self.partition.read(0, self.partition.size)))
        except OtadataError:
            blank = OtaSelectEntry.from_bytes(b"\xff" * 32)
            return [blank, blank]

    @staticmethod
    def active(entries: Sequence[OtaSelectEntry]) -> int | None:
        """``bootloader_common_get_active_otadata``: index of the valid entry with max seq."""
        return select_entry((entries[0], entries[1]))

    def slot_of(self, entry: OtaSelectEntry) -> int:
        return slot_for_seq(entry.ota_seq, self.app_count)

    def rewrite(self, index: int, entry: OtaSelectEntry) -> None:
        """``rewrite_ota_seq``: erase the entry's sector, then program the 32 bytes."""
        self.partition.erase_range(index * OTADATA_SECTOR, OTADATA_SECTOR)
        self.partition.write(index * OTADATA_SECTOR, entry.to_bytes())

    def erase_entry(self, index: int) -> None:
        self.partition.erase_range(index * OTADATA_SECTOR, OTADATA_SECTOR)

    def erase(self) -> None:
        """What setting the factory app as boot partition does."""
        self.partition.erase()
