"""ESP32 eFuses in espefuse's virtual file format (esptool 5.6 ``--virt --path-efuse-file``).

The file is the eFuse controller's register space, ``EFUSE_MEM_SIZE`` = 288 bytes from
``DR_REG_EFUSE_BASE``, stored as one big-endian bit string whose register offset 0 is at the
end: reversed byte for byte it is the little-endian register image. Software reads the blocks'
read registers (BLOCK0 7 words at 0x000, BLOCK1..3 8 words at 0x038, 0x058, 0x078); the other
registers are the controller's scratch and are kept as they are.

Fields are named and placed as in ESP-IDF's ``esp_efuse_table.csv`` for ESP32 (the table below
lists block, word, first bit, length, the ``WR_DIS`` bit that write-protects the field and the
``RD_DIS`` bit that read-protects its block). Bits are one-time: burning sets bits, never
clears them; a write-protected field refuses any burn.
"""

from __future__ import annotations

from dataclasses import dataclass

from jumpstart.errors import InputError

__all__ = [
    "EFUSE_FILE_SIZE",
    "FIELDS",
    "EfuseField",
    "EfuseImage",
    "mac_crc8",
]

EFUSE_FILE_SIZE = 0x11C + 4  # ESP32 EFUSE_MEM_SIZE
# Read registers of each block: (offset in the register space, words).
BLOCK_READ_REGS = {0: (0x000, 7), 1: (0x038, 8), 2: (0x058, 8), 3: (0x078, 8)}


@dataclass(frozen=True, slots=True)
class EfuseField:
    name: str
    block: int
    word: int
    pos: int
    length: int
    kind: str  # "bool", "uint" or "bytes"
    wr_dis: int | None  # the WR_DIS bit that write-protects it
    rd_dis: int | None  # the RD_DIS bit that read-protects its block

    @property
    def first_bit(self) -> int:
        return self.word * 32 + self.pos


def _f(
    name: str,
    block: int,
    word: int,
    pos: int,
    length: int,
    kind: str,
    wr_dis: int | None,
    rd_dis: int | None,
) -> EfuseField:
    return EfuseField(name, block, word, pos, length, kind, wr_dis, rd_dis)


