"""``jumpstart nvs``: one smoke test per command, and no partial output on errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jumpstart.cli import main
from jumpstart.formats.nvs import NvsKeys

CSV = (
    "key,type,encoding,value\nfctry,namespace,,\n"
    "serial_no,data,string,SP-000123\nhw_rev,data,u8,3\n"
)


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "factory.csv"
    path.write_text(CSV)
    return path


def test_generate_and_parse_json(
    tmp_path: Path, csv_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["nvs", "generate", str(csv_file), "f.bin", "0x3000", "--outdir", str(tmp_path)]) == 0
    )
    assert (tmp_path / "f.bin").stat().st_size == 0x3000
    capsys.readouterr()
    assert main(["nvs", "parse", str(tmp_path / "f.bin"), "--format", "json", "-i"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["problems"] == []
    values = {(v["namespace"], v["key"]): v["value"] for v in report["values"]}
    assert values == {("fctry", "serial_no"): "SP-000123", ("fctry", "hw_rev"): 3}


def test_generate_key_encrypt_decrypt(tmp_path: Path, csv_file: Path) -> None:
    out = str(tmp_path)
    assert main(["nvs", "generate-key", "--keyfile", "k.bin", "--outdir", out]) == 0
    keys = NvsKeys.from_bytes((tmp_path / "keys" / "k.bin").read_bytes())
    assert len(keys.eky) == 32
    key = str(tmp_path / "keys" / "k.bin")
    assert main(["nvs", "generate", str(csv_file), "plain.bin", "0x3000", "--outdir", out]) == 0
    assert (
        main(
            [
                "nvs",
                "encrypt",
                str(csv_file),
                "enc.bin",
                "0x3000",
                "--inputkey",
                key,
                "--outdir",
                out,
            ]
        )
        == 0
    )
    assert (tmp_path / "enc.bin").read_bytes() != (tmp_path / "plain.bin").read_bytes()
    assert main(["nvs", "decrypt", str(tmp_path / "enc.bin"), key, "dec.bin", "--outdir", out]) == 0
    assert (tmp_path / "dec.bin").read_bytes() == (tmp_path / "plain.bin").read_bytes()


def test_hmac_key_matches_the_vector(tmp_path: Path, vectors: Path) -> None:
    hmac_key = vectors / "nvs_flash__nvs_partition_generator__testdata__sample_hmac_key.bin"
    args = ["nvs", "generate-key", "--key_protect_hmac", "--kp_hmac_inputkey", str(hmac_key)]
    assert main([*args, "--keyfile", "h.bin", "--outdir", str(tmp_path)]) == 0
    expected = vectors / (
        "nvs_flash__nvs_partition_generator__testdata__sample_encryption_keys_hmac.bin"
    )
    assert (tmp_path / "keys" / "h.bin").read_bytes() == expected.read_bytes()


@pytest.mark.parametrize(
    ("csv", "size", "message"),
    [
        (
            "key,type,encoding,value\nns,namespace,,\nkey_of_16_chars_,data,u8,1\n",
            "0x3000",
            "longer than 15",
        ),
        (
            "key,type,encoding,value\nns,namespace,,\nbig,data,hex2bin," + "ab" * 9000 + "\n",
            "0x3000",
            "does not fit",
        ),
        (CSV, "0x3100", "multiple of 4096"),
        (CSV, "abc", "not a number"),
        (CSV, "0x0", "at least"),
        ("key,type,encoding,value\nns,namespace,,\nv,data,u8,256\n", "0x3000", "does not fit"),
    ],
)
def test_errors_leave_no_output(
    tmp_path: Path, csv: str, size: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "in.csv"
    path.write_text(csv)
    assert main(["nvs", "generate", str(path), "out.bin", size, "--outdir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_parse_of_an_encrypted_image_without_or_with_wrong_keys_fails(
    tmp_path: Path, csv_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path)
    for name in ("k.bin", "other.bin"):
        assert main(["nvs", "generate-key", "--keyfile", name, "--outdir", out]) == 0
    key, other = str(tmp_path / "keys" / "k.bin"), str(tmp_path / "keys" / "other.bin")
    args = ["nvs", "encrypt", str(csv_file), "enc.bin", "0x3000", "--inputkey", key]
    assert main([*args, "--outdir", out]) == 0
    enc = str(tmp_path / "enc.bin")
    capsys.readouterr()
    assert main(["nvs", "parse", enc]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("checks out: it looks encrypted: pass --keys KEYS.bin"), err
    assert main(["nvs", "parse", enc, "--keys", other]) == 2
    assert "these keys do not decrypt it" in capsys.readouterr().err
    assert main(["nvs", "parse", enc, "--keys", key, "-f", "json"]) == 0
    values = json.loads(capsys.readouterr().out)["values"]
    assert {"namespace": "fctry", "key": "hw_rev", "value": 3} in values


def test_parse_integrity_problem_exits_1(
    tmp_path: Path, csv_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["nvs", "generate", str(csv_file), "f.bin", "0x3000", "--outdir", str(tmp_path)]) == 0
    )
    image = bytearray((tmp_path / "f.bin").read_bytes())
    image[64 + 32 * 3 + 8] ^= 0x01  # a byte of hw_rev's key (entry 3): its item CRC fails
    (tmp_path / "bad.bin").write_bytes(bytes(image))
    capsys.readouterr()
    assert main(["nvs", "parse", str(tmp_path / "bad.bin"), "-i"]) == 1
    assert "inconsistent item header" in capsys.readouterr().out


def test_missing_size_or_output_is_named(
    tmp_path: Path, csv_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, missing in (
        ([str(csv_file), "out.bin"], "missing SIZE (the partition size, e.g. 0x6000)"),
        ([str(csv_file), "0x6000"], "missing OUTPUT (the image to write)"),
        ([str(csv_file)], "missing OUTPUT and SIZE"),
    ):
        assert main(["nvs", "generate", *args]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line == f"error: {missing}: jumpstart nvs generate CSV... OUTPUT SIZE"


@pytest.mark.parametrize(
    "command", [["nvs", "generate"], ["prov"], ["idf", "build"], ["cloud", "serve"], []]
)
def test_dash_h_is_help_and_flags_show_no_type(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "-h"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: jumpstart")
    assert "<bool>" not in out
    assert "-h, --help" in out


def test_help_texts_say_what_the_commands_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["idf", "build", "-h"]) == 0
    assert "Override a [config] value: KEY=VALUE (repeatable)" in capsys.readouterr().out
    assert main(["prov", "-h"]) == 0
    out = capsys.readouterr().out
    assert "jumpstart prov --qr '{" in out
    assert "--ssid myssid --passphrase mypassword" in out
    assert main(["device", "run", "-h"]) == 0
    assert "stays in the foreground until Ctrl-C" in " ".join(capsys.readouterr().out.split())


def test_keygen_never_overwrites_a_key_file(
    tmp_path: Path, csv_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path)
    args = ["nvs", "encrypt", str(csv_file), "enc.bin", "0x3000", "--keygen", "--outdir", out]
    assert main(args) == 0
    assert main([*args[:3], "enc2.bin", *args[4:]]) == 0  # the same minute, most likely
    keys = sorted((tmp_path / "keys").iterdir())
    assert len(keys) == 2
    assert keys[0].read_bytes() != keys[1].read_bytes()
    # Each image decrypts with the key file its run reported.
    reported = [line.split()[-1] for line in capsys.readouterr().err.splitlines() if "keys" in line]
    assert sorted(reported) == [str(k) for k in keys]
    # A name the user gives is never reused.
    named = ["nvs", "generate-key", "--keyfile", "mine.bin", "--outdir", out]
    assert main(named) == 0
    first = (tmp_path / "keys" / "mine.bin").read_bytes()
    assert main(named) == 2
    assert "mine.bin exists; a key file is never overwritten" in capsys.readouterr().err
    assert (tmp_path / "keys" / "mine.bin").read_bytes() == first
