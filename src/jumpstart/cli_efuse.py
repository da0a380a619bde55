"""``jumpstart efuse``: a stopped device's eFuses, with espefuse's command and argument shapes.

The device's ``efuse.bin`` is espefuse's own virtual file, so
``espefuse --chip esp32 --virt --path-efuse-file devices/D/efuse.bin ...`` works on it too.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from jumpstart.cli_device import stopped_device
from jumpstart.cli_util import command_group
from jumpstart.errors import InputError
from jumpstart.formats.efuse import FIELDS, EfuseField, EfuseImage
from jumpstart.formats.secure_boot import key_digest
from jumpstart.host.device_home import DeviceFolder, JumpstartHome
from jumpstart.host.files import read_file
from jumpstart.host.image_tools import load_public_key
from jumpstart.idf.efuse import SECURE_BOOT_BLOCK, VirtualEfuse, format_mac

efuse_app = command_group(
    help="A device's eFuses (like espefuse; its efuse.bin is espefuse's virtual file).",
    no_args_is_help=True,
)
DeviceOption = Annotated[str, typer.Option("--device", help="A stopped device")]


def _raw(image: EfuseImage, field: EfuseField) -> str:
    """espefuse's raw value: a number for bits, the stored bytes in order for byte fields."""
    if field.kind == "bytes":
        return "0x" + image.read_bytes(field.name).hex()
    return f"0x{image.read(field.name):0{(field.length + 3) // 4}x}"


def _value(image: EfuseImage, field: EfuseField) -> Any:
    if field.kind == "bool":
        return bool(image.read(field.name))
    if field.kind == "uint":
        return image.read(field.name)
    if field.name == "MAC":
        crc = image.read("MAC_CRC")
        status = "OK" if image.mac_crc_ok() else "invalid"
        return f"{format_mac(image.mac())} (CRC 0x{crc:02x} {status})"
    return " ".join(f"{b:02x}" for b in image.read_bytes(field.name))


def field_report(image: EfuseImage) -> dict[str, dict[str, Any]]:
    """Each field as espefuse's ``summary --format json`` gives its raw facts."""
    return {
        name: {
            "name": name,
            "block": field.block,
            "word": field.word,
            "pos": field.pos,
            "bit_len": field.length,
            "efuse_type": f"{field.kind}:{field.length}"
            if field.kind == "uint"
            else ("bool" if field.kind == "bool" else f"bytes:{field.length // 8}"),
            "raw_value": _raw(image, field),
            "value": _value(image, field),
            "readable": not image.read_protected(name),
            "writeable": not image.write_protected(name),
        }
        for name, field in FIELDS.items()
        if not name.startswith(("RESERVE", "BLK3_RESERVED"))
    }


@efuse_app.command("summary")
def summary(
    device: DeviceOption,
    format: Annotated[str, typer.Option("--format", help="summary or json")] = "summary",
) -> None:
    """Every field with its value and protection (espefuse summary)."""
    image = _esp32_device(JumpstartHome().device(device)).efuse().image
    report = field_report(image)
    if format == "json":
        print(json.dumps(report, indent=4))
        return
    if format != "summary":
        raise InputError(f"--format must be summary or json, not {format!r}")
    for name, row in report.items():
        access = ("R" if row["readable"] else "-") + "/" + ("W" if row["writeable"] else "-")
        print(f"{name:<24} (BLOCK{row['block']}) = {row['value']} {access} ({row['raw_value']})")


def _esp32_device(folder: DeviceFolder) -> DeviceFolder:
    """The eFuse commands are ESP32's (espefuse's ESP32 file); other chips are refused."""
    profile = folder.chip()
    if profile.name != "esp32":
        raise InputError(
            f"device {folder.name!r} is an {profile.display_name}: these eFuse commands are the "
            "ESP32's (espefuse has no ESP8266 support, and the chip has no eFuse security)"
        )
    return folder


def _save(folder: DeviceFolder, efuse: VirtualEfuse) -> None:
    efuse.save(folder.efuse_path)


@efuse_app.command("burn-efuse")
def burn_efuse(
    device: DeviceOption,
    pairs: Annotated[list[str], typer.Argument(help="NAME VALUE [NAME VALUE ...]")],
) -> None:
    """Burn fields (bits go from 0 to 1 only); all are checked before any is burned."""
    if len(pairs) % 2:
        raise InputError("give NAME VALUE pairs (espefuse burn-efuse NAME VALUE ...)")
    folder = _esp32_device(stopped_device(device))
    efuse = folder.efuse()
    for name, text in zip(pairs[0::2], pairs[1::2], strict=True):
        try:
            value = int(text, 0)
        except ValueError:
            raise InputError(f"{name}: {text!r} is not a number") from None
        efuse.image.burn(name, value)  # on the copy in memory: nothing is saved on an error
    _save(folder, efuse)
    print(f"burned {', '.join(pairs[0::2])} on {device}")


