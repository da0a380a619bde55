"""Boot, run and restart a device with the guide's apps on in-memory flash."""

from __future__ import annotations

import asyncio

from jumpstart.formats.otadata import OtaImgState, OtaSelectEntry, otadata_image, parse_otadata
from jumpstart.idf.device import Device, DeviceState
from jumpstart.targets import ChipProfile
from tests.idf.device_helpers import (
    CHIP_PROFILES,
    app_image,
    make_device,
    outlet_flash,
    partition_offset,
)

RESTARTED = {"esp32": "rst:0xc (SW_CPU_RESET)", "esp8266": "rst cause:2, boot mode:(3,6)"}


async def press(device: Device, hold: float = 0.1) -> None:
    device.gpio.drive(0, 0)
    await asyncio.sleep(hold)
    device.gpio.drive(0, None)


async def started(device: Device) -> asyncio.Task[None]:
    task = asyncio.create_task(device.run())
    await asyncio.sleep(0.05)
    return task


@CHIP_PROFILES
def test_button_toggles_the_output_and_restart_boots_again(chip: ChipProfile) -> None:
    flash = outlet_flash(chip, ota_0=app_image("2_drivers", chip))
    device, lines = make_device(flash, chip=chip)

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
    assert any(RESTARTED[chip.name] in line for line in lines)
    assert any(line.endswith("app_driver: Output on") for line in lines)


@CHIP_PROFILES
def test_corrupt_selected_slot_falls_back_to_ota_0(chip: ChipProfile) -> None:
    good = app_image("2_drivers", chip)
    bad = bytearray(app_image("1_hello_world", chip))
    bad[0x200] ^= 0x01
    flash = outlet_flash(chip, ota_0=good, ota_1=bytes(bad))
    otadata = partition_offset("otadata", chip)
    flash.erase_range(otadata, 0x2000)
    flash.write(otadata, otadata_image(OtaSelectEntry.new(2, OtaImgState.VALID), None))
    device, lines = make_device(flash, chip=chip)

    async def main() -> None:
        task = await started(device)
        assert device.status()["partition"] == "ota_0"
        assert device.status()["app"] == "drivers"
        await device.stop()
        await task

    asyncio.run(main())
    errors = [line for line in lines if line.startswith("E (")]
    ota_1 = partition_offset("ota_1", chip)
    assert any(f"0x{ota_1:x} (ota_1) is not bootable" in line for line in errors)


@CHIP_PROFILES
def test_erased_otadata_boots_ota_0_and_records_it(chip: ChipProfile) -> None:
    images = {"ota_0": app_image("1_hello_world", chip), "ota_1": app_image("2_drivers", chip)}
    flash = outlet_flash(chip, **images)
    device, lines = make_device(flash, chip=chip)

    async def main() -> None:
        task = await started(device)
        assert device.status()["partition"] == "ota_0"
        await device.stop()
        await task

    asyncio.run(main())
    first, second = parse_otadata(flash.read(partition_offset("otadata", chip), 0x2000))
    state = OtaImgState.VALID if chip.app_rollback else OtaImgState.UNDEFINED  # SDK: none
    assert (first.ota_seq, first.state, second.ota_seq) == (1, state, 0xFFFFFFFF)
    assert "[0] Hello world!" in lines


@CHIP_PROFILES
def test_no_valid_image_halts_with_an_error_and_never_runs_code(chip: ChipProfile) -> None:
    bad = bytearray(app_image("2_drivers", chip))
    bad[-40] ^= 0xFF
    device, lines = make_device(outlet_flash(chip, ota_0=bytes(bad)), chip=chip)

    async def main() -> None:
        task = await started(device)
        assert device.state is DeviceState.HALTED
        assert device.gpio.outputs() == {}
        await device.stop()
        await task

    asyncio.run(main())
    assert any("No app to run" in line for line in lines)


@CHIP_PROFILES
def test_a_crashing_app_reboots_after_the_panic_delay(chip: ChipProfile) -> None:
    device, lines = make_device(outlet_flash(chip, ota_1=app_image("2_drivers", chip)), chip=chip)

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
    assert any(RESTARTED[chip.name] in line for line in lines)


async def _fail() -> None:
    await asyncio.sleep(0.01)
    raise RuntimeError("boom")
