"""Page order, page selection and garbage collection (``nvs_pagemanager.cpp``, spec 1.9-1.10).

Used pages are kept in sequence-number order; the last one is the current page, the only one
written to. Blank and corrupt pages form a FIFO free list, so sectors are reused round-robin
(that, plus the log structure, is all the wear levelling NVS does). One free page is always
kept in reserve: when only one is left, the used page with the most reclaimable entries is
copied to it and erased.
"""

from __future__ import annotations

from collections import deque

from jumpstart.formats.nvs import ENTRY_COUNT, PAGE_SIZE, ItemType, PageState
from jumpstart.idf.esp_err import EspErr
from jumpstart.idf.nvs.errors import NvsError
from jumpstart.idf.nvs.page import NvsPage
from jumpstart.idf.nvs.partition import NvsPartition

__all__ = ["PageManager"]


class PageManager:
    """The pages of one NVS partition."""

    __slots__ = ("free", "page_count", "pages", "partition", "seq")

    def __init__(self, partition: NvsPartition) -> None:
        self.partition = partition
        self.page_count = partition.size // PAGE_SIZE
        self.pages: list[NvsPage] = []
        self.free: deque[NvsPage] = deque()
        self.seq = 0

    @property
    def current(self) -> NvsPage:
        return self.pages[-1]

    def load(self) -> None:
        """``PageManager::load``: order the pages and undo what a power cut left half done."""
        readonly = self.partition.readonly
        self.pages, self.free = [], deque()
        for sector in range(self.page_count):
            page = NvsPage(self.partition, sector)
            page.load(repair=not readonly)
            if page.state in (PageState.UNINITIALIZED, PageState.CORRUPT):
                self.free.append(page)
            else:
                self.pages.append(page)
        self.pages.sort(key=lambda p: p.seq)  # stable: equal numbers keep sector order
        if not self.pages:
            self.seq = 0
            self.activate_page()
            return
        self.seq = self.pages[-1].seq + 1
        if readonly:
            return
        self._erase_older_duplicate_of_last_item()
        self._finish_interrupted_freeing()
        if not self.free:
            raise NvsError(
                EspErr.ESP_ERR_NVS_NO_FREE_PAGES,
                f"'{self.partition.label}' has no free page: erase the partition to use it",
            )

    def _erase_older_duplicate_of_last_item(self) -> None:
        # A cut after a new value was written but before the old one was erased leaves both;
        # the new one is the last item of the last page.
        last_page = self.current
        if not last_page.items:
            return
        item = next(reversed(last_page.items.values()))
        older = [p for p in self.pages[:-1] if p.state is not PageState.FREEING]
        for page in older:
            if page.erase_item(item.ns_index, ItemType(item.type), item.key, item.chunk_index):
                return
        if item.type == ItemType.BLOB_IDX:
            # the old value may be a version 1 blob
            for page in older:
                if page.erase_item(item.ns_index, ItemType.BLOB, item.key, item.chunk_index):
                    return

    def _finish_interrupted_freeing(self) -> None:
        for page in self.pages:
            if page.state is not PageState.FREEING:
                continue
            target = self.current
            if target.state is PageState.ACTIVE:  # a partial copy: start it again
                target.erase()
                self.pages.remove(target)
                self.free.append(target)
            self.activate_page()
            page.copy_items(self.current)
            page.erase()
            self.pages.remove(page)
            self.free.append(page)
            return

    def activate_page(self) -> NvsPage:
        """Make the front free page the current one (its header is written on first use)."""
        if not self.free:
            raise NvsError(EspErr.ESP_ERR_NVS_NOT_ENOUGH_SPACE, "no free page left")
        page = self.free.popleft()
        if page.state is PageState.CORRUPT:
            page.erase()
        page.state = PageState.UNINITIALIZED
        page.seq = self.seq
        self.seq += 1
        self.pages.append(page)
        return page

    def request_new_page(self) -> None:
        """Give the storage a fresh current page, collecting garbage if only one is free."""
        if not self.free:
            raise NvsError(EspErr.ESP_ERR_NVS_INVALID_STATE, "no free page to activate")
        if len(self.free) >= 2:
            self.activate_page()
            return
        victim, most_unused = None, 0
        for page in self.pages:
            unused = ENTRY_COUNT - page.used_count
            if unused > most_unused:
                victim, most_unused = page, unused
        if victim is None:
            raise NvsError(EspErr.ESP_ERR_NVS_NOT_ENOUGH_SPACE, "every entry holds live data")
        victim.mark_freeing()
        target = self.activate_page()
        victim.copy_items(target)
        victim.erase()
        self.pages.remove(victim)
        self.free.append(victim)
