"""Secure Boot V2 and anti-rollback on a device: what the first boot burns, which apps the
bootloader runs, and which images esp_ota refuses before it switches otadata."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from jumpstart.formats.bootloader_image import BOOTLOADER_OFFSET
from jumpstart.formats.otadata import OtaImgState, OtaSelectEntry, otadata_image, parse_otadata
from jumpstart.formats.secure_boot import key_digest
from jumpstart.host.app_build import load_app_package
from jumpstart.host.image_tools import bootloader_build, image_build, image_sign
from jumpstart.idf.device import Device, DeviceState
from jumpstart.idf.efuse import VirtualEfuse, random_mac
from jumpstart.idf.esp_err import EspError
from jumpstart.idf.flash import MemoryFlash
from jumpstart.idf.log import EspLog
from jumpstart.idf.ota import OTA_SIZE_UNKNOWN, EspOta
from jumpstart.idf.partition import EspPartition, PartitionMap
from jumpstart.idf.security import SecurityConfig, update_secure_version
from tests.cloud_device import wait_until
from tests.idf.device_helpers import APPS, OTA_0, OTA_1, OTADATA, outlet_flash

WHEN = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
SECURE = SecurityConfig(secure_boot=True)


@functools.cache
def signing_key(n: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


@functools.cache
def app(name: str, version: str = "1.0.0", secure_version: int = 0) -> bytes:
    package = load_app_package(APPS / name)
    return image_build(
        package.name, version, package.to_bytes(), when=WHEN, secure_version=secure_version
    )


def secure_flash(key: int = 0, **images: bytes) -> MemoryFlash:
    """The outlet layout with a bootloader signed by ``key`` (secure boot takes the digest
    from the bootloader's signature) and the given app images."""
    flash = outlet_flash(**images)
    flash.erase_range(BOOTLOADER_OFFSET, 0x7000)
    flash.write(BOOTLOADER_OFFSET, bootloader_build(when=WHEN, sign_key=signing_key(key)))
    return flash


def signed(image: bytes, key: int = 0) -> bytes:
    return image_sign(image, signing_key(key))


def flipped(image: bytes) -> bytes:
    data = bytearray(image)
    data[0x300] ^= 0x01
    return bytes(data)


def variants() -> dict[str, bytes]:
    """The four images secure boot and anti-rollback must not run."""
    return {
        "unsigned": app("1_hello_world"),
        "other key": signed(app("1_hello_world"), key=1),
        "flipped byte": flipped(signed(app("1_hello_world"))),
        "lower secure_version": signed(app("1_hello_world", secure_version=1)),
    }


class Console(list[str]):
    def seen(self, text: str) -> bool:
        return any(text in line for line in self)


def boot(flash: MemoryFlash, efuse: VirtualEfuse, until: str) -> tuple[DeviceState, Console]:
    """Boot until the console shows ``until``; the device's state then, and its console."""
    console = Console()
    device = Device("dev", flash, efuse, console=console.append, security=SECURE)

    async def main() -> DeviceState:
        task = asyncio.create_task(device.run())
        try:
            await wait_until(lambda: console.seen(until), 10, until)
            await asyncio.sleep(0)
            return device.state
        finally:
            await device.stop()
            await asyncio.wait_for(task, 10)

    return asyncio.run(main()), console


def secured_efuse() -> VirtualEfuse:
    """eFuses after a first boot of a signed app: digest of key 0, ABS_DONE_1, version 2."""
    efuse = VirtualEfuse(random_mac())
    boot(secure_flash(ota_0=signed(app("2_drivers"))), efuse, "Starting scheduler")
    update_secure_version(efuse, 2)
    return efuse


def test_first_boot_burns_the_digest_of_the_signing_key() -> None:
    efuse = VirtualEfuse(random_mac())
    _, console = boot(secure_flash(ota_0=signed(app("2_drivers"))), efuse, "Starting scheduler")
    assert console.seen("Burning public key hash to eFuse")
    assert console.seen("Secure boot permanently enabled")
    assert efuse.secure_boot_key_digests == [key_digest(signing_key(0).public_key())]
    assert efuse.read_field_bit("ABS_DONE_1")
    assert efuse.image.write_protected("BLOCK2")
    assert efuse.read_field_bit("JTAG_DISABLE")


def test_first_boot_of_an_unsigned_app_burns_nothing_and_does_not_run() -> None:
    efuse = VirtualEfuse(random_mac())
    state, console = boot(secure_flash(ota_0=app("2_drivers")), efuse, "No app to run")
    assert state is DeviceState.HALTED
    assert console.seen("No valid applications signature blocks found.")
    assert not efuse.secure_boot_key_digests
    assert not efuse.read_field_bit("ABS_DONE_1")


def test_a_pre_burned_digest_is_used_as_it_is() -> None:
    efuse = VirtualEfuse(random_mac())
    efuse.burn_secure_boot_digest(key_digest(signing_key(1).public_key()))
    _, console = boot(secure_flash(ota_0=signed(app("2_drivers"))), efuse, "No app to run")
    # Signed with key 0, the burned digest is key 1's: this app never runs.
    assert not efuse.read_field_bit("ABS_DONE_1")
    assert not console.seen("Starting scheduler")
    _, console = boot(
        secure_flash(key=1, ota_0=signed(app("2_drivers"), key=1)), efuse, "Starting scheduler"
    )
    assert console.seen("Using pre-loaded public key digest in eFuse")
    assert efuse.read_field_bit("ABS_DONE_1")


@pytest.mark.parametrize(
    "variant", ["unsigned", "other key", "flipped byte", "lower secure_version"]
)
def test_the_bootloader_skips_what_must_not_run_and_falls_back(variant: str) -> None:
    efuse = secured_efuse()
    good = signed(app("2_drivers", secure_version=2))
    flash = secure_flash(ota_0=good, ota_1=variants()[variant])
    flash.erase_range(OTADATA, 0x2000)
    flash.write(OTADATA, otadata_image(OtaSelectEntry.new(2, OtaImgState.VALID), None))
    _, console = boot(flash, efuse, "Starting scheduler")
    assert console.seen(f"Image at 0x{OTA_1:x} (ota_1) is not bootable")
    assert console.seen(f"Loaded app from partition at offset 0x{OTA_0:x}")
    assert not console.seen("Project name:     hello_world")


def install(ota: EspOta, target: EspPartition, image: bytes) -> None:
    """What esp_https_ota does with a downloaded image: write, end, switch."""
    handle = ota.begin(target, OTA_SIZE_UNKNOWN)
    handle.write(image)
    verified = handle.end()
    ota.set_boot_partition(verified.partition)


@pytest.mark.parametrize(
    "variant", ["unsigned", "other key", "flipped byte", "lower secure_version"]
)
def test_ota_refuses_before_the_switch(variant: str) -> None:
    efuse = secured_efuse()
    flash = secure_flash(ota_0=signed(app("2_drivers", secure_version=2)))
    flash.erase_range(OTADATA, 0x2000)
    flash.write(OTADATA, otadata_image(OtaSelectEntry.new(1, OtaImgState.VALID), None))
    parts = PartitionMap.load(flash)
    lines: list[str] = []
    log = EspLog(lambda: 0, lines.append)
    running = parts.find(label="ota_0")[0]
    ota = EspOta(
        parts,
        running,
        log,
        lambda: None,
        trusted_key_digests=efuse.secure_boot_key_digests,
        efuse=efuse,
        anti_rollback=True,
    )
    before = flash.read(OTADATA, 0x2000)
    image = variants()[variant]
    target = ota.get_next_update_partition()
    assert target is not None
    with pytest.raises(EspError) as refused:
        install(ota, target, image)
    reason = str(refused.value)
    expected = {
        "unsigned": "signature",
        "other key": "secure boot",
        "flipped byte": "",
        "lower secure_version": "anti-rollback",
    }[variant]
    assert expected in reason
    assert flash.read(OTADATA, 0x2000) == before  # otadata untouched: the old app boots
    assert [e.ota_seq for e in parse_otadata(before)][:1] == [1]


@pytest.mark.parametrize("bootloader_key", [None, 1])
def test_the_rom_runs_only_a_bootloader_signed_with_the_burned_key(
    bootloader_key: int | None,
) -> None:
    efuse = secured_efuse()
    flash = secure_flash(ota_0=signed(app("2_drivers", secure_version=2)))
    flash.erase_range(BOOTLOADER_OFFSET, 0x7000)
    key = signing_key(bootloader_key) if bootloader_key is not None else None
    flash.write(BOOTLOADER_OFFSET, bootloader_build(when=WHEN, sign_key=key))
    state, console = boot(flash, efuse, "secure boot check fail")
    assert state is DeviceState.HALTED
    assert not console.seen("2nd stage bootloader")
    assert not console.seen("Starting scheduler")


def test_no_bootloader_no_boot() -> None:
    flash = outlet_flash(ota_0=app("2_drivers"))
    flash.erase_range(BOOTLOADER_OFFSET, 0x7000)
    state, console = boot(flash, VirtualEfuse(random_mac()), "invalid header: 0xffffffff")
    assert state is DeviceState.HALTED
    assert console.seen("jumpstart idf bootloader")
