import pytest

from jumpstart.formats.partition_table import PartitionTable, PartitionType
from jumpstart.host.layouts import OUTLET_PARTITIONS_CSV
from jumpstart.idf.esp_err import EspErr, EspError
from jumpstart.idf.flash import MemoryFlash
from jumpstart.idf.partition import PartitionMap


def _flash() -> MemoryFlash:
    flash = MemoryFlash()
    table = PartitionTable.from_csv(OUTLET_PARTITIONS_CSV + "keys,data,nvs_keys,,0x1000,readonly\n")
    flash.write(0x8000, table.to_binary())
    return flash


def test_find_by_type_subtype_and_label() -> None:
    parts = PartitionMap.load(_flash())
    nvs = parts.find(PartitionType.DATA, 0x02)
    assert [p.label for p in nvs] == ["nvs", "fctry"]
    assert parts.find_first(label="ota_1").address == 0x1B0000
    assert len(parts.find()) == 8  # with the nvs_key partition of the layout
    with pytest.raises(EspError) as caught:
        parts.find_first(label="missing")
    assert caught.value.code is EspErr.ESP_ERR_NOT_FOUND


def test_read_write_erase_are_partition_relative() -> None:
    flash = _flash()
    fctry = PartitionMap.load(flash).find_first(label="fctry")
    fctry.write(0x10, b"abc")
    assert flash.read(0x340010, 3) == b"abc" == fctry.read(0x10, 3)
    fctry.erase_range(0, 0x1000)
    assert fctry.read(0x10, 3) == b"\xff" * 3
    with pytest.raises(EspError) as caught:
        fctry.read(0x5FFF, 2)
    assert caught.value.code is EspErr.ESP_ERR_INVALID_SIZE
    with pytest.raises(EspError) as caught:
        fctry.erase_range(0x10, 0x1000)
    assert caught.value.code is EspErr.ESP_ERR_INVALID_ARG


def test_readonly_partition_refuses_writes() -> None:
    keys = PartitionMap.load(_flash()).find_first(label="keys")
    for action in (lambda: keys.write(0, b"x"), keys.erase):
        with pytest.raises(EspError) as caught:
            action()
        assert caught.value.code is EspErr.ESP_ERR_NOT_ALLOWED


def test_missing_or_corrupt_table() -> None:
    with pytest.raises(EspError, match="erased"):
        PartitionMap.load(MemoryFlash())
    flash = _flash()
    flash.write(0x8000 + 12, b"\x00")
    with pytest.raises(EspError, match="MD5"):
        PartitionMap.load(flash)


def test_table_larger_than_flash_is_refused() -> None:
    flash = MemoryFlash(2 * 1024 * 1024)
    flash.write(0x8000, PartitionTable.from_csv(OUTLET_PARTITIONS_CSV).to_binary())
    with pytest.raises(EspError, match="beyond the flash size"):
        PartitionMap.load(flash)
