"""The guide's chapter 9 end to end: a factory-made outlet with flash encryption (development
mode) and NVS encryption boots, provisions, reaches the cloud and takes an OTA; afterwards its
flash.bin holds none of its secrets in plaintext, and Espressif's tools recover them with the
keys: espsecure decrypts nvs_keys, esp-idf-nvs-partition-gen decrypts the NVS partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import io
import json
from pathlib import Path
from types import SimpleNamespace

import esp_idf_nvs_partition_gen.nvs_partition_gen as gen
import pytest

from jumpstart.cli import main
from jumpstart.cloud.admin import operator_credentials, shadow_request
from jumpstart.cloud.firmware import FirmwareStore, firmware_url
from jumpstart.cloud.home import CloudHome
from jumpstart.formats.nvs import NvsKeys
from jumpstart.host.app_build import load_app_package
from jumpstart.host.device_control import send_command
from jumpstart.host.device_home import JumpstartHome
from jumpstart.host.device_runner import run_device
from jumpstart.host.image_tools import image_build
from jumpstart.host.nvs_parse import parse_image
from jumpstart.idf.radio import RadioWorld
from tests.cloud_device import HOME_AP, running_cloud, wait_until
from tests.espressif_tools import espsecure_flash_data
from tests.host.mfg.factory_helpers import (
    FCTRY,
    WAIT_S,
    Console,
    manufacture_one,
    provision_home_ap,
)
from tests.idf.device_helpers import APPS

pytestmark = pytest.mark.interop
NVS_KEY_OFFSET, NVS_OFFSET, NVS_SIZE = 0x1F000, 0x9000, 0x6000
WHEN = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)


def outlet_release(version: str) -> bytes:
    package = dataclasses.replace(load_app_package(APPS / "outlet"), version=version)
    return image_build(package.name, version, package.to_bytes(), when=WHEN)


@pytest.mark.parametrize("mode", ["development", "release"])
def test_encrypted_outlet_end_to_end(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(tmp_path / "home"))
    out, app = tmp_path / "factory", tmp_path / "outlet.bin"
    app.write_bytes(outlet_release("1.0.0"))
    world = RadioWorld(None, [HOME_AP])
    home = JumpstartHome()
    cloud_home = CloudHome(tmp_path / "home" / "cloud")
    row: dict[str, str] = {}

    async def scenario() -> None:
        async with running_cloud(cloud_home) as cloud:
            operator_credentials(cloud_home)
            row.update(await manufacture_one(out, cloud.mqtt_port, "--keygen"))
            assert main(["device", "create", "dev"]) == 0
            fctry, keys = out / "bin" / "outlet-1.bin", out / "keys" / "keys-outlet-1.bin"
            flash = ["idf", "flash", "--device", "dev", str(app), hex(FCTRY), str(fctry)]
            assert main([*flash, hex(NVS_KEY_OFFSET), str(keys)]) == 0
            enable = ["security", "enable", "--device", "dev", "--flash-encryption", mode]
            assert main(enable) == 0
            hosted = FirmwareStore(cloud_home).upload(outlet_release("2.0.0"), "outlet-2.bin")
            url = firmware_url("localhost", cloud.firmware_port, hosted.name)
            console = Console()
            task = asyncio.create_task(run_device(home.device("dev"), console, world=world))
            try:
                await wait_until(lambda: console.logged("QR payload"), WAIT_S)
                assert console.logged("Resetting with flash encryption enabled...")
                assert console.logged('NVS partition "nvs" is encrypted.')
                assert console.logged(f"Flash encryption mode is {mode.upper()}")
                assert console.qr()["pop"] == row["pop"]  # read from the encrypted fctry
                name = console.qr()["name"]
                assert await asyncio.to_thread(provision_home_ap, world, name, row["pop"])
                await wait_until(lambda: console.logged("Shadow in sync"), WAIT_S)
                body = json.dumps({"state": {"desired": {"ota_url": url}}}).encode()
                response = await asyncio.to_thread(
                    shadow_request, cloud_home, "POST", "outlet-1", "", body, cloud.rest_port
                )
                assert response.status == 200
                await wait_until(lambda: console.logged("Firmware 2.0.0 confirmed"), 60)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(send_command, home.device("dev"), {"cmd": "stop"})
                await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    check_flash(home, tmp_path, row, app.read_bytes())


def check_flash(home: JumpstartHome, tmp_path: Path, row: dict[str, str], app: bytes) -> None:
    """No secret in plaintext; with the keys, Espressif's tools get the credentials back."""
    folder = home.device("dev")
    raw = folder.flash_path.read_bytes()
    secrets = {
        "PoP": row["pop"].encode(),
        "device key": Path(row["device_key"]).read_text().splitlines()[1].encode(),
        "device certificate": Path(row["device_cert"]).read_text().splitlines()[1].encode(),
        "Wi-Fi passphrase": HOME_AP.password.encode(),
        "app description 1.0.0": app[0x30:0x70],
        "app description 2.0.0": outlet_release("2.0.0")[0x30:0x70],
    }
    for what, secret in secrets.items():
        assert secret not in raw, f"{what} is in flash.bin in plaintext"

    # With the keys: espsecure decrypts nvs_keys, the NVS generator decrypts the partition.
    key = folder.efuse().flash_encryption_key()
    assert key is not None
    sector = espsecure_flash_data(tmp_path, "decrypt", key, NVS_KEY_OFFSET, raw[0x1F000:0x20000])
    nvs_keys = NvsKeys.from_bytes(sector)
    (tmp_path / "nvs.bin").write_bytes(raw[NVS_OFFSET : NVS_OFFSET + NVS_SIZE])
    (tmp_path / "nvs_keys.bin").write_bytes(nvs_keys.to_bytes())
    decrypt = SimpleNamespace(
        input=str(tmp_path / "nvs.bin"),
        key=str(tmp_path / "nvs_keys.bin"),
        output="nvs_plain.bin",
        outdir=str(tmp_path),
    )
    with contextlib.redirect_stdout(io.StringIO()):
        gen.decrypt(decrypt)
    plain = (tmp_path / "nvs_plain.bin").read_bytes()
    stored = [
        v if isinstance(v, bytes) else str(v).encode() for v in parse_image(plain).values().values()
    ]
    assert any(HOME_AP.password.encode() in value for value in stored)
