"""``jumpstart device ...`` and the device side of ``jumpstart idf`` (build, flash, monitor)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives.asymmetric import rsa

from jumpstart.cli_util import command_group, parse_size
from jumpstart.errors import InputError
from jumpstart.formats.app_image import AppImage
from jumpstart.formats.partition_table import (
    DEFAULT_TABLE_OFFSET,
    MAX_TABLE_LENGTH,
    PartitionTable,
)
from jumpstart.formats.secure_boot import PrivateKey, SignatureError, verify_signed
from jumpstart.host.app_build import build_app_image
from jumpstart.host.device_control import is_running, send_command
from jumpstart.host.device_home import PARTITION_TABLE_OFFSET, DeviceFolder, JumpstartHome
from jumpstart.host.device_runner import run_device
from jumpstart.host.files import read_file, write_atomically
from jumpstart.host.flashing import boot_app_offset, ensure_bootloader, erase_otadata, table_of
from jumpstart.host.image_tools import (
    bootloader_build,
    image_sign,
    load_private_key,
    signed_image_of,
)
from jumpstart.idf.bootloader_support import ESP32_SIGNATURE_VERSIONS
from jumpstart.idf.efuse import VirtualEfuse, format_mac, parse_mac
from jumpstart.idf.esp_err import EspError
from jumpstart.idf.flash import FileFlash
from jumpstart.idf.flash_encrypt import (
    EncryptionJournal,
    FlashEncryptionMode,
    crypt_from_efuse,
    get_flash_encryption_mode,
)
from jumpstart.idf.partition import PartitionMap, is_partition_encrypted
from jumpstart.idf.radio import AccessPoint, AuthMode, RadioWorld
from jumpstart.targets import ChipProfile, chip

device_app = command_group(
    help="Virtual devices: create, run, press the button.", no_args_is_help=True
)

SECTOR = 0x1000


def _address(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise InputError(f"'{text}' is not a flash address (use 0x8000)") from None
    if value < 0:
        raise InputError(f"flash address {text} is negative")
    return value


def _epoch_time() -> dt.datetime:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)


# -- device ---------------------------------------------------------------------------------
@device_app.command("create")
def device_create(
    name: Annotated[str, typer.Argument(help="Device name (its folder under devices/)")],
    flash_size: Annotated[
        str | None, typer.Option(help="Flash size: 2MB, 4MB, 8MB, 16MB (default: the chip's)")
    ] = None,
    mac: Annotated[str | None, typer.Option(help="Base MAC (default: a unique random one)")] = None,
    chip_name: Annotated[
        str, typer.Option("--chip", help="esp32 (4 MB) or esp8266 (2 MB, ESP8266_RTOS_SDK)")
    ] = "esp32",
) -> None:
    """Make a device: erased flash with a bootloader and the guide's partition table for
    its chip, eFuse with a MAC."""
    profile = chip(chip_name)
    folder = JumpstartHome().create_device(
        name,
        flash_size=parse_size(flash_size) if flash_size else None,
        mac=parse_mac(mac) if mac else None,
        profile=profile,
    )
    print(f"created device {name} ({format_mac(folder.efuse().mac)}) in {folder.path}")
    print(f"next: jumpstart idf flash --device {name} IMAGE, then jumpstart device run {name}")


@device_app.command("list")
def device_list() -> None:
    """The devices in $JUMPSTART_HOME and whether they run."""
    home = JumpstartHome()
    for name in home.device_names():
        folder = home.device(name)
        running = is_running(folder)
        print(f"{name:<20} {format_mac(folder.efuse().mac)}  {'running' if running else 'off'}")


def _check_bootable_layout(folder: DeviceFolder) -> None:
    """Refuse to run a device twice, or a flash file without a readable partition table."""
    if is_running(folder):
        raise InputError(f"device {folder.name!r} is already running")
    efuse = folder.efuse()
    with folder.open_flash() as flash:
        if get_flash_encryption_mode(efuse) is not FlashEncryptionMode.DISABLED:
            flash.set_crypt(crypt_from_efuse(efuse))
        try:
            PartitionMap.load(flash, PARTITION_TABLE_OFFSET)
        except (InputError, EspError) as err:
            if EncryptionJournal.find(flash) is not None:
                return  # a first-boot encryption a power cut interrupted: the boot resumes it
            raise InputError(
                f"device {folder.name!r}: no valid partition table at 0x8000 ({err}); write one "
                f"with 'jumpstart idf flash --device {folder.name} --offset 0x8000 partitions.bin'"
            ) from None
        if (
            flash.crypt is None
            and not efuse.read_field_bit("ABS_DONE_1")
            and ensure_bootloader(flash, folder.chip())
        ):
            # Made before devices had a bootloader: migrated on first use, like efuse.json.
            print(f"wrote a bootloader into {folder.name} (it had none)", file=sys.stderr)


def _bootable(name: str) -> tuple[DeviceFolder, RadioWorld]:
    """The device and the radio world, once both are known good enough to boot."""
    home = JumpstartHome()
    folder = home.device(name)
    world = RadioWorld(home.world_path)  # a malformed world file stops here, with its error
    _check_bootable_layout(folder)
    return folder, world


@device_app.command("run")
def device_run(name: Annotated[str, typer.Argument(help="Device to run")]) -> None:
    """Boot a device without its console (it goes to devices/NAME/console.log).

    It stays in the foreground until Ctrl-C or `jumpstart device stop NAME` from another
    terminal (end the line with & to give the shell back)."""
    folder, world = _bootable(name)
    with folder.console_path.open("a", buffering=1, encoding="utf-8") as log:
        print(
            f"device {name} running; console: {folder.console_path}; Ctrl-C or"
            f" 'jumpstart device stop {name}' stops it",
            file=sys.stderr,
        )

        def console(line: str) -> None:
            log.write(line + "\n")

        asyncio.run(run_device(folder, console, world=world))


@device_app.command("delete")
def device_delete(
    name: Annotated[str, typer.Argument(help="A device that is not running")],
) -> None:
    """Delete a device: its flash, eFuses and console log (its thing stays in the cloud:
    jumpstart cloud thing delete NAME)."""
    folder = stopped_device(name)
    JumpstartHome().delete_device(folder)
    print(f"deleted device {name} ({folder.path})")


@device_app.command("press")
def device_press(
    name: Annotated[str, typer.Argument(help="A running device")],
    hold: Annotated[float, typer.Option(help="Seconds to hold the button down")] = 0.1,
    pin: Annotated[int, typer.Option(help="GPIO of the button")] = 0,
) -> None:
    """Press (and release) the device's button."""
    status = send_command(
        JumpstartHome().device(name), {"cmd": "press", "hold": hold, "pin": pin}, hold + 30
    )
    print(json.dumps(status["outputs"]))


