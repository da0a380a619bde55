"""ESP32 flash encryption (AES-256, address-tweaked key): espsecure's bytes, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jumpstart.formats import flash_encryption as fe
from tests.espressif_tools import espsecure_flash_data

KEY = bytes(range(32))


@pytest.mark.interop
@pytest.mark.parametrize(
    ("address", "crypt_conf", "key"),
    [
        (0x0, 0xF, KEY),
        (0x1000, 0xF, KEY),
        (0x8000, 0xF, bytes(range(100, 132))),
        (0x20010, 0xF, KEY),  # 16-aligned, not 32: the first half-block shares a key
        (0x3FF000, 0xF, KEY),
        (0xFFC000, 0xF, KEY),  # address bits up to 23
        (0x20000, 0x5, KEY),  # only some key quarters take the tweak
        (0x20000, 0x0, KEY),
        (0x9000, 0xF, bytes(range(24))),  # a 3/4-coding key, extended as the hardware does
    ],
)
def test_equals_espsecure(tmp_path: Path, address: int, crypt_conf: int, key: bytes) -> None:
    data = bytes((i * 7 + 3) & 0xFF for i in range(3 * 4096 + 48))
    theirs = espsecure_flash_data(tmp_path, "encrypt", key, address, data, crypt_conf)
    assert fe.encrypt(key, address, data, crypt_conf) == theirs
    assert espsecure_flash_data(tmp_path, "decrypt", key, address, theirs, crypt_conf) == data
    assert fe.decrypt(key, address, theirs, crypt_conf) == data


@given(
    key=st.binary(min_size=32, max_size=32),
    block=st.integers(0, (1 << 20) - 64),  # address + data + 32 stay within 16 MiB
    data=st.binary(max_size=256).map(lambda b: b[: len(b) - len(b) % 16]),
)
def test_round_trip_and_address_binding(key: bytes, block: int, data: bytes) -> None:
    address = block * 16
    encrypted = fe.encrypt(key, address, data)
    assert fe.decrypt(key, address, encrypted) == data
    if len(data) >= 32:
        # The same bytes 32 bytes further on encrypt differently: the key follows the address.
        assert fe.encrypt(key, address + 32, data) != encrypted


def test_same_plaintext_in_every_block_gives_different_ciphertext() -> None:
    out = fe.encrypt(KEY, 0x10000, b"\xff" * 4096)
    blocks = {out[i : i + 32] for i in range(0, 4096, 32)}
    assert len(blocks) == 128


@pytest.mark.parametrize(
    ("key", "address", "data", "message"),
    [
        (bytes(16), 0, bytes(16), "32 bytes"),
        (bytes(33), 0, bytes(16), "32 bytes"),
        (KEY, 8, bytes(16), "16-byte blocks"),
        (KEY, 0, bytes(20), "16-byte blocks"),
        (KEY, 0xFFFFF0, bytes(32), "16 MiB"),
        (KEY, -16, bytes(16), "16 MiB"),
    ],
)
def test_refusals(key: bytes, address: int, data: bytes, message: str) -> None:
    with pytest.raises(fe.FlashKeyError, match=message):
        fe.encrypt(key, address, data)


def test_crypt_config_out_of_range() -> None:
    with pytest.raises(fe.FlashKeyError, match="4 bits"):
        fe.encrypt(KEY, 0, bytes(16), 0x10)
