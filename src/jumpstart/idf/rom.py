"""The first stage: what the ESP32's BootROM does before the second-stage bootloader runs.

It reads the image at 0x1000 (through flash decryption once flash encryption is on), checks
the header, checksum and appended SHA-256 and, once Secure Boot V2 is enabled (``ABS_DONE_1``),
the signature sector after the padded image against the key digest in BLOCK2 (guide 9.2.2:
the ROM verifies the bootloader, which verifies the app). A bootloader that fails is not run,
and the console says so in the ROM's words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from jumpstart.errors import InputError
from jumpstart.formats.app_image import IMAGE_MAGIC, AppImage, image_span
from jumpstart.formats.bootloader_image import BootloaderDescription, bootloader_description
from jumpstart.formats.partition_table import DEFAULT_TABLE_OFFSET
from jumpstart.formats.secure_boot import SECTOR_SIZE as SIG_SECTOR_SIZE
from jumpstart.formats.secure_boot import (
    SIG_BLOCK_MAGIC,
    SignatureBlock,
    SignatureError,
    split_signed,
    verify_signed,
)
from jumpstart.idf.bootloader_support import ESP32_SIGNATURE_VERSIONS
from jumpstart.idf.efuse import VirtualEfuse
from jumpstart.idf.flash import Flash
from jumpstart.targets import ESP32, ChipProfile

__all__ = ["LoadedBootloader", "RomBootError", "rom_load_bootloader"]


class RomBootError(InputError):
    """The ROM found no bootloader it may run."""


@dataclass(frozen=True)
class LoadedBootloader:
    image: AppImage
    description: BootloaderDescription
    length: int
    """Flash bytes it occupies from 0x1000: the image, and its signature sector if signed."""
    signature_blocks: tuple[SignatureBlock, ...]


def _signature(
    read: Callable[[int, int], bytes], length: int, space: int
) -> tuple[int, list[SignatureBlock]]:
    """The signed length and the blocks, when a signature sector follows the padded image."""
    padded = length + (-length % SIG_SECTOR_SIZE)
    if padded + SIG_SECTOR_SIZE > space:
        return length, []
    if read(padded, 1) != bytes([SIG_BLOCK_MAGIC]):
        return length, []
    try:
        _, blocks = split_signed(read(0, padded + SIG_SECTOR_SIZE))
    except SignatureError:
        return length, []
    return padded + SIG_SECTOR_SIZE, blocks


def rom_load_bootloader(
    flash: Flash, efuse: VirtualEfuse, console: Callable[[str], None], chip: ChipProfile = ESP32
) -> LoadedBootloader:
    """Check and load the bootloader (0x1000 on ESP32, 0x0 on ESP8266), printing the ROM's
    load lines."""
    base = chip.bootloader_offset
    space = DEFAULT_TABLE_OFFSET - base  # what fits before the partition table
    where = f"0x{base:x}"

    def read(offset: int, length: int) -> bytes:
        address = base + offset
        if flash.crypt is not None:
            return flash.read_encrypted(address, length)
        return flash.read(address, length)

    first = read(0, 4)
    if first[0] != IMAGE_MAGIC:
        console(f"invalid header: 0x{int.from_bytes(first, 'little'):08x}")
        raise RomBootError(
            f"no bootloader at {where}: build one with 'jumpstart idf bootloader -o "
            f"bootloader.bin' and write it with 'jumpstart idf flash --device DEVICE {where} "
            "bootloader.bin'"
        )
    extended = chip.extended_header
    try:
        length = image_span(read, space, extended_header=extended)
        image = AppImage.parse(read(0, length), extended_header=extended)
        image.verify(chip_id=chip.chip_id, require_app=False)
        description = bootloader_description(image)
    except InputError as err:
        console(f"bootloader at {where} is not valid: {err}")
        raise RomBootError(f"the bootloader at {where} does not verify ({err})") from None
    signed_length, blocks = _signature(read, length, space)
    if chip.secure_boot and efuse.read_field_bit("ABS_DONE_1"):
        try:
            if not blocks:
                raise SignatureError("the bootloader has no signature sector")
            verify_signed(
                read(0, signed_length),
                trusted_key_digests=efuse.secure_boot_key_digests,
                versions=ESP32_SIGNATURE_VERSIONS,
            )
        except SignatureError as err:
            console("secure boot check fail")
            raise RomBootError(f"secure boot: the ROM refuses the bootloader ({err})") from None
    if extended:
        console("configsip: 0, SPIWP:0xee")
        console("clk_drv:0x00,q_drv:0x00,d_drv:0x00,cs0_drv:0x00,hd_drv:0x00,wp_drv:0x00")
        console("mode:DIO, clock div:2")
        for segment in image.segments:
            console(f"load:0x{segment.load_addr:08x},len:{len(segment.data)}")
        console(f"entry 0x{image.header.entry_addr:08x}")
    else:  # ESP8266's ROM
        for segment in image.segments:
            console(f"load 0x{segment.load_addr:08x}, len {len(segment.data)}, room 16 ")
        console(f"chksum 0x{image.checksum:02x}")
        console(f"csum 0x{image.checksum:02x}")
    return LoadedBootloader(image, description, signed_length, tuple(blocks))
