"""The device platform: an ESP-IDF re-creation over simulated hardware.

Knows nothing of the outlet application or of the cloud.
"""

from jumpstart.idf.esp_err import EspErr, EspError
from jumpstart.idf.flash import FileFlash, Flash, MemoryFlash, PowerCut, PowerCutError
from jumpstart.idf.partition import EspPartition, PartitionMap

__all__ = [
    "EspErr",
    "EspError",
    "EspPartition",
    "FileFlash",
    "Flash",
    "MemoryFlash",
    "PartitionMap",
    "PowerCut",
    "PowerCutError",
]