@efuse_app.command("burn-key-digest")
def burn_key_digest(
    device: DeviceOption,
    keyfile: Annotated[Path, typer.Argument(help="Secure Boot V2 signing or public key (PEM)")],
) -> None:
    """The SHA-256 of the key's Secure Boot V2 public key block into BLOCK2, then BLOCK2
    write-protected (espefuse burn-key-digest)."""
    folder = _esp32_device(stopped_device(device))
    efuse = folder.efuse()
    digest = key_digest(load_public_key(read_file(keyfile)))
    if efuse.secure_boot_key_digests and efuse.secure_boot_key_digests != [digest]:
        raise InputError(f"{SECURE_BOOT_BLOCK} holds another key's digest")
    efuse.burn_secure_boot_digest(digest)
    _save(folder, efuse)
    print(f"burned the digest {digest.hex()} into {SECURE_BOOT_BLOCK} of {device}")


# espefuse's block names for ESP32 keys; the first two store the key file reversed.
KEY_BLOCKS = {
    "flash_encryption": ("BLOCK1", True),
    "BLOCK1": ("BLOCK1", True),
    "secure_boot_v1": ("BLOCK2", True),
    "BLOCK2": ("BLOCK2", False),
}


@efuse_app.command("burn-key")
def burn_key(
    device: DeviceOption,
    block: Annotated[str, typer.Argument(help="flash_encryption, secure_boot_v1 or BLOCK1/2")],
    keyfile: Annotated[Path, typer.Argument(help="32 bytes of raw key")],
    no_protect_key: Annotated[
        bool, typer.Option("--no-protect-key", help="Leave the block readable and writable")
    ] = False,
) -> None:
    """Burn a key into a block (espefuse burn-key): flash_encryption and secure_boot_v1 keys
    are stored byte-reversed and, unless --no-protect-key, read- and write-protected. The
    device's file then holds zeros there, as espefuse's does; the key the chip keeps for its
    hardware is kept beside it (efuse-hidden-keys.json, owner-only)."""
    if block not in KEY_BLOCKS:
        raise InputError(f"unknown key block {block!r}: use {', '.join(KEY_BLOCKS)}")
    name, reverse = KEY_BLOCKS[block]
    key = read_file(keyfile)
    if len(key) != FIELDS[name].length // 8:
        raise InputError(f"{keyfile}: {len(key)} bytes; a key file is 32 bytes of raw key data")
    folder = _esp32_device(stopped_device(device))
    efuse = folder.efuse()
    stored = key[::-1] if reverse else key
    # espefuse read-protects the flash encryption and secure boot v1 keys, write-protects all.
    protect = not no_protect_key
    efuse.burn_key(name, stored, read_protect=protect and reverse, write_protect=protect)
    _save(folder, efuse)
    print(f"burned a key into {name} of {device}" + ("" if no_protect_key else ", protected"))


@efuse_app.command("write-protect-efuse")
def write_protect_efuse(
    device: DeviceOption, names: Annotated[list[str], typer.Argument(help="Fields")]
) -> None:
    """Set each field's WR_DIS bit: the field can no longer be burned."""
    _protect(device, names, EfuseImage.write_protect)


@efuse_app.command("read-protect-efuse")
def read_protect_efuse(
    device: DeviceOption, names: Annotated[list[str], typer.Argument(help="Fields")]
) -> None:
    """Set the RD_DIS bit of each field's block: software reads it as zeros (the file keeps
    zeros, as espefuse's does)."""
    _protect(device, names, EfuseImage.read_protect)


def _protect(device: str, names: list[str], protect: Callable[[EfuseImage, str], None]) -> None:
    folder = _esp32_device(stopped_device(device))
    efuse = folder.efuse()
    for name in names:  # on the copy in memory: nothing is saved on an error
        protect(efuse.image, name)
    _save(folder, efuse)
    print(
        f"WR_DIS {efuse.image.read('WR_DIS'):#x}, RD_DIS {efuse.image.read('RD_DIS'):#x}"
        f" on {device}",
        file=sys.stderr,
    )
