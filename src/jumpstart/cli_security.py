"""``jumpstart security``: a device's secure boot and flash encryption, as a release checklist.

``enable`` writes the bootloader's options (``device.toml``, the device's sdkconfig); the next
boot burns the eFuses, as ESP-IDF's bootloader does on a first boot. ``status`` reads the
eFuses and lists ``esp_flash_encryption_cfg_verify_release_mode``'s conditions.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any

import typer

from jumpstart.cli_device import stopped_device
from jumpstart.cli_util import command_group
from jumpstart.errors import InputError
from jumpstart.host.device_home import DeviceFolder, JumpstartHome
from jumpstart.idf.efuse import VirtualEfuse
from jumpstart.idf.flash_encrypt import (
    FlashEncryptionMode,
    flash_encryption_enabled,
    get_flash_encryption_mode,
    plaintext_flashes_left,
    release_mode_checklist,
)
from jumpstart.idf.security import read_secure_version, secure_boot_enabled

security_app = command_group(
    help="A device's secure boot and flash encryption (guide chapter 9).", no_args_is_help=True
)
DeviceOption = Annotated[str, typer.Option("--device", help="The device")]


def security_report(folder: DeviceFolder) -> dict[str, Any]:
    """What the eFuses say, and what the bootloader is set to do at its next boot."""
    efuse = folder.efuse()
    config = folder.security()
    digests = efuse.secure_boot_key_digests
    return {
        "device": folder.name,
        "secure_boot": {
            "enabled": secure_boot_enabled(efuse),
            "key_digest": digests[0].hex() if digests else None,
            "configured": config.secure_boot,
        },
        "flash_encryption": {
            "mode": get_flash_encryption_mode(efuse).value,
            "flash_crypt_cnt": efuse.read_field_cnt("FLASH_CRYPT_CNT"),
            "plaintext_flashes_left": plaintext_flashes_left(efuse)
            if flash_encryption_enabled(efuse)
            else None,
            "configured": config.flash_encryption.value,
        },
        "anti_rollback": {
            "enabled": config.anti_rollback,
            "secure_version": read_secure_version(efuse),
        },
        "release_checklist": [dataclasses.asdict(check) for check in release_mode_checklist(efuse)],
    }


def _print_report(report: dict[str, Any]) -> None:
    boot, crypt = report["secure_boot"], report["flash_encryption"]
    if boot["enabled"]:
        print(f"Secure boot:       V2 enabled (ABS_DONE_1), key digest {boot['key_digest']}")
    elif boot["configured"]:
        print("Secure boot:       off; the next boot enables it (signed app needed)")
    else:
        print("Secure boot:       off")
    mode = crypt["mode"]
    if mode == FlashEncryptionMode.DISABLED.value:
        pending = crypt["configured"] != FlashEncryptionMode.DISABLED.value
        after = f"; the next boot enables it ({crypt['configured']})" if pending else ""
        print(f"Flash encryption:  off{after}")
    else:
        left = crypt["plaintext_flashes_left"]
        print(
            f"Flash encryption:  {mode.upper()} (FLASH_CRYPT_CNT 0b{crypt['flash_crypt_cnt']:07b},"
            f" {left} plaintext flashes left)"
        )
    rollback = report["anti_rollback"]
    print(
        f"Anti-rollback:     {'on' if rollback['enabled'] else 'off'}, "
        f"secure version {rollback['secure_version']} (SECURE_VERSION)"
    )
    checks = report["release_checklist"]
    open_ = sum(not check["ok"] for check in checks)
    print(f"Release checklist: {len(checks) - open_} of {len(checks)} hold")
    for check in checks:
        if check["ok"]:
            print(f"  ok    {check['what']}")
        else:
            print(f"  open  {check['what']} (set {check['fix']})")


@security_app.command("status")
def status(
    device: DeviceOption,
    format: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Secure boot, flash encryption and which release fuses are still open."""
    if format not in ("text", "json"):
        raise InputError(f"--format must be text or json, not {format!r}")
    report = security_report(JumpstartHome().device(device))
    if format == "json":
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)


def _refuse_twice(folder: DeviceFolder, efuse: VirtualEfuse, what: str) -> None:
    config = folder.security()
    if what == "flash encryption":
        mode = get_flash_encryption_mode(efuse)
        if mode is not FlashEncryptionMode.DISABLED:
            raise InputError(
                f"flash encryption is already enabled on {folder.name} ({mode.value} mode, "
                "burned in eFuse)"
            )
        if config.flash_encryption is not FlashEncryptionMode.DISABLED:
            raise InputError(
                f"flash encryption is already enabled on {folder.name} "
                f"({config.flash_encryption.value} mode; its next boot encrypts the flash)"
            )
    elif secure_boot_enabled(efuse) or config.secure_boot:
        raise InputError(f"secure boot is already enabled on {folder.name}")


@security_app.command("enable")
def enable(
    device: DeviceOption,
    flash_encryption: Annotated[
        str | None,
        typer.Option(
            "--flash-encryption", help="development (reflashable with --encrypt) or release"
        ),
    ] = None,
    secure_boot: Annotated[
        bool, typer.Option("--secure-boot", help="Secure Boot V2: only signed apps boot")
    ] = False,
) -> None:
    """Set the bootloader to enable flash encryption and/or secure boot at the next boot
    (which burns eFuses: there is no way back)."""
    if flash_encryption is None and not secure_boot:
        raise InputError("nothing to enable: give --flash-encryption MODE and/or --secure-boot")
    folder = stopped_device(device)
    profile = folder.chip()
    if secure_boot:
        profile.require_secure_boot()
    if flash_encryption is not None:
        profile.require_flash_encryption()
    efuse = folder.efuse()
    config = folder.security()
    if flash_encryption is not None:
        try:
            mode = FlashEncryptionMode(flash_encryption)
        except ValueError:
            mode = FlashEncryptionMode.DISABLED
        if mode is FlashEncryptionMode.DISABLED:
            raise InputError(f"--flash-encryption {flash_encryption!r}: use development or release")
        _refuse_twice(folder, efuse, "flash encryption")
        config = dataclasses.replace(config, flash_encryption=mode)
    if secure_boot:
        _refuse_twice(folder, efuse, "secure boot")
        config = dataclasses.replace(config, secure_boot=True)
    folder.save_config(config)
    command = JumpstartHome().command_prefix()
    parts = [f"flash encryption ({flash_encryption} mode)"] if flash_encryption else []
    parts += ["Secure Boot V2"] if secure_boot else []
    print(f"{device}: the next boot enables " + " and ".join(parts))
    if secure_boot:
        print("Only signed apps boot from then on. Sign and flash the app first:")
        print(f"  {command} image-sign --key KEY.pem app.bin -o app-signed.bin")
        print(f"  {command} idf flash --device {device} app-signed.bin")
    print(f"next: {command} device run {device}; then {command} security status --device {device}")
