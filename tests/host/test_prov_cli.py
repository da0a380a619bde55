"""``jumpstart prov`` against 4_network_config in a real device process, through world.toml."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from jumpstart import cli_prov
from jumpstart.host.device_home import JumpstartHome
from jumpstart.idf.radio import AccessPoint, AuthMode, RadioWorld
from tests.host.test_device_cli import JUMPSTART, cli, flashed_device, wait_for


def log(console: Path) -> str:
    return console.read_text() if console.exists() else ""


def qr_payload(console: Path) -> str:
    found = re.search(r"QR payload: (\{.*\})", log(console))
    assert found is not None
    return found[1]


@pytest.mark.parametrize("transport", ["softap", "ble"])
def test_prov_cli_with_the_printed_qr_code(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], transport: str
) -> None:
    assert cli("world", "ap", "add", "HomeNet", "--password", "correct-horse") == 0
    flashed_device("outlet", "4_network_config", tmp_path)
    if transport == "ble":  # rebuild with the BLE scheme
        build = tmp_path / "ble.bin"
        assert (
            cli(
                "idf",
                "build",
                str(Path("apps/4_network_config")),
                "-o",
                str(build),
                "--set",
                "prov_transport=ble",
            )
            == 0
        )
        assert cli("idf", "flash", "--device", "outlet", str(build)) == 0
    console = JumpstartHome().device("outlet").console_path
    process = subprocess.Popen([*JUMPSTART, "device", "run", "outlet"], env=os.environ.copy())
    try:
        wait_for(lambda: "QR payload" in log(console))
        payload = qr_payload(console)
        assert json.loads(payload)["transport"] == transport
        capsys.readouterr()
        assert cli("prov", "list") == 0
        assert json.loads(payload)["name"] in capsys.readouterr().out
        code = cli(
            "prov",
            "--qr",
            payload,
            "--ssid",
            "HomeNet",
            "--passphrase",
            "correct-horse",
            "--poll_interval",
            "0.1",
            "-v",
        )
        out = capsys.readouterr().out
        assert code == 0, out
        assert "==== Provisioning was successful ====" in out
        wait_for(lambda: "Provisioning stopped" in log(console))
        world = RadioWorld(JumpstartHome().world_path)
        assert world.adverts() == []
        assert [ap.ssid for ap in world.access_points()] == ["HomeNet"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def test_prov_cli_errors(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("prov", "--ssid", "x") == 2  # nothing in the world to provision
    assert "pass --service_name" in capsys.readouterr().err
    assert cli("prov", "--qr", "not json") == 2
    assert cli("prov", "--transport", "carrier-pigeon", "--service_name", "a:1") == 2


def test_sec2_credentials_reproduce_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    vectors = Path(__file__).parents[1] / "vectors" / "sec2_example_credentials.json"
    example = json.loads(vectors.read_text())
    assert (
        cli(
            "prov",
            "sec2-credentials",
            "--username",
            "wifiprov",
            "--password",
            "abcd1234",
            "--salt",
            example["salt"],
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"verifier: {example['verifier']}" in out
    assert cli("prov", "sec2-credentials", "--username", "u", "--password", "p") == 0
    salt = re.search(r"salt: ([0-9a-f]+)", capsys.readouterr().out)
    assert salt is not None
    assert len(salt[1]) == 32


def test_prov_list_shows_the_softap_endpoint(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = RadioWorld(JumpstartHome().world_path)
    world.add(
        AccessPoint("PROV_A1B2C3", "", AuthMode.OPEN, device="outlet", endpoint="127.0.0.1:41234")
    )
    capsys.readouterr()
    assert cli("prov", "list") == 0
    line = capsys.readouterr().out.strip()
    assert line.split() == [
        "PROV_A1B2C3",
        "softap",
        "OPEN",
        "endpoint",
        "127.0.0.1:41234",
        "device",
        "outlet",
    ]


class _NoLink:
    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("outcome", "code", "line"),
    [(False, 1, None), (KeyboardInterrupt(), 130, "interrupted")],
)
def test_failed_or_interrupted_provisioning_exits_non_zero(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    outcome: object,
    code: int,
    line: str | None,
) -> None:
    def provision(link: object, options: object, say: Callable[[str], None]) -> bool:
        if isinstance(outcome, BaseException):
            raise outcome
        say("---- Provisioning failed! ----")
        return bool(outcome)

    monkeypatch.setattr(cli_prov, "provision", provision)
    monkeypatch.setattr(cli_prov, "open_transport", lambda *args: _NoLink())
    capsys.readouterr()
    assert cli("prov", "--service_name", "127.0.0.1:1", "--ssid", "x", "--passphrase", "y") == code
    captured = capsys.readouterr()
    if line is None:
        assert captured.out.strip().endswith("Provisioning failed! ----")
    else:
        assert captured.err.strip() == line
