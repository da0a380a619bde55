"""Boot, run and restart a device with the guide's apps on in-memory flash."""

from __future__ import annotations

import asyncio

from jumpstart.formats.otadata import OtaImgState, OtaSelectEntry, otadata_image, parse_otadata
from jumpstart.idf.device import Device, DeviceState
from tests.idf.device_helpers import OTADATA, app_image, make_device, outlet_flash


async def press(device: Device, hold: float = 0.1) -> None:
    device.gpio.drive(0, 0)
    await asyncio.sleep(hold)
    device.gpio.drive(0, None)


async def started(device: Device) -> asyncio.Task[None]:
    task = asyncio.create_task(device.run())
    await asyncio.sleep(0.05)
    return task


def test_button_toggles_the_output_and_restart_boots_again() -> None:
    device, lines = make_device(outlet_flash(ota_0=app_image("2_drivers")))

    async def main() -> None:
        task = await started(device)
        assert device.status()["outputs"] == {"27": 0}
        await press(device)
        await asyncio.sleep(0.1)
        assert device.gpio.output_level(27) == 1
        device.restart()
        await asyncio.sleep(0.05)
        assert device.boot_count == 2
        assert device.gpio.output_level(27) == 0  # a reset drops the output
        await device.stop()
        await task

    asyncio.run(main())
    assert any("rst:0xc (SW_CPU_RESET)" in line for line in lines)
    assert any(line.endswith("app_driver: Output on") for line in lines)


def test_corrupt_selected_slot_falls_back_to_ota_0() -> None:
    good = app_image("2_drivers")
    bad = bytearray(app_image("1_hello_world"))
    bad[0x200] ^= 0x01
    flash = outlet_flash(ota_0=good, ota_1=bytes(bad))
    flash.erase_range(OTADATA, 0x2000)
    flash.write(OTADATA, otadata_image(OtaSelectEntry.new(2, OtaImgState.VALID), None))
    device, lines = make_device(flash)

    async def main() -> None:
        task = await started(device)
        assert device.status()["partition"] == "ota_0"
        assert device.status()["app"] == "drivers"
        await device.stop()
        await task

    asyncio.run(main())
    errors = [line for line in lines if line.startswith("E (")]
    assert any("0x1b0000 (ota_1) is not bootable" in line for line in errors)


def test_erased_otadata_boots_ota_0_and_records_it() -> None:
    flash = outlet_flash(ota_0=app_image("1_hello_world"), ota_1=app_image("2_drivers"))
    device, lines = make_device(flash)

    async def main() -> None:
        task = await started(device)
        assert device.status()["partition"] == "ota_0"
        await device.stop()
        await task

    asyncio.run(main())
    first, second = parse_otadata(flash.read(OTADATA, 0x2000))
    assert (first.ota_seq, first.state, second.ota_seq) == (1, OtaImgState.VALID, 0xFFFFFFFF)
    assert "[0] Hello world!" in lines


def test_no_valid_image_halts_with_an_error_and_never_runs_code() -> None:
    bad = bytearray(app_image("2_drivers"))
    bad[-40] ^= 0xFF
    device, lines = make_device(outlet_flash(ota_0=bytes(bad)))

    async def main() -> None:
        task = await started(device)
        assert device.state is DeviceState.HALTED
        assert device.gpio.outputs() == {}
        await device.stop()
        await task

    asyncio.run(main())
    assert any("No app to run" in line for line in lines)


def test_a_crashing_app_reboots_after_the_panic_delay() -> None:
    device, lines = make_device(outlet_flash(ota_1=app_image("2_drivers")))

    async def main() -> None:
        task = await started(device)
        assert device.context is not None
        device.context.create_task(_fail(), "faulty")
        await asyncio.sleep(1.2)
        assert device.boot_count == 2
        await device.stop()
        await task

    asyncio.run(main())
    assert any("Unhandled RuntimeError in task dev:faulty" in line for line in lines)
    assert any("rst:0xc (SW_CPU_RESET)" in line for line in lines)


async def _fail() -> None:
    await asyncio.sleep(0.01)
    raise RuntimeError("boom")