@device_app.command("status")
def device_status(name: Annotated[str, typer.Argument(help="A running device")]) -> None:
    """The running device's state, app, uptime and outputs, as JSON."""
    print(json.dumps(send_command(JumpstartHome().device(name), {"cmd": "status"}), indent=1))


@device_app.command("restart")
def device_restart(name: Annotated[str, typer.Argument(help="A running device")]) -> None:
    """esp_restart() on the running device."""
    send_command(JumpstartHome().device(name), {"cmd": "restart"})
    print(f"{name} restarting")


@device_app.command("power-cut")
def device_power_cut(name: Annotated[str, typer.Argument(help="A running device")]) -> None:
    """Cut the device's power and restore it (a power-on reset)."""
    send_command(JumpstartHome().device(name), {"cmd": "power_cut"})
    print(f"{name} power cycled")


@device_app.command("stop")
def device_stop(name: Annotated[str, typer.Argument(help="A running device")]) -> None:
    """Power a running device off."""
    send_command(JumpstartHome().device(name), {"cmd": "stop"})
    print(f"{name} stopped")


# -- idf ------------------------------------------------------------------------------------
def idf_build(
    app_dir: Annotated[Path, typer.Argument(help="App folder with app.toml")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Image file to write")],
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a [config] value: KEY=VALUE (repeatable)"),
    ] = None,
    sign: Annotated[
        Path | None,
        typer.Option("--sign", help="Sign for Secure Boot V2 with this RSA-3072 key (PEM)"),
    ] = None,
    chip_name: Annotated[
        str, typer.Option("--chip", help="esp32 or esp8266 (ESP8266_RTOS_SDK image format)")
    ] = "esp32",
) -> None:
    """Build an app folder into an ESP app image (like idf.py build).

    The build time is now, or SOURCE_DATE_EPOCH when set (reproducible builds). ``--set``
    changes a [config] value as menuconfig would; values are TOML (numbers, true, "text") and
    anything that is not TOML is taken as text. ``--sign`` appends the signature sector, as a
    build with CONFIG_SECURE_BOOT_BUILD_SIGNED_BINARIES does.
    """
    profile = chip(chip_name)
    if sign is not None:
        profile.require_secure_boot()
    overrides = _overrides(settings or [])
    if not profile.has_bluetooth and overrides.get("prov_transport") == "ble":
        # menuconfig offers no Bluetooth on a chip without it
        profile.require_bluetooth()
    key = _sbv2_key(sign) if sign is not None else None
    image = build_app_image(app_dir, when=_epoch_time(), overrides=overrides, chip=profile)
    if key is not None:
        image = image_sign(image, key)
    write_atomically(output, image)
    desc = AppImage.parse(image, extended_header=profile.extended_header).app_description
    assert desc is not None
    print(f"wrote {len(image)} bytes to {output} ({desc.project_name} {desc.version})")


