"""otadata: the two ``esp_ota_select_entry_t`` records that choose the OTA boot slot.

Spec section 4. The ``data/ota`` partition is 0x2000 bytes: entry *k* at ``k * 0x1000``, the rest
of each sector 0xFF. An entry is 32 bytes::

    0  u32 ota_seq       4  seq_label[20] (unused, 0xFF)
    24 u32 ota_state     28 u32 crc = crc32_le(ota_seq as 4 LE bytes)   # over ota_seq only

Theory of slot selection (bootloader_utility_get_selected_boot_partition): an entry counts
when its ``ota_seq`` is not 0xFFFFFFFF, its state is neither INVALID nor ABORTED and its CRC
matches. The entry with the larger ``ota_seq`` wins (entry 0 on a tie) and boots slot
``(ota_seq - 1) % app_count``. With no counting entry (or no OTA slots) the factory app boots,
or ota_0 when there is no factory app.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from jumpstart.errors import InputError
from jumpstart.formats.crc import crc32_le

__all__ = [
    "ENTRY_SIZE",
    "OTADATA_SIZE",
    "OtaImgState",
    "OtaSelectEntry",
    "OtadataError",
    "next_seq_for_slot",
    "otadata_image",
    "parse_otadata",
    "select_entry",
    "slot_for_seq",
]

ENTRY_SIZE = 32
ENTRY_FORMAT = struct.Struct("<I20sII")
SECTOR_SIZE = 0x1000
OTADATA_SIZE = 2 * SECTOR_SIZE
BLANK_SEQ = 0xFFFFFFFF
SEQ_LABEL_BLANK = b"\xff" * 20


class OtaImgState(IntEnum):
    """``esp_ota_img_states_t``."""

    NEW = 0x0
    PENDING_VERIFY = 0x1
    VALID = 0x2
    INVALID = 0x3
    ABORTED = 0x4
    UNDEFINED = 0xFFFFFFFF


class OtadataError(InputError):
    """otadata bytes are not two 32-byte select entries."""


def _state_name(state: int) -> str:
    try:
        return OtaImgState(state).name
    except ValueError:
        return f"0x{state:08x}"


@dataclass(frozen=True, slots=True)
class OtaSelectEntry:
    """One select entry; ``crc`` is what is stored, which may be wrong on flash."""

    ota_seq: int
    state: int
    crc: int
    seq_label: bytes = SEQ_LABEL_BLANK

    @classmethod
    def new(cls, ota_seq: int, state: int = OtaImgState.UNDEFINED) -> OtaSelectEntry:
        """An entry with the correct CRC."""
        if not 0 <= ota_seq <= BLANK_SEQ or not 0 <= state <= 0xFFFFFFFF:
            raise ValueError("ota_seq and state are u32 values")
        return cls(ota_seq, state, crc32_le(struct.pack("<I", ota_seq)))

    @classmethod
    def from_bytes(cls, data: bytes) -> OtaSelectEntry:
        if len(data) < ENTRY_SIZE:
            raise OtadataError(f"otadata entry needs {ENTRY_SIZE} bytes, got {len(data)}")
        seq, label, state, crc = ENTRY_FORMAT.unpack(data[:ENTRY_SIZE])
        return cls(seq, state, crc, label)

    def to_bytes(self) -> bytes:
        return ENTRY_FORMAT.pack(self.ota_seq, self.seq_label, self.state, self.crc)

    @property
    def crc_ok(self) -> bool:
        return self.crc == crc32_le(struct.pack("<I", self.ota_seq))

    @property
    def is_valid(self) -> bool:
        """Counts for slot selection (``bootloader_common_ota_select_valid``)."""
        return (
            self.ota_seq != BLANK_SEQ
            and self.state not in (OtaImgState.INVALID, OtaImgState.ABORTED)
            and self.crc_ok
        )

    @property
    def state_name(self) -> str:
        return _state_name(self.state)

    def with_state(self, state: int) -> OtaSelectEntry:
        """The same sequence number with a new state (CRC recomputed)."""
        return OtaSelectEntry.new(self.ota_seq, state)


def parse_otadata(data: bytes) -> tuple[OtaSelectEntry, OtaSelectEntry]:
    """Both select entries from the otadata partition's bytes (0x2000)."""
    if len(data) < OTADATA_SIZE:
        raise OtadataError(f"otadata partition must be 0x{OTADATA_SIZE:x} bytes, got {len(data)}")
    return (
        OtaSelectEntry.from_bytes(data[0:ENTRY_SIZE]),
        OtaSelectEntry.from_bytes(data[SECTOR_SIZE : SECTOR_SIZE + ENTRY_SIZE]),
    )


def otadata_image(first: OtaSelectEntry | None, second: OtaSelectEntry | None) -> bytes:
    """The 0x2000-byte partition content holding the given entries (None = erased)."""
    out = bytearray(b"\xff" * OTADATA_SIZE)
    for index, entry in enumerate((first, second)):
        if entry is not None:
            out[index * SECTOR_SIZE : index * SECTOR_SIZE + ENTRY_SIZE] = entry.to_bytes()
    return bytes(out)


def select_entry(entries: tuple[OtaSelectEntry, OtaSelectEntry]) -> int | None:
    """Index (0 or 1) of the entry that decides the boot slot, or None if neither counts."""
    valid = [entry.is_valid for entry in entries]
    if valid[0] and valid[1]:
        return 0 if entries[0].ota_seq >= entries[1].ota_seq else 1
    if valid[0]:
        return 0
    if valid[1]:
        return 1
    return None


def slot_for_seq(ota_seq: int, app_count: int) -> int:
    """OTA slot booted by a sequence number: ``(ota_seq - 1) % app_count``."""
    if app_count <= 0:
        raise ValueError("app_count must be positive")
    return (ota_seq - 1) % app_count


def next_seq_for_slot(current_seq: int | None, slot: int, app_count: int) -> int:
    """Sequence number ``esp_ota_set_boot_partition`` writes to make ``slot`` boot.

    The smallest value >= the current one (or ``slot + 1`` with no valid entry) that maps to
    ``slot``, e.g. with two slots: seq 1 -> slot 1 gives 2, seq 2 -> slot 0 gives 3.
    """
    if not 0 <= slot < app_count:
        raise ValueError(f"slot {slot} is outside 0..{app_count - 1}")
    if current_seq is None:
        return slot + 1
    seq = current_seq
    while slot_for_seq(seq, app_count) != slot:
        seq += 1
    return seq
