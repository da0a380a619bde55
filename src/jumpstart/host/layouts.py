"""Flash layouts of the guide's applications."""

from __future__ import annotations

# The guide's 7_mfg/partitions.csv: 6_ota's table plus the factory NVS partition "fctry"
# (guide chapter 8; 'esptool.py write_flash 0x340000 my_mfg.bin'), and the NVS encryption
# keys partition ESP-IDF needs beside flash encryption (chapter 9), in the last sector before
# the apps so every other offset stays the guide's.
OUTLET_PARTITIONS_CSV = """\
# Name,   Type, SubType, Offset,   Size, Flags
nvs,      data, nvs,     ,         0x6000,
otadata,  data, ota,     ,         0x2000,
phy_init, data, phy,     ,         0x1000,
nvs_key,  data, nvs_keys, 0x1F000, 0x1000, encrypted
ota_0,    app,  ota_0,   0x20000,  1600K,
ota_1,    app,  ota_1,   ,         1600K,
fctry,    data, nvs,     0x340000, 0x6000,
"""

# The same with the esp_secure_cert partition (esp_secure_cert_mgr's TLV format, 8 KiB) in the
# gap after phy_init: the device's certificate, key and CA live there instead of in fctry.
OUTLET_SECURE_CERT_PARTITIONS_CSV = OUTLET_PARTITIONS_CSV.replace(
    "nvs_key,", "esp_secure_cert, 0x3F, , 0x12000, 0x2000,\nnvs_key,", 1
)
