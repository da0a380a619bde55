"""Pure byte formats shared by the device and the host tools. No I/O, no device state."""

from jumpstart.formats.app_image import AppDescription, AppImage, ImageError, ImageHeader, Segment
from jumpstart.formats.crc import crc32, crc32_le
from jumpstart.formats.otadata import OtaImgState, OtaSelectEntry, parse_otadata
from jumpstart.formats.partition_table import Partition, PartitionTable, PartitionTableError
from jumpstart.formats.secure_boot import SignatureBlock, SignatureError, sign_image, verify_signed

__all__ = [
    "AppDescription",
    "AppImage",
    "ImageError",
    "ImageHeader",
    "OtaImgState",
    "OtaSelectEntry",
    "Partition",
    "PartitionTable",
    "PartitionTableError",
    "Segment",
    "SignatureBlock",
    "SignatureError",
    "crc32",
    "crc32_le",
    "parse_otadata",
    "sign_image",
    "verify_signed",
]
