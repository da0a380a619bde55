from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jumpstart.idf.esp_err import EspErr, EspError
from jumpstart.idf.flash import (
    SECTOR_SIZE,
    FileFlash,
    Flash,
    MemoryFlash,
    PowerCut,
    PowerCutError,
    SharedImage,
    SparseFlash,
)

# The same semantics on every in-memory flash: whole, and copy-on-write over a shared image.
KINDS = pytest.mark.parametrize("kind", ["memory", "sparse"])


def new_flash(kind: str, size: int, *, content: bytes = b"", strict: bool = False) -> Flash:
    if kind == "memory":
        return MemoryFlash(size, content=content, strict=strict)
    base = SharedImage(content, size) if content else None
    return SparseFlash(size, base=base, strict=strict)


@KINDS
def test_new_flash_is_erased(kind: str) -> None:
    assert new_flash(kind, 0x4000).read(0, 0x4000) == b"\xff" * 0x4000


@KINDS
def test_program_ands_bits_and_counts_zero_to_one(kind: str) -> None:
    flash = new_flash(kind, 0x2000)
    flash.write(0x10, b"\x0f\xf0")
    flash.write(0x10, b"\xf3\x3f")
    assert flash.read(0x10, 2) == b"\x03\x30"
    assert flash.zero_to_one_attempts == 1
    flash.write(0x10, b"\x01\x10")  # only clears bits
    assert flash.zero_to_one_attempts == 1


@KINDS
def test_strict_flash_refuses_zero_to_one(kind: str) -> None:
    flash = new_flash(kind, 0x2000, strict=True)
    flash.write(0, b"\x00")
    with pytest.raises(EspError) as caught:
        flash.write(0, b"\x01")
    assert caught.value.code is EspErr.ESP_ERR_INVALID_STATE
    assert flash.read(0, 1) == b"\x00"


@KINDS
def test_erase_is_whole_sectors_and_counted(kind: str) -> None:
    flash = new_flash(kind, 0x4000)
    flash.write(0x0FFF, b"\x00\x00")  # straddles sectors 0 and 1
    flash.erase_sector(0x1000)
    assert flash.read(0x0FFF, 2) == b"\x00\xff"
    assert flash.erase_counts == [0, 1, 0, 0]
    flash.erase_range(0, 0x4000)
    assert flash.erase_counts == [1, 2, 1, 1]
    assert flash.operations == 1 + 1 + 4
    for addr, length in ((0x800, 0x1000), (0, 0x800)):
        with pytest.raises(EspError) as caught:
            flash.erase_range(addr, length)
        assert caught.value.code is EspErr.ESP_ERR_INVALID_ARG


@KINDS
def test_out_of_range_is_invalid_arg(kind: str) -> None:
    flash = new_flash(kind, 0x1000)
    with pytest.raises(EspError, match="outside"):
        flash.read(0xFFF, 2)
    with pytest.raises(EspError, match="outside"):
        flash.write(-1, b"\x00")


@KINDS
def test_torn_program_keeps_a_prefix_and_leaves_power_off(kind: str) -> None:
    flash = new_flash(kind, 0x2000)
    flash.write(0, b"\x11")  # operation before arming does not count
    flash.arm_power_cut(PowerCut(at_operation=2, keep=3))
    flash.write(0x100, b"\x00" * 4)
    with pytest.raises(PowerCutError, match="3 of 8 bytes"):
        flash.write(0x200, b"\x00" * 8)
    with pytest.raises(PowerCutError, match="no power"):
        flash.read(0, 1)
    flash.restore_power()
    assert flash.read(0x100, 4) == bytes(4)
    assert flash.read(0x200, 8) == bytes(3) + b"\xff" * 5
    flash.write(0x300, b"\x00")  # the cut fired once; writes work again
    assert flash.read(0x300, 1) == b"\x00"


@KINDS
def test_half_erased_sector(kind: str) -> None:
    flash = new_flash(kind, 0x3000, content=bytes(0x3000))
    flash.arm_power_cut(PowerCut(at_operation=2))
    with pytest.raises(PowerCutError, match="sector 0x1000"):
        flash.erase_range(0, 0x3000)
    flash.restore_power()
    assert flash.read(0, 0x1000) == b"\xff" * 0x1000
    assert flash.read(0x1000, 0x1000) == b"\xff" * 0x800 + bytes(0x800)
    assert flash.read(0x2000, 0x1000) == bytes(0x1000)


def test_fractional_keep() -> None:
    assert PowerCut(1, keep=0.25).bytes_kept(32) == 8
    assert PowerCut(1, keep=0).bytes_kept(32) == 0
    with pytest.raises(ValueError, match="counts from 1"):
        PowerCut(0)


def test_file_flash_persists(tmp_path: Path) -> None:
    path = tmp_path / "flash.bin"
    with FileFlash(path, 0x4000) as flash:
        flash.write(0x1234, b"\x00\x01")
    assert path.stat().st_size == 0x4000
    with FileFlash(path) as flash:
        assert flash.size == 0x4000
        assert flash.read(0x1234, 2) == b"\x00\x01"
        flash.erase_sector(0x1000)
    assert path.read_bytes()[0x1234:0x1236] == b"\xff\xff"
    with pytest.raises(ValueError, match="not the"):
        FileFlash(path, 0x8000)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("w"), st.integers(0, 0x3FF0), st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("e"), st.integers(0, 3), st.just(b"")),
    ),
    max_size=40,
)


@given(ops)
@KINDS
def test_flash_matches_a_bytearray_model(kind: str, sequence: list[tuple[str, int, bytes]]) -> None:
    flash = new_flash(kind, 0x4000)
    model = bytearray(b"\xff" * 0x4000)
    for op, where, data in sequence:
        if op == "w":
            flash.write(where, data)
            for i, b in enumerate(data):
                model[where + i] &= b
        else:
            flash.erase_sector(where * SECTOR_SIZE)
            model[where * SECTOR_SIZE : (where + 1) * SECTOR_SIZE] = b"\xff" * SECTOR_SIZE
    assert flash.image() == bytes(model)


def test_sparse_flashes_share_an_image_and_copy_on_write() -> None:
    content = bytes(range(256)) * 64  # 16 KiB: four sectors of the shared image
    image = SharedImage(content, 0x10000)
    first, second = SparseFlash(0x10000, base=image), SparseFlash(0x10000, base=image)
    assert first.read(0, len(content)) == content
    assert first.read(0x4000, 0x1000) == b"\xff" * 0x1000  # past the image: erased
    assert first.own_bytes == 0  # reading copies nothing
    first.write(0x1010, b"\x00\x00")
    assert first.own_bytes == SECTOR_SIZE  # one sector copied, on the first write
    assert first.read(0x1010, 2) == b"\x00\x00"
    assert second.read(0x1010, 2) == content[0x1010:0x1012]  # the other device: untouched
    assert image.sectors[1] == content[0x1000:0x2000]  # the shared image: untouched
    first.erase_sector(0x2000)
    assert first.read(0x2000, 0x1000) == b"\xff" * 0x1000
    assert second.read(0x2000, 0x1000) == content[0x2000:0x3000]
    first.erase_sector(0x1000)
    assert first.own_bytes == 0  # erased sectors are held by nobody
    second.write(0x8000, b"\x12")
    second.erase_sector(0x8000)
    assert second.own_bytes == 0
    with pytest.raises(ValueError, match="for 65536 bytes"):
        SparseFlash(0x20000, base=image)
