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

# ESP8266_RTOS_SDK's components/partition_table/partitions_two_ota.csv (2 MB flash): each app
# slot in its own 1 MB cache window.
ESP8266_TWO_OTA_PARTITIONS_CSV = """\
# Name,   Type, SubType, Offset,   Size, Flags
nvs,      data, nvs,     0x9000,   0x4000,
otadata,  data, ota,     0xd000,   0x2000,
phy_init, data, phy,     0xf000,   0x1000,
ota_0,    0,    ota_0,   0x10000,  0xF0000,
ota_1,    0,    ota_1,   0x110000, 0xF0000,
"""

# The outlet on a 2 MB ESP8266 (guide 7.2.2: smaller app slots, so the factory partition fits):
# the same slots at the same 1 MB windows, shortened to 0xC5000, and fctry after ota_1.
ESP8266_OUTLET_PARTITIONS_CSV = """\
# Name,   Type, SubType, Offset,   Size, Flags
nvs,      data, nvs,     0x9000,   0x4000,
otadata,  data, ota,     0xd000,   0x2000,
phy_init, data, phy,     0xf000,   0x1000,
ota_0,    app,  ota_0,   0x10000,  0xC5000,
ota_1,    app,  ota_1,   0x110000, 0xC5000,
fctry,    data, nvs,     0x1D5000, 0x6000,
"""

# The outlet's layout by chip (targets/: esp32, esp8266).
OUTLET_LAYOUTS = {"esp32": OUTLET_PARTITIONS_CSV, "esp8266": ESP8266_OUTLET_PARTITIONS_CSV}
