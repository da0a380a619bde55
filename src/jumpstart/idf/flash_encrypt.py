"""Flash encryption, ESP32 scheme: the bootloader's first-boot pass and the mode checks.

The bootloader side follows ``bootloader_support/src/flash_encryption/flash_encrypt.c``
(``esp_flash_encrypt_init`` / ``_contents`` / ``_enable``): burn a random key into BLOCK1
(read- and write-protected) unless a protected one is there, burn ``FLASH_CRYPT_CONFIG`` and
the download-mode fuses of the mode, encrypt in place what ESP-IDF encrypts (the bootloader,
the partition table, each valid plaintext app image up to its length, otadata, nvs_keys and
partitions flagged ``encrypted``; never ``nvs``), then advance ``FLASH_CRYPT_CNT`` (by one in
development mode, to full in release mode).

Where ESP-IDF loses a device, this does not: ESP-IDF erases each sector and rewrites it
encrypted, so power lost in between destroys that sector's plaintext, and once the app is half
encrypted nothing says what is left to do. Here the pass keeps a journal in two free flash
sectors outside every partition: the plan (the sectors to encrypt, fixed before the first one
is touched), a copy of the sector in hand, and one "begun" and one "done" bit per sector,
programmed one byte at a time. The next boot after a cut resumes from the journal, restoring
the sector in hand from its copy; the journal is erased once ``FLASH_CRYPT_CNT`` is burned.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass
from enum import Enum

from jumpstart.errors import InputError
from jumpstart.formats.bootloader_image import BOOTLOADER_OFFSET
from jumpstart.formats.crc import crc32
from jumpstart.formats.partition_table import DEFAULT_TABLE_OFFSET, PartitionType
from jumpstart.formats.secure_boot import SECTOR_SIZE as SIG_SECTOR_SIZE
from jumpstart.formats.secure_boot import SIG_BLOCK_MAGIC
from jumpstart.idf.bootloader_support import verify_app_partition
from jumpstart.idf.efuse import FLASH_ENCRYPTION_BLOCK, VirtualEfuse
from jumpstart.idf.flash import SECTOR_SIZE, Flash, FlashCrypt
from jumpstart.idf.log import EspLog
from jumpstart.idf.partition import PartitionMap, is_partition_encrypted

__all__ = [
    "EncryptionJournal",
    "FlashEncryptionError",
    "FlashEncryptionMode",
    "crypt_from_efuse",
    "encrypt_flash_on_first_boot",
    "flash_encryption_enabled",
    "get_flash_encryption_mode",
    "plaintext_flashes_left",
    "plan_encryption",
    "release_mode_checklist",
    "resume_interrupted_encryption",
]

TAG = "flash_encrypt"
CRYPT_CNT = "FLASH_CRYPT_CNT"
CRYPT_CNT_BITS = 7
FLASH_CRYPT_CONFIG = 0xF  # EFUSE_FLASH_CRYPT_CONFIG: every key bit takes the address tweak
KEY_SIZE = 32


class FlashEncryptionMode(Enum):
    """``esp_flash_enc_mode_t`` (and the ``flash_encryption`` setting of a device)."""

    DISABLED = "disabled"
    DEVELOPMENT = "development"
    RELEASE = "release"


class FlashEncryptionError(InputError):
    """The first-boot encryption cannot run (ESP-IDF refuses to boot in these cases)."""


# Burned at first boot in either mode (flash_encryption_secure_features.c, ESP32, with
# SECURE_FLASH_UART_BOOTLOADER_ALLOW_ENC selected by development mode), and in release mode.
DEVELOPMENT_FUSES = (
    "DISABLE_DL_DECRYPT",
    "DISABLE_DL_CACHE",
    "JTAG_DISABLE",
    "CONSOLE_DEBUG_DISABLE",
)
RELEASE_FUSES = ("DISABLE_DL_ENCRYPT", *DEVELOPMENT_FUSES)


def flash_encryption_enabled(efuse: VirtualEfuse) -> bool:
    """``esp_flash_encryption_enabled``: an odd number of ``FLASH_CRYPT_CNT`` bits."""
    return efuse.read_field_cnt(CRYPT_CNT).bit_count() % 2 == 1


def plaintext_flashes_left(efuse: VirtualEfuse) -> int:
    """How many more times development mode can toggle the counter off and on (0 when the
    counter is write-protected)."""
    if efuse.image.write_protected(CRYPT_CNT):
        return 0
    return (CRYPT_CNT_BITS - efuse.read_field_cnt(CRYPT_CNT).bit_count()) // 2


def get_flash_encryption_mode(efuse: VirtualEfuse) -> FlashEncryptionMode:
    """``esp_get_flash_encryption_mode`` (ESP32): RELEASE when the counter can no longer
    change and the UART download mode can neither encrypt, decrypt nor use the cache."""
    if not flash_encryption_enabled(efuse):
        return FlashEncryptionMode.DISABLED
    count = efuse.read_field_cnt(CRYPT_CNT)
    final = efuse.image.write_protected(CRYPT_CNT) or count == (1 << CRYPT_CNT_BITS) - 1
    if final and all(efuse.read_field_bit(name) for name in RELEASE_FUSES[:3]):
        return FlashEncryptionMode.RELEASE
    return FlashEncryptionMode.DEVELOPMENT


def crypt_from_efuse(efuse: VirtualEfuse) -> FlashCrypt:
    """The key and tweak configuration the chip's flash encryption block uses."""
    key = efuse.flash_encryption_key()
    if key is None:
        raise FlashEncryptionError(
            "BLOCK1 holds a read-protected key this device does not know (it was burned by a "
            "tool that keeps no copy); burn keys with 'jumpstart efuse burn-key'"
        )
    config = efuse.read_field_cnt("FLASH_CRYPT_CONFIG") or FLASH_CRYPT_CONFIG
    return FlashCrypt(key, config)


