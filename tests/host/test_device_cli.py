"""End to end: real device processes started with the CLI, driven over their control socket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jumpstart.cli import main
from jumpstart.host.device_home import JumpstartHome
from tests.idf.device_helpers import APPS

JUMPSTART = [sys.executable, "-m", "jumpstart.cli"]


def cli(*args: str) -> int:
    return main(list(args))


def flashed_device(name: str, app: str, tmp_path: Path) -> None:
    image = tmp_path / f"{app}.bin"
    assert cli("device", "create", name) == 0
    assert cli("idf", "build", str(APPS / app), "-o", str(image)) == 0
    assert cli("idf", "flash", "--device", name, str(image)) == 0


def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture
def running(home: Path, tmp_path: Path) -> Iterator[Path]:
    """A 2_drivers device running in its own process; yields its console log."""
    flashed_device("outlet", "2_drivers", tmp_path)
    folder = JumpstartHome().device("outlet")
    process = subprocess.Popen([*JUMPSTART, "device", "run", "outlet"], env=os.environ.copy())
    try:
        wait_for(lambda: "Starting scheduler" in _read(folder.console_path))
        yield folder.console_path
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    assert not folder.control_path.exists()


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def output(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_press_toggles_the_output(running: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("device", "press", "outlet") == 0
    assert output(capsys) == '{"27": 1}'
    time.sleep(0.35)  # the app absorbs releases within 300 ms of the last (DEBOUNCE_TIME)
    assert cli("device", "press", "outlet") == 0
    assert output(capsys) == '{"27": 0}'
    assert "app_driver: Output on" in _read(running)


def test_two_presses_100_ms_apart_toggle_once(
    running: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In process, on a thread: a subprocess's start-up time under load could exceed the 300 ms
    # debounce window and turn this into two separate presses.
    codes: list[int] = []
    first = threading.Thread(
        target=lambda: codes.append(cli("device", "press", "outlet", "--hold", "0.06"))
    )
    first.start()
    time.sleep(0.1)
    assert cli("device", "press", "outlet", "--hold", "0.06") == 0
    first.join(10)
    assert codes == [0]
    time.sleep(0.2)
    capsys.readouterr()
    assert cli("device", "status", "outlet") == 0
    assert '"27": 1' in capsys.readouterr().out
    assert _read(running).count("Output on") == 1


def test_hold_3_s_fires_on_release(running: Path) -> None:
    assert cli("device", "press", "outlet", "--hold", "3.2") == 0
    log = _read(running)
    assert "Button held for 3 s and released" in log
    assert "Output on" in log  # the release also toggles, as in the guide's driver


def test_restart_and_power_cut_boot_again(
    running: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("device", "restart", "outlet") == 0
    wait_for(lambda: "rst:0xc (SW_CPU_RESET)" in _read(running))
    assert cli("device", "power-cut", "outlet") == 0
    wait_for(lambda: _read(running).count("rst:0x1 (POWERON_RESET)") == 2)
    wait_for(lambda: _read(running).count("Starting scheduler") == 3)
    capsys.readouterr()
    assert cli("device", "status", "outlet") == 0
    assert '"boot_count": 3' in capsys.readouterr().out


def monitor_until(device: str, text: str) -> list[str]:
    """Boot the device with ``idf monitor`` until a line holds ``text``; its lines."""
    process = subprocess.Popen(
        [*JUMPSTART, "idf", "monitor", "--device", device],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if text in line:
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert text in "\n".join(lines), "\n".join(lines)
    return lines


def test_monitor_prints_the_guide_lines_and_stops_on_ctrl_c(home: Path, tmp_path: Path) -> None:
    flashed_device("hello", "1_hello_world", tmp_path)
    lines = monitor_until("hello", "[0] Hello world!")
    assert lines[-1].startswith("[0] Hello world!")
    assert any(line.startswith("I (") and "Project name:     hello_world" in line for line in lines)


@pytest.mark.parametrize("case", ["unknown", "corrupt", "no-table"])
def test_bad_input_is_one_line_and_exit_2(
    case: str, home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert cli("device", "create", "dev") == 0
    flash = JumpstartHome().device("dev").flash_path
    name = "dev"
    if case == "unknown":
        name = "nobody"
    elif case == "corrupt":
        flash.write_bytes(b"\x00" * 1000)
    else:
        assert cli("idf", "erase-flash", "--device", "dev") == 0
    capfd.readouterr()
    result = subprocess.run(
        [*JUMPSTART, "device", "run", name], check=False, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content", [b"nvs,data,nvs,0x9000,0x6000,\n", b"\xe9" + b"\x00" * 100])
def test_flash_of_a_non_image_as_the_app_is_refused(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    assert cli("device", "create", "dev") == 0
    before = JumpstartHome().device("dev").flash_path.read_bytes()
    junk = tmp_path / "partitions.csv"
    junk.write_bytes(content)
    capsys.readouterr()
    assert cli("idf", "flash", "--device", "dev", str(junk)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {junk} is not an app image (")
    assert line.endswith(f"give their address: --offset ADDR {junk}")
    assert JumpstartHome().device("dev").flash_path.read_bytes() == before  # nothing written


def test_flash_after_erase_places_the_image_by_the_new_table(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``idf flash app.bin --offset 0x8000 pt.bin`` on an erased flash: the table is written
    first and the image goes where that table puts it."""
    assert cli("device", "create", "dev") == 0
    assert cli("idf", "erase-flash", "--device", "dev") == 0
    table = tmp_path / "pt.bin"
    assert cli("idf", "partition-table", str(table_csv(tmp_path)), "-o", str(table)) == 0
    image = tmp_path / "hello.bin"
    assert cli("idf", "build", str(APPS / "1_hello_world"), "-o", str(image)) == 0
    capsys.readouterr()
    assert cli("idf", "flash", "--device", "dev", str(image), "--offset", "0x8000", str(table)) == 0
    flash = JumpstartHome().device("dev").flash_path.read_bytes()
    app = image.read_bytes()
    assert flash[0x20000 : 0x20000 + len(app)] == app  # the factory app of the new table
    out = capsys.readouterr().out
    assert out.index("at 0x00008000") < out.index("at 0x00020000")


