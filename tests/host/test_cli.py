"""One smoke test per command, run in-process through ``main(argv)``."""

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from jumpstart.cli import main
from jumpstart.formats.app_image import AppImage
from jumpstart.formats.partition_table import PartitionTable
from jumpstart.host.layouts import OUTLET_PARTITIONS_CSV


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_partition_table_csv_to_bin_and_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "partitions.csv"
    csv.write_text(OUTLET_PARTITIONS_CSV)
    out = tmp_path / "pt.bin"
    assert main(["idf", "partition-table", str(csv), "-o", str(out)]) == 0
    assert out.read_bytes() == PartitionTable.from_csv(OUTLET_PARTITIONS_CSV).to_binary()
    capsys.readouterr()
    assert main(["idf", "partition-table", str(out)]) == 0
    assert "fctry,data,nvs,0x340000,24K," in capsys.readouterr().out
    assert main(["idf", "partition-table", str(csv)]) == 0
    assert "ota_1" in capsys.readouterr().out


def test_bad_table_exits_2_with_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("nvs,data,nvs,,0x6000\nfactory,app,factory,,1G\n")
    out = tmp_path / "pt.bin"
    assert main(["idf", "partition-table", str(csv), "-o", str(out)]) == 2
    assert (
        _one_error_line(capsys)
        == "error: line 2: invalid number '1G' (use 0x.., decimal, or a K/M suffix)"
    )
    assert not out.exists()


def test_image_build_info_sign_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767268800")  # 2026-01-01 12:00:00 UTC
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"print('hello')\n")
    image = tmp_path / "app.bin"
    assert (
        main(
            [
                "image-build",
                "--project",
                "outlet",
                "--version",
                "1.0.1",
                str(payload),
                "-o",
                str(image),
            ]
        )
        == 0
    )
    assert AppImage.parse(image.read_bytes()).payload.startswith(b"print('hello')")

    capsys.readouterr()
    assert main(["image-info", str(image)]) == 0
    info = capsys.readouterr().out
    assert "Checksum: " in info
    assert "(valid)" in info
    assert "Project name: outlet" in info
    assert "Compile time: Jan  1 2026 12:00:00" in info
    assert "Not signed" in info

    key = tmp_path / "key.pem"
    private = ec.generate_private_key(ec.SECP256R1())
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    signed = tmp_path / "signed.bin"
    assert main(["image-sign", "--key", str(key), str(image), "-o", str(signed)]) == 0
    capsys.readouterr()
    assert main(["image-verify", str(signed), "--key", str(key)]) == 0
    assert "verified with the given key" in capsys.readouterr().out
    assert main(["image-info", str(signed)]) == 0
    assert "Signature block 0: ECDSA P256 (SHA-256)" in capsys.readouterr().out

    tampered = bytearray(signed.read_bytes())
    tampered[0x40] ^= 0x04
    signed.write_bytes(bytes(tampered))
    assert main(["image-verify", str(signed)]) == 2
    assert _one_error_line(capsys).startswith("error: checksum mismatch")


def test_corrupt_image_info_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(64))
    assert main(["image-info", str(bad)]) == 2
    assert "invalid magic number" in _one_error_line(capsys)
    assert main(["image-info", str(tmp_path / "missing.bin")]) == 2
    assert "cannot read" in _one_error_line(capsys)


def test_sign_refuses_wrong_key_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "k.pem"
    key.write_text("not a key")
    image = tmp_path / "i.bin"
    image.write_bytes(b"")
    assert main(["image-sign", "--key", str(key), str(image), "-o", str(tmp_path / "o.bin")]) == 2
    assert "not a PEM private key" in _one_error_line(capsys)


def test_demo_writes_a_bootable_flash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path))
    assert main(["demo", "--flash-layout"]) == 0
    assert "boot slot ota_0: hello_world 1.0.0" in capsys.readouterr().out
    flash = (tmp_path / "demo" / "flash.bin").read_bytes()
    assert len(flash) == 4 * 1024 * 1024
    AppImage.parse(flash[0x20000:]).verify()


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image-info"]) == 2
    assert "Missing argument" in capsys.readouterr().err


def test_bad_option_value_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "p.csv"
    csv.write_text(OUTLET_PARTITIONS_CSV)
    assert main(["idf", "partition-table", str(csv), "--flash-size", "big"]) == 2
    assert _one_error_line(capsys) == "error: 'big' is not a size (use 0x8000, 32K or 4MB)"
    assert main(["idf", "partition-table", str(csv), "--flash-size", "2MB"]) == 2
    assert "beyond the flash size" in _one_error_line(capsys)
