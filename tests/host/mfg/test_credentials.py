"""``jumpstart mfg credentials``: identities for a factory run, registered once, resumable."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jumpstart.cli import main
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.pki import certificate_id
from jumpstart.host.mfg.credentials import FACTORY_CONFIG
from jumpstart.idf.protocomm.srp6a import verifier


def _rows(outdir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((outdir / "values.csv").read_text())))


def _check_consistent(home: CloudHome, outdir: Path, count: int, prefix: str = "outlet") -> None:
    """Every row once, each key matching its certificate, which is the one registered."""
    rows = _rows(outdir)
    assert sorted(int(r["id"]) for r in rows) == list(range(1, count + 1))
    ca = x509.load_pem_x509_certificate((outdir / "server.cert").read_bytes())
    with home.registry() as registry:
        things = {t.name for t in registry.things() if t.name.startswith(prefix + "-")}
        assert things == {r["device_id"] for r in rows}
        for row in rows:
            cert = x509.load_pem_x509_certificate(Path(row["device_cert"]).read_bytes())
            key = serialization.load_pem_private_key(
                Path(row["device_key"]).read_bytes(), password=None
            )
            assert key.public_key() == cert.public_key()
            cert.verify_directly_issued_by(ca)
            registered = registry.certificates(row["device_id"])
            assert [c.certificate_id for c in registered] == [certificate_id(cert)]


def test_credentials_then_generate_give_each_outlet_its_factory_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    out = tmp_path / "factory"
    assert main(["mfg", "credentials", "--count", "12", "--outdir", str(out)]) == 0
    assert "12 identities made" in capsys.readouterr().err
    assert (out / "config.csv").read_text() == FACTORY_CONFIG
    home = CloudHome(tmp_path / "home" / "cloud")
    _check_consistent(home, out, 12)
    rows = _rows(out)
    assert len({r["pop"] for r in rows}) == 12
    assert rows[4]["serial_no"] == "OUTLET-000005"
    args = ["mfg", "generate", str(out / "config.csv"), str(out / "values.csv"), "outlet"]
    assert main([*args, "0x6000", "--outdir", str(out)]) == 0
    capsys.readouterr()
    assert main(["nvs", "parse", str(out / "bin" / "outlet-5.bin"), "-f", "json"]) == 0
    values = {
        v["key"]: v["value"] for v in __import__("json").loads(capsys.readouterr().out)["values"]
    }
    assert values["device_id"] == "outlet-5"
    assert values["pop"] == rows[4]["pop"]
    assert values["device_key"] == Path(rows[4]["device_key"]).read_text()
    # Running again asks for nothing new: done rows are skipped, nothing registered twice.
    assert main(["mfg", "credentials", "--count", "12", "--outdir", str(out)]) == 0
    assert "0 identities made, 0 completed from an interrupted run, 12 done before" in (
        capsys.readouterr().err
    )
    _check_consistent(home, out, 12)


def test_sec2_secrets_are_the_verifier_of_the_pop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    out = tmp_path / "factory"
    assert main(["mfg", "credentials", "--count", "3", "--outdir", str(out), "--sec2"]) == 0
    for row in _rows(out):
        salt = bytes.fromhex(row["sec2_salt"])
        assert row["sec2_username"] == "wifiprov"
        assert row["sec2_verifier"] == verifier(b"wifiprov", row["pop"].encode(), salt).hex()
    assert "sec2_verifier,data,string" in (out / "config.csv").read_text()


def test_a_run_cut_after_the_files_or_after_the_registry_completes_without_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two windows a kill can hit: files written but not registered, registered but the
    row not written. The next run finishes both from the files."""
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    out = tmp_path / "factory"
    assert main(["mfg", "credentials", "--count", "6", "--outdir", str(out)]) == 0
    home = CloudHome(tmp_path / "home" / "cloud")
    lines = (out / "values.csv").read_text().splitlines(keepends=True)
    # outlet-5: registered, row lost. outlet-6: files kept, thing unregistered, row lost.
    (out / "values.csv").write_text("".join(lines[:5]) + lines[5][:17])  # a torn last line
    with home.registry() as registry:
        registry.delete_thing("outlet-6")
        registry._db.execute("DELETE FROM certificates WHERE principal='outlet-6'")
    key6 = (out / "certs" / "outlet-6.key").read_bytes()
    assert main(["mfg", "credentials", "--count", "6", "--outdir", str(out)]) == 0
    _check_consistent(home, out, 6)
    assert (out / "certs" / "outlet-6.key").read_bytes() == key6  # the same identity


def _processes_naming(path: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(path).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_at_a_random_point_then_again_gives_2000_devices(tmp_path: Path, seed: int) -> None:
    env = {**os.environ, "JUMPSTART_HOME": str(tmp_path / "home")}
    out = tmp_path / "factory"
    command = [sys.executable, "-m", "jumpstart.cli", "mfg", "credentials", "--count", "2000"]
    command += ["--outdir", str(out)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    values = out / "values.csv"
    target = 300 + 600 * seed  # rows written before the kill
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if values.exists() and values.read_bytes().count(b"\n") > target:
            break
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    # Its worker processes end with it (no orphan waits for work forever).
    deadline = time.monotonic() + 5
    while _processes_naming(out) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_naming(out) == []
    written = values.read_bytes().count(b"\n") - 1
    assert 0 < written < 2000, "the kill must land mid-run"
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f"{written} done before" in done.stderr
    _check_consistent(CloudHome(tmp_path / "home" / "cloud"), out, 2000)


def test_another_runs_options_and_a_bad_prefix_are_refused_before_any_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    out = tmp_path / "factory"
    assert main(["mfg", "credentials", "--count", "2", "--outdir", str(out)]) == 0
    capsys.readouterr()
    assert (
        main(["mfg", "credentials", "--count", "2", "--outdir", str(out), "--prefix", "plug"]) == 2
    )
    assert "holds a run with other options" in capsys.readouterr().err
    bad = ["mfg", "credentials", "--count", "2", "--outdir", str(tmp_path / "b"), "--prefix"]
    assert main([*bad, "../../x"]) == 2
    assert "--prefix '../../x'" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
