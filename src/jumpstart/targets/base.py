"""The constants a chip profile carries."""

from __future__ import annotations

from dataclasses import dataclass

from jumpstart.errors import InputError
from jumpstart.formats.app_image import ImageHeader

__all__ = ["ChipProfile", "UnsupportedFeatureError"]


class UnsupportedFeatureError(InputError):
    """The chip cannot do what was asked; the message gives the guide's reason."""


@dataclass(frozen=True)
class ChipProfile:
    """One chip: flash, image format, radio and security facts the code branches on."""

    name: str  # as esptool's --chip spells it
    display_name: str
    chip_id: int  # esp_chip_id_t (ChipId.ESP8266 for the chip without an extended header)
    extended_header: bool  # the app image has ESP32's 16-byte extended header
    flash_size: int  # what `device create` gives it by default
    bootloader_offset: int
    app_load_addr: int  # where an app's first (flash-mapped) segment is linked
    app_entry_addr: int  # call_start_cpu0 / call_user_start
    bootloader_dram_addr: int  # the bootloader's dram_seg
    bootloader_iram_addr: int  # its iram (loader) segment
    bootloader_entry_addr: int
    flash_size_code: int  # the image header's size nibble for the default flash size
    sdk: str  # the framework its console names
    sdk_version: str
    rom_banner: tuple[str, ...]
    has_bluetooth: bool
    secure_boot: bool
    flash_encryption: bool
    app_rollback: bool  # otadata entries carry an ota_state (ESP-IDF's app rollback)
    no_bluetooth_reason: str = ""
    no_security_reason: str = ""

    def image_header(self, segment_count: int, entry_addr: int) -> ImageHeader:
        """The header of an image for this chip (its id, flash size, header format)."""
        return ImageHeader(
            segment_count=segment_count,
            entry_addr=entry_addr,
            flash_size=self.flash_size_code,
            chip_id=self.chip_id,
            extended=self.extended_header,
        )

    def require_bluetooth(self) -> None:
        if not self.has_bluetooth:
            raise UnsupportedFeatureError(self.no_bluetooth_reason)

    def require_secure_boot(self) -> None:
        if not self.secure_boot:
            raise UnsupportedFeatureError(f"secure boot: {self.no_security_reason}")

    def require_flash_encryption(self) -> None:
        if not self.flash_encryption:
            raise UnsupportedFeatureError(f"flash encryption: {self.no_security_reason}")
