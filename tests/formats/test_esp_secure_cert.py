"""The esp_secure_cert TLV partition against esp_secure_cert_mgr's own binaries."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from jumpstart.errors import InputError
from jumpstart.formats.esp_secure_cert import (
    SecureCertEntry,
    TlvType,
    build_partition,
    encode_entry,
    find_entry,
    parse_partition,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "esp_secure_cert"


@pytest.mark.parametrize("name", ["esp_secure_cert.bin", "esp_secure_cert_before.bin"])
def test_espressifs_partitions_parse_and_rebuild_to_the_byte(name: str) -> None:
    data = (VECTORS / name).read_bytes()
    entries = parse_partition(data)
    assert entries[-1].type == TlvType.INTEGRITY
    rebuilt = b"".join(encode_entry(e) for e in entries)
    assert rebuilt == data


def test_the_tools_vector_holds_its_inputs() -> None:
    entries = parse_partition((VECTORS / "esp_secure_cert.bin").read_bytes())
    kinds = [(TlvType(e.type).name, e.subtype) for e in entries]
    assert kinds[:4] == [("CA_CERT", 0), ("CA_CERT", 1), ("DEV_CERT", 0), ("PRIV_KEY", 0)]
    # The tool re-serialises: certificates as PEM, the key as traditional OpenSSL PEM, + NUL.
    cert = x509.load_pem_x509_certificate((VECTORS / "client.crt").read_bytes())
    assert (
        find_entry(entries, TlvType.DEV_CERT)
        == cert.public_bytes(serialization.Encoding.PEM) + b"\0"
    )
    key = serialization.load_pem_private_key((VECTORS / "client.key").read_bytes(), None)
    traditional = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert find_entry(entries, TlvType.PRIV_KEY) == traditional + b"\0"


def test_build_appends_the_integrity_entry() -> None:
    entries = [SecureCertEntry(TlvType.CA_CERT, b"ca\0"), SecureCertEntry(TlvType.DEV_CERT, b"d")]
    data = build_partition(entries)
    body = b"".join(encode_entry(e) for e in entries)
    assert data[: len(body)] == body
    assert parse_partition(data)[-1].value == hashlib.sha256(body).digest()
    assert parse_partition(data + b"\xff" * 64)[:2] == entries  # erased flash ends the list
    assert len(build_partition(entries, integrity=False)) == len(body)
    assert encode_entry(SecureCertEntry(1, b"x"))[:12].hex() == "11ba5eba0000000001000100"


def test_corruption_is_refused() -> None:
    data = bytearray(build_partition([SecureCertEntry(TlvType.DEV_CERT, b"cert" * 10)]))
    data[20] ^= 1
    with pytest.raises(InputError, match="CRC mismatch"):
        parse_partition(bytes(data))
    with pytest.raises(InputError, match="runs past"):
        parse_partition(bytes(build_partition([SecureCertEntry(1, b"x" * 40)]))[:30])
    with pytest.raises(InputError, match="do not fit"):
        build_partition([SecureCertEntry(1, b"x" * 9000)])


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_refused(data: bytes) -> None:
    with contextlib.suppress(InputError):  # anything else fails the test
        parse_partition(data)


@given(st.lists(st.tuples(st.integers(0, 55), st.integers(0, 16), st.binary(max_size=200))))
def test_round_trip(items: list[tuple[int, int, bytes]]) -> None:
    entries = [SecureCertEntry(kind, value, subtype) for kind, subtype, value in items if kind != 9]
    data = build_partition(entries, size=1 << 20)
    assert parse_partition(data)[:-1] == entries
