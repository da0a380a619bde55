"""Benchmarks: each prints our time, a baseline measured in the same run, and the ratio.

Run with ``make bench``. Not a test: numbers vary by machine; the ratio is what to compare.
"""

from __future__ import annotations

import datetime as dt
import timeit
from collections.abc import Callable

from esp_idf_defs.partitions import PartitionTable as Reference
from esptool.bin_image import LoadFirmwareImage

import cloud as cloud_benchmarks  # benchmarks/cloud.py
import cloud_cluster as cluster_benchmarks  # benchmarks/cloud_cluster.py
import device as device_benchmarks  # benchmarks/device.py
import fleet as fleet_benchmarks  # benchmarks/fleet.py
import mfg as mfg_benchmarks  # benchmarks/mfg.py
import nvs as nvs_benchmarks  # benchmarks/nvs.py
import outlet as outlet_benchmarks  # benchmarks/outlet.py
import provisioning as provisioning_benchmarks  # benchmarks/provisioning.py
import security as security_benchmarks  # benchmarks/security.py
from jumpstart.formats.app_image import AppImage
from jumpstart.formats.partition_table import PartitionTable
from jumpstart.host.image_tools import image_build
from jumpstart.host.layouts import OUTLET_PARTITIONS_CSV


def _best(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


def _row(name: str, ours: float, base: float, base_name: str) -> None:
    print(
        f"{name:<38} ours {ours * 1e6:10.1f} us   {base_name} {base * 1e6:10.1f} us   "
        f"ratio {ours / base:6.2f}"
    )


def bench_partition_table() -> None:
    ours = _best(lambda: PartitionTable.from_csv(OUTLET_PARTITIONS_CSV).to_binary(), 2000)
    base = _best(lambda: Reference.from_csv(OUTLET_PARTITIONS_CSV).to_binary(), 2000)
    _row("partition table CSV -> binary", ours, base, "esp-idf-defs")


def bench_image_parse_verify() -> None:
    data = image_build("outlet", "1.0", bytes(range(256)) * 4096, when=dt.datetime(2026, 1, 1))

    def ours() -> None:
        AppImage.parse(data).verify()

    def esptool() -> None:
        image = LoadFirmwareImage("esp32", data)
        assert image.checksum == image.calculate_checksum()
        assert image.stored_digest == image.calc_digest

    _row("1 MiB image parse + checksum + SHA-256", _best(ours, 10), _best(esptool, 10), "esptool")


if __name__ == "__main__":
    bench_partition_table()
    bench_image_parse_verify()
    nvs_benchmarks.main()
    mfg_benchmarks.main()
    device_benchmarks.main()
    provisioning_benchmarks.main()
    cloud_benchmarks.main()
    cluster_benchmarks.main()
    outlet_benchmarks.main()
    security_benchmarks.main()
    fleet_benchmarks.main()
