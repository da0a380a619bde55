"""``jumpstart idf partition-table``: CSV <-> binary, like ``gen_esp32part.py``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from jumpstart.formats.partition_table import (
    DEFAULT_TABLE_OFFSET,
    RECORD_MAGIC,
    PartitionTable,
    decode_table_text,
)

__all__ = ["ConvertedTable", "partition_table"]


@dataclass(frozen=True, slots=True)
class ConvertedTable:
    """The parsed table and its other representation."""

    table: PartitionTable
    output: bytes
    output_is_binary: bool


def partition_table(
    data: bytes,
    *,
    table_offset: int = DEFAULT_TABLE_OFFSET,
    flash_size: int | None = None,
    md5: bool = True,
    env: Mapping[str, str] | None = None,
) -> ConvertedTable:
    """Convert a CSV table to its binary, or a binary table to CSV."""
    if data[:2] == RECORD_MAGIC:
        table = PartitionTable.from_binary(data, md5=md5)
        table.verify(flash_size=flash_size)
        return ConvertedTable(table, table.to_csv().encode(), output_is_binary=False)
    table = PartitionTable.from_csv(
        decode_table_text(data), table_offset=table_offset, env=env, flash_size=flash_size
    )
    return ConvertedTable(table, table.to_binary(md5=md5), output_is_binary=True)
