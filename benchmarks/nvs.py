"""NVS benchmarks: factory image generation, runtime throughput, wear, power cuts."""

from __future__ import annotations

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
from jumpstart.idf.flash import MemoryFlash
from jumpstart.idf.nvs import NvsFlash
from jumpstart.idf.partition import PartitionMap

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.idf.nvs.scenario import (
    flash_operations,
    power_cut_case,
    random_ops,
)

CERT = bytes(range(256)) * 4 + bytes(200)  # a 1.2 KB device certificate


def _factory_rows(serial: int) -> list[tuple[str, str, object]]:
    return [
        ("serial_no", "string", f"SP-{serial:06d}"),
        ("device_cert", "blob", CERT),
        ("device_key", "blob", CERT[:240]),
        ("thing_name", "string", f"outlet-{serial:06d}"),
        ("hw_rev", "u8", 3),
        ("cal_v", "i16", -1234),
        ("cal_i", "i32", 52000),
        ("mfg_date", "u32", 1_795_000_000),
        ("pop", "string", "abcd1234"),
        ("mac_suffix", "blob", b"\xa1\xb2\xc3"),
    ]


def _ours(serial: int) -> bytes:
    builder = NvsImageBuilder(parse_nvs_size(0x6000), FormatVersion.V2)
    ns = builder.namespace("fctry")
    for key, kind, value in _factory_rows(serial):
        if kind == "string":
            builder.string(ns, key, str(value))
        elif kind == "blob":
            assert isinstance(value, bytes)
            builder.blob(ns, key, value)
        else:
            assert isinstance(value, int)
            builder.integer(ns, key, ItemType[kind.upper()], value)
    return builder.to_bytes()


def _theirs(serial: int) -> bytes:
    out = io.BytesIO()
    nvs = gen.nvs_open(out, 0x6000 - 0x1000, gen.Page.VERSION2)
    gen.write_entry(nvs, "fctry", "namespace", "", "")
    for key, kind, value in _factory_rows(serial):
        if kind == "blob":
            assert isinstance(value, bytes)
            gen.write_entry(nvs, key, "data", "hex2bin", value.hex())
        else:
            gen.write_entry(nvs, key, "data", kind, str(value))
    gen.nvs_close(nvs)
    return out.getvalue()


def bench_factory_generation(count: int = 1000) -> None:
    assert _ours(1) == _theirs(1), "the benchmark inputs must give identical images"
    start = time.perf_counter()
    for n in range(count):
        _ours(n)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    for n in range(count):
        _theirs(n)
    theirs = time.perf_counter() - start
    print(
        f"{count} factory NVS images (0x6000, 10 keys)  ours {count / ours:8.0f}/s   "
        f"nvs_partition_gen {count / theirs:8.0f}/s   speed-up {theirs / ours:6.1f}x"
    )


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
