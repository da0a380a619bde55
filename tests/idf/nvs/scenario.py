"""Random operation sequences against the NVS library and a plain dict model.

Shared by the property tests and ``make bench`` (which runs many more power cuts).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from jumpstart.formats.nvs import NvsKeys
from jumpstart.idf.esp_err import EspErr
from jumpstart.idf.flash import MemoryFlash, PowerCut, PowerCutError
from jumpstart.idf.nvs import NvsError, NvsFlash, OpenMode
from tests.idf.nvs.helpers import boot, flash_with_nvs

INT_RANGES = {
    "u8": (0, 2**8 - 1),
    "i8": (-(2**7), 2**7 - 1),
    "u16": (0, 2**16 - 1),
    "i16": (-(2**15), 2**15 - 1),
    "u32": (0, 2**32 - 1),
    "i32": (-(2**31), 2**31 - 1),
    "u64": (0, 2**64 - 1),
    "i64": (-(2**63), 2**63 - 1),
}
TYPES = (*INT_RANGES, "str", "blob")
NAMESPACES = ("app", "wifi", "fctry")
KEYS = ("count", "ssid", "cert", "k3", "k4")
Value = int | str | bytes
Model = dict[tuple[str, str], tuple[str, Value]]


@dataclass(frozen=True, slots=True)
class Op:
    action: str  # set | erase | erase_all
    namespace: str
    key: str = ""
    type: str = ""
    value: Value = 0


def random_value(rng: random.Random, kind: str, max_blob: int) -> Value:
    if kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        return rng.choice([low, high, 0 if low <= 0 else low, rng.randint(low, high)])
    if kind == "str":
        size = rng.choice([0, 1, 31, 32, rng.randint(0, 200), rng.randint(0, 3999)])
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(size))
    size = rng.choice([0, 1, 32, 33, rng.randint(0, 4000), rng.randint(0, max_blob)])
    return rng.randbytes(size)


def random_ops(rng: random.Random, count: int, max_blob: int = 12000) -> list[Op]:
    ops = []
    for _ in range(count):
        namespace = rng.choice(NAMESPACES)
        roll = rng.random()
        if roll < 0.8:
            kind = rng.choice(TYPES)
            key = rng.choice(KEYS)
            ops.append(Op("set", namespace, key, kind, random_value(rng, kind, max_blob)))
        elif roll < 0.95:
            ops.append(Op("erase", namespace, rng.choice(KEYS)))
        else:
            ops.append(Op("erase_all", namespace))
    return ops


def apply(nvs: NvsFlash, op: Op) -> None:
    """Run ``op``; a missing key on erase is not an error for the model."""
    handle = nvs.open(op.namespace, OpenMode.READWRITE)
    try:
        if op.action == "set":
            if op.type == "str":
                assert isinstance(op.value, str)
                handle.set_str(op.key, op.value)
            elif op.type == "blob":
                assert isinstance(op.value, bytes)
                handle.set_blob(op.key, op.value)
            else:
                getattr(handle, f"set_{op.type}")(op.key, op.value)
        elif op.action == "erase":
            handle.erase_key(op.key)
        else:
            handle.erase_all()
    except NvsError as err:
        if err.code is not EspErr.ESP_ERR_NVS_NOT_FOUND or op.action != "erase":
            raise


def model_apply(model: Model, op: Op) -> None:
    if op.action == "set":
        model[op.namespace, op.key] = (op.type, op.value)
    elif op.action == "erase":
        model.pop((op.namespace, op.key), None)
    else:
        for name in [k for k in model if k[0] == op.namespace]:
            del model[name]


def read(nvs: NvsFlash, namespace: str, key: str, kind: str) -> Value | None:
    """The value stored under ``key`` as ``kind``; None if there is none."""
    try:
        handle = nvs.open(namespace, OpenMode.READONLY)
        if kind == "str":
            return handle.get_str(key)
        if kind == "blob":
            return handle.get_blob(key)
        value: int = getattr(handle, f"get_{kind}")(key)
        return value
    except NvsError as err:
        if err.code is EspErr.ESP_ERR_NVS_NOT_FOUND:
            return None
        raise


def present(nvs: NvsFlash, namespace: str, key: str) -> bool:
    try:
        nvs.open(namespace, OpenMode.READONLY).find_key(key)
    except NvsError as err:
        if err.code is EspErr.ESP_ERR_NVS_NOT_FOUND:
            return False
        raise
    return True


def mismatches(nvs: NvsFlash, model: Model, skip: set[tuple[str, str]] | None = None) -> list[str]:
    """Every difference between the library and the model (keys in ``skip`` excepted)."""
    problems = []
    for namespace in NAMESPACES:
        for key in KEYS:
            if skip and (namespace, key) in skip:
                continue
            expected = model.get((namespace, key))
            if expected is None:
                if present(nvs, namespace, key):
                    problems.append(f"{namespace}/{key} should be absent")
            elif read(nvs, namespace, key, expected[0]) != expected[1]:
                problems.append(f"{namespace}/{key} should be {expected[0]} {expected[1]!r:.40}")
    return problems


def interrupted_ok(nvs: NvsFlash, before: Model, op: Op) -> list[str]:
    """The interrupted operation left each key it touches fully old or fully new."""
    after = dict(before)
    model_apply(after, op)
    touched = {k for k in set(before) | set(after) if k[0] == op.namespace}
    if op.action != "erase_all":
        touched = {(op.namespace, op.key)}
    problems = []
    for name in touched:
        old, new = before.get(name), after.get(name)
        ok = False
        for version in (old, new):
            if version is None:
                ok = ok or not present(nvs, *name)
            elif read(nvs, name[0], name[1], version[0]) == version[1]:
                ok = True
        if not ok:
            problems.append(f"interrupted {op.action} left {name} neither old nor new")
    return problems


def power_cut_case(
    ops: list[Op], cut_at: int, keep: float, *, size: int = 0x6000, keys: NvsKeys | None = None
) -> list[str]:
    """Run ``ops`` with power cut at the ``cut_at``-th flash operation; return the problems."""
    flash: MemoryFlash = flash_with_nvs(size)
    nvs = boot(flash, keys)
    model: Model = {}
    flash.arm_power_cut(PowerCut(cut_at, keep))
    interrupted: tuple[Model, Op] | None = None
    for op in ops:
        try:
            apply(nvs, op)
        except PowerCutError:
            interrupted = (dict(model), op)
            break
        except NvsError as err:
            if err.code not in (
                EspErr.ESP_ERR_NVS_NOT_ENOUGH_SPACE,
                EspErr.ESP_ERR_NVS_VALUE_TOO_LONG,
            ):
                raise
            continue  # a refused write changes nothing
        model_apply(model, op)
    flash.disarm_power_cut()
    flash.restore_power()
    nvs = boot(flash, keys)
    skip: set[tuple[str, str]] = set()
    problems: list[str] = []
    if interrupted is not None:
        before, op = interrupted
        problems += interrupted_ok(nvs, before, op)
        skip = {k for k in set(before) | {(op.namespace, op.key)} if k[0] == op.namespace}
        if op.action != "erase_all":
            skip = {(op.namespace, op.key)}
    problems += mismatches(nvs, model, skip)
    # Still writable, and stable across one more reboot.
    probe = Op("set", "probe", "alive", "u32", cut_at)
    apply(nvs, probe)
    again = boot(flash, keys)
    if read(again, "probe", "alive", "u32") != cut_at:
        problems.append("the partition is not writable after recovery")
    problems += mismatches(again, model, skip)
    return problems


def flash_operations(ops: list[Op], *, size: int = 0x6000, keys: NvsKeys | None = None) -> int:
    """How many program/erase operations ``ops`` take without a power cut."""
    flash = flash_with_nvs(size)
    nvs = boot(flash, keys)
    start = flash.operations
    for op in ops:
        try:
            apply(nvs, op)
        except NvsError as err:
            if err.code not in (
                EspErr.ESP_ERR_NVS_NOT_ENOUGH_SPACE,
                EspErr.ESP_ERR_NVS_VALUE_TOO_LONG,
            ):
                raise
    return flash.operations - start


def run_against_model(
    seed: int, count: int, *, size: int = 0x6000, keys: NvsKeys | None = None
) -> tuple[MemoryFlash, Model]:
    """Apply ``count`` random operations, checking the library against the model after each.

    Returns the flash and the model at the end; raises AssertionError on the first mismatch.
    """
    flash = flash_with_nvs(size)
    nvs = boot(flash, keys)
    model: Model = {}
    for op in random_ops(random.Random(seed), count):
        refused = None
        try:
            apply(nvs, op)
        except NvsError as err:
            refused = err.code
        # a refused write (no room, too long) must change nothing
        assert refused in (
            None,
            EspErr.ESP_ERR_NVS_NOT_ENOUGH_SPACE,
            EspErr.ESP_ERR_NVS_VALUE_TOO_LONG,
        ), f"{op} failed with {refused}"
        if refused is None:
            model_apply(model, op)
        problems = mismatches(nvs, model)
        assert problems == [], f"after {op}: {problems}"
    return flash, model


def model_values(model: Model) -> dict[tuple[str, str], Value]:
    """The model as the parser reports values: (namespace, key) -> value."""
    return {name: value for name, (_, value) in model.items()}
