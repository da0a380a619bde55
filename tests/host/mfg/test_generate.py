"""``jumpstart mfg generate`` against ESP-IDF's mfg_gen.py outputs on its own samples."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from jumpstart.cli import main
from jumpstart.host.mfg.credentials import FACTORY_CONFIG

MASS_MFG = Path(__file__).resolve().parents[2] / "vectors" / "mass_mfg"
EXPECTED = json.loads((MASS_MFG / "expected.json").read_text())["runs"]


def _files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.interop
@pytest.mark.parametrize("run", sorted(EXPECTED))
def test_byte_identical_to_mfg_gen_on_its_samples(
    run: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = EXPECTED[run]
    monkeypatch.chdir(MASS_MFG)  # the values name testdata/... as mfg_gen is run
    before = _files(MASS_MFG)
    out = tmp_path / "out"
    args = ["mfg", "generate", spec["config"], spec["values"], spec["prefix"], spec["size"]]
    assert main([*args, "--outdir", str(out), *spec["options"]]) == 0
    assert _files(out) == spec["files"]
    assert _files(MASS_MFG) == before  # nothing left beside the inputs


def _reference_image(csv_path: Path, size: str, cwd: Path, key: Path | None = None) -> bytes:
    """esp-idf-nvs-partition-gen's own image of an intermediate CSV."""
    out = cwd / "reference.bin"
    command = [sys.executable, "-m", "esp_idf_nvs_partition_gen"]
    if key is None:
        command += ["generate", str(csv_path), str(out), size]
    else:
        command += ["encrypt", str(csv_path), str(out), size, "--inputkey", str(key)]
    done = subprocess.run(command, cwd=cwd, capture_output=True, check=False, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    data = out.read_bytes()
    out.unlink()
    return data


OUTLET_CONFIG = FACTORY_CONFIG  # the layout mfg credentials writes for the outlet


def _outlet_batch(folder: Path, count: int) -> tuple[Path, Path]:
    """An outlet-shaped factory batch: certificates as files, a REPEAT endpoint and CA."""
    (folder / "certs").mkdir()
    (folder / "certs" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nCA\n" * 20)
    rows = ["id,serial_no,pop,device_id,endpoint,mqtt_port,server_cert,device_cert,device_key"]
    for n in range(1, count + 1):
        for kind in ("cert", "key"):
            (folder / "certs" / f"{n}.{kind}").write_text(f"{kind} of outlet {n}\n" * (30 + n))
        rows.append(
            f"{n},OUTLET-{n:06d},pop{n:04d},outlet-{n},localhost,8883,certs/ca.pem,"
            f"certs/{n}.cert,certs/{n}.key"
        )
    config, values = folder / "config.csv", folder / "values.csv"
    config.write_text(OUTLET_CONFIG)
    values.write_text("\n".join(rows) + "\n")
    return config, values


@pytest.mark.interop
@pytest.mark.parametrize("encrypted", [False, True])
def test_every_image_is_the_nvs_generators_image_of_its_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encrypted: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    config, values = _outlet_batch(tmp_path, 4)
    keys = ["--inputkey", str(MASS_MFG / "testdata" / "sample_encryption_keys.bin")]
    args = ["mfg", "generate", str(config), str(values), "outlet", "0x6000", "--outdir", "out"]
    assert main(args + (keys if encrypted else [])) == 0
    for n in range(1, 5):
        ours = (tmp_path / "out" / "bin" / f"outlet-{n}.bin").read_bytes()
        csv_path = tmp_path / "out" / "csv" / f"outlet-{n}.csv"
        key = MASS_MFG / "testdata" / "sample_encryption_keys.bin" if encrypted else None
        assert ours == _reference_image(csv_path, "0x6000", tmp_path, key)
    assert "localhost" in (tmp_path / "out" / "csv" / "outlet-3.csv").read_text()


def test_keygen_images_decrypt_to_the_plain_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config, values = _outlet_batch(tmp_path, 3)
    base = ["mfg", "generate", str(config), str(values), "outlet", "0x6000"]
    assert main([*base, "--outdir", "plain"]) == 0
    assert main([*base, "--outdir", "enc", "--keygen"]) == 0
    keyfiles = sorted((tmp_path / "enc" / "keys").iterdir())
    assert [k.name for k in keyfiles] == [f"keys-outlet-{n}.bin" for n in (1, 2, 3)]
    assert len({k.read_bytes() for k in keyfiles}) == 3  # new keys per device
    for n in (1, 2, 3):
        enc = tmp_path / "enc" / "bin" / f"outlet-{n}.bin"
        key = tmp_path / "enc" / "keys" / f"keys-outlet-{n}.bin"
        assert main(["nvs", "decrypt", str(enc), str(key), str(tmp_path / f"d{n}.bin")]) == 0
        plain = (tmp_path / "plain" / "bin" / f"outlet-{n}.bin").read_bytes()
        assert (tmp_path / f"d{n}.bin").read_bytes() == plain


def test_fileid_and_prefix_num_name_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config, values = _outlet_batch(tmp_path, 3)
    args = ["mfg", "generate", str(config), str(values), "line", "0x6000", "--outdir", "o"]
    assert main([*args, "--fileid", "serial_no", "--prefix_num", "7", "3"]) == 0
    names = sorted(p.name for p in (tmp_path / "o" / "bin").iterdir())
    assert names == [f"line-{7 + n:03d}-OUTLET-{n + 1:06d}.bin" for n in range(3)]


BAD = {
    "too-few-cells": ("values", "3,OUTLET-3,pop3\n", "values.csv:4: 3 values for the header's 9"),
    "unknown-type": ("config", "x,dato,u8\n", "config.csv:10: type 'dato' is not one of"),
    "unknown-encoding": ("config", "x,data,u128\n", "config.csv:10: encoding 'u128' is not"),
    "i16-as-mfg-gen": ("config", "x,data,i16\n", "config.csv:10: encoding 'i16' is not"),
    "missing-file": ("values", "3,A,p,d,e,1,x,certs/none.cert,certs/1.key\n", "values.csv:4: "),
    "key-over-15": ("config", "a_very_long_key_name,data,u8\n", "config.csv:10: key 'a_very"),
    "u8-out-of-range": ("config", "x,data,u8\n", "values.csv:2: "),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_naming_the_file_and_line_and_writes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    config, values = _outlet_batch(tmp_path, 2)
    which, extra, message = BAD[case]
    if which == "config":
        config.write_text(config.read_text() + extra)
        key = extra.split(",")[0]
        lines = values.read_text().splitlines()
        cell = "300" if case == "u8-out-of-range" else "1"
        lines = [lines[0] + f",{key}"] + [line + f",{cell}" for line in lines[1:]]
        values.write_text("\n".join(lines) + "\n")
    else:
        values.write_text(values.read_text() + extra)
    capsys.readouterr()
    args = ["mfg", "generate", "config.csv", "values.csv", "o", "0x6000", "--outdir", "out"]
    assert main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ")
    assert message in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_size_and_existing_outputs_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    config, values = _outlet_batch(tmp_path, 2)
    args = ["mfg", "generate", str(config), str(values), "o"]
    assert main([*args, "0x6100", "--outdir", "out"]) == 2
    assert "multiple of 4096" in capsys.readouterr().err
    assert main([*args, "0x6000", "--outdir", "out"]) == 0
    first = (tmp_path / "out" / "bin" / "o-1.bin").read_bytes()
    capsys.readouterr()
    assert main([*args, "0x6000", "--outdir", "out"]) == 2
    assert capsys.readouterr().err.strip().endswith("exists; choose another --outdir or prefix")
    assert (tmp_path / "out" / "bin" / "o-1.bin").read_bytes() == first
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []


def test_outputs_are_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The images hold private keys and PoPs."""
    monkeypatch.chdir(tmp_path)
    config, values = _outlet_batch(tmp_path, 2)
    args = ["mfg", "generate", str(config), str(values), "o", "0x6000", "--outdir", "out"]
    assert main([*args, "--keygen"]) == 0
    for path in (tmp_path / "out").rglob("*"):
        assert path.stat().st_mode & 0o077 == 0, path