def idf_bootloader(
    output: Annotated[Path, typer.Option("-o", "--output", help="Bootloader image to write")],
    sign: Annotated[
        Path | None,
        typer.Option("--sign", help="Sign for Secure Boot V2 with this RSA-3072 key (PEM)"),
    ] = None,
    chip_name: Annotated[str, typer.Option("--chip", help="esp32 or esp8266")] = "esp32",
) -> None:
    """Build the second-stage bootloader image (like idf.py bootloader): for 0x1000 on
    ESP32, 0x0 on ESP8266.

    Write it with: jumpstart idf flash --device DEVICE 0x1000 bootloader.bin
    """
    profile = chip(chip_name)
    if sign is not None:
        profile.require_secure_boot()
    key = _sbv2_key(sign) if sign is not None else None
    image = bootloader_build(when=_epoch_time(), sign_key=key, chip=profile)
    write_atomically(output, image)
    signed = " (signed)" if key is not None else ""
    where = f"0x{profile.bootloader_offset:x}"
    name = profile.display_name
    print(f"wrote {len(image)} bytes to {output}: {name} bootloader{signed} for {where}")


def _sbv2_key(path: Path) -> PrivateKey:
    """An ESP32 Secure Boot V2 signing key: RSA-3072 (the chip verifies nothing else)."""
    key = load_private_key(read_file(path))
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InputError(
            f"{path}: ESP32 Secure Boot V2 signs with RSA-3072 keys only; make one with "
            f"'espsecure generate-signing-key --version 2 --scheme rsa3072 {path.name}'"
        )
    return key


