import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jumpstart.formats.app_image import (
    APP_DESC_SIZE,
    AppDescription,
    AppImage,
    ChipId,
    ImageError,
    ImageHeader,
    Segment,
    image_span,
)

DESC = AppDescription("outlet", "1.2.3", "12:00:00", "Jan  1 2026", "v5.5", secure_version=2)


def _app(payload: bytes = b"hello" * 20) -> AppImage:
    return AppImage.build_app(DESC, payload)


# (header, 24 bytes): the header as esptool writes it for DIO/40m/4MB and one segment.
HEADER_VECTORS = [
    (
        ImageHeader(segment_count=1, max_chip_rev_full=0),
        "e901022000000840ee000000000000000000000000000001",
    ),
    (
        ImageHeader(
            segment_count=3,
            flash_mode=0,
            flash_speed=0xF,
            flash_size=4,
            chip_id=ChipId.ESP32S3,
            min_chip_rev_full=1,
            max_chip_rev_full=99,
            hash_appended=False,
        ),
        "e903004f00000840ee000000090000010063000000000000",
    ),
]


@pytest.mark.parametrize(("header", "raw"), HEADER_VECTORS)
def test_header_encodes_to_vector(header: ImageHeader, raw: str) -> None:
    assert header.to_bytes() == bytes.fromhex(raw)


@pytest.mark.parametrize(("header", "raw"), HEADER_VECTORS)
def test_header_decodes_from_vector_with_trailing_bytes(header: ImageHeader, raw: str) -> None:
    assert ImageHeader.from_bytes(bytes.fromhex(raw) + b"\x00" * 9) == header


def test_built_app_parses_and_verifies() -> None:
    image = _app()
    raw = image.to_bytes()
    parsed = AppImage.parse(raw + b"\xff" * 1000)
    parsed.verify()
    assert parsed.length == len(raw)
    assert parsed.app_description == DESC
    assert parsed.payload.rstrip(b"\x00") == b"hello" * 20
    assert raw[0x20:0x24] == bytes.fromhex("3254cdab")  # esp_app_desc_t magic at 0x20
    assert len(raw) % 16 == 0
    assert parsed.digest == hashlib.sha256(raw[:-32]).digest()


def test_checksum_is_xor_of_segment_data_seeded_with_ef() -> None:
    image = AppImage.build(
        [Segment(0x3F400020, bytes([1, 2, 4, 8])), Segment(0x40080000, b"\x10\x00\x00\x00")]
    )
    assert image.checksum == 0xEF ^ 1 ^ 2 ^ 4 ^ 8 ^ 0x10


def test_image_without_hash() -> None:
    image = AppImage.build_app(DESC, b"x", header=ImageHeader(segment_count=1, hash_appended=False))
    parsed = AppImage.parse(image.to_bytes())
    assert parsed.digest is None
    assert parsed.digest_valid is None
    parsed.verify()


def test_description_fields_must_fit() -> None:
    with pytest.raises(ValueError, match="project name"):
        AppDescription("x" * 32, "1").to_bytes()


@given(st.binary(max_size=3000), st.data())
@settings(max_examples=60)
def test_any_flipped_bit_fails_verification(payload: bytes, data: st.DataObject) -> None:
    raw = bytearray(_app(payload).to_bytes())
    # Byte 23 is hash_appended: clearing it turns the SHA-256 off, which the format cannot
    # detect (only a signature can); that case is covered by the test below.
    bit = data.draw(st.integers(0, len(raw) * 8 - 1).filter(lambda b: b // 8 != HASH_APPENDED))
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ImageError):
        AppImage.parse(bytes(raw)).verify()


HASH_APPENDED = 23  # esp_image_header_t.hash_appended


def test_cleared_hash_flag_leaves_only_the_checksum() -> None:
    raw = bytearray(_app(b"payload").to_bytes())
    raw[HASH_APPENDED] = 0
    image = AppImage.parse(bytes(raw))
    assert image.digest is None
    image.verify()  # checksum still good: unsigned images rely on Secure Boot for this


@given(st.data())
@settings(max_examples=60)
def test_truncated_images_raise_image_error(data: st.DataObject) -> None:
    raw = _app().to_bytes()
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(ImageError, match=r"truncated|shorter"):
        AppImage.parse(raw[:cut])


@given(st.binary(max_size=400))
def test_random_bytes_raise_only_image_errors(raw: bytes) -> None:
    with contextlib.suppress(ImageError):
        AppImage.parse(raw).verify()


@given(
    st.lists(
        st.tuples(st.sampled_from([0x3FFB0000, 0x40080000, 0x3FF80000]), st.binary(max_size=200)),
        min_size=1,
        max_size=16,
    )
)
def test_build_parse_round_trip(segments: list[tuple[int, bytes]]) -> None:
    image = AppImage.build([Segment(a, d) for a, d in segments])
    parsed = AppImage.parse(image.to_bytes())
    assert parsed == image
    assert parsed.checksum_valid
    assert parsed.digest_valid
    parsed.verify(require_app=False)


def test_verify_reasons() -> None:
    with pytest.raises(ImageError, match="chip id"):
        _app().verify(chip_id=ChipId.ESP32C3)
    with pytest.raises(ImageError, match="no app description"):
        AppImage.build([Segment(0x3F400020, bytes(APP_DESC_SIZE))]).verify()
    with pytest.raises(ImageError, match="at most 16"):
        AppImage.parse(b"\xe9\x11" + bytes(22))
    with pytest.raises(ImageError, match=r"invalid magic number 0x00"):
        AppImage.parse(bytes(64))
    misplaced = AppImage.build(
        [Segment(0x3FFB0000, b"abcd"), Segment(0x3F400020, bytes(APP_DESC_SIZE))]
    )
    with pytest.raises(ImageError, match="MMU page"):
        misplaced.verify(require_app=False)


def test_image_span_reads_only_headers_and_matches_the_image_length() -> None:
    image = AppImage.build([Segment(0x3F400020, bytes(1000)), Segment(0x40080000, bytes(52))])
    data = image.to_bytes() + b"\xff" * 5000
    reads: list[tuple[int, int]] = []

    def read(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return data[offset : offset + length]

    assert image_span(read, len(data)) == len(image.to_bytes())
    assert sum(length for _, length in reads) < 64
    with pytest.raises(ImageError, match="partition holds"):
        image_span(read, len(image.to_bytes()) - 1)