@dataclass(frozen=True)
class ReleaseCheck:
    ok: bool
    what: str
    fix: str


def release_mode_checklist(efuse: VirtualEfuse) -> list[ReleaseCheck]:
    """``esp_flash_encryption_cfg_verify_release_mode`` (ESP32): each condition of a
    release device, with ESP-IDF's words for what to set when it does not hold."""
    read = efuse.read_field_bit
    count = efuse.read_field_cnt(CRYPT_CNT)
    final = count == (1 << CRYPT_CNT_BITS) - 1 or efuse.image.write_protected(CRYPT_CNT)
    return [
        ReleaseCheck(
            flash_encryption_enabled(efuse),
            "Flash Encryption enabled",
            "FLASH_CRYPT_CNT->1 or max",
        ),
        ReleaseCheck(
            efuse.read_field_cnt("FLASH_CRYPT_CONFIG") == FLASH_CRYPT_CONFIG,
            "ENCRYPT_CONFIG is 0xF",
            "ENCRYPT_CONFIG->0xF",
        ),
        ReleaseCheck(
            final,
            "release mode of Flash Encryption",
            "FLASH_CRYPT_CNT->max or WR_DIS_FLASH_CRYPT_CNT->1",
        ),
        ReleaseCheck(
            read("DISABLE_DL_ENCRYPT"),
            "UART bootloader encryption disabled",
            "DISABLE_DL_ENCRYPT->1",
        ),
        ReleaseCheck(
            read("DISABLE_DL_DECRYPT"),
            "UART bootloader decryption disabled",
            "DISABLE_DL_DECRYPT->1",
        ),
        ReleaseCheck(
            read("DISABLE_DL_CACHE"),
            "UART bootloader MMU cache disabled",
            "DISABLE_DL_CACHE->1",
        ),
        ReleaseCheck(read("JTAG_DISABLE"), "JTAG disabled", "DISABLE_JTAG->1"),
        ReleaseCheck(
            read("CONSOLE_DEBUG_DISABLE"),
            "ROM BASIC interpreter fallback disabled",
            "CONSOLE_DEBUG_DISABLE->1",
        ),
        ReleaseCheck(
            efuse.image.write_protected("DIS_CACHE"),
            "DIS_CACHE write-protected",
            "WR_DIS_DIS_CACHE->1",
        ),
        ReleaseCheck(
            efuse.image.read_protected(FLASH_ENCRYPTION_BLOCK),
            "flash encryption key read-protected",
            "RD_DIS_BLK1->1",
        ),
        ReleaseCheck(
            efuse.image.write_protected(FLASH_ENCRYPTION_BLOCK),
            "flash encryption key write-protected",
            "WR_DIS_BLK1->1",
        ),
    ]


# -- the journal ----------------------------------------------------------------------------
JOURNAL_MAGIC = b"JSFE"
JOURNAL_VERSION = 1
_HEADER = struct.Struct("<4sBxxxHH")  # magic, version, region count, reserved
_REGION = struct.Struct("<HH")  # first sector, sector count
BEGUN_OFFSET = 0x800  # one bit per planned sector: programmed to 0 once its copy is saved
DONE_OFFSET = 0xC00  # ... and once it is encrypted
MAX_STEPS = (DONE_OFFSET - BEGUN_OFFSET) * 8
MAX_REGIONS = (BEGUN_OFFSET - _HEADER.size - 4) // _REGION.size
FIRST_FREE_SECTOR = DEFAULT_TABLE_OFFSET + SECTOR_SIZE


