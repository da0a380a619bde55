"""``jumpstart cloud``: one smoke test per command, in process."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from jumpstart.cli import main
from jumpstart.cloud.admin import GUIDE_FILES
from jumpstart.cloud.endpoints import REST_PORT
from jumpstart.cloud.home import default_home
from tests.cloud.cloud_process import serve


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


def test_credentials_are_never_overwritten_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    out = tmp_path / "cloud_cfg"
    assert main(["cloud", "thing", "create", "lamp1", "-o", str(out)]) == 0
    key = (out / "device.key").read_bytes()
    capsys.readouterr()
    for command in (
        ["cloud", "thing", "create", "lamp2", "-o", str(out)],
        ["cloud", "client", "create", "phone", "-o", str(out)],
        ["cloud", "cert", "create", "lamp1", "-o", str(out)],
    ):
        assert main(command) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line == (
            f"error: {out / 'device.key'} exists; its key would be lost: choose another folder"
            " with -o, or pass --force to replace it"
        )
        assert (out / "device.key").read_bytes() == key
    # Nothing was registered by the refused commands.
    assert main(["cloud", "thing", "list"]) == 0
    assert capsys.readouterr().out.split() == ["lamp1"]
    # A new certificate for lamp1 (its old key lost): --force, or another folder.
    assert main(["cloud", "cert", "create", "lamp1", "-o", str(out), "--force"]) == 0
    assert (out / "device.key").read_bytes() != key
    assert main(["cloud", "cert", "create", "nosuch", "-o", str(tmp_path / "x")]) == 2
    assert "no thing named 'nosuch'" in capsys.readouterr().err
    assert main(["cloud", "cert", "list"]) == 0
    assert capsys.readouterr().out.count("lamp1") == 2


def test_thing_delete_revokes_and_frees_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    assert main(["cloud", "thing", "create", "lamp1", "-o", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    assert main(["cloud", "thing", "delete", "lamp1"]) == 0
    assert capsys.readouterr().out.strip() == "deleted thing lamp1 (1 certificate(s) revoked)"
    assert main(["cloud", "cert", "list"]) == 0
    assert "REVOKED" in capsys.readouterr().out
    assert main(["cloud", "thing", "delete", "lamp1"]) == 2
    assert main(["cloud", "thing", "create", "lamp1", "-o", str(tmp_path / "b")]) == 0


def test_commands_find_a_cloud_started_on_other_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "home"
    monkeypatch.setenv("JUMPSTART_HOME", str(root))
    server = serve(root)  # free ports, not 8443
    try:
        assert server.rest_port != REST_PORT
        body = '{"state":{"reported":{"on":true}}}'
        assert main(["cloud", "shadow", "update", "lamp", body]) == 0
        capsys.readouterr()
        assert main(["cloud", "shadow", "get", "lamp"]) == 0
        assert '"on": true' in capsys.readouterr().out
    finally:
        server.process.send_signal(signal.SIGTERM)
        server.process.communicate(timeout=20)
    assert not default_home().endpoints_path.exists()  # a clean stop removes its record
    capsys.readouterr()
    assert main(["cloud", "shadow", "get", "lamp"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: cannot reach the cloud at localhost:{REST_PORT} (the default")
    assert main(["cloud", "shadow", "get", "lamp", "--port", "1"]) == 2
    assert "localhost:1 (--port)" in capsys.readouterr().err


def test_a_killed_clouds_record_is_not_believed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "home"
    monkeypatch.setenv("JUMPSTART_HOME", str(root))
    server = serve(root)
    server.process.kill()
    server.process.communicate(timeout=20)
    assert default_home().endpoints_path.exists()
    assert default_home().running_endpoints() is None
    assert main(["cloud", "shadow", "get", "lamp"]) == 2
    assert f"localhost:{REST_PORT} (the default" in capsys.readouterr().err
