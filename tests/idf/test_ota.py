"""esp_ota_ops: writing the passive slot, otadata arithmetic, confirmation and rollback."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jumpstart.formats.app_image import ChipId
from jumpstart.formats.otadata import OtaImgState, OtaSelectEntry, otadata_image
from jumpstart.formats.partition_table import PartitionType
from jumpstart.formats.secure_boot import key_digest, sign_image
from jumpstart.idf.esp_err import EspErr, EspError
from jumpstart.idf.ota import OTA_SIZE_UNKNOWN
from tests.idf.device_helpers import OTADATA, app_image, outlet_flash
from tests.idf.ota_helpers import CHUNK, Board, board_on_ota_0, flip_byte, for_chip


def test_update_writes_the_other_slot_and_the_other_otadata_sector() -> None:
    board = board_on_ota_0()
    assert board.ota.get_running_partition().label == "ota_0"
    target = board.update(app_image("1_hello_world"))
    assert target.label == "ota_1"
    first, second = board.entries()
    assert (first.ota_seq, first.state) == (1, OtaImgState.VALID)  # untouched
    assert (second.ota_seq, second.state) == (2, OtaImgState.NEW)
    assert second.crc_ok
    boot = board.ota.get_boot_partition()
    assert boot is not None
    assert boot.label == "ota_1"
    assert board.ota.get_partition_description(target).project_name == "hello_world"


def test_new_app_is_pending_until_it_confirms_itself() -> None:
    board = board_on_ota_0()
    board.update(app_image("1_hello_world"))
    board.boot()
    assert board.app == "hello_world"
    assert board.ota.get_state_partition(board.running) == OtaImgState.PENDING_VERIFY
    # An unconfirmed app may not start another update (esp_ota_begin refuses).
    other = board.ota.get_next_update_partition()
    assert other is not None
    with pytest.raises(EspError) as refused:
        board.ota.begin(other)
    assert refused.value.code is EspErr.ESP_ERR_OTA_ROLLBACK_INVALID_STATE
    board.ota.mark_app_valid_cancel_rollback()
    assert board.ota.get_state_partition(board.running) == OtaImgState.VALID
    board.boot()
    assert board.app == "hello_world"  # confirmed: stays


def test_an_app_that_never_confirms_is_rolled_back_at_the_next_boot() -> None:
    board = board_on_ota_0()
    board.update(app_image("1_hello_world"))
    board.boot()  # NEW -> PENDING_VERIFY, runs hello_world
    assert board.app == "hello_world"
    board.boot()  # PENDING_VERIFY -> ABORTED, back to the old app
    assert board.app == "drivers"
    assert board.running.label == "ota_0"
    assert board.entries()[1].state == OtaImgState.ABORTED
    invalid = board.ota.get_last_invalid_partition()
    assert invalid is not None
    assert invalid.label == "ota_1"
    assert any("never confirmed" in line for line in board.lines)


def test_mark_invalid_rolls_back_and_restarts() -> None:
    board = board_on_ota_0()
    board.update(app_image("1_hello_world"))
    board.boot()
    assert board.ota.check_rollback_is_possible()
    board.ota.mark_app_invalid_rollback_and_reboot()
    assert board.restarts == 1
    assert board.entries()[1].state == OtaImgState.INVALID
    board.boot()
    assert board.app == "drivers"


def test_rollback_is_refused_when_no_other_app_exists() -> None:
    board = board_on_ota_0()
    assert not board.ota.check_rollback_is_possible()
    with pytest.raises(EspError) as refused:
        board.ota.mark_app_invalid_rollback()
    assert refused.value.code is EspErr.ESP_ERR_OTA_ROLLBACK_FAILED
    assert board.entries()[0].state == OtaImgState.VALID


def test_begin_refuses_the_running_slot_and_non_ota_partitions() -> None:
    board = board_on_ota_0()
    with pytest.raises(EspError) as conflict:
        board.ota.begin(board.slot("ota_0"))
    assert conflict.value.code is EspErr.ESP_ERR_OTA_PARTITION_CONFLICT
    nvs = board.parts.find_first(PartitionType.DATA, label="nvs")
    with pytest.raises(EspError) as wrong:
        board.ota.begin(nvs)
    assert wrong.value.code is EspErr.ESP_ERR_NOT_SUPPORTED
    with pytest.raises(EspError) as too_big:
        board.ota.begin(board.slot("ota_1"), board.slot("ota_1").size + 1)
    assert too_big.value.code is EspErr.ESP_ERR_INVALID_SIZE


@pytest.mark.parametrize(
    ("label", "image", "reason"),
    [
        ("flipped byte", flip_byte(app_image("1_hello_world")), "mismatch"),
        ("other chip", for_chip(app_image("1_hello_world"), ChipId.ESP32S3), "chip id"),
        ("truncated", app_image("1_hello_world")[:-100], "mismatch"),  # 0xFF where data was
    ],
)
def test_end_refuses_a_bad_image_and_the_old_app_keeps_booting(
    label: str, image: bytes, reason: str
) -> None:
    board = board_on_ota_0()
    before = board.entries()
    target = board.slot("ota_1")
    handle = board.ota.begin(target)
    for start in range(0, len(image), CHUNK):
        handle.write(image[start : start + CHUNK])
    with pytest.raises(EspError) as refused:
        handle.end()
    assert refused.value.code is EspErr.ESP_ERR_OTA_VALIDATE_FAILED, label
    assert reason in refused.value.detail
    # set_boot_partition verifies too: a bad slot can never be selected.
    with pytest.raises(EspError):
        board.ota.set_boot_partition(target)
    assert board.entries() == before
    board.boot()
    assert board.app == "drivers"


def test_first_chunk_must_start_with_the_image_magic() -> None:
    board = board_on_ota_0()
    handle = board.ota.begin(board.slot("ota_1"))
    with pytest.raises(EspError) as refused:
        handle.write(b"<html>not an image</html>")
    assert refused.value.code is EspErr.ESP_ERR_OTA_VALIDATE_FAILED


def test_writing_past_the_slot_is_refused() -> None:
    board = board_on_ota_0()
    slot = board.slot("ota_1")
    handle = board.ota.begin(slot)
    handle.write(b"\xe9" + bytes(slot.size - 1))
    with pytest.raises(EspError) as refused:
        handle.write(b"\x00")
    assert refused.value.code is EspErr.ESP_ERR_INVALID_SIZE


def test_sequential_writes_erase_each_sector_once_as_data_arrives() -> None:
    board = board_on_ota_0()
    slot = board.slot("ota_1")
    slot.write(0, bytes(0x3000))  # stale bytes from an older image: must be erased first
    handle = board.ota.begin(slot)
    image = app_image("1_hello_world")
    erases_before = board.flash.operations
    for start in range(0, len(image), 100):  # chunks that straddle sector boundaries
        handle.write(image[start : start + 100])
    handle.end()
    sectors = -(-len(image) // 0x1000)
    writes = -(-len(image) // 100)
    assert board.flash.operations - erases_before == sectors + writes
    assert slot.read(0, len(image)) == image


def test_begin_with_a_known_size_erases_up_front() -> None:
    board = board_on_ota_0()
    slot = board.slot("ota_1")
    slot.write(0, bytes(0x2000))
    board.ota.begin(slot, OTA_SIZE_UNKNOWN)
    assert slot.read(0, 0x2000) == b"\xff" * 0x2000


def test_begin_forgets_the_inactive_entry_so_an_old_app_cannot_come_back() -> None:
    board = board_on_ota_0()
    board.update(app_image("1_hello_world"))  # ota_1: seq 2
    board.boot()
    board.ota.mark_app_valid_cancel_rollback()
    # Running ota_1 (seq 2); entry 0 still names ota_0 (seq 1). A new update into ota_0
    # must not leave seq 1 pointing at a half-written ota_0.
    board.ota.begin(board.slot("ota_0"))
    first, second = board.entries()
    assert first.ota_seq == 0xFFFFFFFF
    assert (second.ota_seq, second.state) == (2, OtaImgState.VALID)


def test_third_update_uses_sequence_three_for_ota_0() -> None:
    board = board_on_ota_0()
    board.update(app_image("1_hello_world"))
    board.boot()
    board.ota.mark_app_valid_cancel_rollback()
    board.update(app_image("2_drivers"))
    first, second = board.entries()
    assert (first.ota_seq, first.state) == (3, OtaImgState.NEW)  # (3 - 1) % 2 = slot 0
    assert second.ota_seq == 2
    board.boot()
    assert (board.running.label, board.app) == ("ota_0", "drivers")


def test_secure_boot_requires_a_signature_from_a_trusted_key() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)  # ESP32: RSA only
    digest = key_digest(key.public_key())
    flash = outlet_flash(ota_0=sign_image(app_image("2_drivers"), [key]))
    flash.write(OTADATA, otadata_image(OtaSelectEntry.new(1, OtaImgState.VALID), None))
    board = Board(flash, [digest])
    target = board.slot("ota_1")
    unsigned = app_image("1_hello_world")
    handle = board.ota.begin(target)
    handle.write(unsigned)
    with pytest.raises(EspError) as refused:
        handle.end()
    assert "signature" in refused.value.detail
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    handle = board.ota.begin(target)
    handle.write(sign_image(unsigned, [other_key]))
    with pytest.raises(EspError) as untrusted:
        handle.end()
    assert "not trusted" in untrusted.value.detail
    handle = board.ota.begin(target)
    handle.write(sign_image(unsigned, [ec.generate_private_key(ec.SECP256R1())]))
    with pytest.raises(EspError) as ecdsa:
        handle.end()
    assert "not verified by this chip" in ecdsa.value.detail
    board.update(sign_image(unsigned, [key]))
    board.boot()
    assert board.app == "hello_world"
