"""A factory run end to end: 100 identities, their images, 3 of them flashed into 3 devices
that boot the same outlet firmware, each provisioned with its own PoP and connected to the
cloud as its own thing. Reset to factory keeps identity and PoP; an erased fctry stays offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import http.client
import io
import ssl
from pathlib import Path
from typing import Any

import pytest

from jumpstart.cli import main
from jumpstart.cloud.home import CloudHome
from jumpstart.formats.esp_secure_cert import parse_partition
from jumpstart.host.app_build import build_app_image
from jumpstart.host.device_control import send_command
from jumpstart.host.device_home import JumpstartHome
from jumpstart.host.device_runner import run_device
from jumpstart.host.prov_client import ProvError
from jumpstart.idf.radio import RadioWorld
from tests.cloud_device import HOME_AP, running_cloud, wait_until
from tests.host.mfg.factory_helpers import FCTRY, WAIT_S, Console, provision_home_ap
from tests.idf.device_helpers import APPS

PICKED = (7, 42, 99)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The outlet firmware, the same for every device (built once for this module)."""
    path = tmp_path_factory.mktemp("firmware") / "outlet.bin"
    path.write_bytes(build_app_image(APPS / "outlet"))
    return path


def _rest_status(port: int, cfg: dict[str, Path], ca: Path, thing: str) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cfg["cert"]), str(cfg["key"]))
    conn = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
    try:
        conn.request("GET", f"/things/{thing}/shadow")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_three_outlets_from_one_factory_run(
    tmp_path: Path, app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    out = tmp_path / "factory"
    world = RadioWorld(None, [HOME_AP])
    home = JumpstartHome()

    async def scenario() -> None:
        async with running_cloud(CloudHome(tmp_path / "home" / "cloud")) as cloud:
            port = str(cloud.mqtt_port)
            args = ["mfg", "credentials", "--count", "100", "--outdir", str(out)]
            assert await asyncio.to_thread(main, [*args, "--mqtt-port", port]) == 0
            config, values = str(out / "config.csv"), str(out / "values.csv")
            generate = ["mfg", "generate", config, values, "outlet", "0x6000", "--outdir", str(out)]
            assert await asyncio.to_thread(main, generate) == 0
            rows = {int(r["id"]): r for r in csv.DictReader(io.StringIO(Path(values).read_text()))}
            for n in PICKED:  # esptool's way: the app, and ADDR FILE for the factory data
                assert main(["device", "create", f"dev{n}"]) == 0
                image = str(out / "bin" / f"outlet-{n}.bin")
                assert (
                    main(["idf", "flash", "--device", f"dev{n}", str(app), hex(FCTRY), image]) == 0
                )
            consoles = {n: Console() for n in PICKED}
            tasks = {
                n: asyncio.create_task(run_device(home.device(f"dev{n}"), consoles[n], world=world))
                for n in PICKED
            }
            try:
                await _provision_and_connect(consoles, rows, world, cloud.rest_port, out)
                await _reset_keeps_identity(consoles[7], rows[7], home)
                await _erased_factory_data_stays_offline(consoles, tasks, home, cloud)
            finally:
                for n, task in tasks.items():
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(
                            send_command, home.device(f"dev{n}"), {"cmd": "stop"}
                        )
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())


async def _provision_and_connect(
    consoles: dict[int, Console],
    rows: dict[int, dict[str, str]],
    world: RadioWorld,
    rest_port: int,
    out: Path,
) -> None:
    for n, console in consoles.items():
        await wait_until(lambda c=console: c.logged("QR payload"), WAIT_S)
        assert console.logged(f"Serial number {rows[n]['serial_no']}")
        assert console.qr()["pop"] == rows[n]["pop"]  # its own PoP, from its fctry
    # Another device's PoP does not open a session.
    first, second = PICKED[0], PICKED[1]
    with pytest.raises(ProvError):
        await asyncio.to_thread(
            provision_home_ap, world, consoles[first].qr()["name"], rows[second]["pop"]
        )
    for n, console in consoles.items():
        assert await asyncio.to_thread(
            provision_home_ap, world, console.qr()["name"], rows[n]["pop"]
        )
    for console in consoles.values():
        await wait_until(lambda c=console: c.logged("Shadow in sync"), WAIT_S)
    ca = out / "server.cert"
    for n in PICKED:
        cfg = {"cert": Path(rows[n]["device_cert"]), "key": Path(rows[n]["device_key"])}
        other = PICKED[0] if n != PICKED[0] else PICKED[1]
        own = await asyncio.to_thread(_rest_status, rest_port, cfg, ca, f"outlet-{n}")
        assert own == 200  # its shadow, made by the device itself
        foreign = await asyncio.to_thread(_rest_status, rest_port, cfg, ca, f"outlet-{other}")
        assert foreign == 403


async def _reset_keeps_identity(console: Console, row: dict[str, str], home: JumpstartHome) -> None:
    console.lines.clear()
    await asyncio.to_thread(send_command, home.device("dev7"), {"cmd": "press", "hold": 3.2})
    await wait_until(lambda: console.logged("Reset to factory"), WAIT_S)
    await wait_until(lambda: console.logged("QR payload"), WAIT_S)
    assert console.logged(f"Serial number {row['serial_no']}")
    assert console.qr()["pop"] == row["pop"]


