"""Secure Boot V2 signature sector: build, parse and verify (spec 5.6).

A signed image is the image padded with 0xFF to a 4 KiB boundary, then one 4 KiB sector with up
to three 1216-byte signature blocks and 0xFF after them. Each block signs the SHA-256 of
everything before the sector::

    0    u8 magic 0xE7     1 u8 version (0x02 RSA-3072-PSS, 0x03 ECDSA)
    2    u8 ECDSA sha version (0 = SHA-256, 1 = SHA-384); RSA: 0
    4    image digest (32 bytes; 48 for SHA-384)
    RSA:   36 n[384] LE, 420 u32 e, 424 rinv[384] LE, 808 u32 mdash, 812 signature[384] LE
    ECDSA: 36 u8 curve (1 P-192, 2 P-256, 3 P-384), pubkey x||y LE, r||s LE, zero padding
    1196 u32 crc = standard CRC-32 of bytes 0..1195;  1200 16 zero bytes

``rinv = 2^(2*3072) mod n`` and ``mdash = -n^-1 mod 2^32`` are the Montgomery constants the RSA
peripheral uses. The eFuse holds the SHA-256 of the key material (bytes 36..812 for RSA,
curve id and point for ECDSA): :meth:`SignatureBlock.key_digest`.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from jumpstart.errors import InputError
from jumpstart.formats.crc import crc32

__all__ = [
    "SECTOR_SIZE",
    "SIG_BLOCK_SIZE",
    "PrivateKey",
    "PublicKey",
    "SignatureBlock",
    "SignatureError",
    "SignatureVersion",
    "key_digest",
    "sign_image",
    "split_signed",
    "verify_signed",
]

SECTOR_SIZE = 0x1000
SIG_BLOCK_SIZE = 1216
SIG_BLOCK_MAGIC = 0xE7
MAX_BLOCKS = 3
# The CRC covers the block up to (not including) itself: CRC_SIGN_BLOCK_LEN.
CRC_COVERED = 1196
PAD_SIZE = 16
RSA_BITS = 3072
RSA_BYTES = RSA_BITS // 8
RSA_BLOCK_FORMAT = struct.Struct(f"<BBxx32s{RSA_BYTES}sI{RSA_BYTES}sI{RSA_BYTES}s")
RSA_KEY_SLICE = slice(36, 812)  # n, e, rinv, mdash: what the eFuse key digest covers
PSS_SALT_LENGTH = 32


class SignatureVersion(IntEnum):
    RSA = 0x02
    ECDSA = 0x03


class EcdsaSha(IntEnum):
    SHA256 = 0
    SHA384 = 1


class CurveId(IntEnum):
    P192 = 1
    P256 = 2
    P384 = 3


_CURVES: dict[CurveId, tuple[type[ec.EllipticCurve], int]] = {
    CurveId.P192: (ec.SECP192R1, 24),
    CurveId.P256: (ec.SECP256R1, 32),
    CurveId.P384: (ec.SECP384R1, 48),
}

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class SignatureError(InputError):
    """A signature sector or block is malformed, or a signature does not verify."""


def _le(value: int, size: int) -> bytes:
    return value.to_bytes(size, "little")


def _rsa_key_material(key: rsa.RSAPublicKey) -> bytes:
    numbers = key.public_numbers()
    if key.key_size != RSA_BITS:
        raise ValueError(f"Secure Boot V2 RSA keys are {RSA_BITS} bits, not {key.key_size}")
    rinv = pow(2, 2 * RSA_BITS, numbers.n)
    mdash = (-pow(numbers.n, -1, 1 << 32)) & 0xFFFFFFFF
    return (
        _le(numbers.n, RSA_BYTES)
        + struct.pack("<I", numbers.e)
        + _le(rinv, RSA_BYTES)
        + struct.pack("<I", mdash)
    )


def _curve_id(curve: ec.EllipticCurve) -> CurveId:
    for cid, (cls, _size) in _CURVES.items():
        if isinstance(curve, cls):
            return cid
    raise ValueError(f"curve {curve.name} is not used by Secure Boot V2")


def _ecdsa_key_material(key: ec.EllipticCurvePublicKey) -> bytes:
    cid = _curve_id(key.curve)
    size = _CURVES[cid][1]
    numbers = key.public_numbers()
    return bytes([cid]) + _le(numbers.x, size) + _le(numbers.y, size)


def key_digest(key: PublicKey) -> bytes:
    """SHA-256 of the public key as the block stores it: the value burned into eFuse."""
    material = (
        _rsa_key_material(key) if isinstance(key, rsa.RSAPublicKey) else _ecdsa_key_material(key)
    )
    return hashlib.sha256(material).digest()


@dataclass(frozen=True, slots=True)
class SignatureBlock:
    """One parsed 1216-byte signature block."""

    raw: bytes
    version: SignatureVersion
    image_digest: bytes

    @classmethod
    def from_bytes(cls, raw: bytes, index: int = 0) -> SignatureBlock:
        """Parse and check the block's own structure (magic, version, CRC, padding)."""
        where = f"signature block {index}"
        if len(raw) != SIG_BLOCK_SIZE:
            raise SignatureError(f"{where}: {len(raw)} bytes, expected {SIG_BLOCK_SIZE}")
        if raw[0] != SIG_BLOCK_MAGIC:
            raise SignatureError(f"{where}: bad magic 0x{raw[0]:02x} (expected 0xe7)")
        try:
            version = SignatureVersion(raw[1])
        except ValueError:
            raise SignatureError(f"{where}: unknown version 0x{raw[1]:02x}") from None
        (stored_crc,) = struct.unpack_from("<I", raw, CRC_COVERED)
        if stored_crc != crc32(raw[:CRC_COVERED]):
            raise SignatureError(
                f"{where}: CRC mismatch (stored 0x{stored_crc:08x}, calculated "
                f"0x{crc32(raw[:CRC_COVERED]):08x})"
            )
        if raw[CRC_COVERED + 4 :] != bytes(PAD_SIZE):
            raise SignatureError(f"{where}: the 16 bytes after the CRC must be zero")
        if version is SignatureVersion.RSA:
            if raw[2:4] != b"\x00\x00":
                raise SignatureError(f"{where}: reserved bytes 2..3 must be zero")
            digest = raw[4:36]
        else:
            try:
                sha = EcdsaSha(raw[2])
            except ValueError:
                raise SignatureError(f"{where}: unknown ECDSA hash 0x{raw[2]:02x}") from None
            size = 48 if sha is EcdsaSha.SHA384 else 32
            digest = raw[4 : 4 + size]
        block = cls(raw, version, digest)
        block._check_fields(where)
        return block

    def _check_fields(self, where: str) -> None:
        if self.version is SignatureVersion.RSA:
            _m, _v, _d, n_le, e, _rinv, _mdash, _sig = RSA_BLOCK_FORMAT.unpack(
                self.raw[: RSA_BLOCK_FORMAT.size]
            )
            n = int.from_bytes(n_le, "little")
            if n.bit_length() != RSA_BITS or e < 3 or e % 2 == 0:
                raise SignatureError(f"{where}: not an RSA-{RSA_BITS} public key")
            try:
                expected = _rsa_key_material(rsa.RSAPublicNumbers(e, n).public_key())
            except ValueError as err:
                raise SignatureError(f"{where}: bad RSA key ({err})") from None
            if self.raw[RSA_KEY_SLICE] != expected:
                raise SignatureError(
                    f"{where}: Montgomery constants rinv/mdash do not match the key modulus"
                )
            return
        cid, _size, used = self._ecdsa_layout(where)
        if any(self.raw[used:CRC_COVERED]):
            raise SignatureError(f"{where}: ECDSA block padding must be zero")
        if (cid is CurveId.P384) != (self.raw[2] == EcdsaSha.SHA384):
            raise SignatureError(f"{where}: P-384 blocks use SHA-384, the others SHA-256")

    def _ecdsa_layout(self, where: str) -> tuple[CurveId, int, int]:
        """Curve, coordinate size and the end of the used bytes of an ECDSA block."""
        start = 4 + len(self.image_digest)
        try:
            cid = CurveId(self.raw[start])
        except ValueError:
            raise SignatureError(f"{where}: unknown curve id {self.raw[start]}") from None
        size = _CURVES[cid][1]
        return cid, size, start + 1 + 4 * size

    @property
    def scheme(self) -> str:
        if self.version is SignatureVersion.RSA:
            return "RSA-3072 (PSS, SHA-256)"
        cid, _size, _used = self._ecdsa_layout("signature block")
        sha = "SHA-384" if self.raw[2] == EcdsaSha.SHA384 else "SHA-256"
        return f"ECDSA {cid.name} ({sha})"

    def public_key(self) -> PublicKey:
        """The public key carried in the block."""
        if self.version is SignatureVersion.RSA:
            _m, _v, _d, n_le, e, *_rest = RSA_BLOCK_FORMAT.unpack(self.raw[: RSA_BLOCK_FORMAT.size])
            return rsa.RSAPublicNumbers(e, int.from_bytes(n_le, "little")).public_key()
        cid, size, _used = self._ecdsa_layout("signature block")
        start = 4 + len(self.image_digest) + 1
        x = int.from_bytes(self.raw[start : start + size], "little")
        y = int.from_bytes(self.raw[start + size : start + 2 * size], "little")
        try:
            return ec.EllipticCurvePublicNumbers(x, y, _CURVES[cid][0]()).public_key()
        except ValueError as err:
            raise SignatureError(
                f"signature block: public key is not on the curve ({err})"
            ) from None

    def key_digest(self) -> bytes:
        """SHA-256 of the key material: compare with the digest burned in eFuse."""
        if self.version is SignatureVersion.RSA:
            return hashlib.sha256(self.raw[RSA_KEY_SLICE]).digest()
        _cid, size, _used = self._ecdsa_layout("signature block")
        start = 4 + len(self.image_digest)
        return hashlib.sha256(self.raw[start : start + 1 + 2 * size]).digest()

    def digest_of(self, content: bytes) -> bytes:
        """The digest of ``content`` with the hash this block uses."""
        algorithm = "sha384" if len(self.image_digest) == 48 else "sha256"
        return hashlib.new(algorithm, content).digest()

    def verify_signature(self, digest: bytes, index: int = 0) -> None:
        """Check the block signs ``digest`` with its own key; raise SignatureError if not."""
        where = f"signature block {index}"
        if digest != self.image_digest:
            raise SignatureError(
                f"{where}: image digest mismatch (block signs {self.image_digest.hex()}, image "
                f"is {digest.hex()}); the image was changed after signing"
            )
        key = self.public_key()
        try:
            if isinstance(key, rsa.RSAPublicKey):
                signature = self.raw[812 : 812 + RSA_BYTES][::-1]
                key.verify(
                    signature,
                    digest,
                    padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=PSS_SALT_LENGTH),
                    utils.Prehashed(hashes.SHA256()),
                )
            else:
                _cid, size, _used = self._ecdsa_layout(where)
                start = 4 + len(self.image_digest) + 1 + 2 * size
                r = int.from_bytes(self.raw[start : start + size], "little")
                s = int.from_bytes(self.raw[start + size : start + 2 * size], "little")
                algorithm: hashes.HashAlgorithm = (
                    hashes.SHA384() if self.raw[2] == EcdsaSha.SHA384 else hashes.SHA256()
                )
                key.verify(
                    utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(algorithm))
                )
        except InvalidSignature:
            raise SignatureError(
                f"{where}: the signature does not verify with the block's key"
            ) from None


