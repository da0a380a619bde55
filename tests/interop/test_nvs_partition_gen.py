"""``jumpstart.host.nvs_gen`` against ``esp-idf-nvs-partition-gen`` 0.3.0: the same bytes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jumpstart.formats.nvs import FormatVersion, NvsKeys
from jumpstart.host.nvs_gen import generate_partition, parse_nvs_size

pytestmark = pytest.mark.interop

GEN_PREFIX = "nvs_flash__nvs_partition_generator__"
SAMPLE_CSVS = ["sample_val.csv", "sample_singlepage_blob.csv", "sample_multipage_blob.csv"]
KEYS = "nvs_flash__test_apps__main__encryption_keys.bin"


@pytest.fixture
def workdir(tmp_path: Path, vectors: Path) -> Path:
    """A folder laid out like the generator's own: CSVs beside testdata/."""
    (tmp_path / "testdata").mkdir()
    for src in vectors.glob(GEN_PREFIX + "*"):
        name = src.name.removeprefix(GEN_PREFIX)
        if name.startswith("testdata__"):
            shutil.copy(src, tmp_path / "testdata" / name.removeprefix("testdata__"))
        else:
            shutil.copy(src, tmp_path / name)
    shutil.copy(vectors / KEYS, tmp_path / "keys.bin")
    return tmp_path


def reference(
    workdir: Path, csvs: list[str], size: str, version: int, key: str | None = None
) -> bytes | None:
    """Run the generator; None when it fails."""
    out = workdir / "reference.bin"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "esp_idf_nvs_partition_gen"]
    command += ["encrypt", *csvs, out.name, size] if key else ["generate", *csvs, out.name, size]
    command += ["--version", str(version)] + (["--inputkey", key] if key else [])
    done = subprocess.run(command, cwd=workdir, capture_output=True, check=False, timeout=60)
    if done.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        return None
    return out.read_bytes()


@pytest.mark.parametrize("csv_name", SAMPLE_CSVS)
@pytest.mark.parametrize("size", ["0x2000", "0x3000", "0x6000", "0x10000"])
@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("encrypted", [False, True])
def test_sample_csvs_give_the_generators_bytes(
    workdir: Path, csv_name: str, size: str, version: int, encrypted: bool
) -> None:
    expected = reference(workdir, [csv_name], size, version, "keys.bin" if encrypted else None)
    keys = NvsKeys.from_bytes((workdir / "keys.bin").read_bytes()) if encrypted else None
    text = (workdir / csv_name).read_text()
    ours_version = FormatVersion.V1 if version == 1 else FormatVersion.V2
    if expected is None:
        with pytest.raises(ValueError, match=r"does not fit|allows|limit"):
            generate_partition(
                [(csv_name, text)],
                parse_nvs_size(size),
                version=ours_version,
                keys=keys,
                base_dir=workdir,
            )
        return
    ours = generate_partition(
        [(csv_name, text)],
        parse_nvs_size(size),
        version=ours_version,
        keys=keys,
        base_dir=workdir,
    )
    assert ours == expected
