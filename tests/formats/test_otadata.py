import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jumpstart.formats.otadata import (
    OTADATA_SIZE,
    OtadataError,
    OtaImgState,
    OtaSelectEntry,
    next_seq_for_slot,
    otadata_image,
    parse_otadata,
    select_entry,
    slot_for_seq,
)

# (ota_seq, state, 32 bytes on flash): used for both encoding and decoding.
ENTRY_VECTORS = [
    (1, OtaImgState.UNDEFINED, "01000000" + "ff" * 20 + "ffffffff" + "9a984347"),
    (2, OtaImgState.UNDEFINED, "02000000" + "ff" * 20 + "ffffffff" + "7437f655"),
    (3, OtaImgState.UNDEFINED, "03000000" + "ff" * 20 + "ffffffff" + "11504aed"),
    (5, OtaImgState.VALID, "05000000" + "ff" * 20 + "02000000" + "cd0f21c8"),
]


@pytest.mark.parametrize(("seq", "state", "raw"), ENTRY_VECTORS)
def test_entry_encodes_to_vector(seq: int, state: int, raw: str) -> None:
    assert OtaSelectEntry.new(seq, state).to_bytes() == bytes.fromhex(raw)


@pytest.mark.parametrize(("seq", "state", "raw"), ENTRY_VECTORS)
def test_entry_decodes_from_vector_with_trailing_bytes(seq: int, state: int, raw: str) -> None:
    entry = OtaSelectEntry.from_bytes(bytes.fromhex(raw) + b"\xff" * 100)
    assert (entry.ota_seq, entry.state, entry.crc_ok) == (seq, state, True)


def test_crc_is_over_sequence_only() -> None:
    assert (
        OtaSelectEntry.new(7, OtaImgState.NEW).crc == OtaSelectEntry.new(7, OtaImgState.VALID).crc
    )


def test_short_entry_is_a_typed_error() -> None:
    with pytest.raises(OtadataError):
        OtaSelectEntry.from_bytes(b"\x01\x00")
    with pytest.raises(OtadataError):
        parse_otadata(bytes(100))


def _pair(
    a: OtaSelectEntry | None, b: OtaSelectEntry | None
) -> tuple[OtaSelectEntry, OtaSelectEntry]:
    return parse_otadata(otadata_image(a, b))


def test_erased_otadata_selects_nothing() -> None:
    assert select_entry(parse_otadata(b"\xff" * OTADATA_SIZE)) is None


def test_larger_sequence_wins_and_tie_goes_to_entry_0() -> None:
    assert select_entry(_pair(OtaSelectEntry.new(1), OtaSelectEntry.new(2))) == 1
    assert select_entry(_pair(OtaSelectEntry.new(3), OtaSelectEntry.new(2))) == 0
    assert select_entry(_pair(OtaSelectEntry.new(2), OtaSelectEntry.new(2))) == 0


@pytest.mark.parametrize("state", [OtaImgState.INVALID, OtaImgState.ABORTED])
def test_invalid_and_aborted_entries_do_not_count(state: int) -> None:
    assert select_entry(_pair(OtaSelectEntry.new(1), OtaSelectEntry.new(2, state))) == 0


@pytest.mark.parametrize(
    "state", [OtaImgState.NEW, OtaImgState.PENDING_VERIFY, OtaImgState.UNDEFINED]
)
def test_other_states_are_selectable(state: int) -> None:
    assert select_entry(_pair(OtaSelectEntry.new(1), OtaSelectEntry.new(2, state))) == 1


def test_bad_crc_does_not_count() -> None:
    good = OtaSelectEntry.new(9)
    broken = OtaSelectEntry(good.ota_seq, good.state, good.crc ^ 1)
    assert not broken.is_valid
    assert select_entry(_pair(OtaSelectEntry.new(1), broken)) == 0


def test_slot_arithmetic_matches_esp_ota_ops() -> None:
    assert [slot_for_seq(s, 2) for s in (1, 2, 3, 4)] == [0, 1, 0, 1]
    assert next_seq_for_slot(None, 1, 2) == 2
    assert next_seq_for_slot(1, 1, 2) == 2
    assert next_seq_for_slot(2, 0, 2) == 3
    assert next_seq_for_slot(2, 1, 2) == 2  # already there: same sequence
    assert next_seq_for_slot(5, 2, 3) == 6
    with pytest.raises(ValueError, match="slot"):
        next_seq_for_slot(1, 2, 2)


@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF))
def test_entry_round_trip(seq: int, state: int) -> None:
    entry = OtaSelectEntry.new(seq, state)
    assert OtaSelectEntry.from_bytes(entry.to_bytes()) == entry


@given(st.binary(min_size=32, max_size=32))
def test_any_32_bytes_parse_and_crc_decides(raw: bytes) -> None:
    entry = OtaSelectEntry.from_bytes(raw)
    assert entry.to_bytes() == raw
    expected = OtaSelectEntry.new(entry.ota_seq).crc == struct.unpack_from("<I", raw, 28)[0]
    assert entry.crc_ok == expected


@given(st.integers(1, 1000), st.integers(1, 16), st.data())
def test_next_seq_maps_to_slot_and_never_goes_back(
    seq: int, count: int, data: st.DataObject
) -> None:
    slot = data.draw(st.integers(0, count - 1))
    new = next_seq_for_slot(seq, slot, count)
    assert slot_for_seq(new, count) == slot
    assert seq <= new < seq + count