def _overrides(settings: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for setting in settings:
        key, sep, raw = setting.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {setting!r} is not KEY=VALUE")
        try:
            values[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            values[key.strip()] = raw
    return values


def stopped_device(name: str) -> DeviceFolder:
    """A device whose flash may be written: it exists and no process runs it."""
    folder = JumpstartHome().device(name)
    if is_running(folder):
        raise InputError(f"device {name!r} is running; stop it first (jumpstart device stop)")
    return folder


def _flash_arguments(args: list[str]) -> tuple[Path | None, list[tuple[int, Path]]]:
    """``IMAGE`` and/or ``[--offset] ADDR FILE`` pairs -> (image, [(address, file)])."""
    pairs: list[tuple[int, Path]] = []
    image: Path | None = None
    tokens = list(args)
    while tokens:
        token = tokens.pop(0)
        if token == "--offset" or (token[:2].lower() == "0x" and tokens):
            if token == "--offset":
                if len(tokens) < 2:
                    raise InputError("--offset takes an address and a file: --offset 0x8000 pt.bin")
                token = tokens.pop(0)
            pairs.append((_address(token), Path(tokens.pop(0))))
        elif image is None:
            image = Path(token)
        else:
            raise InputError(f"unexpected argument {token!r}; give one IMAGE and ADDR FILE pairs")
    if image is None and not pairs:
        raise InputError("nothing to flash: give an IMAGE and/or ADDR FILE pairs")
    return image, pairs


def _boot_app_offset(
    folder: DeviceFolder, flash: FileFlash, pairs: list[tuple[int, Path, bytes]]
) -> int:
    """Where idf.py flash puts the app: the factory app, else ota_0, else the first app, by
    the partition table the flash will hold once the explicit pairs are written."""
    try:
        new_table = [data for address, _, data in pairs if address == DEFAULT_TABLE_OFFSET]
        if new_table:
            table = PartitionTable.from_binary(new_table[-1][:MAX_TABLE_LENGTH])
        else:
            table = table_of(flash)
    except InputError as err:
        raise InputError(
            f"device {folder.name!r} has no partition table to place IMAGE ({err}); "
            "give its address: ADDR IMAGE"
        ) from None
    return boot_app_offset(table)


def idf_flash(
    device: Annotated[str, typer.Option(help="Device to write")],
    args: Annotated[
        list[str] | None,
        typer.Argument(help="IMAGE (to the boot app partition) and/or [--offset] ADDR FILE pairs"),
    ] = None,
    encrypt: Annotated[
        bool,
        typer.Option(
            "--encrypt",
            help="Encrypt with the chip's flash encryption key on the way in (esptool --encrypt;"
            " development mode)",
        ),
    ] = False,
) -> None:
    """Write images into a device's flash, like esptool write_flash / idf.py flash.

    An IMAGE alone goes to the first app partition and otadata is erased, so it boots next.
    With flash encryption on, what lands in an encrypted region needs --encrypt, and release
    mode refuses (the chip's download mode can no longer encrypt).
    """
    folder = stopped_device(device)
    image, pairs = _flash_arguments(args or [])
    # Everything is read and checked before anything is written. The explicit pairs go first,
    # so that IMAGE is placed by the partition table they bring (idf.py flash's order).
    explicit = [(address, path, read_file(path)) for address, path in pairs]
    efuse = folder.efuse()
    encrypted = _download_mode_encryption(folder, efuse, encrypt)
    with folder.open_flash() as flash:
        if encrypted:
            flash.set_crypt(crypt_from_efuse(efuse))
        writes = list(explicit)
        if image is not None:
            app = read_file(image)
            _check_app_image(image, app, folder.chip())
            writes.append((_boot_app_offset(folder, flash, explicit), image, app))
        for address, path, data in writes:
            if address % SECTOR:
                raise InputError(
                    f"address 0x{address:x} is not 4 KiB aligned (esptool erases sectors)"
                )
            if address + len(data) > flash.size:
                raise InputError(
                    f"{path} (0x{len(data):x} bytes) at 0x{address:x} runs past the "
                    f"0x{flash.size:x}-byte flash"
                )
        if encrypted and not encrypt:
            _refuse_plaintext_into_encrypted(folder, flash, writes)
        if efuse.secure_boot_key_digests:
            _refuse_foreign_signatures(folder, efuse, writes)
        for address, path, data in writes:
            flash.erase_range(address, len(data) + (-len(data) % SECTOR))
            if encrypt:
                flash.write_encrypted(address, data + b"\xff" * (-len(data) % 16))
            else:
                flash.write(address, data)
            how = " encrypted" if encrypt else ""
            print(f"Wrote {len(data)} bytes{how} at 0x{address:08x} ({path.name})")
        if image is not None:
            for offset in erase_otadata(flash):
                print(f"Erased otadata at 0x{offset:08x} (ota_data_initial.bin)")


def _download_mode_encryption(folder: DeviceFolder, efuse: VirtualEfuse, encrypt: bool) -> bool:
    """Whether the chip has flash encryption on; refuses what its download mode refuses."""
    mode = get_flash_encryption_mode(efuse)
    if mode is FlashEncryptionMode.RELEASE or (
        mode is not FlashEncryptionMode.DISABLED and efuse.read_field_bit("DISABLE_DL_ENCRYPT")
    ):
        raise InputError(
            f"flash encryption is in release mode on {folder.name}: the chip's download mode "
            "can no longer encrypt (DISABLE_DL_ENCRYPT) and plaintext would not boot; update "
            "it over the air (OTA) instead"
        )
    if encrypt and mode is FlashEncryptionMode.DISABLED:
        raise InputError(
            f"--encrypt: flash encryption is not enabled on {folder.name}; flash plaintext "
            "(its first boot with flash encryption encrypts it)"
        )
    return mode is not FlashEncryptionMode.DISABLED


def _refuse_foreign_signatures(
    folder: DeviceFolder, efuse: VirtualEfuse, writes: list[tuple[int, Path, bytes]]
) -> None:
    """With a key digest burned, an app or bootloader image not signed with that key would
    never run: refuse it, naming the digest."""
    digest = efuse.secure_boot_key_digests[0]
    for _, path, data in writes:
        if data[:1] != b"\xe9":
            continue  # not an image (a table, NVS data): nothing to check
        signed = signed_image_of(data)
        try:
            if signed is None:
                raise SignatureError("it is not signed")
            verify_signed(
                data[: signed.signed_length],
                trusted_key_digests=[digest],
                versions=ESP32_SIGNATURE_VERSIONS,
            )
        except InputError as err:
            raise InputError(
                f"{path} would not run on {folder.name}: secure boot trusts the key with digest "
                f"{digest.hex()[:16]}... in BLOCK2 ({err}); sign it with that key"
            ) from None


def _refuse_plaintext_into_encrypted(
    folder: DeviceFolder, flash: FileFlash, writes: list[tuple[int, Path, bytes]]
) -> None:
    """Plaintext where the chip decrypts on read would not boot: say --encrypt instead."""
    try:
        entries = table_of(flash).partitions
    except InputError:
        entries = ()
    for address, path, data in writes:
        end = address + len(data)
        hits = address < DEFAULT_TABLE_OFFSET + SECTOR or any(
            is_partition_encrypted(p) and p.offset < end and address < p.offset + p.size
            for p in entries
        )
        if hits:
            raise InputError(
                f"{path} at 0x{address:x} lands in flash that {folder.name} encrypts (flash "
                "encryption, development mode): add --encrypt, like esptool --encrypt"
            )


def _check_app_image(path: Path, data: bytes, profile: ChipProfile) -> None:
    """IMAGE alone must be an app image for the device's chip: anything else would be written
    where it cannot boot (esptool would write it; idf.py flash only ever writes what it
    built)."""
    try:
        image = AppImage.parse(data, extended_header=profile.extended_header)
        image.verify(chip_id=profile.chip_id)
    except InputError as err:
        raise InputError(
            f"{path} is not an app image ({err}); to write other bytes give their address:"
            f" --offset ADDR {path}"
        ) from None


def idf_erase_flash(device: Annotated[str, typer.Option(help="Device to erase")]) -> None:
    """Erase the whole flash (esptool erase_flash); the partition table goes too."""
    folder = stopped_device(device)
    with folder.open_flash() as flash:
        flash.erase_range(0, flash.size)
    print(f"Erased {device}'s flash")


def idf_monitor(device: Annotated[str, typer.Option(help="Device to boot")]) -> None:
    """Boot a device in the foreground with its console here; Ctrl-C stops it."""
    folder, world = _bootable(device)
    print(f"--- jumpstart monitor on {device} --- Quit: Ctrl+C ---", file=sys.stderr)

    def console(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    asyncio.run(run_device(folder, console, world=world))
    print("--- exit ---", file=sys.stderr)


# -- world ----------------------------------------------------------------------------------
world_app = command_group(help="The radio world: access points the devices can hear.")
ap_app = command_group(help="Access points in the radio world.", no_args_is_help=True)
world_app.add_typer(ap_app, name="ap")


def _world() -> RadioWorld:
    return RadioWorld(JumpstartHome().world_path)


@ap_app.command("add")
def ap_add(
    ssid: Annotated[str, typer.Argument(help="Network name")],
    password: Annotated[str, typer.Option(help="WPA2 passphrase (8..63 characters)")] = "",
    auth: Annotated[str, typer.Option(help="OPEN, WPA2_PSK, WPA3_PSK, ...")] = "WPA2_PSK",
    channel: Annotated[int, typer.Option(help="Channel 1..14")] = 6,
    rssi: Annotated[int, typer.Option(help="Signal strength in dBm")] = -50,
) -> None:
    """Add an access point (up)."""
    try:
        mode = AuthMode(auth.upper())
    except ValueError:
        names = ", ".join(m.value for m in AuthMode)
        raise InputError(f"unknown auth mode {auth!r} (one of {names})") from None
    _world().add(AccessPoint(ssid, password, mode, channel, rssi))
    print(f"AP {ssid} added")


@ap_app.command("remove")
def ap_remove(ssid: Annotated[str, typer.Argument(help="Network name")]) -> None:
    """Remove an access point; stations on it lose their connection."""
    _world().remove(ssid)
    print(f"AP {ssid} removed")


@ap_app.command("up")
def ap_up(ssid: Annotated[str, typer.Argument(help="Network name")]) -> None:
    """Switch an access point on."""
    _world().set_up(ssid, True)
    print(f"AP {ssid} up")


@ap_app.command("down")
def ap_down(ssid: Annotated[str, typer.Argument(help="Network name")]) -> None:
    """Switch an access point off (it stays in the world)."""
    _world().set_up(ssid, False)
    print(f"AP {ssid} down")


@ap_app.command("list")
def ap_list() -> None:
    """The access points and their state."""
    for ap in _world().access_points():
        state = "up" if ap.up else "down"
        owner = f"  SoftAP of {ap.device} ({len(ap.stations)} stations)" if ap.device else ""
        print(f"{ap.ssid:<32} {ap.auth.value:<14} ch {ap.channel:<2} {ap.rssi} dBm  {state}{owner}")