def table_csv(tmp_path: Path) -> Path:
    csv = tmp_path / "partitions.csv"
    csv.write_text(
        "nvs,data,nvs,0x9000,0x6000,\nphy_init,data,phy,0xf000,0x1000,\n"
        "factory,app,factory,0x20000,1M,\n"
    )
    return csv


def test_device_delete(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("device", "create", "gone") == 0
    folder = JumpstartHome().device("gone").path
    assert cli("device", "delete", "gone") == 0
    assert not folder.exists()
    assert "gone" not in JumpstartHome().device_names()
    capsys.readouterr()
    assert cli("device", "delete", "gone") == 2
    assert "no device 'gone'" in capsys.readouterr().err
    assert cli("device", "create", "gone") == 0  # the name is free again


@pytest.mark.interop
def test_device_efuses_are_espefuses_virtual_file(home: Path) -> None:
    """espefuse itself reads a new device's eFuses (MAC with CRC OK, revision v3.0)."""
    assert cli("device", "create", "fused", "--mac", "24:0a:c4:01:02:03") == 0
    path = JumpstartHome().device("fused").efuse_path
    assert path.name == "efuse.bin"
    command = [sys.executable, "-m", "espefuse", "--chip", "esp32", "--virt"]
    command += ["--path-efuse-file", str(path), "summary", "--format", "json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    assert summary["MAC"]["value"].startswith("24:0a:c4:01:02:03 (CRC 0x")
    assert summary["MAC"]["value"].endswith(" OK)")
    assert summary["CHIP_VER_REV2"]["value"] is True


def test_a_device_with_efuse_json_migrates_keeping_its_mac(home: Path) -> None:
    assert cli("device", "create", "old") == 0
    folder = JumpstartHome().device("old")
    folder.efuse_path.unlink()
    digest = bytes(range(32))
    legacy = {"mac": "24:0a:c4:aa:bb:cc", "secure_boot_key_digests": [digest.hex()]}
    (folder.path / "efuse.json").write_text(json.dumps(legacy))
    assert JumpstartHome().device_names() == ["old"]
    efuse = JumpstartHome().device("old").efuse()
    assert efuse.mac == bytes.fromhex("240ac4aabbcc")
    assert efuse.secure_boot_key_digests == [digest]
    assert folder.efuse_path.exists()
    assert not (folder.path / "efuse.json").exists()
