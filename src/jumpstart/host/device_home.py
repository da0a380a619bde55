"""``$JUMPSTART_HOME``: where devices, the cloud and the radio world keep their state.

::

    $JUMPSTART_HOME/            (default ~/.jumpstart)
      devices/NAME/flash.bin    the device's SPI flash, ESP-IDF byte layout
      devices/NAME/efuse.bin    its eFuses in espefuse's virtual file format (MAC, security)
      devices/NAME/device.toml  its bootloader's security options (secure boot, flash encryption)
      devices/NAME/control.sock while it runs: the control socket
      devices/NAME/console.log  while it runs headless: its console
      cloud/                    the local device cloud
      world.toml                the radio world (access points)
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from jumpstart.errors import InputError
from jumpstart.formats.partition_table import PartitionTable
from jumpstart.host.image_tools import bootloader_build
from jumpstart.host.layouts import OUTLET_LAYOUTS
from jumpstart.idf.efuse import VirtualEfuse, format_mac, random_mac
from jumpstart.idf.flash import FileFlash
from jumpstart.idf.flash_encrypt import FlashEncryptionMode
from jumpstart.idf.security import SecurityConfig
from jumpstart.statefiles import folder_lock, write_new
from jumpstart.targets import CHIPS, ESP32, ChipProfile, chip

__all__ = ["DeviceFolder", "JumpstartHome"]

PARTITION_TABLE_OFFSET = 0x8000
EFUSE_FILE = "efuse.bin"
CONFIG_FILE = "device.toml"
_SECURITY_KEYS = {"secure_boot": bool, "flash_encryption": str, "anti_rollback": bool}
LEGACY_EFUSE_FILE = "efuse.json"  # before espefuse's format: migrated on first use
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


@dataclass(frozen=True)
class DeviceFolder:
    name: str
    path: Path

    @property
    def flash_path(self) -> Path:
        return self.path / "flash.bin"

    @property
    def efuse_path(self) -> Path:
        return self.path / EFUSE_FILE

    @property
    def control_path(self) -> Path:
        return self.path / "control.sock"

    @property
    def console_path(self) -> Path:
        return self.path / "console.log"

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    def _config_data(self) -> dict[str, object]:
        if not self.config_path.exists():
            return {}
        where = self.config_path
        try:
            data = tomllib.loads(where.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise InputError(f"{where}: {err}") from None
        if set(data) - {"chip", "security"} or not isinstance(data.get("security", {}), dict):
            raise InputError(f'{where}: only chip = "..." and a [security] table are understood')
        return data

    def chip(self) -> ChipProfile:
        """The chip from ``device.toml`` (esp32 unless it says otherwise)."""
        name = self._config_data().get("chip", ESP32.name)
        if not isinstance(name, str):
            raise InputError(f"{self.config_path}: chip = {name!r}: use {', '.join(CHIPS)}")
        try:
            return chip(name)
        except InputError as err:
            raise InputError(f"{self.config_path}: {err}") from None

    def security(self) -> SecurityConfig:
        """The bootloader's security options from ``device.toml`` (defaults: all off)."""
        where = self.config_path
        table = self._config_data().get("security", {})
        assert isinstance(table, dict)
        for key, value in table.items():
            kind = _SECURITY_KEYS.get(key)
            if kind is None or not isinstance(value, kind):
                raise InputError(
                    f"{where}: [security] {key} = {value!r} is not understood "
                    '(secure_boot = true|false, flash_encryption = "development"|"release", '
                    "anti_rollback = true|false)"
                )
        mode_text = table.get("flash_encryption", FlashEncryptionMode.DISABLED.value)
        try:
            mode = FlashEncryptionMode(mode_text)
        except ValueError:
            raise InputError(
                f"{where}: flash_encryption = {mode_text!r}: use development, release or disabled"
            ) from None
        return SecurityConfig(
            secure_boot=table.get("secure_boot", False),
            flash_encryption=mode,
            anti_rollback=table.get("anti_rollback", True),
        )

    def save_config(self, security: SecurityConfig, profile: ChipProfile | None = None) -> None:
        """Write ``device.toml``: the chip and the bootloader's security options."""
        profile = profile if profile is not None else self.chip()
        text = (
            "# The device's chip, and its bootloader's security options (its sdkconfig);\n"
            "# 'jumpstart security enable' sets them. The eFuses the first boot burns cannot\n"
            "# be taken back.\n"
            f'chip = "{profile.name}"\n'
            "\n"
            "[security]\n"
            f"secure_boot = {str(security.secure_boot).lower()}\n"
            f'flash_encryption = "{security.flash_encryption.value}"\n'
            f"anti_rollback = {str(security.anti_rollback).lower()}\n"
        )
        write_new(self.config_path, text.encode())

    def exists(self) -> bool:
        return self.efuse_path.exists() or (self.path / LEGACY_EFUSE_FILE).exists()

    def efuse(self) -> VirtualEfuse:
        legacy = self.path / LEGACY_EFUSE_FILE
        if not self.efuse_path.exists() and legacy.exists():
            # Made before efuse.bin: migrate once, keeping the MAC and any key digest.
            migrated = VirtualEfuse.from_legacy_json(legacy.read_text())
            migrated.save(self.efuse_path)
            legacy.unlink()
        return VirtualEfuse.load(self.efuse_path)

    def open_flash(self) -> FileFlash:
        """The device's flash; a wrong-sized or unreadable file is an InputError."""
        try:
            size = self.flash_path.stat().st_size
        except OSError:
            raise InputError(
                f"device {self.name!r} has no flash.bin; recreate it with "
                f"'jumpstart device create {self.name}'"
            ) from None
        if size == 0 or size % 0x1000:
            raise InputError(
                f"{self.flash_path} is {size} bytes, not a flash image (a multiple of 4 KiB)"
            )
        return FileFlash(self.flash_path)


