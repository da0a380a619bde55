"""Secure boot and anti-rollback seen from the cloud: a secured outlet takes a signed release
with a higher secure version, and refuses an unsigned one, one signed with another key, one with
a flipped byte and one with a lower secure version before it switches, each with its reason in
the shadow's reported ``ota_status``; it keeps running the release it had."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from jumpstart.cli import main
from jumpstart.cloud.admin import operator_credentials, shadow_request
from jumpstart.cloud.firmware import FirmwareStore, firmware_url
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.service import CloudService
from jumpstart.formats.bootloader_image import BOOTLOADER_OFFSET
from jumpstart.host.app_build import load_app_package
from jumpstart.host.device_control import send_command
from jumpstart.host.device_home import JumpstartHome
from jumpstart.host.device_runner import run_device
from jumpstart.host.image_tools import bootloader_build, image_build, image_sign
from jumpstart.idf.radio import RadioWorld
from tests.cloud_device import HOME_AP, running_cloud, wait_until
from tests.host.mfg.factory_helpers import (
    FCTRY,
    WAIT_S,
    Console,
    manufacture_one,
    provision_home_ap,
)
from tests.idf.device_helpers import APPS

WHEN = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
KEYS = [rsa.generate_private_key(public_exponent=65537, key_size=3072) for _ in range(2)]


def release(version: str, secure_version: int, key: int | None = 0) -> bytes:
    package = dataclasses.replace(load_app_package(APPS / "outlet"), version=version)
    image = image_build(
        package.name, version, package.to_bytes(), when=WHEN, secure_version=secure_version
    )
    return image_sign(image, KEYS[key]) if key is not None else image


def flipped(image: bytes) -> bytes:
    data = bytearray(image)
    data[0x400] ^= 0x01
    return bytes(data)


async def ota(cloud: CloudService, home: CloudHome, image: bytes, name: str) -> None:
    hosted = FirmwareStore(home).upload(image, name, check=False)
    url = firmware_url("localhost", cloud.firmware_port, hosted.name)
    body = json.dumps({"state": {"desired": {"ota_url": url}}}).encode()
    response = await asyncio.to_thread(
        shadow_request, home, "POST", "outlet-1", "", body, cloud.rest_port
    )
    assert response.status == 200


async def reported_status(cloud: CloudService, home: CloudHome) -> str:
    response = await asyncio.to_thread(
        shadow_request, home, "GET", "outlet-1", "", b"", cloud.rest_port
    )
    return str(response.document["state"]["reported"].get("ota_status", ""))


def test_secured_outlet_over_the_air(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    out, app, loader = tmp_path / "factory", tmp_path / "outlet.bin", tmp_path / "bl.bin"
    app.write_bytes(release("1.0.0", 1))
    loader.write_bytes(bootloader_build(when=WHEN, sign_key=KEYS[0]))
    world, home = RadioWorld(None, [HOME_AP]), JumpstartHome()
    cloud_home = CloudHome(tmp_path / "home" / "cloud")
    refusals = {
        # The slot may still hold an older release's signature sector after the new image
        # (esp_ota erases only what it writes): refused either way, by secure boot.
        "unsigned": (release("3.0.0", 3, key=None), "secure boot"),
        "other key": (release("3.0.0", 3, key=1), "not trusted"),
        "flipped byte": (flipped(release("3.0.0", 3)), "mismatch"),
        "lower secure_version": (release("1.5.0", 1), "anti-rollback"),
    }

    async def scenario() -> None:
        async with running_cloud(cloud_home) as cloud:
            operator_credentials(cloud_home)
            pop = (await manufacture_one(out, cloud.mqtt_port))["pop"]
            assert main(["device", "create", "dev"]) == 0
            fctry = str(out / "bin" / "outlet-1.bin")
            flash = ["idf", "flash", "--device", "dev", str(app), hex(FCTRY), fctry]
            assert main([*flash, hex(BOOTLOADER_OFFSET), str(loader)]) == 0
            assert main(["security", "enable", "--device", "dev", "--secure-boot"]) == 0
            console = Console()
            task = asyncio.create_task(run_device(home.device("dev"), console, world=world))
            try:
                await wait_until(lambda: console.logged("QR payload"), WAIT_S)
                assert console.logged("Secure boot permanently enabled")
                assert await asyncio.to_thread(provision_home_ap, world, console.qr()["name"], pop)
                await wait_until(lambda: console.logged("Shadow in sync"), WAIT_S)
                await ota(cloud, cloud_home, release("2.0.0", 2), "good.bin")
                await wait_until(lambda: console.logged("Firmware 2.0.0 confirmed"), 60)
                for name, (image, reason) in refusals.items():
                    failures = sum("OTA failed" in line for line in console.lines)
                    await ota(cloud, cloud_home, image, f"{name.replace(' ', '_')}.bin")
                    await wait_until(
                        lambda n=failures: sum("OTA failed" in x for x in console.lines) > n, 60
                    )
                    status = await reported_status(cloud, cloud_home)
                    assert status.startswith("failed: "), (name, status)
                    assert reason in status, (name, status)
                assert sum("OTA rebooting" in x for x in console.lines) == 1  # the good one
                versions = [x for x in console.lines if "App version:" in x]
                assert versions[-1].endswith("2.0.0")
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(send_command, home.device("dev"), {"cmd": "stop"})
                await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
