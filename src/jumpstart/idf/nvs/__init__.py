"""``nvs_flash``: key-value storage in NVS partitions, byte-compatible with ESP-IDF.

>>> nvs = NvsFlash(partition_map)
>>> nvs.init()                       # nvs_flash_init()
>>> with nvs.open("storage") as h:   # nvs_open("storage", NVS_READWRITE, &h)
...     h.set_u32("restart_count", 1)
"""

from jumpstart.idf.nvs.api import (
    NVS_DEFAULT_PART_NAME,
    EntryInfo,
    NvsFlash,
    NvsHandle,
    NvsType,
    OpenMode,
    generate_keys,
    read_security_cfg,
)
from jumpstart.idf.nvs.errors import NvsError
from jumpstart.idf.nvs.storage import Storage, StorageStats

__all__ = [
    "NVS_DEFAULT_PART_NAME",
    "EntryInfo",
    "NvsError",
    "NvsFlash",
    "NvsHandle",
    "NvsType",
    "OpenMode",
    "Storage",
    "StorageStats",
    "generate_keys",
    "read_security_cfg",
]
