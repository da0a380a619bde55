"""Partition tables against esp-idf-defs (the gen_esp32part code published on PyPI)."""

from pathlib import Path

import pytest

from jumpstart.formats.partition_table import PartitionTable, decode_table_text

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
