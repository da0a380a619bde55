"""The outlet on ESP8266 (guide "For ESP8266 users"): a 2 MB device with ESP8266_RTOS_SDK's
image format and layout boots, provisions over SoftAP with Security 1, reaches the cloud,
switches its relay from the shadow and takes an OTA; its console shows the SDK's boot lines.
What the chip lacks (Bluetooth, secure boot, flash encryption) is refused with one line."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from jumpstart.cli import main
from jumpstart.cloud.admin import operator_credentials, shadow_request
from jumpstart.cloud.firmware import FirmwareStore, firmware_url
from jumpstart.cloud.home import CloudHome
from jumpstart.host.app_build import load_app_package
from jumpstart.host.device_control import send_command
from jumpstart.host.device_home import JumpstartHome
from jumpstart.host.device_runner import run_device
from jumpstart.host.image_tools import image_build
from jumpstart.idf.radio import RadioWorld
from jumpstart.targets import ESP8266
from tests.cloud_device import HOME_AP, running_cloud, wait_until
from tests.host.mfg.factory_helpers import WAIT_S, Console, manufacture_one, provision_home_ap
from tests.idf.device_helpers import APPS

WHEN = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
FCTRY = 0x1D5000  # the ESP8266 outlet layout's factory partition


def release(version: str) -> bytes:
    package = dataclasses.replace(load_app_package(APPS / "outlet"), version=version)
    return image_build(package.name, version, package.to_bytes(), when=WHEN, chip=ESP8266)


async def shadow(cloud_home: CloudHome, port: int, method: str, body: bytes = b"") -> dict:  # type: ignore[type-arg]
    response = await asyncio.to_thread(
        shadow_request, cloud_home, method, "outlet-1", "", body, port
    )
    assert response.status == 200, response.document
    return response.document


def test_esp8266_outlet_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    out, app = tmp_path / "factory", tmp_path / "outlet.bin"
    app.write_bytes(release("1.0.0"))
    world, home = RadioWorld(None, [HOME_AP]), JumpstartHome()
    cloud_home = CloudHome(tmp_path / "home" / "cloud")

    async def scenario() -> None:
        async with running_cloud(cloud_home) as cloud:
            operator_credentials(cloud_home)
            pop = (await manufacture_one(out, cloud.mqtt_port))["pop"]
            assert main(["device", "create", "e8", "--chip", "esp8266"]) == 0
            fctry = str(out / "bin" / "outlet-1.bin")
            assert main(["idf", "flash", "--device", "e8", str(app), hex(FCTRY), fctry]) == 0
            hosted = FirmwareStore(cloud_home).upload(release("2.0.0"), "outlet-2.bin")
            url = firmware_url("localhost", cloud.firmware_port, hosted.name)
            console = Console()
            folder = home.device("e8")
            task = asyncio.create_task(run_device(folder, console, world=world))
            try:
                await wait_until(lambda: console.logged("QR payload"), WAIT_S)
                assert console.logged("ets Jan  8 2013,rst cause:1, boot mode:(3,6)")
                assert console.logged("ESP-IDF v3.4 2nd stage bootloader")
                assert console.qr()["transport"] == "softap"
                assert await asyncio.to_thread(provision_home_ap, world, console.qr()["name"], pop)
                await wait_until(lambda: console.logged("Shadow in sync"), WAIT_S)
                on = json.dumps({"state": {"desired": {"output": True}}}).encode()
                await shadow(cloud_home, cloud.rest_port, "POST", on)
                await wait_until(
                    lambda: console.logged("app_driver: Output on"), WAIT_S
                )  # the relay
                body = json.dumps({"state": {"desired": {"ota_url": url}}}).encode()
                await shadow(cloud_home, cloud.rest_port, "POST", body)
                # ESP8266_RTOS_SDK has no app rollback: the new release runs, nothing to confirm.
                await wait_until(lambda: console.logged("App version:      2.0.0"), 60)
                booted = next(
                    n for n, x in enumerate(console.lines) if "App version:      2.0.0" in x
                )
                await wait_until(
                    lambda: any("Shadow in sync" in x for x in console.lines[booted:]), WAIT_S
                )
                document = await shadow(cloud_home, cloud.rest_port, "GET")
                assert document["state"]["reported"]["fw_version"] == "2.0.0"
                assert document["state"]["reported"]["output"] is True  # kept over the OTA
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(send_command, folder, {"cmd": "stop"})
                await asyncio.wait_for(task, 10)

    asyncio.run(scenario())


def test_what_esp8266_lacks_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    assert main(["device", "create", "e8", "--chip", "esp8266"]) == 0
    mac = JumpstartHome().device("e8").efuse().mac
    service = f"PROV_{mac[3]:02X}{mac[4]:02X}{mac[5]:02X}"
    app = str(APPS / "4_network_config")
    cases = {
        "Bluetooth": [
            "idf",
            "build",
            app,
            "-o",
            str(tmp_path / "x.bin"),
            "--chip",
            "esp8266",
            "--set",
            "prov_transport=ble",
        ],
        "secure boot": ["security", "enable", "--device", "e8", "--secure-boot"],
        "eFuse commands are the ESP32's": ["efuse", "summary", "--device", "e8"],
        "no Bluetooth": [
            "prov",
            "--transport",
            "ble",
            "--service_name",
            service,
            "--sec_ver",
            "1",
            "--pop",
            "abcd1234",
            "--ssid",
            "x",
            "--passphrase",
            "12345678",
        ],
        "flash encryption": [
            "security",
            "enable",
            "--device",
            "e8",
            "--flash-encryption",
            "development",
        ],
        "does not support": [
            "idf",
            "bootloader",
            "-o",
            str(tmp_path / "b.bin"),
            "--chip",
            "esp8266",
            "--sign",
            str(tmp_path / "any.pem"),
        ],
    }
    for reason, args in cases.items():
        capfd.readouterr()
        assert main(args) == 2, args
        err = capfd.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith("error: ")
        assert reason in err
