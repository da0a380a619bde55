"""mfg_gen's two input CSVs, read as mfg_gen reads them (ESP-IDF v5.5 ``mfg_gen.py``).

Config CSV, no header: ``key,type,encoding`` rows, ``type`` one of namespace, data, file; a
fourth cell ``REPEAT`` makes the key take the first device's value for every device. Values
CSV: a header of keys (a superset of the config's, in the same order: extra columns such as an
``id`` are metadata), then one row per device. Whitespace-only lines are skipped in both.

Where mfg_gen only prints, or fails later, these raise ``InputError`` naming the file and its
line (counted in the file as written, blank lines included).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from jumpstart.errors import InputError
from jumpstart.formats.nvs import KEY_MAX_LENGTH

__all__ = [
    "CONFIG_ENCODINGS",
    "ConfigRow",
    "DeviceValues",
    "MfgConfig",
    "ValuesTable",
    "read_config",
    "read_values",
]

REPEAT = "REPEAT"
CONFIG_TYPES = ("namespace", "data", "file")
# mfg_gen's list: the NVS generator's encodings less i16 (which mfg_gen refuses).
CONFIG_ENCODINGS = frozenset(
    ("string", "binary", "hex2bin", "u8", "i8", "u16", "u32", "i32", "u64", "i64", "base64")
)


@dataclass(frozen=True, slots=True)
class ConfigRow:
    line: int
    cells: tuple[str, ...]
    """The row as written to each device's intermediate CSV (without ``REPEAT``)."""
    repeat: bool

    @property
    def key(self) -> str:
        return self.cells[0]

    @property
    def is_namespace(self) -> bool:
        return self.cells[1] == "namespace"


@dataclass(frozen=True, slots=True)
class MfgConfig:
    source: str
    rows: tuple[ConfigRow, ...]

    @property
    def keys(self) -> list[str]:
        """The keys that take a value per device, in config order."""
        return [row.key for row in self.rows if not row.is_namespace]


@dataclass(frozen=True, slots=True)
class DeviceValues:
    line: int
    cells: dict[str, str]
    """Each header key's cell (the first column of that name)."""


@dataclass(frozen=True, slots=True)
class ValuesTable:
    source: str
    header: tuple[str, ...]
    devices: tuple[DeviceValues, ...]


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """The file's non-blank lines parsed as CSV, with their line numbers (from 1)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((number, next(csv.reader([line], delimiter=","))))
        except csv.Error as err:
            raise InputError(f"{path}:{number}: {err}") from None
    if not rows:
        raise InputError(f"{path} is empty")
    return rows


def read_config(path: Path) -> MfgConfig:
    rows = []
    for line, cells in _lines(path):
        where = f"{path}:{line}"
        repeat = REPEAT in cells
        if len(cells) != (4 if repeat else 3):
            raise InputError(f"{where}: expected key,type,encoding (and optionally REPEAT)")
        if repeat:
            cells.remove(REPEAT)
        key, kind, encoding = cells
        if kind not in CONFIG_TYPES:
            raise InputError(f"{where}: type {kind!r} is not one of {', '.join(CONFIG_TYPES)}")
        if kind != "namespace" and encoding not in CONFIG_ENCODINGS:
            known = ", ".join(sorted(CONFIG_ENCODINGS))
            raise InputError(f"{where}: encoding {encoding!r} is not one of {known}")
        if not key:
            raise InputError(f"{where}: the key is empty")
        if len(key.encode("utf-8")) > KEY_MAX_LENGTH:
            raise InputError(f"{where}: key {key!r} is longer than {KEY_MAX_LENGTH} characters")
        rows.append(ConfigRow(line, tuple(cells), repeat and kind != "namespace"))
    return MfgConfig(str(path), tuple(rows))


def read_values(path: Path, config: MfgConfig) -> ValuesTable:
    lines = _lines(path)
    (_, header), data = lines[0], lines[1:]
    present = [key for key in header if key in set(config.keys)]
    for key in config.keys:
        if key not in header:
            raise InputError(f"{path}:{lines[0][0]}: the header has no column for key {key!r}")
    if present != [k for k in config.keys if k in present] or len(set(present)) != len(present):
        raise InputError(
            f"{path}:{lines[0][0]}: the header must name the config's keys once each, in the "
            f"config's order ({', '.join(config.keys)})"
        )
    devices = []
    for line, cells in data:
        if len(cells) != len(header):
            raise InputError(
                f"{path}:{line}: {len(cells)} values for the header's {len(header)} keys"
            )
        by_key: dict[str, str] = {}
        for key, cell in zip(header, cells, strict=True):
            by_key.setdefault(key, cell)
        devices.append(DeviceValues(line, by_key))
    if not devices:
        raise InputError(f"{path}: no device rows after the header")
    return ValuesTable(str(path), tuple(header), tuple(devices))