# ESP32 (ESP-IDF v5.5 esp_efuse_table.csv, as espefuse's efuse_defs/esp32.yaml lists it).
FIELDS: dict[str, EfuseField] = {
    field.name: field
    for field in (
        _f("WR_DIS", 0, 0, 0, 16, "uint", 1, None),
        _f("RD_DIS", 0, 0, 16, 4, "uint", 0, None),
        _f("FLASH_CRYPT_CNT", 0, 0, 20, 7, "uint", 2, None),
        _f("UART_DOWNLOAD_DIS", 0, 0, 27, 1, "bool", 2, None),
        _f("RESERVED_0_28", 0, 0, 28, 4, "uint", None, None),
        _f("MAC", 0, 1, 0, 48, "bytes", 3, None),
        _f("MAC_CRC", 0, 2, 16, 8, "uint", 3, None),
        _f("RESERVE_0_88", 0, 2, 24, 8, "uint", None, None),
        _f("DISABLE_APP_CPU", 0, 3, 0, 1, "bool", 3, None),
        _f("DISABLE_BT", 0, 3, 1, 1, "bool", 3, None),
        _f("CHIP_PACKAGE_4BIT", 0, 3, 2, 1, "bool", None, None),
        _f("DIS_CACHE", 0, 3, 3, 1, "bool", 3, None),
        _f("SPI_PAD_CONFIG_HD", 0, 3, 4, 5, "uint", None, None),
        _f("CHIP_PACKAGE", 0, 3, 9, 3, "uint", None, None),
        _f("CHIP_CPU_FREQ_LOW", 0, 3, 12, 1, "bool", None, None),
        _f("CHIP_CPU_FREQ_RATED", 0, 3, 13, 1, "bool", None, None),
        _f("BLK3_PART_RESERVE", 0, 3, 14, 1, "bool", 10, 3),
        _f("CHIP_VER_REV1", 0, 3, 15, 1, "bool", None, None),
        _f("RESERVE_0_112", 0, 3, 16, 16, "uint", None, None),
        _f("CLK8M_FREQ", 0, 4, 0, 8, "uint", 4, None),
        _f("ADC_VREF", 0, 4, 8, 5, "uint", 4, None),
        _f("RESERVE_0_141", 0, 4, 13, 1, "bool", None, None),
        _f("XPD_SDIO_REG", 0, 4, 14, 1, "bool", 5, None),
        _f("XPD_SDIO_TIEH", 0, 4, 15, 1, "bool", 5, None),
        _f("XPD_SDIO_FORCE", 0, 4, 16, 1, "bool", 5, None),
        _f("RESERVE_0_145", 0, 4, 17, 15, "uint", None, None),
        _f("SPI_PAD_CONFIG_CLK", 0, 5, 0, 5, "uint", 6, None),
        _f("SPI_PAD_CONFIG_Q", 0, 5, 5, 5, "uint", 6, None),
        _f("SPI_PAD_CONFIG_D", 0, 5, 10, 5, "uint", 6, None),
        _f("SPI_PAD_CONFIG_CS0", 0, 5, 15, 5, "uint", 6, None),
        _f("CHIP_VER_REV2", 0, 5, 20, 1, "bool", None, None),
        _f("RESERVE_0_181", 0, 5, 21, 1, "bool", None, None),
        _f("VOL_LEVEL_HP_INV", 0, 5, 22, 2, "uint", 3, None),
        _f("WAFER_VERSION_MINOR", 0, 5, 24, 2, "uint", None, None),
        _f("RESERVE_0_186", 0, 5, 26, 2, "uint", None, None),
        _f("FLASH_CRYPT_CONFIG", 0, 5, 28, 4, "uint", 10, 3),
        _f("CODING_SCHEME", 0, 6, 0, 2, "uint", 10, 3),
        _f("CONSOLE_DEBUG_DISABLE", 0, 6, 2, 1, "bool", 15, None),
        _f("DISABLE_SDIO_HOST", 0, 6, 3, 1, "bool", None, None),
        _f("ABS_DONE_0", 0, 6, 4, 1, "bool", 12, None),
        _f("ABS_DONE_1", 0, 6, 5, 1, "bool", 13, None),
        _f("JTAG_DISABLE", 0, 6, 6, 1, "bool", 14, None),
        _f("DISABLE_DL_ENCRYPT", 0, 6, 7, 1, "bool", 15, None),
        _f("DISABLE_DL_DECRYPT", 0, 6, 8, 1, "bool", 15, None),
        _f("DISABLE_DL_CACHE", 0, 6, 9, 1, "bool", 15, None),
        _f("KEY_STATUS", 0, 6, 10, 1, "bool", 10, 3),
        _f("RESERVE_0_203", 0, 6, 11, 21, "uint", None, None),
        _f("BLOCK1", 1, 0, 0, 256, "bytes", 7, 0),
        _f("BLOCK2", 2, 0, 0, 256, "bytes", 8, 1),
        _f("CUSTOM_MAC_CRC", 3, 0, 0, 8, "uint", 9, 2),
        _f("CUSTOM_MAC", 3, 0, 8, 48, "bytes", 9, 2),
        _f("RESERVED_3_56", 3, 1, 24, 8, "uint", 9, 2),
        _f("BLK3_RESERVED_2", 3, 2, 0, 32, "uint", 9, 2),
        _f("ADC1_TP_LOW", 3, 3, 0, 7, "uint", 9, 2),
        _f("ADC1_TP_HIGH", 3, 3, 7, 9, "uint", 9, 2),
        _f("ADC2_TP_LOW", 3, 3, 16, 7, "uint", 9, 2),
        _f("ADC2_TP_HIGH", 3, 3, 23, 9, "uint", 9, 2),
        _f("SECURE_VERSION", 3, 4, 0, 32, "uint", 9, 2),
        _f("RESERVED_3_160", 3, 5, 0, 24, "uint", 9, 2),
        _f("MAC_VERSION", 3, 5, 24, 8, "uint", 9, 2),
        _f("BLK3_RESERVED_6", 3, 6, 0, 32, "uint", 9, 2),
        _f("BLK3_RESERVED_7", 3, 7, 0, 32, "uint", 9, 2),
    )
}


def mac_crc8(mac: bytes) -> int:
    """``esp_crc8`` of the ROM: CRC-8, reflected polynomial 0x8C, initial value 0."""
    crc = 0
    for byte in mac:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
    return crc