def _block_for(key: PrivateKey, content: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        digest = hashlib.sha256(content).digest()
        signature = key.sign(
            digest,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=PSS_SALT_LENGTH),
            utils.Prehashed(hashes.SHA256()),
        )
        body = (
            bytes([SIG_BLOCK_MAGIC, SignatureVersion.RSA, 0, 0])
            + digest
            + _rsa_key_material(key.public_key())
            + signature[::-1]
        )
    else:
        cid = _curve_id(key.curve)
        size = _CURVES[cid][1]
        sha = EcdsaSha.SHA384 if cid is CurveId.P384 else EcdsaSha.SHA256
        algorithm: hashes.HashAlgorithm = (
            hashes.SHA384() if sha is EcdsaSha.SHA384 else hashes.SHA256()
        )
        digest = hashlib.new(algorithm.name, content).digest()
        r, s = utils.decode_dss_signature(key.sign(digest, ec.ECDSA(utils.Prehashed(algorithm))))
        body = (
            bytes([SIG_BLOCK_MAGIC, SignatureVersion.ECDSA, sha, 0])
            + digest
            + _ecdsa_key_material(key.public_key())
            + _le(r, size)
            + _le(s, size)
        )
        body = body.ljust(CRC_COVERED, b"\x00")
    assert len(body) == CRC_COVERED
    return body + struct.pack("<I", crc32(body)) + bytes(PAD_SIZE)


