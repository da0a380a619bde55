"""``esp_ota_ops``: write a new app into an OTA slot, choose what boots, confirm or roll back.

The rules are ESP-IDF's (spec 4.3), with app rollback enabled by default:

* ``begin`` refuses the running slot, and refuses while the running app is still
  PENDING_VERIFY (it must confirm itself first); it invalidates the inactive otadata entry, so
  an interrupted update can never make an old image bootable again.
* ``write`` erases each sector as the data reaches it (``OTA_WITH_SEQUENTIAL_WRITES``) and
  checks the magic byte of the first chunk; ``end`` runs ``esp_image_verify`` on the slot.
* ``set_boot_partition`` verifies again, then writes the *other* otadata sector with the next
  sequence number for the slot, state NEW: a power cut at any point leaves the old entry as it
  was, so the old app still boots.
* At the next boot the bootloader turns NEW into PENDING_VERIFY; the app calls
  ``mark_app_valid_cancel_rollback`` once it works, or the boot after that finds PENDING_VERIFY,
  marks it ABORTED and boots the previous slot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from jumpstart.formats.app_image import (
    APP_DESC_SIZE,
    AppDescription,
    ImageError,
    app_desc_offset,
)
from jumpstart.formats.otadata import BLANK_SEQ, OtaImgState, OtaSelectEntry, next_seq_for_slot
from jumpstart.formats.partition_table import PartitionType
from jumpstart.idf.bootloader_support import (
    FACTORY_SUBTYPE,
    IMAGE_MAGIC_BYTE,
    Otadata,
    VerifiedApp,
    verify_app_partition,
)
from jumpstart.idf.efuse import VirtualEfuse
from jumpstart.idf.esp_err import EspErr, EspError
from jumpstart.idf.log import EspLog
from jumpstart.idf.partition import EspPartition, PartitionMap
from jumpstart.idf.security import read_secure_version, update_secure_version
from jumpstart.targets import ESP32, ChipProfile

__all__ = ["OTA_SIZE_UNKNOWN", "OTA_WITH_SEQUENTIAL_WRITES", "EspOta", "OtaHandle"]

TAG = "esp_ota_ops"
OTA_SIZE_UNKNOWN = 0xFFFFFFFF  # esp_ota_begin: erase the whole partition first
OTA_WITH_SEQUENTIAL_WRITES = 0xFFFFFFFE  # erase sector by sector as the data arrives


def _same(a: EspPartition | None, b: EspPartition | None) -> bool:
    return a is not None and b is not None and a.address == b.address


class OtaHandle:
    """One update in progress (``esp_ota_handle_t``): ``write`` then ``end`` or ``abort``."""

    def __init__(self, ota: EspOta, partition: EspPartition, *, need_erase: bool) -> None:
        self.ota = ota
        self.partition = partition
        self.need_erase = need_erase
        self.wrote_size = 0
        self.open = True
        # With flash encryption, flash takes 16-byte blocks: the tail waits for more data
        # (esp_ota_write's partial_data), and esp_ota_end pads it with 0xFF.
        self._tail = b""

    def _check_open(self) -> None:
        if not self.open:
            raise EspError(EspErr.ESP_ERR_INVALID_ARG, "the OTA handle was ended or aborted")

    def write(self, data: bytes) -> None:
        """``esp_ota_write``: append ``data`` to the image in the slot."""
        self._check_open()
        if not data:
            return
        sector = self.partition.flash.sector_size
        if self.wrote_size + len(data) > self.partition.size:
            raise EspError(
                EspErr.ESP_ERR_INVALID_SIZE,
                f"image too large for the '{self.partition.label}' slot "
                f"({self.partition.size} bytes)",
            )
        if self.need_erase:
            first = self.wrote_size // sector
            last = (self.wrote_size + len(data) - 1) // sector
            if self.wrote_size % sector == 0:
                self.partition.erase_range(first * sector, (last - first + 1) * sector)
            elif first != last:
                self.partition.erase_range((first + 1) * sector, (last - first) * sector)
        if self.wrote_size == 0 and data[:1] != IMAGE_MAGIC_BYTE:
            self.ota.log.e(
                TAG, f"OTA image has invalid magic byte (expected 0xE9, saw 0x{data[0]:02x})"
            )
            raise EspError(EspErr.ESP_ERR_OTA_VALIDATE_FAILED, "not an app image (magic byte)")
        if self.partition.encrypted:
            pending = self._tail + data
            whole = len(pending) - len(pending) % 16
            if whole:
                self.partition.write(self.wrote_size - len(self._tail), pending[:whole])
            self._tail = pending[whole:]
        else:
            self.partition.write(self.wrote_size, data)
        self.wrote_size += len(data)

    def end(self) -> VerifiedApp:
        """``esp_ota_end``: close the handle and verify the image written."""
        self._check_open()
        self.open = False
        if self.wrote_size == 0:
            raise EspError(EspErr.ESP_ERR_INVALID_ARG, "nothing was written")
        if self._tail:
            block = self._tail.ljust(16, b"\xff")
            self.partition.write(self.wrote_size - len(self._tail), block)
            self._tail = b""
        try:
            return self.ota.verify(self.partition)
        except ImageError as err:
            self.ota.log.e(TAG, "New image failed verification")
            raise EspError(EspErr.ESP_ERR_OTA_VALIDATE_FAILED, str(err)) from None

    def abort(self) -> None:
        """``esp_ota_abort``: forget the update; the slot keeps whatever was written."""
        self.open = False


class EspOta:
    """``esp_ota_ops`` for the app running from ``running`` on one device."""

    def __init__(
        self,
        partitions: PartitionMap,
        running: EspPartition,
        log: EspLog,
        restart: Callable[[], None],
        *,
        rollback: bool = True,
        chip: ChipProfile = ESP32,
        trusted_key_digests: Sequence[bytes] = (),
        efuse: VirtualEfuse | None = None,
        anti_rollback: bool = False,
    ) -> None:
        self.partitions = partitions
        self.running = running
        self.log = log
        self.restart = restart
        self.rollback = rollback
        self.chip = chip
        self.trusted_key_digests = list(trusted_key_digests)
        # CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK: the eFuse secure version gates boot slots.
        self.efuse = efuse if anti_rollback else None
        self._apps = [
            partitions.find_first(PartitionType.APP, label=p.name)
            for p in partitions.table.ota_apps
        ]
        # The partition table cannot change while an app runs: look otadata up once.
        self.otadata = Otadata.find(partitions)

    # -- partitions --------------------------------------------------------------------
    def verify(self, partition: EspPartition) -> VerifiedApp:
        """``esp_image_verify`` with this chip's id and eFuse key digests."""
        return verify_app_partition(
            partition, chip=self.chip, trusted_key_digests=self.trusted_key_digests
        )

    def get_running_partition(self) -> EspPartition:
        return self.running

    def _otadata(self) -> Otadata:
        otadata = self.otadata
        if otadata is None:
            raise EspError(EspErr.ESP_ERR_NOT_FOUND, "no otadata partition (or no OTA slots)")
        return otadata

    def _default_boot(self) -> EspPartition | None:
        factory = self.partitions.find(PartitionType.APP, subtype=FACTORY_SUBTYPE)
        if factory:
            return factory[0]
        return self._apps[0] if self._apps else None

    def get_boot_partition(self) -> EspPartition | None:
        """``esp_ota_get_boot_partition``: what the next boot selects."""
        otadata = self.otadata
        if otadata is None:
            return self._default_boot()
        entries = otadata.read()
        active = otadata.active(entries)
        if active is None:
            return self._default_boot()
        return self._apps[otadata.slot_of(entries[active])]

    def get_next_update_partition(
        self, start_from: EspPartition | None = None
    ) -> EspPartition | None:
        """The OTA slot after ``start_from`` (default: the running app), wrapping around."""
        start = start_from or self.running
        for index, app in enumerate(self._apps):
            if _same(app, start):
                return self._apps[(index + 1) % len(self._apps)]
        return self._apps[0] if self._apps else None

    def get_partition_description(self, partition: EspPartition) -> AppDescription:
        """``esp_ota_get_partition_description``: the ``esp_app_desc_t`` at offset 0x20."""
        if partition.type != PartitionType.APP:
            raise EspError(EspErr.ESP_ERR_NOT_SUPPORTED, f"'{partition.label}' is not an app")
        try:
            offset = app_desc_offset(self.chip.extended_header)
            return AppDescription.from_bytes(partition.read(offset, APP_DESC_SIZE))
        except ImageError as err:
            raise EspError(EspErr.ESP_ERR_NOT_FOUND, str(err)) from None

    def _slot(self, partition: EspPartition) -> int:
        for index, app in enumerate(self._apps):
            if _same(app, partition):
                return index
        raise EspError(EspErr.ESP_ERR_NOT_SUPPORTED, f"'{partition.label}' is not an OTA slot")

    def get_state_partition(self, partition: EspPartition) -> int:
        """``esp_ota_get_state_partition``: the otadata state recorded for an OTA slot."""
        slot = self._slot(partition)
        otadata = self._otadata()
        for entry in otadata.read():
            if entry.crc_ok and otadata.slot_of(entry) == slot:
                try:
                    return OtaImgState(entry.state)
                except ValueError:
                    return entry.state
        raise EspError(EspErr.ESP_ERR_NOT_FOUND, f"no otadata entry for '{partition.label}'")

    def _running_state(self) -> int | None:
        try:
            return self.get_state_partition(self.running)
        except EspError:
            return None

    # -- update --------------------------------------------------------------------------
    def begin(
        self, partition: EspPartition, image_size: int = OTA_WITH_SEQUENTIAL_WRITES
    ) -> OtaHandle:
        """``esp_ota_begin``: start writing an image into an OTA slot."""
        self._slot(partition)  # ESP_ERR_NOT_SUPPORTED when it is not an OTA slot
        if _same(partition, self.running):
            raise EspError(
                EspErr.ESP_ERR_OTA_PARTITION_CONFLICT, f"'{partition.label}' runs this app"
            )
        if self.rollback and self._running_state() == OtaImgState.PENDING_VERIFY:
            self.log.e(TAG, "Running app has not confirmed state (ESP_OTA_IMG_PENDING_VERIFY)")
            raise EspError(
                EspErr.ESP_ERR_OTA_ROLLBACK_INVALID_STATE,
                "the running app has not confirmed itself yet",
            )
        known_size = image_size not in (OTA_SIZE_UNKNOWN, OTA_WITH_SEQUENTIAL_WRITES)
        if known_size and image_size > partition.size:
            raise EspError(
                EspErr.ESP_ERR_INVALID_SIZE,
                f"image of {image_size} bytes does not fit '{partition.label}' "
                f"({partition.size} bytes)",
            )
        handle = OtaHandle(self, partition, need_erase=image_size == OTA_WITH_SEQUENTIAL_WRITES)
        if image_size != OTA_WITH_SEQUENTIAL_WRITES:
            sector = partition.flash.sector_size
            size = partition.size if image_size in (0, OTA_SIZE_UNKNOWN) else image_size
            partition.erase_range(0, size + (-size % sector))
        if self.rollback:
            self._invalidate_inactive_entry()
        return handle

    def _invalidate_inactive_entry(self) -> None:
        """``esp_ota_invalidate_inactive_ota_data_slot``: forget the last booted other app."""
        otadata = self.otadata
        if otadata is None:
            return
        entries = otadata.read()
        active = otadata.active(entries)
        if active is None:
            return
        inactive = 1 - active
        entry = entries[inactive]
        if entry.ota_seq == BLANK_SEQ or not entry.crc_ok:
            return
        if self._apps[otadata.slot_of(entry)].address == self.running.address:
            return
        otadata.erase_entry(inactive)

    def set_boot_partition(self, partition: EspPartition) -> None:
        """``esp_ota_set_boot_partition``: verify the image and make it boot next; with
        anti-rollback, an app below the eFuse secure version is refused."""
        try:
            verified = self.verify(partition)
        except ImageError as err:
            raise EspError(EspErr.ESP_ERR_OTA_VALIDATE_FAILED, str(err)) from None
        desc = verified.image.app_description
        if self.efuse is not None and desc is not None:
            floor = read_secure_version(self.efuse)
            if desc.secure_version < floor:
                self.log.e(
                    TAG,
                    "This a new partition can not be booted due to a secure version is lower "
                    "than stored in efuse. Partition will not be set as boot partition.",
                )
                raise EspError(
                    EspErr.ESP_FAIL,
                    f"secure_version {desc.secure_version} is below the eFuse's {floor} "
                    "(anti-rollback)",
                )
        if partition.type == PartitionType.APP and partition.subtype == FACTORY_SUBTYPE:
            self._otadata().erase()
            return
        slot = self._slot(partition)
        otadata = self._otadata()
        entries = otadata.read()
        active = otadata.active(entries)
        state = OtaImgState.NEW if self.rollback else OtaImgState.UNDEFINED
        if active is None:
            index, seq = 0, slot + 1
        elif otadata.slot_of(entries[active]) == slot:
            index, seq = active, entries[active].ota_seq
        else:
            index = 1 - active
            seq = next_seq_for_slot(entries[active].ota_seq, slot, otadata.app_count)
        otadata.rewrite(index, OtaSelectEntry.new(seq, state))

    # -- rollback ------------------------------------------------------------------------
    def check_rollback_is_possible(self) -> bool:
        """``esp_ota_check_rollback_is_possible``: another slot holds a bootable app."""
        otadata = self.otadata
        if otadata is None:
            return False
        entries = otadata.read()
        active = otadata.active(entries)
        if active is None:
            return False
        other = entries[1 - active]
        candidates: list[EspPartition] = []
        if other.is_valid:
            candidates.append(self._apps[otadata.slot_of(other)])
        else:
            candidates += self.partitions.find(PartitionType.APP, subtype=FACTORY_SUBTYPE)
        for candidate in candidates:
            try:
                self.verify(candidate)
            except ImageError:
                continue
            return True
        return False

    def _mark_running(self, state: OtaImgState) -> None:
        otadata = self._otadata()
        entries = otadata.read()
        active = otadata.active(entries)
        if active is None:
            raise EspError(EspErr.ESP_FAIL, "the running firmware is the factory app")
        if state == OtaImgState.VALID and entries[active].state == OtaImgState.VALID:
            return
        otadata.rewrite(active, entries[active].with_state(state))

    def mark_app_valid_cancel_rollback(self) -> None:
        """The running app works: its otadata entry becomes VALID (no rollback any more);
        with anti-rollback, the eFuse secure version rises to the app's."""
        self._mark_running(OtaImgState.VALID)
        if self.efuse is not None:
            desc = self.get_partition_description(self.running)
            update_secure_version(self.efuse, desc.secure_version)

    def mark_app_invalid_rollback(self) -> None:
        """The running app does not work: mark it INVALID so the next boot rolls back."""
        if not self.check_rollback_is_possible():
            self.log.e(TAG, "Rollback is not possible, do not have any suitable apps in slots")
            raise EspError(EspErr.ESP_ERR_OTA_ROLLBACK_FAILED, "no other app to roll back to")
        self._mark_running(OtaImgState.INVALID)
        self.log.i(TAG, "Rollback to previously worked partition.")

    def mark_app_invalid_rollback_and_reboot(self) -> None:
        """``esp_ota_mark_app_invalid_rollback_and_reboot``."""
        self.mark_app_invalid_rollback()
        self.restart()

    def get_last_invalid_partition(self) -> EspPartition | None:
        """The slot of the newest INVALID or ABORTED entry, if its image is still intact."""
        otadata = self.otadata
        if otadata is None:
            return None
        invalid = [
            e
            for e in otadata.read()
            if e.ota_seq != BLANK_SEQ
            and e.crc_ok
            and e.state in (OtaImgState.INVALID, OtaImgState.ABORTED)
        ]
        if not invalid:
            return None
        partition = self._apps[otadata.slot_of(max(invalid, key=lambda e: e.ota_seq))]
        try:
            self.verify(partition)
        except ImageError:
            return None
        return partition