@dataclass(frozen=True)
class JournalState:
    sectors: list[int]  # flash addresses, in the order they are encrypted
    begun: int  # sectors whose copy was saved
    done: int  # sectors encrypted


def _regions(sectors: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for address in sectors:
        sector = address // SECTOR_SIZE
        if runs and runs[-1][0] + runs[-1][1] == sector:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((sector, 1))
    return runs


class EncryptionJournal:
    """Two erase sectors outside every partition: ``address`` the plan and progress bits,
    ``address + 4 KiB`` a copy of the sector being encrypted."""

    def __init__(self, flash: Flash, address: int) -> None:
        self.flash = flash
        self.address = address
        self.copy_address = address + SECTOR_SIZE

    @classmethod
    def find(cls, flash: Flash) -> tuple[EncryptionJournal, JournalState] | None:
        """A journal left by an interrupted pass, found without the partition table (which
        may be half encrypted): the highest sector holding a whole journal header."""
        for address in range(flash.size - 2 * SECTOR_SIZE, FIRST_FREE_SECTOR - 1, -SECTOR_SIZE):
            if flash.read(address, len(JOURNAL_MAGIC)) == JOURNAL_MAGIC:
                journal = cls(flash, address)
                state = journal.read()
                if state is not None:
                    return journal, state
        return None

    @classmethod
    def locate(cls, flash: Flash, parts: PartitionMap) -> EncryptionJournal | None:
        """The highest two free sectors above the partition table, or None."""
        used = [(p.offset, p.offset + p.size) for p in parts.table.partitions]
        used.append((0, parts.table_offset + SECTOR_SIZE))
        address = flash.size - 2 * SECTOR_SIZE
        while address >= 0:
            end = address + 2 * SECTOR_SIZE
            clash = [start for start, stop in used if start < end and address < stop]
            if not clash:
                return cls(flash, address)
            address = (min(clash) // SECTOR_SIZE - 2) * SECTOR_SIZE
        return None

    def read(self) -> JournalState | None:
        raw = self.flash.read(self.address, SECTOR_SIZE)
        magic, version, count, _ = _HEADER.unpack_from(raw)
        if magic != JOURNAL_MAGIC or version != JOURNAL_VERSION or count > MAX_REGIONS:
            return None
        end = _HEADER.size + count * _REGION.size
        (stored_crc,) = struct.unpack_from("<I", raw, end)
        if crc32(raw[:end]) != stored_crc:
            return None  # the header was cut while being written: nothing encrypted yet
        sectors = []
        for first, length in _REGION.iter_unpack(raw[_HEADER.size : end]):
            sectors += [(first + n) * SECTOR_SIZE for n in range(length)]
        begun = _marked(raw[BEGUN_OFFSET:DONE_OFFSET])
        done = _marked(raw[DONE_OFFSET:])
        return JournalState(sectors, begun, done)

    def start(self, sectors: list[int]) -> JournalState:
        regions = _regions(sectors)
        if len(regions) > MAX_REGIONS or len(sectors) > MAX_STEPS:
            raise FlashEncryptionError("too many regions to encrypt for the journal")
        header = _HEADER.pack(JOURNAL_MAGIC, JOURNAL_VERSION, len(regions), 0)
        header += b"".join(_REGION.pack(first, length) for first, length in regions)
        self.flash.erase_range(self.address, 2 * SECTOR_SIZE)
        self.flash.write(self.address, header + struct.pack("<I", crc32(header)))
        return JournalState(sectors, 0, 0)

    def save_copy(self, data: bytes, step: int) -> None:
        self.flash.erase_sector(self.copy_address)
        self.flash.write(self.copy_address, data)
        self._mark(BEGUN_OFFSET, step)

    def copy(self) -> bytes:
        return self.flash.read(self.copy_address, SECTOR_SIZE)

    def mark_done(self, step: int) -> None:
        self._mark(DONE_OFFSET, step)

    def _mark(self, bitmap: int, step: int) -> None:
        # One byte programmed: the other bits of that byte stay as they are (a program only
        # clears bits), so a cut leaves the bit either set or not.
        self.flash.write(self.address + bitmap + step // 8, bytes([0xFF & ~(1 << step % 8)]))

    def clear(self) -> None:
        """The plaintext copy first: a cut after it leaves a header the next boot finds (and
        clears); a cut in the header's erase leaves no copy behind."""
        self.flash.erase_sector(self.copy_address)
        self.flash.erase_sector(self.address)

    def present(self) -> bool:
        raw = self.flash.read(self.address, 2 * SECTOR_SIZE)
        return raw != b"\xff" * len(raw)


def _marked(bitmap: bytes) -> int:
    """How many steps a bitmap marks: bits are cleared in order, lowest bit first."""
    count = 0
    for byte in bitmap:
        cleared = (~byte & 0xFF).bit_count()
        count += cleared
        if cleared < 8:
            break
    return count


# -- the first-boot pass -----------------------------------------------------------------
def _app_span(parts: PartitionMap, label: str) -> int | None:
    """The length of a valid plaintext image in the app partition (with its signature
    sector when one follows), or None."""
    region = parts.find_first(PartitionType.APP, label=label)
    try:
        verified = verify_app_partition(region)
    except InputError:
        return None
    length = len(verified.image.to_bytes())
    signed = length + (-length % SIG_SECTOR_SIZE)
    if signed + SIG_SECTOR_SIZE <= region.size and region.read(signed, 1) == bytes(
        [SIG_BLOCK_MAGIC]
    ):
        return signed + SIG_SECTOR_SIZE
    return length


def plan_encryption(parts: PartitionMap, log: EspLog, bootloader_length: int = 0) -> list[int]:
    """The sectors ``esp_flash_encrypt_contents`` would encrypt, in its order: the
    bootloader (its image and signature sector), the table, then partition by partition."""
    sectors: list[int] = []

    def add(address: int, length: int) -> None:
        end = address + length
        sectors.extend(range(address, end + (-end % SECTOR_SIZE), SECTOR_SIZE))

    if bootloader_length:
        add(BOOTLOADER_OFFSET, bootloader_length)
        log.i(TAG, "bootloader encrypted successfully")
    add(parts.table_offset, SECTOR_SIZE)
    log.i(TAG, "partition table encrypted and loaded successfully")
    for index, entry in enumerate(parts.table.partitions):
        size: int | None = None
        if entry.type == PartitionType.APP:
            size = _app_span(parts, entry.name)
        elif entry.type in (PartitionType.BOOTLOADER, PartitionType.PARTITION_TABLE):
            size = None  # secondary copies: none in the layouts this device builds
        elif is_partition_encrypted(entry):
            size = entry.size  # otadata, nvs_keys, flagged partitions: whole
        if size:
            log.i(
                TAG,
                f"Encrypting partition {index} at offset 0x{entry.offset:x} (length 0x{size:x})...",
            )
            add(entry.offset, size)
    return sectors


def _init_keys(efuse: VirtualEfuse, mode: FlashEncryptionMode, log: EspLog) -> None:
    """``esp_flash_encrypt_init``: the key and the security fuses, in one batch."""
    if flash_encryption_enabled(efuse) or efuse.read_field_cnt(CRYPT_CNT):
        return
    if efuse.key_block_unused(FLASH_ENCRYPTION_BLOCK):
        log.i(TAG, "Generating new flash encryption key...")
        efuse.burn_key(FLASH_ENCRYPTION_BLOCK, secrets.token_bytes(KEY_SIZE))
    elif efuse.image.read_protected(FLASH_ENCRYPTION_BLOCK) and efuse.image.write_protected(
        FLASH_ENCRYPTION_BLOCK
    ):
        log.i(TAG, "Using pre-loaded flash encryption key in efuse")
    else:
        log.e(
            TAG, "Invalid key state, check read&write protection for key and keypurpose(if exists)"
        )
        raise FlashEncryptionError(
            "BLOCK1 holds a key that is not read- and write-protected; flash encryption "
            "refuses to use it"
        )
    log.i(TAG, f"Setting CRYPT_CONFIG efuse to 0x{FLASH_CRYPT_CONFIG:X}")
    if not efuse.read_field_cnt("FLASH_CRYPT_CONFIG"):
        efuse.image.burn("FLASH_CRYPT_CONFIG", FLASH_CRYPT_CONFIG)
    fuses = RELEASE_FUSES if mode is FlashEncryptionMode.RELEASE else DEVELOPMENT_FUSES
    if mode is not FlashEncryptionMode.RELEASE:
        log.w(TAG, "Not disabling UART bootloader encryption")
    for name in fuses:
        efuse.write_field_bit(name)
    # SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE unset: DIS_CACHE can never brick the chip.
    if not efuse.image.write_protected("DIS_CACHE"):
        efuse.image.write_protect("DIS_CACHE")
    efuse.commit()


def _run_journal(
    flash: Flash, crypt: FlashCrypt, journal: EncryptionJournal, state: JournalState
) -> None:
    for step in range(state.done, len(state.sectors)):
        address = state.sectors[step]
        if step < state.begun:
            plain = journal.copy()  # cut while this sector was in hand: its copy is whole
        else:
            plain = flash.read(address, SECTOR_SIZE)
            journal.save_copy(plain, step)
        flash.erase_sector(address)
        flash.write(address, crypt.encrypt(address, plain))
        journal.mark_done(step)


def _encrypt_sectors(
    flash: Flash,
    crypt: FlashCrypt,
    parts: PartitionMap,
    log: EspLog,
    bootloader_length: int,
    use_journal: bool,
) -> None:
    sectors = plan_encryption(parts, log, bootloader_length)
    journal = EncryptionJournal.locate(flash, parts) if use_journal else None
    if journal is None:
        # ESP-IDF's way: erase and rewrite in place; a cut here loses the sector.
        log.w(TAG, "No free flash for the encryption journal: a power cut now is fatal")
        for address in sectors:
            plain = flash.read(address, SECTOR_SIZE)
            flash.erase_sector(address)
            flash.write(address, crypt.encrypt(address, plain))
        return
    _run_journal(flash, crypt, journal, journal.start(sectors))


def _enable(efuse: VirtualEfuse, mode: FlashEncryptionMode, log: EspLog) -> None:
    """``esp_flash_encrypt_enable``."""
    count = efuse.read_field_cnt(CRYPT_CNT)
    if mode is FlashEncryptionMode.RELEASE:
        log.i(TAG, "Setting CRYPT_CNT for permanent encryption")
        efuse.write_field_cnt(CRYPT_CNT, CRYPT_CNT_BITS - count.bit_count())
    else:
        efuse.write_field_cnt(CRYPT_CNT, 1)
    efuse.commit()
    log.i(TAG, "Flash encryption completed")


def resume_interrupted_encryption(
    flash: Flash, efuse: VirtualEfuse, mode: FlashEncryptionMode, log: EspLog
) -> bool:
    """Before the partition table is read: finish a pass a power cut interrupted (True:
    encryption is now enabled and the bootloader resets), or clear a journal whose pass
    completed. False when there was nothing to resume."""
    found = EncryptionJournal.find(flash)
    if found is None:
        return False
    journal, state = found
    if flash_encryption_enabled(efuse):
        journal.clear()  # cut after the counter was burned: only the plaintext copy is left
        return False
    log.w(TAG, f"Resuming flash encryption at sector {state.done + 1} of {len(state.sectors)}")
    _run_journal(flash, crypt_from_efuse(efuse), journal, state)
    log.i(TAG, "Done encrypting")
    _enable(efuse, mode, log)
    journal.clear()
    return True


def encrypt_flash_on_first_boot(
    flash: Flash,
    parts: PartitionMap,
    efuse: VirtualEfuse,
    mode: FlashEncryptionMode,
    log: EspLog,
    *,
    bootloader_length: int = 0,
    use_journal: bool = True,
) -> bool:
    """The bootloader's flash encryption step, after it chose the app: True when it just
    enabled encryption (the bootloader then resets); False when it was on already.
    ``use_journal=False`` is ESP-IDF's in-place pass, which a power cut can break (kept to
    measure what the journal costs)."""
    log.i("boot", "Checking flash encryption...")
    if flash_encryption_enabled(efuse):
        left = plaintext_flashes_left(efuse)
        log.i(TAG, f"flash encryption is enabled ({left} plaintext flashes left)")
        return False
    if efuse.image.write_protected(CRYPT_CNT):
        count = efuse.read_field_cnt(CRYPT_CNT)
        log.e(TAG, f"Flash Encryption cannot be enabled (CRYPT_CNT ({count}) is write protected)")
        raise FlashEncryptionError("FLASH_CRYPT_CNT is write-protected")
    _init_keys(efuse, mode, log)
    _encrypt_sectors(flash, crypt_from_efuse(efuse), parts, log, bootloader_length, use_journal)
    log.i(TAG, "Done encrypting")
    _enable(efuse, mode, log)
    # The journal's copy of the last sector is plaintext: gone before anything else runs.
    journal = EncryptionJournal.locate(flash, parts)
    if journal is not None:
        journal.clear()
    return True
