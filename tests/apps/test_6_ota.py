"""6_ota: upgrades from the shadow's ota_url, refusals, confirmation and rollback."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from jumpstart.cloud.admin import job_create_request, rest_request
from jumpstart.cloud.firmware import FirmwareServer, FirmwareStore, firmware_url
from jumpstart.cloud.home import CloudHome
from jumpstart.formats.app_image import ChipId
from jumpstart.host.app_build import load_app_package
from jumpstart.host.image_tools import image_build
from tests.cloud_device import CloudOutlet, ThingCredentials, cloud_outlet, wait_until
from tests.idf.device_helpers import APPS, app_image
from tests.idf.https_ota_helpers import cutting_proxy
from tests.idf.ota_helpers import WHEN, app_from_source, flip_byte, for_chip, padded_app


def outlet_image(creds: ThingCredentials, port: int, version: str, **config: Any) -> bytes:
    """6_ota itself at another version (what a product team ships as its next release)."""
    package = load_app_package(APPS / "6_ota", {"mqtt_port": port, **config}, creds.cloud_cfg(port))
    package = dataclasses.replace(package, version=version)
    return image_build(package.name, version, package.to_bytes(), when=WHEN)


def host(outlet: CloudOutlet, image: bytes, name: str, *, check: bool = True) -> str:
    hosted = FirmwareStore(outlet.cloud.home).upload(image, name, check=check)
    return firmware_url("localhost", outlet.cloud.firmware_port, hosted.name)


async def ota_status(outlet: CloudOutlet) -> str:
    return str((await outlet.reported()).get("ota_status", ""))


async def start_ota(outlet: CloudOutlet, url: str) -> None:
    await outlet.rest("POST", {"state": {"desired": {"ota_url": url}}})


def test_upgrade_to_hello_world_reboots_into_it(tmp_path: Path) -> None:
    async def main() -> None:
        async with cloud_outlet(tmp_path, "6_ota") as outlet:
            url = host(outlet, app_image("1_hello_world"), "hello-world.bin")
            await start_ota(outlet, url)
            await wait_until(lambda: outlet.logged("[0] Hello world!"), 20, "hello world")
            assert outlet.device.status()["partition"] == "ota_1"
            reported = await outlet.reported()
            assert reported["ota_status"] == "rebooting"
            assert reported["ota_url"] == ""
            assert "ota_url" not in await outlet.desired()
            progress = [line for line in outlet.lines if "OTA downloading" in line]
            assert progress
            assert progress[0].endswith("downloading 0%")

    asyncio.run(main())


def test_new_release_confirms_itself_after_it_reaches_the_cloud(tmp_path: Path) -> None:
    async def main() -> None:
        async with cloud_outlet(tmp_path, "6_ota") as outlet:
            image = outlet_image(outlet.creds, outlet.cloud.mqtt_port, "2.0.0")
            await start_ota(outlet, host(outlet, image, "outlet-2.bin"))
            await wait_until(
                lambda: ota_status_is(outlet, "updated to 2.0.0"), 20, "new release confirmed"
            )
            assert (await outlet.reported())["fw_version"] == "2.0.0"
            assert outlet.device.status()["partition"] == "ota_1"
            # Confirmed: a restart keeps the new release.
            outlet.device.restart()
            await wait_until(lambda: outlet.device.boot_count == 3)
            await wait_until(lambda: outlet.device.status()["version"] == "2.0.0")

    asyncio.run(main())


async def ota_status_is(outlet: CloudOutlet, value: str) -> bool:
    return await ota_status(outlet) == value


async def ota_failed(outlet: CloudOutlet) -> bool:
    return (await ota_status(outlet)).startswith("failed: ")


async def assert_still_old_app(outlet: CloudOutlet) -> None:
    assert outlet.device.status()["partition"] == "ota_0"
    assert outlet.device.status()["version"] == "1.0.0"
    assert "ota_url" not in await outlet.desired()  # no retry at every reconnect
    await outlet.press()  # and it still works
    assert outlet.relay == 1


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: flip_byte(app_image("1_hello_world")), "mismatch"),
        (lambda: for_chip(app_image("1_hello_world"), ChipId.ESP32S3), "chip id 0x0009"),
        (lambda: padded_app("huge", 1700 * 1024), "image too large"),
    ],
    ids=["flipped-byte", "other-chip", "too-large"],
)
def test_bad_images_are_refused_and_reported(tmp_path: Path, make: Any, reason: str) -> None:
    async def main() -> str:
        async with cloud_outlet(tmp_path, "6_ota") as outlet:
            await start_ota(outlet, host(outlet, make(), "bad.bin", check=False))
            await wait_until(lambda: ota_failed(outlet), 20, "failure reported")
            await assert_still_old_app(outlet)
            return await ota_status(outlet)

    assert reason in asyncio.run(main())


def test_server_from_another_ca_is_refused(tmp_path: Path) -> None:
    async def main() -> str:
        async with cloud_outlet(tmp_path, "6_ota") as outlet:
            other = CloudHome(tmp_path / "other")
            other.ensure()
            server = FirmwareServer(other)
            port = await server.start("127.0.0.1", 0)
            try:
                FirmwareStore(other).upload(app_image("1_hello_world"), "hello.bin")
                await start_ota(outlet, firmware_url("localhost", port, "hello.bin"))
                await wait_until(lambda: ota_failed(outlet), 20, "failure reported")
            finally:
                await server.close()
            await assert_still_old_app(outlet)
            return await ota_status(outlet)

    assert "server certificate not trusted" in asyncio.run(main())


def test_connection_dropped_mid_download_is_refused(tmp_path: Path) -> None:
    async def main() -> str:
        async with cloud_outlet(tmp_path, "6_ota") as outlet:
            url = host(outlet, padded_app("big", 300_000), "big.bin")
            port = outlet.cloud.firmware_port
            async with cutting_proxy(port, 150_000) as proxy:
                await start_ota(outlet, url.replace(f":{port}/", f":{proxy}/"))
                await wait_until(lambda: ota_failed(outlet), 20, "failure reported")
            await assert_still_old_app(outlet)
            return await ota_status(outlet)

    assert "download interrupted after" in asyncio.run(main())


def test_app_that_crashes_at_start_is_rolled_back(tmp_path: Path) -> None:
    crasher = app_from_source("crasher", "def app_main(ctx):\n    raise RuntimeError('boom')\n")

    async def main() -> None:
        async with cloud_outlet(tmp_path, "6_ota") as outlet:
            await start_ota(outlet, host(outlet, crasher, "crasher.bin"))
            await wait_until(lambda: outlet.logged("RuntimeError in"), 20, "the crash")
            await wait_until(
                lambda: ota_status_is(outlet, "rolled back: crasher 1.0.0 did not confirm itself"),
                20,
                "rollback reported by the previous app",
            )
            assert outlet.device.status()["partition"] == "ota_0"
            assert outlet.logged("app never confirmed itself, marked aborted")

    asyncio.run(main())


def test_release_that_never_reaches_the_cloud_rolls_back_after_its_window(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with cloud_outlet(tmp_path, "6_ota") as outlet:
            # Version 2 points at a port where no cloud listens: it can never confirm.
            image = outlet_image(outlet.creds, 1, "2.0.0", ota_confirm_s=2)
            await start_ota(outlet, host(outlet, image, "lost.bin"))
            await wait_until(lambda: outlet.logged("No cloud within 2 s"), 30, "window expiry")
            await wait_until(
                lambda: ota_status_is(outlet, "rolled back: ota 2.0.0 did not confirm itself"),
                20,
                "rollback reported",
            )
            assert outlet.device.status()["version"] == "1.0.0"

    asyncio.run(main())


async def create_job(outlet: CloudOutlet, job_id: str, document: dict[str, Any]) -> None:
    response = await asyncio.to_thread(
        job_create_request,
        outlet.cloud.home,
        job_id,
        json.dumps(document),
        [outlet.creds.thing],
        False,
        "",
        outlet.cloud.rest_port,
    )
    assert response.status == 200, response.document


async def execution(outlet: CloudOutlet, job_id: str) -> dict[str, Any]:
    path = f"/things/{outlet.creds.thing}/jobs/{job_id}"
    response = await asyncio.to_thread(
        rest_request, outlet.cloud.home, "GET", path, b"", outlet.cloud.rest_port
    )
    return dict(response.document["execution"])


async def job_status(outlet: CloudOutlet, job_id: str, status: str) -> bool:
    return (await execution(outlet, job_id))["status"] == status


def test_ota_job_succeeds_once_the_new_release_confirms(tmp_path: Path) -> None:
    async def main() -> dict[str, Any]:
        async with cloud_outlet(tmp_path, "6_ota") as outlet:
            image = outlet_image(outlet.creds, outlet.cloud.mqtt_port, "2.0.0")
            url = host(outlet, image, "outlet-2.bin")
            await create_job(outlet, "upgrade-2", {"operation": "ota", "url": url})
            await wait_until(lambda: job_status(outlet, "upgrade-2", "SUCCEEDED"), 30)
            assert outlet.device.status()["version"] == "2.0.0"
            return await execution(outlet, "upgrade-2")

    done = asyncio.run(main())
    assert done["statusDetails"]["detailsMap"] == {"firmware": "2.0.0"}


def test_ota_job_with_a_bad_image_fails_with_the_reason(tmp_path: Path) -> None:
    async def main() -> dict[str, Any]:
        async with cloud_outlet(tmp_path, "6_ota") as outlet:
            url = host(outlet, flip_byte(app_image("1_hello_world")), "bad.bin", check=False)
            await create_job(outlet, "bad-1", {"operation": "ota", "url": url})
            await wait_until(lambda: job_status(outlet, "bad-1", "FAILED"), 30)
            await assert_still_old_app(outlet)
            await create_job(outlet, "other-1", {"operation": "reboot"})
            await wait_until(lambda: job_status(outlet, "other-1", "REJECTED"), 30)
            return await execution(outlet, "bad-1")

    assert "mismatch" in asyncio.run(main())["statusDetails"]["detailsMap"]["reason"]


def test_ota_job_whose_release_rolls_back_fails(tmp_path: Path) -> None:
    crasher = app_from_source("crasher", "def app_main(ctx):\n    raise RuntimeError('boom')\n")

    async def main() -> dict[str, Any]:
        async with cloud_outlet(tmp_path, "6_ota") as outlet:
            url = host(outlet, crasher, "crasher.bin")
            await create_job(outlet, "crash-1", {"operation": "ota", "url": url})
            await wait_until(lambda: job_status(outlet, "crash-1", "FAILED"), 30)
            assert outlet.device.status()["partition"] == "ota_0"
            return await execution(outlet, "crash-1")

    assert "rolled back" in asyncio.run(main())["statusDetails"]["detailsMap"]["reason"]
