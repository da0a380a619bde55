import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jumpstart.formats.app_image import AppDescription, AppImage
from jumpstart.formats.secure_boot import (
    SECTOR_SIZE,
    SIG_BLOCK_SIZE,
    SignatureError,
    key_digest,
    sign_image,
    split_signed,
    verify_signed,
)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 3072)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


IMAGE = AppImage.build_app(AppDescription("outlet", "2.0"), b"payload" * 100).to_bytes()


@pytest.mark.parametrize("curve", [ec.SECP192R1(), ec.SECP256R1(), ec.SECP384R1()])
def test_ecdsa_sign_and_verify(curve: ec.EllipticCurve) -> None:
    key = ec.generate_private_key(curve)
    signed = sign_image(IMAGE, [key])
    assert len(signed) == 2 * SECTOR_SIZE
    assert signed[len(IMAGE) : SECTOR_SIZE] == b"\xff" * (SECTOR_SIZE - len(IMAGE))
    index, block = verify_signed(signed, trusted_key_digests=[key_digest(key.public_key())])
    assert index == 0
    assert block.key_digest() == key_digest(key.public_key())


def test_rsa_sign_and_verify(rsa_key: rsa.RSAPrivateKey) -> None:
    signed = sign_image(IMAGE, [rsa_key])
    _index, block = verify_signed(signed)
    assert block.scheme.startswith("RSA-3072")
    assert signed[-SECTOR_SIZE + SIG_BLOCK_SIZE :] == b"\xff" * (SECTOR_SIZE - SIG_BLOCK_SIZE)


def test_three_blocks_and_trust(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    signed = sign_image(IMAGE, [other, rsa_key, ec_key])
    assert len(split_signed(signed)[1]) == 3
    index, _block = verify_signed(signed, trusted_key_digests=[key_digest(ec_key.public_key())])
    assert index == 2
    with pytest.raises(SignatureError, match="not trusted"):
        verify_signed(signed, trusted_key_digests=[bytes(32)])


def test_unsigned_and_misaligned_data_are_refused() -> None:
    padded = IMAGE + b"\xff" * (2 * SECTOR_SIZE - len(IMAGE))
    with pytest.raises(SignatureError, match="not signed"):
        verify_signed(padded)
    with pytest.raises(SignatureError, match="multiple of 4096"):
        verify_signed(IMAGE)


def test_garbage_after_the_blocks_is_refused(ec_key: ec.EllipticCurvePrivateKey) -> None:
    signed = bytearray(sign_image(IMAGE, [ec_key]))
    signed[-1] = 0x00
    with pytest.raises(SignatureError, match="unexpected data"):
        verify_signed(bytes(signed))


@pytest.fixture(scope="module")
def signed_pair(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> list[bytes]:
    return [sign_image(IMAGE, [rsa_key]), sign_image(IMAGE, [ec_key])]


@given(st.data())
@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_one_flipped_bit_in_image_or_block_is_refused(
    signed_pair: list[bytes], data: st.DataObject
) -> None:
    signed = bytearray(data.draw(st.sampled_from(signed_pair)))
    region = data.draw(st.sampled_from(["image", "block"]))
    start, end = (
        (0, len(IMAGE)) if region == "image" else (SECTOR_SIZE, SECTOR_SIZE + SIG_BLOCK_SIZE)
    )
    bit = data.draw(st.integers(start * 8, end * 8 - 1))
    signed[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SignatureError) as caught:
        verify_signed(bytes(signed))
    assert str(caught.value)  # a reason, not an empty error


def test_reasons_are_specific(ec_key: ec.EllipticCurvePrivateKey) -> None:
    signed = bytearray(sign_image(IMAGE, [ec_key]))
    signed[100] ^= 1
    with pytest.raises(SignatureError, match="image digest mismatch"):
        verify_signed(bytes(signed))
    signed[100] ^= 1
    signed[SECTOR_SIZE + 50] ^= 1
    with pytest.raises(SignatureError, match="CRC mismatch"):
        verify_signed(bytes(signed))
