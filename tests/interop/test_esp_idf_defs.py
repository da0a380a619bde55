"""Partition tables against esp-idf-defs (the gen_esp32part code published on PyPI)."""

from pathlib import Path

import pytest

from jumpstart.formats.partition_table import PartitionTable, decode_table_text
from jumpstart.host import layouts

defs = pytest.importorskip("esp_idf_defs.partitions")
pytestmark = pytest.mark.interop

CSVS = sorted((Path(__file__).parents[1] / "vectors" / "esp-idf").glob("partition_table__*.csv"))


@pytest.mark.parametrize("path", CSVS, ids=[p.name.split("__")[-1] for p in CSVS])
def test_same_bytes_as_esp_idf_defs(path: Path) -> None:
    text = decode_table_text(path.read_bytes())
    theirs = defs.PartitionTable.from_csv(text)
    theirs.verify()
    assert PartitionTable.from_csv(text).to_binary() == theirs.to_binary()


def test_vectors_are_present() -> None:
    assert len(CSVS) >= 14


@pytest.mark.parametrize(
    "name", ["ESP8266_TWO_OTA_PARTITIONS_CSV", "ESP8266_OUTLET_PARTITIONS_CSV"]
)
def test_esp8266_layouts_match_gen_esp32part(name: str) -> None:
    """The ESP8266 tables: ESP8266_RTOS_SDK ships the same gen_esp32part.py format."""
    text = getattr(layouts, name)
    theirs = defs.PartitionTable.from_csv(text)
    theirs.verify()
    ours = PartitionTable.from_csv(text, flash_size=2 * 1024 * 1024)
    ours.verify(flash_size=2 * 1024 * 1024)
    assert ours.to_binary() == theirs.to_binary()
