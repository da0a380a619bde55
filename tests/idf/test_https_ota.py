"""esp_https_ota against the cloud's firmware server: success, and every refusal."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from jumpstart.cloud.firmware import FirmwareStore, firmware_url
from jumpstart.cloud.home import CloudHome
from jumpstart.formats.app_image import ChipId
from jumpstart.formats.otadata import OtaImgState
from jumpstart.idf.esp_err import EspErr, EspError
from jumpstart.idf.https_ota import HttpsOtaConfig, https_ota
from jumpstart.targets import ChipProfile
from tests.idf.device_helpers import CHIP_PROFILES, app_image
from tests.idf.https_ota_helpers import cutting_proxy, firmware_server
from tests.idf.ota_helpers import Board, board_on_ota_0, flip_byte, for_chip, padded_app


def run_ota(board: Board, url: str, ca: Path, **options: int) -> Awaitable[object]:
    config = HttpsOtaConfig(url=url, cert_pem=ca.read_bytes(), **options)  # type: ignore[arg-type]
    return https_ota(board.ota, config, board.log)


def assert_still_on_old_app(board: Board, before: object) -> None:
    assert board.entries() == before
    board.boot()
    assert board.app == "drivers"


@CHIP_PROFILES
def test_download_into_the_passive_slot_then_boot_it(tmp_path: Path, chip: ChipProfile) -> None:
    home = CloudHome(tmp_path / "cloud")
    board = board_on_ota_0(chip=chip)
    progress: list[tuple[int, int | None]] = []

    async def main() -> None:
        async with firmware_server(home) as port:
            hosted = FirmwareStore(home).upload(app_image("1_hello_world", chip))
            config = HttpsOtaConfig(
                url=firmware_url("localhost", port, hosted.name),
                cert_pem=home.ca_pem.read_bytes(),
            )
            await https_ota(board.ota, config, board.log, lambda n, t: progress.append((n, t)))

    asyncio.run(main())
    size = len(app_image("1_hello_world", chip))
    assert progress[-1][1] == size
    assert [n for n, _ in progress] == sorted(n for n, _ in progress)
    # ESP32: NEW until it confirms itself; ESP8266_RTOS_SDK's otadata has no state.
    new = OtaImgState.NEW if chip.app_rollback else OtaImgState.UNDEFINED
    assert board.entries()[1].state == new
    board.boot()
    assert board.app == "hello_world"


async def _refused(
    board: Board, attempt: Callable[[], Awaitable[object]], code: EspErr | None = None
) -> str:
    with pytest.raises(EspError) as refused:
        await attempt()
    if code is not None:
        assert refused.value.code is code
    return refused.value.detail


def test_server_certificate_from_another_ca_is_refused(tmp_path: Path) -> None:
    ours, theirs = CloudHome(tmp_path / "ours"), CloudHome(tmp_path / "theirs")
    ours.ensure()
    board = board_on_ota_0()
    before = board.entries()

    async def main() -> str:
        async with firmware_server(theirs) as port:
            name = FirmwareStore(theirs).upload(app_image("1_hello_world")).name
            url = firmware_url("localhost", port, name)
            return await _refused(board, lambda: run_ota(board, url, ours.ca_pem))

    assert "server certificate not trusted" in asyncio.run(main())
    assert_still_on_old_app(board, before)


def test_connection_dropped_mid_download_is_refused(tmp_path: Path) -> None:
    home = CloudHome(tmp_path / "cloud")
    board = board_on_ota_0()
    before = board.entries()
    image = padded_app("big", 200_000)

    async def main() -> str:
        async with firmware_server(home) as port, cutting_proxy(port, 100_000) as proxy:
            name = FirmwareStore(home).upload(image).name
            url = firmware_url("localhost", proxy, name)
            return await _refused(board, lambda: run_ota(board, url, home.ca_pem))

    detail = asyncio.run(main())
    assert "download interrupted after" in detail
    assert f"of {len(image)} bytes" in detail
    assert_still_on_old_app(board, before)


@pytest.mark.parametrize(
    ("image", "code", "reason"),
    [
        (flip_byte(app_image("1_hello_world")), EspErr.ESP_ERR_OTA_VALIDATE_FAILED, "mismatch"),
        (
            for_chip(app_image("1_hello_world"), ChipId.ESP32C3),
            EspErr.ESP_ERR_INVALID_VERSION,
            "chip id 0x0005",
        ),
        (padded_app("huge", 1700 * 1024), EspErr.ESP_ERR_INVALID_SIZE, "image too large"),
        (b"<html>404</html>", EspErr.ESP_ERR_OTA_VALIDATE_FAILED, "magic byte"),
    ],
    ids=["flipped-byte", "other-chip", "too-large", "not-an-image"],
)
def test_bad_images_are_refused_and_the_old_app_stays(
    tmp_path: Path, image: bytes, code: EspErr, reason: str
) -> None:
    home = CloudHome(tmp_path / "cloud")
    board = board_on_ota_0()
    before = board.entries()

    async def main() -> str:
        async with firmware_server(home) as port:
            name = FirmwareStore(home).upload(image, "bad.bin", check=False).name
            url = firmware_url("localhost", port, name)
            return await _refused(board, lambda: run_ota(board, url, home.ca_pem), code)

    assert reason in asyncio.run(main())
    assert_still_on_old_app(board, before)


def test_missing_image_reports_the_http_status(tmp_path: Path) -> None:
    home = CloudHome(tmp_path / "cloud")
    board = board_on_ota_0()

    async def main() -> str:
        async with firmware_server(home) as port:
            url = firmware_url("localhost", port, "nothing.bin")
            return await _refused(board, lambda: run_ota(board, url, home.ca_pem))

    assert "HTTP 404" in asyncio.run(main())


def test_unreachable_server_and_plain_http_are_refused(tmp_path: Path) -> None:
    home = CloudHome(tmp_path / "cloud")
    home.ensure()
    board = board_on_ota_0()

    async def main() -> tuple[str, str]:
        closed = await _refused(
            board, lambda: run_ota(board, "https://127.0.0.1:9/x.bin", home.ca_pem)
        )
        plain = await _refused(
            board,
            lambda: run_ota(board, "http://localhost/x.bin", home.ca_pem),
            EspErr.ESP_ERR_INVALID_ARG,
        )
        return closed, plain

    closed, plain = asyncio.run(main())
    assert "cannot reach 127.0.0.1:9" in closed
    assert "not an https:// URL" in plain
