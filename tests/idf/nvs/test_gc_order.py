"""Garbage collection writes in ESP-IDF's order (``PageManager::requestNewPage``), so an image
cut by power at any point is the same bytes as ESP-IDF's."""

from __future__ import annotations

from jumpstart.formats.partition_table import PartitionTable
from jumpstart.idf.flash import MemoryFlash
from jumpstart.idf.nvs import NvsFlash
from jumpstart.idf.partition import PartitionMap
from tests.idf.nvs.helpers import FLASH_SIZE, NVS_OFFSET

PAGE = 0x1000


class RecordingFlash(MemoryFlash):
    """Logs every program and erase: (kind, page index within the NVS partition, offset)."""

    def __init__(self) -> None:
        super().__init__(FLASH_SIZE)
        self.ops: list[tuple[str, int, int]] = []

    def write(self, addr: int, data: bytes) -> None:
        if addr >= NVS_OFFSET:
            self.ops.append(("write", (addr - NVS_OFFSET) // PAGE, (addr - NVS_OFFSET) % PAGE))
        super().write(addr, data)

    def erase_range(self, addr: int, length: int) -> None:
        if addr >= NVS_OFFSET:
            for sector in range(addr, addr + length, PAGE):
                self.ops.append(("erase", (sector - NVS_OFFSET) // PAGE, 0))
        super().erase_range(addr, length)


def test_a_page_with_no_live_entry_is_freed_before_the_new_page_gets_its_header() -> None:
    flash = RecordingFlash()
    table = PartitionTable.from_csv(f"nvs,data,nvs,{NVS_OFFSET:#x},0x3000,\n")
    flash.write(0x8000, table.to_binary())
    nvs = NvsFlash(PartitionMap.load(flash))
    nvs.init()
    with nvs.open("ns") as handle:
        for value in range(600):  # ~5 pages of rewrites on 3 pages: several collections
            handle.set_u32("counter", value)
        assert handle.get_u32("counter") == 599
    # For each collection: the ops between the victim's FREEING mark (a write into the
    # victim's header) and the victim's erase are the copied entries.
    gaps = []
    ops = flash.ops
    for at, (kind, page, _) in enumerate(ops):
        if kind != "erase":
            continue
        mark = max(i for i in range(at) if ops[i][0] == "write" and ops[i][1] == page)
        gaps.append(ops[mark + 1 : at])
    assert len(gaps) >= 2
    # A victim with nothing live (every counter value superseded): nothing between the mark
    # and the erase, not even the new page's header (Page::copyItems returns first).
    assert [] in gaps
    # ...and the new page's header is written afterwards, by its first item.
    empty = gaps.index([])
    erase_at = [i for i, op in enumerate(ops) if op[0] == "erase"][empty]
    first_after = ops[erase_at + 1]
    assert first_after[0] == "write"
    assert first_after[2] == 0  # offset 0: the page header
