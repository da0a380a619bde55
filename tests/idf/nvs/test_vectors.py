"""Every NVS image among ESP-IDF's test vectors opens and returns its values."""

from __future__ import annotations

from pathlib import Path

import pytest

from jumpstart.formats.nvs import NvsKeys
from jumpstart.idf.nvs import NvsFlash, NvsType, OpenMode
from tests.idf.nvs.helpers import boot, flash_with_nvs

LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\nFusce quis risus justo.\n"
    "Suspendisse egestas in nisi sit amet auctor.\nPellentesque rhoncus dictum sodales.\n"
    "In justo erat, viverra at interdum eget, interdum vel dui."
)
STORAGE_VALUES: dict[str, object] = {
    "u8_key": 255,
    "i8_key": -128,
    "u16_key": 65535,
    "u32_key": 4294967295,
    "i32_key": -2147483648,
    "str_key": LOREM,
}
SMALL_BLOB = bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 0xAB, 0xCD, 0xEF])


def dummy_values(bin_file: bytes) -> dict[str, object]:
    return {
        "dummyU8Key": 127,
        "dummyI8Key": -128,
        "dummyU16Key": 32768,
        "dummyU32Key": 4294967295,
        "dummyI32Key": -2147483648,
        "dummyStringKey": "0A:0B:0C:0D:0E:0F",
        "dummyHex2BinKey": bytes.fromhex("010203abcdef"),
        "dummyBase64Key": b"123abc",
        "hexFileKey": bytes.fromhex("0123456789abcdef"),
        "base64FileKey": SMALL_BLOB,
        "stringFileKey": "abcdefghijklmnopqrstuvwxyz",
        "binFileKey": bin_file,
    }


def read_all(nvs: NvsFlash) -> dict[tuple[str, str], object]:
    values: dict[tuple[str, str], object] = {}
    for entry in nvs.entries():
        handle = nvs.open(entry.namespace_name, OpenMode.READONLY)
        if entry.type is NvsType.STR:
            value: object = handle.get_str(entry.key)
        elif entry.type is NvsType.BLOB:
            value = handle.get_blob(entry.key)
        else:
            value = getattr(handle, "get_" + entry.type.name.lower())(entry.key)
        values[entry.namespace_name, entry.key] = value
    return values


def keys_from(vectors: Path, name: str) -> NvsKeys:
    return NvsKeys.from_bytes((vectors / name).read_bytes())


MAIN_KEYS = "nvs_flash__test_apps__main__encryption_keys.bin"
HMAC_KEY = "nvs_flash__nvs_partition_generator__testdata__sample_hmac_key.bin"


@pytest.mark.parametrize(
    ("image", "keys", "namespace", "values"),
    [
        ("nvs_flash__test_apps_bootloader__main__nvs_partition.bin", None, "storage", "storage"),
        (
            "nvs_flash__test_apps_bootloader__main__partition_encrypted.bin",
            "main",
            "storage",
            "storage",
        ),
        (
            "nvs_flash__nvs_partition_generator__part_old_blob_format.bin",
            None,
            "dummyNamespace",
            "small",
        ),
        ("nvs_flash__test_apps__main__partition_encrypted.bin", "main", "dummyNamespace", "sample"),
        (
            "nvs_flash__test_apps__main__partition_encrypted_hmac.bin",
            "hmac",
            "dummyNamespace",
            "sample",
        ),
    ],
)
def test_vector_values(
    vectors: Path, image: str, keys: str | None, namespace: str, values: str
) -> None:
    raw = (vectors / image).read_bytes()
    nvs_keys = None
    if keys == "main":
        nvs_keys = keys_from(vectors, MAIN_KEYS)
    elif keys == "hmac":
        nvs_keys = NvsKeys.from_hmac((vectors / HMAC_KEY).read_bytes())
    nvs = boot(flash_with_nvs(len(raw), raw), nvs_keys)
    if values == "storage":
        expected = STORAGE_VALUES
    else:
        sample = (vectors / "nvs_flash__test_apps__main__sample.bin").read_bytes()
        expected = dummy_values(SMALL_BLOB if values == "small" else sample)
    wanted = {(namespace, k): v for k, v in expected.items()}
    if values == "small":
        # nvs_entry_find does not list old-format (single-page) blobs, as ESP-IDF's
        # isIterableItem; they are still read by name.
        handle = nvs.open(namespace, OpenMode.READONLY)
        blobs = {k: v for k, v in wanted.items() if isinstance(v, bytes)}
        assert blobs
        assert {k: handle.get_blob(k[1]) for k in blobs} == blobs
        wanted = {k: v for k, v in wanted.items() if k not in blobs}
    assert read_all(nvs) == wanted


def test_entries_list_a_multi_page_blob_once_and_skip_index_items() -> None:
    """Storage::nextEntry: a blob spanning pages shows once (its chunk 0), BLOB_IDX never."""
    nvs = boot(flash_with_nvs(0x6000, b"\xff" * 0x6000), None)
    with nvs.open("ns") as handle:
        handle.set_blob("big", bytes(range(256)) * 20)  # 5,120 bytes: two pages of chunks
        handle.set_u8("small", 1)
        handle.set_blob("big", bytes(range(256)) * 19)  # rewritten: the other chunk version
    listed = [(e.namespace_name, e.key, e.type) for e in nvs.entries()]
    assert listed.count(("ns", "big", NvsType.BLOB)) == 1
    assert ("ns", "small", NvsType.U8) in listed
    assert len(listed) == 2


def test_hmac_vector_keys_match_the_derivation(vectors: Path) -> None:
    derived = NvsKeys.from_hmac((vectors / HMAC_KEY).read_bytes())
    stored = keys_from(
        vectors, "nvs_flash__nvs_partition_generator__testdata__sample_encryption_keys_hmac.bin"
    )
    assert derived == stored


def test_wrong_key_finds_nothing(vectors: Path) -> None:
    raw = (vectors / "nvs_flash__test_apps_bootloader__main__partition_encrypted.bin").read_bytes()
    wrong = NvsKeys(b"\x33" * 32, b"\x44" * 32)
    nvs = boot(flash_with_nvs(len(raw), raw), wrong)
    assert list(nvs.entries()) == []