async def _erased_factory_data_stays_offline(
    consoles: dict[int, Console],
    tasks: dict[int, asyncio.Task[None]],
    home: JumpstartHome,
    cloud: Any,
) -> None:
    folder = home.device("dev99")
    await asyncio.to_thread(send_command, folder, {"cmd": "stop"})
    await asyncio.wait_for(tasks.pop(99), 10)
    with folder.open_flash() as flash:
        flash.erase_range(FCTRY, 0x6000)
    console = Console()
    tasks[99] = asyncio.create_task(run_device(folder, console, world=RadioWorld(None, [HOME_AP])))
    await wait_until(
        lambda: console.logged("No cloud credentials in the factory partition"), WAIT_S
    )
    await asyncio.sleep(1.0)
    connected = {c.principal.name for c in cloud.broker.connections if c.principal is not None}
    assert "outlet-99" not in connected
    assert not console.logged("Shadow in sync")


def test_mfg_flash_makes_a_device_per_image(
    tmp_path: Path, app: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    out = tmp_path / "factory"
    assert main(["mfg", "credentials", "--count", "3", "--outdir", str(out)]) == 0
    config, values = str(out / "config.csv"), str(out / "values.csv")
    assert main(["mfg", "generate", config, values, "outlet", "0x6000", "--outdir", str(out)]) == 0
    flash = ["mfg", "flash", str(out), "--devices", "line-{n}", "--app", str(app)]
    assert main(flash) == 0
    home = JumpstartHome()
    assert home.device_names() == ["line-1", "line-2", "line-3"]
    for n in (1, 2, 3):
        content = home.device(f"line-{n}").flash_path.read_bytes()
        factory = (out / "bin" / f"outlet-{n}.bin").read_bytes()
        assert content[FCTRY : FCTRY + len(factory)] == factory
        assert content[0x20000 : 0x20000 + app.stat().st_size] == app.read_bytes()
    capsys.readouterr()
    assert main(flash) == 2  # the devices exist: nothing is overwritten
    assert "device 'line-1' exists" in capsys.readouterr().err
    assert main(["mfg", "flash", str(out), "--devices", "same", "--app", str(app)]) == 2
    assert "the same device name" in capsys.readouterr().err


def test_outlet_takes_its_certificate_from_esp_secure_cert(
    tmp_path: Path, app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mfg credentials --secure-cert: the certificate, key and CA go to an esp_secure_cert
    partition per device, fctry keeps identity and endpoint; the outlet connects with them."""
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    out = tmp_path / "factory"
    world = RadioWorld(None, [HOME_AP])
    home = JumpstartHome()

    async def scenario() -> None:
        async with running_cloud(CloudHome(tmp_path / "home" / "cloud")) as cloud:
            args = ["mfg", "credentials", "--count", "2", "--outdir", str(out), "--secure-cert"]
            assert await asyncio.to_thread(main, [*args, "--mqtt-port", str(cloud.mqtt_port)]) == 0
            config, values = str(out / "config.csv"), str(out / "values.csv")
            generate = ["mfg", "generate", config, values, "outlet", "0x6000"]
            assert main([*generate, "--outdir", str(out), "--fileid", "id"]) == 0
            assert "device_key" not in Path(config).read_text()
            entries = parse_partition((out / "esp_secure_cert" / "outlet-2.bin").read_bytes())
            assert [e.type for e in entries] == [0, 1, 2, 9]  # CA, device, key, integrity
            flash = ["mfg", "flash", str(out), "--devices", "sc-{n}", "--app", str(app)]
            assert main(flash) == 0
            console = Console()
            task = asyncio.create_task(run_device(home.device("sc-2"), console, world=world))
            try:
                await wait_until(lambda: console.logged("QR payload"), WAIT_S)
                row = next(
                    r
                    for r in csv.DictReader(io.StringIO(Path(values).read_text()))
                    if r["id"] == "2"
                )
                assert await asyncio.to_thread(
                    provision_home_ap, world, console.qr()["name"], row["pop"]
                )
                await wait_until(lambda: console.logged("Shadow in sync"), WAIT_S)
                assert console.logged("Certificate and key from the esp_secure_cert partition")
                connected = {
                    c.principal.name for c in cloud.broker.connections if c.principal is not None
                }
                assert "outlet-2" in connected
            finally:
                await asyncio.to_thread(send_command, home.device("sc-2"), {"cmd": "stop"})
                await asyncio.wait_for(task, 10)

    asyncio.run(scenario())


def test_mfg_flash_checks_every_image_before_making_a_device(
    tmp_path: Path, app: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    out = tmp_path / "factory"
    (out / "bin").mkdir(parents=True)
    for n in (1, 2, 3):
        (out / "bin" / f"outlet-{n}.bin").write_bytes(b"\xff" * (0x6000 if n != 3 else 0x3000))
    assert main(["mfg", "flash", str(out), "--devices", "x-{n}", "--app", str(app)]) == 2
    assert "outlet-3.bin: 12288 bytes" in capsys.readouterr().err
    assert JumpstartHome().device_names() == []  # nothing made