def sign_image(image: bytes, keys: Sequence[PrivateKey]) -> bytes:
    """``espsecure sign-data --version 2``: pad to 4 KiB with 0xFF, append the sector."""
    if not 1 <= len(keys) <= MAX_BLOCKS:
        raise ValueError(f"Secure Boot V2 takes 1..{MAX_BLOCKS} signing keys, not {len(keys)}")
    content = bytes(image) + b"\xff" * (-len(image) % SECTOR_SIZE)
    blocks = b"".join(_block_for(key, content) for key in keys)
    return content + blocks + b"\xff" * (SECTOR_SIZE - len(blocks))


def split_signed(data: bytes) -> tuple[bytes, list[SignatureBlock]]:
    """Split signed data into the signed content and its parsed signature blocks.

    The sector is the last 4 KiB; it must hold at least one block, blocks come first and every
    byte after them is 0xFF.
    """
    if len(data) < 2 * SECTOR_SIZE or len(data) % SECTOR_SIZE:
        raise SignatureError(
            f"signed data is {len(data)} bytes; it must be a multiple of 4096 with room for the "
            "image and a signature sector (sign it with 'jumpstart image-sign')"
        )
    content, sector = data[:-SECTOR_SIZE], data[-SECTOR_SIZE:]
    blocks: list[SignatureBlock] = []
    for index in range(MAX_BLOCKS):
        raw = sector[index * SIG_BLOCK_SIZE : (index + 1) * SIG_BLOCK_SIZE]
        if raw == b"\xff" * SIG_BLOCK_SIZE:
            break
        blocks.append(SignatureBlock.from_bytes(raw, index))
    if not blocks:
        raise SignatureError("no signature block: the image is not signed")
    tail = sector[len(blocks) * SIG_BLOCK_SIZE :]
    if tail != b"\xff" * len(tail):
        first = next(i for i, b in enumerate(tail) if b != 0xFF) + len(blocks) * SIG_BLOCK_SIZE
        raise SignatureError(f"signature sector: unexpected data at sector offset 0x{first:x}")
    return content, blocks


def verify_signed(
    data: bytes,
    *,
    trusted_key_digests: Sequence[bytes] | None = None,
    versions: Collection[SignatureVersion] | None = None,
) -> tuple[int, SignatureBlock]:
    """Verify signed data as the bootloader does; return the index and block that verified.

    Every block present must be well formed. With ``trusted_key_digests`` (the eFuse key
    digests), a block counts only if its key is trusted; without, any block whose own key
    verifies counts (integrity only). ``versions`` limits the schemes the chip verifies
    (ESP32 v3: RSA only).
    """
    content, blocks = split_signed(data)
    errors: list[str] = []
    for index, block in enumerate(blocks):
        if versions is not None and block.version not in versions:
            errors.append(f"signature block {index}: {block.scheme} is not verified by this chip")
            continue
        if trusted_key_digests is not None and block.key_digest() not in trusted_key_digests:
            errors.append(f"signature block {index}: key is not trusted by this device")
            continue
        try:
            block.verify_signature(block.digest_of(content), index)
        except SignatureError as err:
            errors.append(str(err))
            continue
        return index, block
    raise SignatureError("; ".join(errors))
