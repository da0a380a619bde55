"""Flash layouts of the guide's applications."""

from __future__ import annotations

# The guide's 7_mfg/partitions.csv: 6_ota's table plus the factory NVS partition "fctry"
# (guide chapter 8; 'esptool.py write_flash 0x340000 my_mfg.bin').
OUTLET_PARTITIONS_CSV = """\
# Name,   Type, SubType, Offset,   Size, Flags
nvs,      data, nvs,     ,         0x6000,
otadata,  data, ota,     ,         0x2000,
phy_init, data, phy,     ,         0x1000,
ota_0,    app,  ota_0,   0x20000,  1600K,
ota_1,    app,  ota_1,   ,         1600K,
fctry,    data, nvs,     0x340000, 0x6000,
"""
