"""Simulated SPI NOR flash with the semantics higher layers must survive (spec section 6).

* Erase works on whole 4 KiB sectors and sets every byte to 0xFF.
* Program can only clear bits: the stored byte becomes ``old & new``. Attempts to set a bit
  from 0 to 1 are counted (``zero_to_one_attempts``) and, with ``strict=True``, refused.
* Every program or erase call is one *operation*. A :class:`PowerCut` armed on the flash
  interrupts the N-th operation from then on: a program leaves a prefix of its bytes written, an
  erase leaves a prefix of the sector erased, and :class:`PowerCutError` is raised. The flash
  then stays unpowered (every call raises) until :meth:`Flash.restore_power`, which is what a
  reboot after power loss looks like to the layers above.

:class:`MemoryFlash` keeps the bytes in memory (fleets); :class:`FileFlash` maps a file, so a
device's ``flash.bin`` is the flash.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from jumpstart.errors import JumpstartError
from jumpstart.formats import flash_encryption
from jumpstart.idf.esp_err import EspErr, EspError

__all__ = [
    "DEFAULT_FLASH_SIZE",
    "SECTOR_SIZE",
    "FileFlash",
    "Flash",
    "FlashCrypt",
    "MemoryFlash",
    "PowerCut",
    "PowerCutError",
    "SharedImage",
    "SparseFlash",
]

SECTOR_SIZE = 0x1000  # SPI_FLASH_SEC_SIZE
DEFAULT_FLASH_SIZE = 4 * 1024 * 1024
ERASED = 0xFF


class PowerCutError(JumpstartError):
    """Power was cut during (or before) a flash operation."""


@dataclass(frozen=True, slots=True)
class PowerCut:
    """Cut power during the ``at_operation``-th program/erase from the moment it is armed.

    ``keep`` is how many bytes of the interrupted operation take effect: an ``int`` byte count,
    a ``float`` fraction of the operation's length, or None for half of it.
    """

    at_operation: int
    keep: int | float | None = None

    def __post_init__(self) -> None:
        if self.at_operation < 1:
            raise ValueError("at_operation counts from 1")

    def bytes_kept(self, length: int) -> int:
        if self.keep is None:
            return length // 2
        if isinstance(self.keep, float):
            return max(0, min(length, int(length * self.keep)))
        return max(0, min(length, self.keep))


@dataclass(frozen=True, slots=True)
class FlashCrypt:
    """The flash encryption block of the chip: the eFuse key (key-file byte order) and
    ``FLASH_CRYPT_CONFIG``, as the cache and the encrypted-write path use them."""

    key: bytes
    crypt_config: int = flash_encryption.DEFAULT_CRYPT_CONFIG

    def encrypt(self, addr: int, data: bytes) -> bytes:
        return flash_encryption.encrypt(self.key, addr, data, self.crypt_config)

    def decrypt(self, addr: int, data: bytes) -> bytes:
        return flash_encryption.decrypt(self.key, addr, data, self.crypt_config)


class Flash:
    """SPI NOR flash semantics over a byte store provided by a subclass.

    ``crypt`` is set while flash encryption is on (the bootloader sets it from eFuse):
    :meth:`read_encrypted` and :meth:`write_encrypted` then go through it, as reads through
    the cache and ``esp_flash_write_encrypted`` do on the chip; :meth:`read` stays raw.
    """

    sector_size = SECTOR_SIZE

    def __init__(self, size: int, *, strict: bool = False) -> None:
        if size <= 0 or size % SECTOR_SIZE:
            raise ValueError(f"flash size must be a positive multiple of {SECTOR_SIZE}")
        self.size = size
        self.strict = strict
        self.operations = 0
        """Program and erase operations since creation."""
        self.zero_to_one_attempts = 0
        self.bytes_programmed = 0
        """Bytes passed to program operations (for write amplification figures)."""
        self.erase_counts = [0] * (size // SECTOR_SIZE)
        self.powered = True
        self._cut: PowerCut | None = None
        self._cut_base = 0
        self.crypt: FlashCrypt | None = None
        # Decrypted sectors, so a boot that reads an image twice decrypts it once.
        self._plain: dict[int, bytes] = {}

    # -- the byte store ---------------------------------------------------------------
    def _load(self, addr: int, length: int) -> bytes:
        raise NotImplementedError

    def _store(self, addr: int, data: bytes) -> None:
        raise NotImplementedError

    # -- power --------------------------------------------------------------------------
    def arm_power_cut(self, cut: PowerCut) -> None:
        """Interrupt the ``cut.at_operation``-th operation counted from now."""
        self._cut = cut
        self._cut_base = self.operations

    def disarm_power_cut(self) -> None:
        self._cut = None

    def restore_power(self) -> None:
        """Power comes back: operations work again (the armed cut, if it fired, is gone)."""
        self.powered = True

    def _check_power(self) -> None:
        if not self.powered:
            raise PowerCutError("the flash has no power (call restore_power() to reboot)")

    def _next_operation_is_cut(self) -> PowerCut | None:
        self.operations += 1
        cut = self._cut
        if cut is not None and self.operations - self._cut_base == cut.at_operation:
            self._cut = None
            self.powered = False
            return cut
        return None

    # -- bounds -------------------------------------------------------------------------
    def _check_range(self, addr: int, length: int) -> None:
        if addr < 0 or length < 0 or addr + length > self.size:
            raise EspError(
                EspErr.ESP_ERR_INVALID_ARG,
                f"0x{addr:x}+0x{length:x} is outside the 0x{self.size:x}-byte flash",
            )

    # -- operations ---------------------------------------------------------------------
    def read(self, addr: int, length: int) -> bytes:
        """``esp_flash_read``."""
        self._check_power()
        self._check_range(addr, length)
        return self._load(addr, length)

    def write(self, addr: int, data: bytes) -> None:
        """``esp_flash_write``: program, i.e. AND the new bits into the old ones."""
        self._check_power()
        self._check_range(addr, len(data))
        if not data:
            return
        old = int.from_bytes(self._load(addr, len(data)), "little")
        new = int.from_bytes(data, "little")
        if new & ~old:
            if self.strict:
                raise EspError(
                    EspErr.ESP_ERR_INVALID_STATE,
                    f"program at 0x{addr:x} would set bits from 0 to 1 (erase the sector first)",
                )
            self.zero_to_one_attempts += 1
        result = (old & new).to_bytes(len(data), "little")
        self.bytes_programmed += len(data)
        self._forget_plain(addr, len(data))
        cut = self._next_operation_is_cut()
        if cut is not None:
            kept = cut.bytes_kept(len(data))
            self._store(addr, result[:kept])
            raise PowerCutError(
                f"power cut while programming 0x{addr:x}: {kept} of {len(data)} bytes written"
            )
        self._store(addr, result)

    def erase_sector(self, addr: int) -> None:
        """Erase the 4 KiB sector starting at ``addr``."""
        self.erase_range(addr, SECTOR_SIZE)

    def erase_range(self, addr: int, length: int) -> None:
        """``esp_flash_erase_region``: 4 KiB-aligned start and length; one operation a sector."""
        self._check_power()
        if addr % SECTOR_SIZE or length % SECTOR_SIZE:
            raise EspError(
                EspErr.ESP_ERR_INVALID_ARG,
                f"erase of 0x{addr:x}+0x{length:x} is not aligned to 0x{SECTOR_SIZE:x} sectors",
            )
        self._check_range(addr, length)
        self._forget_plain(addr, length)
        for sector in range(addr, addr + length, SECTOR_SIZE):
            cut = self._next_operation_is_cut()
            self.erase_counts[sector // SECTOR_SIZE] += 1
            if cut is not None:
                kept = cut.bytes_kept(SECTOR_SIZE)
                self._store(sector, b"\xff" * kept)
                raise PowerCutError(
                    f"power cut while erasing sector 0x{sector:x}: {kept} of {SECTOR_SIZE} "
                    "bytes erased"
                )
            self._store(sector, b"\xff" * SECTOR_SIZE)

    # -- flash encryption ---------------------------------------------------------------
    def set_crypt(self, crypt: FlashCrypt | None) -> None:
        """Flash encryption on (with the chip's key) or off."""
        self.crypt = crypt
        self._plain.clear()

    def _forget_plain(self, addr: int, length: int) -> None:
        if self._plain:
            first, last = addr // SECTOR_SIZE, (addr + max(length, 1) - 1) // SECTOR_SIZE
            for sector in range(first, last + 1):
                self._plain.pop(sector, None)

    def _require_crypt(self) -> FlashCrypt:
        if self.crypt is None:
            raise EspError(EspErr.ESP_ERR_INVALID_STATE, "flash encryption is not enabled")
        return self.crypt

    def read_encrypted(self, addr: int, length: int) -> bytes:
        """``esp_flash_read_encrypted``: the bytes as software sees them through the cache."""
        self._check_power()
        self._check_range(addr, length)
        crypt = self._require_crypt()
        out = bytearray()
        end = addr + length
        for sector in range(addr // SECTOR_SIZE, (end + SECTOR_SIZE - 1) // SECTOR_SIZE):
            plain = self._plain.get(sector)
            if plain is None:
                base = sector * SECTOR_SIZE
                plain = crypt.decrypt(base, self._load(base, SECTOR_SIZE))
                self._plain[sector] = plain
            start = max(addr, sector * SECTOR_SIZE) - sector * SECTOR_SIZE
            stop = min(end, (sector + 1) * SECTOR_SIZE) - sector * SECTOR_SIZE
            out += plain[start:stop]
        return bytes(out)

    def write_encrypted(self, addr: int, data: bytes) -> None:
        """``esp_flash_write_encrypted``: 16-byte aligned address and length, encrypted with
        the chip's key on the way in (one program operation)."""
        crypt = self._require_crypt()
        if addr % 16:
            raise EspError(
                EspErr.ESP_ERR_INVALID_ARG, f"encrypted write at 0x{addr:x}: not 16-aligned"
            )
        if len(data) % 16:
            raise EspError(
                EspErr.ESP_ERR_INVALID_SIZE, f"encrypted write of {len(data)} bytes: not 16-aligned"
            )
        self.write(addr, crypt.encrypt(addr, data))

    def image(self) -> bytes:
        """The whole flash content (for tools and tests)."""
        return self._load(0, self.size)


class MemoryFlash(Flash):
    """Flash held in memory; starts erased, or with ``content`` (padded with 0xFF)."""

    def __init__(
        self, size: int = DEFAULT_FLASH_SIZE, *, content: bytes = b"", strict: bool = False
    ) -> None:
        super().__init__(size, strict=strict)
        if len(content) > size:
            raise ValueError(f"content of {len(content)} bytes does not fit {size} bytes of flash")
        self._data = bytearray(content) + bytearray(b"\xff" * (size - len(content)))

    def _load(self, addr: int, length: int) -> bytes:
        return bytes(self._data[addr : addr + length])

    def _store(self, addr: int, data: bytes) -> None:
        self._data[addr : addr + len(data)] = data


class SharedImage:
    """Sector contents many flashes start from (the app image and table every outlet of a
    fleet boots): held once, read by all, never written."""

    __slots__ = ("sectors", "size")

    def __init__(self, content: bytes, size: int) -> None:
        if len(content) > size:
            raise ValueError(f"content of {len(content)} bytes does not fit {size} bytes of flash")
        self.size = size
        erased = b"\xff" * SECTOR_SIZE
        padded = content + b"\xff" * (-len(content) % SECTOR_SIZE)
        self.sectors: dict[int, bytes] = {}
        for index in range(len(padded) // SECTOR_SIZE):
            sector = padded[index * SECTOR_SIZE : (index + 1) * SECTOR_SIZE]
            if sector != erased:  # erased sectors are implicit
                self.sectors[index] = sector

    @property
    def nbytes(self) -> int:
        """Memory the image holds (its non-erased sectors)."""
        return len(self.sectors) * SECTOR_SIZE


_ERASED_SECTOR = b"\xff" * SECTOR_SIZE


class SparseFlash(Flash):
    """Copy-on-write flash for fleets: a sector is this device's own once written, else the
    shared image's, else erased (0xFF, held by nobody). Same semantics and power-cut hook
    as any flash; a device's memory is the sectors it changed."""

    __slots__ = ("_own", "base")

    def __init__(
        self,
        size: int = DEFAULT_FLASH_SIZE,
        *,
        base: SharedImage | None = None,
        strict: bool = False,
    ) -> None:
        super().__init__(size, strict=strict)
        if base is not None and base.size != size:
            raise ValueError(f"the shared image is for {base.size} bytes of flash, not {size}")
        self.base = base
        # Written sectors; an erased one over a shared sector is kept as _ERASED_SECTOR.
        self._own: dict[int, bytes | bytearray] = {}

    def _sector(self, index: int) -> bytes | bytearray:
        own = self._own.get(index)
        if own is not None:
            return own
        if self.base is not None:
            return self.base.sectors.get(index, _ERASED_SECTOR)
        return _ERASED_SECTOR

    def _load(self, addr: int, length: int) -> bytes:
        out = bytearray()
        end = addr + length
        while addr < end:
            index, offset = divmod(addr, SECTOR_SIZE)
            take = min(end - addr, SECTOR_SIZE - offset)
            out += self._sector(index)[offset : offset + take]
            addr += take
        return bytes(out)

    def _store(self, addr: int, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            index, offset = divmod(addr + pos, SECTOR_SIZE)
            take = min(end - pos, SECTOR_SIZE - offset)
            chunk = data[pos : pos + take]
            if offset == 0 and take == SECTOR_SIZE and chunk == _ERASED_SECTOR:
                # A whole sector erased: nothing to hold unless it hides a shared sector.
                shared = self.base is not None and index in self.base.sectors
                if shared:
                    self._own[index] = _ERASED_SECTOR
                else:
                    self._own.pop(index, None)
            else:
                sector = self._own.get(index)
                if not isinstance(sector, bytearray):
                    sector = bytearray(self._sector(index))  # copy on the first write
                    self._own[index] = sector
                sector[offset : offset + take] = chunk
            pos += take

    @property
    def own_bytes(self) -> int:
        """Memory this device holds of its own (sectors it changed)."""
        return sum(len(s) for s in self._own.values() if isinstance(s, bytearray))


class FileFlash(Flash):
    """Flash backed by a file (a device's ``flash.bin``), memory-mapped.

    A missing file is created erased (0xFF) with ``size`` bytes; an existing file keeps its
    content and gives the size. Writes reach the file through the shared mapping, so another
    process reading ``flash.bin`` sees them, and a killed process loses nothing written.
    """

    def __init__(
        self, path: str | os.PathLike[str], size: int | None = None, *, strict: bool = False
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            create = DEFAULT_FLASH_SIZE if size is None else size
            with self.path.open("wb") as f:
                f.write(b"\xff" * create)
        actual = self.path.stat().st_size
        if size is not None and actual != size:
            raise ValueError(f"{self.path} holds {actual} bytes, not the {size} asked for")
        super().__init__(actual, strict=strict)
        self._file = self.path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), actual)

    def _load(self, addr: int, length: int) -> bytes:
        return self._map[addr : addr + length]

    def _store(self, addr: int, data: bytes) -> None:
        self._map[addr : addr + len(data)] = data

    def flush(self) -> None:
        self._map.flush()

    def close(self) -> None:
        if not self._map.closed:
            self._map.flush()
            self._map.close()
            self._file.close()

    def __enter__(self) -> FileFlash:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
