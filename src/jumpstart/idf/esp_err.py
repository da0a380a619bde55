"""``esp_err_t`` codes and the one exception that carries them."""

from __future__ import annotations

from enum import IntEnum

from jumpstart.errors import JumpstartError

__all__ = ["EspErr", "EspError"]


class EspErr(IntEnum):
    """``esp_err_t`` values (esp_err.h and component headers)."""

    ESP_OK = 0
    ESP_FAIL = -1
    ESP_ERR_NO_MEM = 0x101
    ESP_ERR_INVALID_ARG = 0x102
    ESP_ERR_INVALID_STATE = 0x103
    ESP_ERR_INVALID_SIZE = 0x104
    ESP_ERR_NOT_FOUND = 0x105
    ESP_ERR_NOT_SUPPORTED = 0x106
    ESP_ERR_TIMEOUT = 0x107
    ESP_ERR_INVALID_RESPONSE = 0x108
    ESP_ERR_INVALID_CRC = 0x109
    ESP_ERR_INVALID_VERSION = 0x10A
    ESP_ERR_INVALID_MAC = 0x10B
    ESP_ERR_NOT_FINISHED = 0x10C
    ESP_ERR_NOT_ALLOWED = 0x10D
    # esp_flash / spi_flash
    ESP_ERR_FLASH_OP_FAIL = 0x6001
    ESP_ERR_FLASH_OP_TIMEOUT = 0x6002


class EspError(JumpstartError):
    """An ESP-IDF API returned something other than ``ESP_OK``."""

    def __init__(self, code: EspErr, message: str = "") -> None:
        self.code = code
        super().__init__(
            f"{code.name} (0x{code.value & 0xFFFFFFFF:x})" + (f": {message}" if message else "")
        )
