"""The second-stage bootloader: partition table -> otadata -> slot -> verified image.

Follows ``bootloader_utility_load_boot_image`` (spec 4.2): the slot comes from the valid
otadata entry with the highest sequence number; loading falls back from the selected slot
downwards to the factory app, then upwards through the remaining OTA slots. With app rollback
enabled, an entry left in PENDING_VERIFY becomes ABORTED (the app never confirmed itself) and
a NEW entry becomes PENDING_VERIFY. Every image is verified (checksum, SHA-256, app
description, app package, and the signature once secure boot key digests are burned in eFuse)
before it may run; a corrupt one is logged and skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jumpstart.errors import InputError
from jumpstart.formats.otadata import BLANK_SEQ, OtaImgState, OtaSelectEntry
from jumpstart.formats.partition_table import Partition, PartitionType
from jumpstart.idf.bootloader_support import (
    FACTORY_SUBTYPE,
    Otadata,
    VerifiedApp,
    verify_app_partition,
)
from jumpstart.idf.log import EspLog
from jumpstart.idf.partition import PartitionMap
from jumpstart.targets import ESP32, ChipProfile

__all__ = ["BootPlan", "BootedApp", "NoBootableAppError", "boot_candidates", "load_boot_image"]

TAG = "boot"

BootedApp = VerifiedApp


class NoBootableAppError(InputError):
    """No app partition holds an image that passes verification."""


@dataclass(frozen=True)
class BootPlan:
    """App partitions in the order the bootloader tries them, and the otadata it read."""

    candidates: list[Partition]
    otadata: Otadata | None
    otadata_blank: bool
    """Neither entry holds a sequence number with a good CRC (``set_actual_ota_seq`` case)."""


def boot_candidates(parts: PartitionMap, log: EspLog, *, rollback: bool = True) -> BootPlan:
    """Read otadata once: the try order, after updating rollback states."""
    table = parts.table
    apps = table.ota_apps
    factory = next(
        (
            p
            for p in table.partitions
            if p.type == PartitionType.APP and p.subtype == FACTORY_SUBTYPE
        ),
        None,
    )
    otadata = Otadata.find(parts)
    selected: int | None = None  # index into apps; None = factory
    blank = False
    if otadata is not None:
        entries = otadata.read()
        blank = all(e.ota_seq == BLANK_SEQ or not e.crc_ok for e in entries)
        if rollback:
            for index, entry in enumerate(entries):
                if entry.is_valid and entry.state == OtaImgState.PENDING_VERIFY:
                    log.w(TAG, f"otadata[{index}]: app never confirmed itself, marked aborted")
                    entries[index] = entry.with_state(OtaImgState.ABORTED)
                    otadata.rewrite(index, entries[index])
        chosen = otadata.active(entries)
        if chosen is not None:
            entry = entries[chosen]
            selected = otadata.slot_of(entry)
            if rollback and entry.state == OtaImgState.NEW:
                otadata.rewrite(chosen, entry.with_state(OtaImgState.PENDING_VERIFY))
    if selected is None and factory is None and apps:
        selected = 0
    order: list[Partition] = []
    if selected is not None:
        order += [apps[i] for i in range(selected, -1, -1)]
    if factory is not None:
        order.append(factory)
    if selected is not None:
        order += apps[selected + 1 :]
    else:
        order += apps
    return BootPlan(order, otadata, blank)


def load_boot_image(
    parts: PartitionMap,
    log: EspLog,
    *,
    rollback: bool = True,
    chip: ChipProfile = ESP32,
    trusted_key_digests: Sequence[bytes] = (),
    min_secure_version: int = 0,
) -> BootedApp:
    """Pick, verify and unpack the app to run; raise NoBootableAppError if none passes.
    With anti-rollback, an app whose ``secure_version`` is below ``min_secure_version`` (the
    eFuse's) is skipped like an invalid one."""
    plan = boot_candidates(parts, log, rollback=rollback)
    if not plan.candidates:
        log.e(TAG, "No bootable app partitions in the partition table")
        raise NoBootableAppError("the partition table has no app partition")
    for partition in plan.candidates:
        region = parts.find_first(PartitionType.APP, label=partition.name)
        try:
            booted = verify_app_partition(
                region, chip=chip, trusted_key_digests=trusted_key_digests
            )
        except InputError as err:
            log.e(TAG, f"Image at 0x{partition.offset:x} ({partition.name}) is not bootable: {err}")
            continue
        desc = booted.image.app_description
        if desc is not None and desc.secure_version < min_secure_version:
            log.e(
                TAG,
                f"Image at 0x{partition.offset:x} ({partition.name}) is not bootable: "
                f"secure_version {desc.secure_version} is below the eFuse's {min_secure_version}",
            )
            continue
        log.i(TAG, f"Loaded app from partition at offset 0x{partition.offset:x}")
        if plan.otadata is not None and plan.otadata_blank and partition.ota_slot is not None:
            # With blank otadata, booting ota_N records seq N+1 in entry 0.
            seq = partition.ota_slot + 1
            # Without app rollback the entry has no state (ESP8266_RTOS_SDK's layout: those
            # bytes are the end of seq_label, left erased).
            state = OtaImgState.VALID if rollback else OtaImgState.UNDEFINED
            plan.otadata.rewrite(0, OtaSelectEntry.new(seq, state))
            log.d(TAG, f"otadata set to seq {seq} ({partition.name})")
        return booted
    log.e(TAG, "No bootable app partitions in the partition table")
    raise NoBootableAppError("no app partition holds a valid image")