class EfuseImage:
    """The register image of one chip's eFuses; ``to_file``/``from_file`` for espefuse."""

    __slots__ = ("_regs",)

    def __init__(self, regs: bytes | None = None) -> None:
        self._regs = bytearray(regs if regs is not None else bytes(EFUSE_FILE_SIZE))
        if len(self._regs) != EFUSE_FILE_SIZE:
            raise InputError(f"an ESP32 eFuse image is {EFUSE_FILE_SIZE} bytes")

    @classmethod
    def from_file(cls, data: bytes) -> EfuseImage:
        if len(data) != EFUSE_FILE_SIZE:
            raise InputError(
                f"an espefuse ESP32 file is {EFUSE_FILE_SIZE} bytes, this one {len(data)}"
            )
        return cls(data[::-1])

    def to_file(self) -> bytes:
        return bytes(self._regs[::-1])

    # -- blocks ------------------------------------------------------------------------
    def block_bits(self, block: int) -> int:
        """The block's read registers as one little-endian integer."""
        offset, words = BLOCK_READ_REGS[block]
        return int.from_bytes(self._regs[offset : offset + 4 * words], "little")

    def _set_block_bits(self, block: int, value: int) -> None:
        offset, words = BLOCK_READ_REGS[block]
        self._regs[offset : offset + 4 * words] = value.to_bytes(4 * words, "little")

    def block_bytes(self, block: int) -> bytes:
        offset, words = BLOCK_READ_REGS[block]
        return bytes(self._regs[offset : offset + 4 * words])

    # -- fields ------------------------------------------------------------------------
    def read(self, name: str) -> int:
        """A field's bits as an integer (bit 0 = the field's first bit)."""
        field = _field(name)
        return (self.block_bits(field.block) >> field.first_bit) & ((1 << field.length) - 1)

    def read_bytes(self, name: str) -> bytes:
        field = _field(name)
        return self.read(name).to_bytes(field.length // 8, "little")

    def write_protected(self, name: str) -> bool:
        field = _field(name)
        return field.wr_dis is not None and bool(self.read("WR_DIS") >> field.wr_dis & 1)

    def read_protected(self, name: str) -> bool:
        field = _field(name)
        return field.rd_dis is not None and bool(self.read("RD_DIS") >> field.rd_dis & 1)

    def burn(self, name: str, value: int) -> None:
        """Set ``value``'s bits in the field: refused when the field is write-protected or
        when ``value`` would need a burned bit back at 0."""
        field = _field(name)
        if value < 0 or value >> field.length:
            raise InputError(f"{name}: {value:#x} does not fit its {field.length} bits")
        current = self.read(name)
        if current & ~value:
            raise InputError(
                f"{name}: {value:#x} would clear burned bits of {current:#x} (eFuse bits only go"
                " from 0 to 1)"
            )
        if value == current:
            return
        if self.write_protected(name):
            raise InputError(f"{name} is write-protected (WR_DIS bit {field.wr_dis})")
        bits = self.block_bits(field.block) | (value << field.first_bit)
        self._set_block_bits(field.block, bits)

    def write_protect(self, name: str) -> None:
        """Burn the field's WR_DIS bit: the field can no longer be burned."""
        bit = _field(name).wr_dis
        if bit is None:
            raise InputError(f"{name} cannot be write-protected")
        self.burn("WR_DIS", self.read("WR_DIS") | 1 << bit)

    def read_protect(self, name: str) -> None:
        """Burn the RD_DIS bit of the field's block, which then reads as zeros."""
        bit = _field(name).rd_dis
        if bit is None:
            raise InputError(f"{name} cannot be read-protected")
        self.burn("RD_DIS", self.read("RD_DIS") | 1 << bit)
        self.clear_read_protected()

    def clear_read_protected(self) -> None:
        """Zero the read registers of every read-protected block, as espefuse's emulator
        does: software (and the file) see zeros; the chip keeps the key for its hardware."""
        protected = self.read("RD_DIS")
        for block in (1, 2, 3):
            if protected >> (block - 1) & 1:
                self._set_block_bits(block, 0)

    def burn_bytes(self, name: str, data: bytes) -> None:
        self.burn(name, int.from_bytes(data, "little"))

    # -- identity ----------------------------------------------------------------------
    def mac(self) -> bytes:
        """The factory MAC, mac[0] first (stored mac[5]..mac[0] from bit 32)."""
        return self.read_bytes("MAC")[::-1]

    def mac_crc_ok(self) -> bool:
        return self.read("MAC_CRC") == mac_crc8(self.mac())

    def chip_revision(self) -> tuple[int, int]:
        """(major, minor) as espefuse reads them: major 3 needs both CHIP_VER_REV bits."""
        rev1, rev2 = self.read("CHIP_VER_REV1"), self.read("CHIP_VER_REV2")
        major = 3 if rev1 and rev2 else 1 if rev1 else 0
        return major, self.read("WAFER_VERSION_MINOR")

    @classmethod
    def new_device(cls, mac: bytes) -> EfuseImage:
        """A new chip as the factory leaves it: its MAC with CRC, revision v3.0 (ECO3)."""
        if len(mac) != 6:
            raise InputError("a MAC is 6 bytes")
        image = cls()
        image.burn_bytes("MAC", mac[::-1])
        image.burn("MAC_CRC", mac_crc8(mac))
        image.burn("CHIP_VER_REV1", 1)
        image.burn("CHIP_VER_REV2", 1)
        return image


def _field(name: str) -> EfuseField:
    field = FIELDS.get(name)
    if field is None:
        raise InputError(f"no eFuse field {name!r} on ESP32")
    return field
