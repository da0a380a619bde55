"""The device's virtual eFuse block: factory MAC and one-time-programmable security fields.

Stored as JSON next to the flash (``efuse.json``). Bits only ever get burned: a field once set
cannot be changed or cleared, as on the chip.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from jumpstart.errors import InputError, UsageError

__all__ = ["ESPRESSIF_OUI", "VirtualEfuse", "format_mac", "parse_mac", "random_mac"]

# An OUI registered to Espressif (24:0A:C4); the chip's base MAC is burned at the factory.
ESPRESSIF_OUI = bytes.fromhex("240ac4")


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def parse_mac(text: str) -> bytes:
    parts = text.replace("-", ":").split(":")
    try:
        mac = bytes(int(p, 16) for p in parts)
    except ValueError:
        mac = b""
    if len(mac) != 6 or any(len(p) != 2 for p in parts):
        raise InputError(f"{text!r} is not a MAC address (like 24:0a:c4:12:34:56)")
    if mac[0] & 1:
        raise InputError(f"{text} is a multicast address; a station MAC must be unicast")
    return mac


def random_mac() -> bytes:
    return ESPRESSIF_OUI + secrets.token_bytes(3)


@dataclass
class VirtualEfuse:
    mac: bytes
    secure_boot_key_digests: list[bytes] = field(default_factory=list)
    flash_encryption: bool = False

    def burn_secure_boot_digest(self, digest: bytes) -> None:
        if digest in self.secure_boot_key_digests:
            return
        if len(self.secure_boot_key_digests) >= 3:
            raise UsageError("all three KEY_DIGEST eFuse blocks are already burned")
        self.secure_boot_key_digests.append(digest)

    def to_json(self) -> str:
        return json.dumps(
            {
                "mac": format_mac(self.mac),
                "secure_boot_key_digests": [d.hex() for d in self.secure_boot_key_digests],
                "flash_encryption": self.flash_encryption,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> VirtualEfuse:
        try:
            data = json.loads(text)
            return cls(
                parse_mac(data["mac"]),
                [bytes.fromhex(d) for d in data.get("secure_boot_key_digests", [])],
                bool(data.get("flash_encryption", False)),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(f"efuse data is malformed ({err})") from None

    @classmethod
    def load(cls, path: Path) -> VirtualEfuse:
        try:
            return cls.from_json(path.read_text())
        except OSError as err:
            raise InputError(f"cannot read {path}: {err.strerror}") from None

    def save(self, path: Path) -> None:
        path.write_text(self.to_json())
