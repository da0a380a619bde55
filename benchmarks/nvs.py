"""NVS benchmarks: factory image generation, runtime throughput, wear, power cuts."""

from __future__ import annotations

import hashlib
import io
import random
import sys
import time
from pathlib import Path

from esp_idf_nvs_partition_gen import nvs_partition_gen as gen
from rich.progress import Progress

from jumpstart.formats.nvs import FormatVersion, ItemType
from jumpstart.formats.partition_table import PartitionTable
from jumpstart.host.nvs_gen import NvsImageBuilder, parse_nvs_size
from jumpstart.host.nvs_template import FactoryField, NvsImageBatch
from jumpstart.idf.flash import MemoryFlash
from jumpstart.idf.nvs import NvsFlash
from jumpstart.idf.partition import PartitionMap

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.idf.nvs.scenario import (
    flash_operations,
    power_cut_case,
    random_ops,
)


def _factory_rows(serial: int) -> list[tuple[str, str, int | str | bytes]]:
    """One device's factory data; certificate, key, PoP and MAC differ per device, as in a
    real run."""
    unique = hashlib.sha256(serial.to_bytes(4, "little")).digest()
    cert = (unique * 38)[:1200]  # a 1.2 KB device certificate
    return [
        ("serial_no", "string", f"SP-{serial:06d}"),
        ("device_cert", "blob", cert),
        ("device_key", "blob", (unique[::-1] * 8)[:240]),
        ("thing_name", "string", f"outlet-{serial:06d}"),
        ("hw_rev", "u8", 3),
        ("cal_v", "i16", -1234 + serial % 100),
        ("cal_i", "i32", 52000 + serial),
        ("mfg_date", "u32", 1_795_000_000 + serial * 60),
        ("pop", "string", unique.hex()[:8]),
        ("mac_suffix", "blob", unique[:3]),
    ]


_FIELD_TYPES = {"string": ItemType.SZ, "blob": ItemType.BLOB}


def _fields() -> list[FactoryField]:
    return [
        FactoryField("fctry", key, _FIELD_TYPES.get(kind) or ItemType[kind.upper()])
        for key, kind, _ in _factory_rows(0)
    ]


def _one_at_a_time(rows: list[tuple[str, str, int | str | bytes]]) -> bytes:
    builder = NvsImageBuilder(parse_nvs_size(0x6000), FormatVersion.V2)
    ns = builder.namespace("fctry")
    for key, kind, value in rows:
        if isinstance(value, str):
            builder.string(ns, key, value)
        elif isinstance(value, bytes):
            builder.blob(ns, key, value)
        else:
            builder.integer(ns, key, ItemType[kind.upper()], value)
    return builder.to_bytes()


def _theirs(rows: list[tuple[str, str, int | str | bytes]]) -> bytes:
    out = io.BytesIO()
    nvs = gen.nvs_open(out, 0x6000 - 0x1000, gen.Page.VERSION2)
    gen.write_entry(nvs, "fctry", "namespace", "", "")
    for key, kind, value in rows:
        if isinstance(value, bytes):
            gen.write_entry(nvs, key, "data", "hex2bin", value.hex())
        else:
            gen.write_entry(nvs, key, "data", kind, str(value))
    gen.nvs_close(nvs)
    return out.getvalue()


def bench_factory_generation(count: int = 1000) -> None:
    """A manufacturing run: ``count`` devices, same keys, their own values."""
    devices = [_factory_rows(n) for n in range(count)]
    values = [[value for _, _, value in rows] for rows in devices]
    batch = NvsImageBatch(parse_nvs_size(0x6000), _fields())
    timings = {}
    for name, make in (
        ("ours, bulk", lambda n: batch.render(values[n])),
        ("ours, one image at a time", lambda n: _one_at_a_time(devices[n])),
        ("nvs_partition_gen", lambda n: _theirs(devices[n])),
    ):
        start = time.perf_counter()
        for n in range(count):
            make(n)
        timings[name] = time.perf_counter() - start
    for n in (0, count // 2, count - 1):
        assert batch.render(values[n]) == _theirs(devices[n]), "images must be identical"
    theirs = timings["nvs_partition_gen"]
    print(f"{count} factory NVS images (0x6000, 10 keys incl. a 1.2 KB certificate):")
    for name, seconds in timings.items():
        print(f"  {name:<28} {count / seconds:8.0f}/s   speed-up {theirs / seconds:5.1f}x")


def _device(size: int = 0x6000) -> tuple[MemoryFlash, NvsFlash]:
    flash = MemoryFlash(0x100000)
    flash.write(0x8000, PartitionTable.from_csv(f"nvs,data,nvs,0x10000,{size:#x}\n").to_binary())
    nvs = NvsFlash(PartitionMap.load(flash))
    nvs.init()
    return flash, nvs


def bench_runtime_ops(count: int = 20000) -> None:
    _flash, nvs = _device(0x10000)
    handle = nvs.open("bench")
    start = time.perf_counter()
    for n in range(count):
        handle.set_u32(f"k{n % 50}", n)
    sets = count / (time.perf_counter() - start)
    start = time.perf_counter()
    for n in range(count):
        handle.get_u32(f"k{n % 50}")
    gets = count / (time.perf_counter() - start)
    # baseline: the raw flash programs one set costs (entry + bitmap word), nothing else
    raw = MemoryFlash(0x100000)
    start = time.perf_counter()
    for n in range(count):
        at = (n * 32) % 0xF0000
        raw.write(at, b"\x00" * 32)
        raw.write(at + 0x100, b"\x00" * 4)
    flash_only = count / (time.perf_counter() - start)
    print(
        f"runtime u32 set {sets:9.0f}/s   get {gets:9.0f}/s   "
        f"raw flash programs alone {flash_only:9.0f}/s   set cost ratio {flash_only / sets:5.1f}"
    )


def bench_wear(updates: int = 100_000) -> None:
    flash, nvs = _device(0x6000)
    handle = nvs.open("wear")
    erases_before = list(flash.erase_counts)
    programmed_before = flash.bytes_programmed
    with Progress(transient=True) as progress:
        task = progress.add_task("wear: u32 updates", total=updates)
        for n in range(updates):
            handle.set_u32("counter", n)
            if n % 1000 == 0:
                progress.update(task, completed=n)
    sectors = [flash.erase_counts[s] - erases_before[s] for s in range(0x10, 0x16)]
    amplification = (flash.bytes_programmed - programmed_before) / (updates * 4)
    print(
        f"wear: {updates} u32 updates in 0x6000  erases per sector {sectors} "
        f"(max {max(sectors)}, min {min(sectors)})  write amplification {amplification:.1f}x "
        f"(bytes programmed / user bytes)"
    )


def bench_power_cuts(cuts: int = 10_000, seed: int = 2026) -> None:
    rng = random.Random(seed)
    failures = 0
    start = time.perf_counter()
    with Progress(transient=True) as progress:
        task = progress.add_task("power cuts", total=cuts)
        for n in range(cuts):
            ops = random_ops(rng, 30)
            total = flash_operations(ops)
            cut_at = rng.randint(1, max(total, 1))
            if power_cut_case(ops, cut_at, rng.random()):
                failures += 1
            progress.update(task, completed=n + 1)
    print(
        f"power cuts: {cuts} cuts at random flash operations, {failures} failures "
        f"({time.perf_counter() - start:.0f} s)"
    )


def main() -> None:
    bench_factory_generation()
    bench_runtime_ops()
    bench_wear()
    bench_power_cuts()


if __name__ == "__main__":
    main()
