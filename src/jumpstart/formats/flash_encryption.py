"""ESP32 flash encryption: AES-256 with the key tweaked by the flash address (spec 2.1).

What the ESP32's flash cache does to every 32-byte block, and what ``espsecure
encrypt-flash-data`` / ``decrypt-flash-data`` compute without ``--aes-xts``:

* The block key is the eFuse key with some of its bits flipped by bits 5..23 of the block's
  flash address. Key bit *n* (counting from the most significant bit of the 256-bit key as the
  key file gives it) is flipped by address bit ``TWEAK_PATTERN[n]``; ``FLASH_CRYPT_CONFIG``
  chooses which of the four key quarters take part (0xF, what ESP-IDF burns: all of them).
* Each 16-byte half is byte-reversed, put through AES-256 *decryption* to encrypt (the hardware
  runs AES backwards), and byte-reversed again.

Pure bytes: keys and data in, bytes out.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from jumpstart.errors import InputError

__all__ = [
    "BLOCK_SIZE",
    "DEFAULT_CRYPT_CONFIG",
    "FlashKeyError",
    "decrypt",
    "encrypt",
    "hardware_key",
]

BLOCK_SIZE = 32  # one key per 32 bytes of flash
AES_BLOCK = 16  # the smallest unit the flash encryption writes
DEFAULT_CRYPT_CONFIG = 0xF  # FLASH_CRYPT_CONFIG as esp_flash_encrypt_init burns it
ADDRESS_LIMIT = 1 << 24  # the tweak takes address bits up to 23: ESP32 flash is 16 MiB at most


def _tweak_pattern() -> list[int]:
    """Which address bit flips each key bit: four quarters of the key, each three runs of
    address bits 23..5 followed by a shorter run ending at bit 5 (14, 12, 10, 8 down to 5)."""
    pattern: list[int] = []
    for short_top in (14, 12, 10, 8):
        pattern += list(range(23, 4, -1)) * 3 + list(range(short_top, 4, -1))
    assert len(pattern) == 256
    return pattern


TWEAK_PATTERN = _tweak_pattern()
# The key bits (as an MSB-first 256-bit number) each FLASH_CRYPT_CONFIG bit lets the address
# tweak: the quarters are 67, 65, 63 and 61 bits long.
_QUARTER_LENGTHS = (67, 65, 63, 61)


def _quarter_masks() -> tuple[int, ...]:
    masks, start = [], 0
    for length in _QUARTER_LENGTHS:
        bits = sum(1 << (255 - n) for n in range(start, start + length))
        masks.append(bits)
        start += length
    return tuple(masks)


_QUARTER_MASKS = _quarter_masks()


def _tweak_table(low_bit: int, high_bit: int) -> list[int]:
    """The key bits flipped by every value of address bits low_bit..high_bit-1 (two tables
    instead of 19 XORs a block: encryption runs once per 32 bytes of flash)."""
    masks = [
        sum(1 << (255 - n) for n, bit in enumerate(TWEAK_PATTERN) if bit == k)
        for k in range(low_bit, high_bit)
    ]
    table = [0] * (1 << len(masks))
    for value in range(1, len(table)):
        lowest = (value & -value).bit_length() - 1
        table[value] = table[value & (value - 1)] ^ masks[lowest]
    return table


_TWEAK_LOW = _tweak_table(5, 14)  # address bits 5..13
_TWEAK_HIGH = _tweak_table(14, 24)  # address bits 14..23


class FlashKeyError(InputError):
    """A key or an address the ESP32 flash encryption cannot use."""


def hardware_key(key: bytes) -> bytes:
    """The 256-bit key the hardware uses from a key file: 32 bytes as they are, a 24-byte
    (3/4 coding scheme) key extended with its own bytes 8..15."""
    if len(key) == 32:
        return key
    if len(key) == 24:
        return key + key[8:16]
    raise FlashKeyError(
        f"a flash encryption key is 32 bytes (24 with 3/4 coding); this one is {len(key)}"
    )


def _tweak_range(crypt_config: int) -> int:
    if not 0 <= crypt_config <= 0xF:
        raise FlashKeyError(f"FLASH_CRYPT_CONFIG is 4 bits, not {crypt_config:#x}")
    return sum(mask for bit, mask in enumerate(_QUARTER_MASKS) if crypt_config >> bit & 1)


def _block_key(key: int, address: int, tweak_range: int) -> bytes:
    tweak = _TWEAK_LOW[address >> 5 & 0x1FF] ^ _TWEAK_HIGH[address >> 14 & 0x3FF]
    return (key ^ (tweak & tweak_range)).to_bytes(32, "big")


def _run(
    key: bytes,
    address: int,
    data: bytes,
    crypt_config: int,
    operation: Callable[[Cipher[modes.ECB], bytes], bytes],
) -> bytes:
    if address % AES_BLOCK or len(data) % AES_BLOCK:
        raise FlashKeyError(
            f"flash encryption works on 16-byte blocks: address 0x{address:x}, length {len(data)}"
        )
    if address < 0 or address + len(data) > ADDRESS_LIMIT:
        raise FlashKeyError(f"0x{address:x}+0x{len(data):x} is beyond the ESP32's 16 MiB of flash")
    key_bits = int.from_bytes(hardware_key(key), "big")
    tweak_range = _tweak_range(crypt_config)
    out = bytearray()
    pos = 0
    while pos < len(data):
        block_address = address + pos
        # Up to the next 32-byte boundary: every byte of that span shares one key.
        end = min(len(data), pos + BLOCK_SIZE - block_address % BLOCK_SIZE)
        cipher = Cipher(
            algorithms.AES(_block_key(key_bits, block_address, tweak_range)), modes.ECB()
        )
        # Reversing the whole span reverses each 16-byte block and their order; reversing the
        # result restores the order: the per-block reversal the hardware does.
        out += operation(cipher, data[pos:end][::-1])[::-1]
        pos = end
    return bytes(out)


def _aes_decrypt(cipher: Cipher[modes.ECB], data: bytes) -> bytes:
    engine = cipher.decryptor()
    return engine.update(data) + engine.finalize()


def _aes_encrypt(cipher: Cipher[modes.ECB], data: bytes) -> bytes:
    engine = cipher.encryptor()
    return engine.update(data) + engine.finalize()


def encrypt(
    key: bytes, address: int, data: bytes, crypt_config: int = DEFAULT_CRYPT_CONFIG
) -> bytes:
    """What the flash holds after an encrypted write of ``data`` at ``address``."""
    return _run(key, address, data, crypt_config, _aes_decrypt)


def decrypt(
    key: bytes, address: int, data: bytes, crypt_config: int = DEFAULT_CRYPT_CONFIG
) -> bytes:
    """What software reads through the cache from encrypted flash at ``address``."""
    return _run(key, address, data, crypt_config, _aes_encrypt)
