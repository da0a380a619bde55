"""Secure Boot V2 signature sectors against espsecure (esptool's signing tool)."""

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from jumpstart.formats.app_image import AppDescription, AppImage
from jumpstart.formats.secure_boot import SignatureError, key_digest, verify_signed
from jumpstart.host.image_tools import image_sign, load_private_key

pytest.importorskip("espsecure")
pytestmark = pytest.mark.interop

SCHEMES = ["rsa3072", "ecdsa256"]


def _espsecure(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "espsecure", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module", params=SCHEMES)
def keyfile(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / f"{request.param}.pem"
    done = _espsecure(
        "generate-signing-key", "--version", "2", "--scheme", request.param, str(path)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return path


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "app.bin"
    path.write_bytes(AppImage.build_app(AppDescription("outlet", "4.0"), b"z" * 5000).to_bytes())
    return path


def test_espsecure_signatures_verify_with_ours(keyfile: Path, image: Path, tmp_path: Path) -> None:
    signed = tmp_path / "signed.bin"
    done = _espsecure(
        "sign-data",
        "--version",
        "2",
        "--keyfile",
        str(keyfile),
        "--output",
        str(signed),
        str(image),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    key = load_private_key(keyfile.read_bytes())
    _index, block = verify_signed(
        signed.read_bytes(), trusted_key_digests=[key_digest(key.public_key())]
    )
    # The digest espsecure burns into eFuse is the one our block reports.
    digest_file = tmp_path / "digest.bin"
    assert (
        _espsecure(
            "digest-sbv2-public-key", "--keyfile", str(keyfile), "--output", str(digest_file)
        ).returncode
        == 0
    )
    assert digest_file.read_bytes() == block.key_digest()

    data = bytearray(signed.read_bytes())
    for position in (0x10, len(data) - 4096 + 5, len(data) - 4096 + 700):
        data[position] ^= 0x01
        with pytest.raises(SignatureError):
            verify_signed(bytes(data))
        data[position] ^= 0x01


def test_our_signatures_verify_with_espsecure(keyfile: Path, image: Path, tmp_path: Path) -> None:
    signed = tmp_path / "ours.bin"
    key = load_private_key(keyfile.read_bytes())
    signed.write_bytes(image_sign(image.read_bytes(), key))
    pub = tmp_path / "pub.pem"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    done = _espsecure("verify-signature", "--version", "2", "--keyfile", str(pub), str(signed))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verification successful" in done.stdout
    info = _espsecure("signature-info-v2", str(signed))
    assert "Signature block 0 is valid" in info.stdout + info.stderr

    tampered = bytearray(signed.read_bytes())
    tampered[100] ^= 0x80
    signed.write_bytes(bytes(tampered))
    assert (
        _espsecure(
            "verify-signature", "--version", "2", "--keyfile", str(pub), str(signed)
        ).returncode
        != 0
    )
