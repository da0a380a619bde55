"""``jumpstart cloud``: one smoke test per command, in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from jumpstart.cli import main
from jumpstart.cloud.admin import GUIDE_FILES
from jumpstart.cloud.home import default_home


def test_thing_create_writes_the_guides_five_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    out = tmp_path / "cloud_cfg"
    assert main(["cloud", "thing", "create", "outlet9", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(GUIDE_FILES)
    assert (out / "deviceid.txt").read_text() == "outlet9"
    assert (out / "endpoint.txt").read_text() == "localhost"
    assert (out / "server.cert").read_bytes() == default_home().ca_pem.read_bytes()
    assert main(["cloud", "thing", "create", "outlet9", "--out", str(out)]) == 2  # exists
    assert main(["cloud", "thing", "list"]) == 0
    assert "outlet9" in capsys.readouterr().out
    assert main(["cloud", "client", "create", "phone", "--role", "app", "-o", str(tmp_path)]) == 0
    assert main(["cloud", "client", "create", "x", "--role", "root", "-o", str(tmp_path)]) == 2
    capsys.readouterr()
    assert main(["cloud", "cert", "list"]) == 0
    first_id = capsys.readouterr().out.split()[0]
    assert main(["cloud", "cert", "revoke", first_id]) == 0
    assert main(["cloud", "cert", "revoke", "0" * 64]) == 2


def test_shadow_command_without_a_running_cloud_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    assert main(["cloud", "shadow", "get", "outlet9", "--port", "1"]) == 2
    assert "jumpstart cloud serve" in capsys.readouterr().err


def test_firmware_upload_hosts_a_checked_image_and_prints_its_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    image = tmp_path / "hello.bin"
    assert main(["idf", "build", "apps/1_hello_world", "-o", str(image)]) == 0
    capsys.readouterr()
    assert main(["cloud", "firmware", "upload", str(image)]) == 0
    out = capsys.readouterr().out
    assert "https://localhost:8070/firmware/hello_world-1.0.0.bin" in out
    assert '"ota_url":"https://localhost:8070/firmware/hello_world-1.0.0.bin"' in out
    hosted = default_home().path / "firmware" / "hello_world-1.0.0.bin"
    assert hosted.read_bytes() == image.read_bytes()
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(image.read_bytes()[:-40])
    assert main(["cloud", "firmware", "upload", str(corrupt)]) == 2
    assert "not a valid app image" in capsys.readouterr().err
    assert main(["cloud", "firmware", "upload", str(corrupt), "--force", "--name", "bad.bin"]) == 0
    assert main(["cloud", "firmware", "list"]) == 0
    listing = capsys.readouterr().out
    assert "bad.bin" in listing
    assert "hello_world" in listing
