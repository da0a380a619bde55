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
    # esp_wifi.h: ESP_ERR_WIFI_BASE 0x3000
    ESP_ERR_WIFI_NOT_INIT = 0x3001
    ESP_ERR_WIFI_SSID = 0x3006
    # esp_efuse.h: ESP_ERR_EFUSE 0x1600
    ESP_ERR_EFUSE = 0x1600
    ESP_ERR_EFUSE_CNT_IS_FULL = 0x1601
    ESP_ERR_EFUSE_REPEATED_PROG = 0x1602
    # esp_ota_ops.h: ESP_ERR_OTA_BASE 0x1500
    ESP_ERR_OTA_PARTITION_CONFLICT = 0x1501
    ESP_ERR_OTA_SELECT_INFO_INVALID = 0x1502
    ESP_ERR_OTA_VALIDATE_FAILED = 0x1503
    ESP_ERR_OTA_SMALL_SEC_VER = 0x1504
    ESP_ERR_OTA_ROLLBACK_FAILED = 0x1505
    ESP_ERR_OTA_ROLLBACK_INVALID_STATE = 0x1506
    # esp_https_ota.h: ESP_ERR_HTTPS_OTA_BASE 0x9000
    ESP_ERR_HTTPS_OTA_IN_PROGRESS = 0x9001
    ESP_ERR_FLASH_OP_FAIL = 0x6001
    ESP_ERR_FLASH_OP_TIMEOUT = 0x6002
    # nvs.h: ESP_ERR_NVS_BASE 0x1100
    ESP_ERR_NVS_NOT_INITIALIZED = 0x1101
    ESP_ERR_NVS_NOT_FOUND = 0x1102
    ESP_ERR_NVS_TYPE_MISMATCH = 0x1103
    ESP_ERR_NVS_READ_ONLY = 0x1104
    ESP_ERR_NVS_NOT_ENOUGH_SPACE = 0x1105
    ESP_ERR_NVS_INVALID_NAME = 0x1106
    ESP_ERR_NVS_INVALID_HANDLE = 0x1107
    ESP_ERR_NVS_REMOVE_FAILED = 0x1108
    ESP_ERR_NVS_KEY_TOO_LONG = 0x1109
    ESP_ERR_NVS_PAGE_FULL = 0x110A
    ESP_ERR_NVS_INVALID_STATE = 0x110B
    ESP_ERR_NVS_INVALID_LENGTH = 0x110C
    ESP_ERR_NVS_NO_FREE_PAGES = 0x110D
    ESP_ERR_NVS_VALUE_TOO_LONG = 0x110E
    ESP_ERR_NVS_PART_NOT_FOUND = 0x110F
    ESP_ERR_NVS_NEW_VERSION_FOUND = 0x1110
    ESP_ERR_NVS_XTS_ENCR_FAILED = 0x1111
    ESP_ERR_NVS_XTS_DECR_FAILED = 0x1112
    ESP_ERR_NVS_XTS_CFG_FAILED = 0x1113
    ESP_ERR_NVS_XTS_CFG_NOT_FOUND = 0x1114
    ESP_ERR_NVS_ENCR_NOT_SUPPORTED = 0x1115
    ESP_ERR_NVS_KEYS_NOT_INITIALIZED = 0x1116
    ESP_ERR_NVS_CORRUPT_KEY_PART = 0x1117
    ESP_ERR_NVS_CONTENT_DIFFERS = 0x1118
    ESP_ERR_NVS_WRONG_ENCRYPTION = 0x1119


class EspError(JumpstartError):
    """An ESP-IDF API returned something other than ``ESP_OK``."""

    def __init__(self, code: EspErr, message: str = "") -> None:
        self.code = code
        self.detail = message
        """The explanation without the code, for reports to a user (``failed: <detail>``)."""
        super().__init__(
            f"{code.name} (0x{code.value & 0xFFFFFFFF:x})" + (f": {message}" if message else "")
        )