class JumpstartHome:
    def __init__(self, path: Path | None = None) -> None:
        default = Path(os.environ.get("JUMPSTART_HOME", Path.home() / ".jumpstart"))
        self.path = path if path is not None else default

    def command_prefix(self) -> str:
        """What makes a printed ``jumpstart`` command work in a new terminal on this home:
        the executable's full path (the venv is not on a new shell's PATH) and
        ``JUMPSTART_HOME`` unless it is the default."""
        executable = Path(sys.executable).with_name("jumpstart")
        command = shlex.quote(str(executable)) if executable.exists() else "jumpstart"
        if self.path.absolute() != (Path.home() / ".jumpstart").absolute():
            command = f"JUMPSTART_HOME={shlex.quote(str(self.path.absolute()))} {command}"
        return command

    @property
    def devices_path(self) -> Path:
        return self.path / "devices"

    @property
    def world_path(self) -> Path:
        return self.path / "world.toml"

    def device(self, name: str) -> DeviceFolder:
        """An existing device; an unknown name says how to create one."""
        folder = DeviceFolder(name, self.devices_path / name)
        if not _NAME.fullmatch(name) or not folder.exists():
            known = ", ".join(self.device_names()) or "none yet"
            raise InputError(
                f"no device {name!r} in {self.devices_path} (known: {known}); "
                f"create it with 'jumpstart device create {name}'"
            )
        return folder

    def device_names(self) -> list[str]:
        if not self.devices_path.is_dir():
            return []
        return sorted(
            p.name for p in self.devices_path.iterdir() if DeviceFolder(p.name, p).exists()
        )

    def delete_device(self, folder: DeviceFolder) -> None:
        """Remove a device's folder (flash, eFuses, console log)."""
        with folder_lock(self.devices_path):
            shutil.rmtree(folder.path)

    def create_device(
        self,
        name: str,
        *,
        flash_size: int | None = None,
        mac: bytes | None = None,
        partitions_csv: str | None = None,
        profile: ChipProfile = ESP32,
    ) -> DeviceFolder:
        """A new device: erased flash with a bootloader at 0x1000 and the guide's partition
        table, eFuse with a MAC."""
        if not _NAME.fullmatch(name):
            raise InputError(
                f"device name {name!r}: use letters, digits, '_', '-', '.' (up to 63 characters)"
            )
        flash_size = flash_size if flash_size is not None else profile.flash_size
        layout = partitions_csv if partitions_csv is not None else OUTLET_LAYOUTS[profile.name]
        table = PartitionTable.from_csv(layout, flash_size=flash_size)
        # One creator at a time: the name and the MAC are checked and taken together.
        with folder_lock(self.devices_path):
            return self._create_device(name, table, flash_size, mac, profile)

    def _create_device(
        self,
        name: str,
        table: PartitionTable,
        flash_size: int,
        mac: bytes | None,
        profile: ChipProfile,
    ) -> DeviceFolder:
        folder = DeviceFolder(name, self.devices_path / name)
        if folder.path.exists():
            raise InputError(f"device {name!r} already exists in {folder.path}")
        used = {self.device(n).efuse().mac for n in self.device_names()}
        if mac is not None and mac in used:
            raise InputError(f"MAC {format_mac(mac)} is already used by another device")
        while mac is None or mac in used:
            mac = random_mac()
        folder.path.mkdir(parents=True)
        try:
            with FileFlash(folder.flash_path, flash_size) as flash:
                flash.write(profile.bootloader_offset, bootloader_build(chip=profile))
                flash.write(PARTITION_TABLE_OFFSET, table.to_binary())
            VirtualEfuse(mac).save(folder.efuse_path)
            if profile is not ESP32:
                folder.save_config(SecurityConfig(), profile)
        except BaseException:
            shutil.rmtree(folder.path, ignore_errors=True)
            raise
        return folder
