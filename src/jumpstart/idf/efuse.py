"""The device's virtual eFuses: factory MAC and one-time-programmable security fields.

Stored next to the flash as espefuse's virtual eFuse file (``efuse.bin``, formats/efuse.py).
Bits only ever get burned: a field once set cannot be changed or cleared, as on the chip.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from jumpstart.errors import InputError, UsageError
from jumpstart.formats.efuse import FIELDS, EfuseImage
from jumpstart.idf.esp_err import EspErr, EspError
from jumpstart.statefiles import write_new

__all__ = [
    "ESPRESSIF_OUI",
    "FLASH_ENCRYPTION_BLOCK",
    "HIDDEN_KEYS_FILE",
    "VirtualEfuse",
    "format_mac",
    "parse_mac",
    "random_mac",
]

SECURE_BOOT_BLOCK = "BLOCK2"  # ESP32 v3: the one Secure Boot V2 key digest
FLASH_ENCRYPTION_BLOCK = "BLOCK1"  # ESP_EFUSE_KEY_PURPOSE_FLASH_ENCRYPTION on ESP32
# espefuse's emulator zeroes a read-protected block in its file (software reads zeros there);
# the key the chip's hardware keeps using is kept in this owner-only file beside efuse.bin.
HIDDEN_KEYS_FILE = "efuse-hidden-keys.json"
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


class VirtualEfuse:
    """The device's eFuses (an ESP32, revision v3.0), stored as espefuse's virtual file
    (``efuse.bin``: ``espefuse --chip esp32 --virt --path-efuse-file`` reads and burns it)."""

    __slots__ = ("hidden", "image", "path")

    def __init__(
        self,
        mac: bytes | None = None,
        image: EfuseImage | None = None,
        *,
        hidden: dict[str, bytes] | None = None,
        path: Path | None = None,
    ) -> None:
        if image is None:
            if mac is None:
                raise UsageError("a new eFuse block needs the device's MAC")
            image = EfuseImage.new_device(mac)
        self.image = image
        self.hidden: dict[str, bytes] = dict(hidden or {})
        """Read-protected key blocks as the hardware still sees them (block byte order)."""
        self.path = path
        """Where :meth:`commit` saves burns (None: in memory only, as in a fleet)."""

    @property
    def mac(self) -> bytes:
        return self.image.mac()

    # -- esp_efuse.h: fields by their esp_efuse_table.csv names ---------------------------
    def read_field_bit(self, name: str) -> bool:
        """``esp_efuse_read_field_bit``."""
        return bool(self.read_field_cnt(name))

    def read_field_cnt(self, name: str) -> int:
        """``esp_efuse_read_field_cnt``: the field's bits as a number (a read-protected
        block reads as zeros, as the chip gives software)."""
        return self.image.read(self._field(name))

    def read_field_blob(self, name: str) -> bytes:
        """``esp_efuse_read_field_blob``: the field's bytes, lowest bit first."""
        return self.image.read_bytes(self._field(name))

    def write_field_bit(self, name: str) -> None:
        """``esp_efuse_write_field_bit``: set a one-bit field (already set: nothing)."""
        if not self.read_field_bit(name):
            self.write_field_cnt(name, 1)

    def write_field_cnt(self, name: str, count: int) -> None:
        """``esp_efuse_write_field_cnt``: set ``count`` more bits of the field, from its lowest
        unset bit (how FLASH_CRYPT_CNT is advanced); ESP_ERR_EFUSE_CNT_IS_FULL past its end."""
        field = FIELDS[self._field(name)]
        value = self.image.read(field.name)
        for _ in range(count):
            free = (~value) & ((1 << field.length) - 1)
            if not free:
                raise EspError(EspErr.ESP_ERR_EFUSE_CNT_IS_FULL, f"{name}: every bit is set")
            value |= free & -free
        self._burn(field.name, value)

    def write_field_blob(self, name: str, data: bytes) -> None:
        """``esp_efuse_write_field_blob``: program the field's bytes. Programming a bit
        that is programmed already is ESP_ERR_EFUSE_REPEATED_PROG (ESP-IDF forbids it);
        a protected field is ESP_ERR_EFUSE."""
        field = FIELDS[self._field(name)]
        if len(data) * 8 != field.length:
            raise EspError(EspErr.ESP_ERR_INVALID_ARG, f"{name} is {field.length // 8} bytes")
        current, wanted = self.image.read(field.name), int.from_bytes(data, "little")
        if current & wanted:
            raise EspError(EspErr.ESP_ERR_EFUSE_REPEATED_PROG, f"{name}: bits programmed already")
        self._burn(field.name, current | wanted)

    def _burn(self, name: str, value: int) -> None:
        if self.image.write_protected(name):
            raise EspError(EspErr.ESP_ERR_EFUSE, f"{name} is write-protected")
        try:
            self.image.burn(name, value)
        except InputError as err:
            raise EspError(EspErr.ESP_ERR_EFUSE_REPEATED_PROG, str(err)) from None

    @staticmethod
    def _field(name: str) -> str:
        if name not in FIELDS:
            raise EspError(EspErr.ESP_ERR_NOT_FOUND, f"no eFuse field {name!r} on ESP32")
        return name

    @property
    def secure_boot_key_digests(self) -> list[bytes]:
        """The Secure Boot V2 key digest in BLOCK2 (ESP32 has one), if burned."""
        digest = self.image.read_bytes(SECURE_BOOT_BLOCK)
        return [digest] if any(digest) else []

    @property
    def flash_encryption(self) -> bool:
        """``FLASH_CRYPT_CNT`` with an odd number of bits set: flash encryption is on."""
        return self.image.read("FLASH_CRYPT_CNT").bit_count() % 2 == 1

    def burn_secure_boot_digest(self, digest: bytes) -> None:
        """``esp_secure_boot_v2_permanently_enable``'s burn: the digest into BLOCK2, then
        BLOCK2 write-protected, as ``espefuse burn-key-digest`` does."""
        current = self.secure_boot_key_digests
        if current == [digest]:
            return
        if current:
            raise UsageError("BLOCK2 holds another Secure Boot key digest")
        self.image.burn_bytes(SECURE_BOOT_BLOCK, digest)
        self.image.write_protect(SECURE_BOOT_BLOCK)

    # -- keys ----------------------------------------------------------------------------
    def key_block_unused(self, name: str) -> bool:
        """``esp_efuse_key_block_unused``: all zero and neither read- nor write-protected."""
        return (
            not self.image.read(name)
            and not self.image.read_protected(name)
            and not self.image.write_protected(name)
        )

    def burn_key(
        self, name: str, data: bytes, *, read_protect: bool = True, write_protect: bool = True
    ) -> None:
        """``esp_efuse_write_key``: program a key block (bytes in block order) and protect it.
        A read-protected block reads as zeros from then on; the hardware keeps the key."""
        self.image.burn_bytes(name, data)
        if read_protect:
            self.hidden[name] = bytes(data)
            self.image.read_protect(name)
        if write_protect:
            self.image.write_protect(name)

    def hardware_block(self, name: str) -> bytes | None:
        """A key block as the chip's crypto hardware sees it: a read-protected block is the
        key that was burned there, or None when it was burned (read-protected) by a tool
        that did not keep it."""
        if self.image.read_protected(name):
            return self.hidden.get(name)
        return self.image.read_bytes(name)

    def flash_encryption_key(self) -> bytes | None:
        """The flash encryption key in the byte order of the key file ``espefuse burn-key``
        and ``espsecure encrypt-flash-data`` take (BLOCK1 holds it reversed)."""
        block = self.hardware_block(FLASH_ENCRYPTION_BLOCK)
        return block[::-1] if block is not None else None

    @classmethod
    def from_legacy_json(cls, text: str) -> VirtualEfuse:
        """A device made before efuse.bin (``efuse.json``): its MAC and key digest kept."""
        try:
            data = json.loads(text)
            efuse = cls(parse_mac(data["mac"]))
            for digest in data.get("secure_boot_key_digests", [])[:1]:
                efuse.burn_secure_boot_digest(bytes.fromhex(digest))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise InputError(f"efuse data is malformed ({err})") from None
        return efuse

    @classmethod
    def load(cls, path: Path) -> VirtualEfuse:
        """``efuse.bin`` and the hidden keys beside it; :meth:`commit` saves back there."""
        hidden_path = path.with_name(HIDDEN_KEYS_FILE)
        try:
            image = EfuseImage.from_file(path.read_bytes())
            hidden_text = hidden_path.read_text() if hidden_path.exists() else "{}"
        except OSError as err:
            raise InputError(f"cannot read {err.filename}: {err.strerror}") from None
        except InputError as err:
            raise InputError(f"{path}: {err}") from None
        try:
            raw = json.loads(hidden_text)
            hidden = {str(name): bytes.fromhex(value) for name, value in raw.items()}
        except (ValueError, AttributeError, TypeError) as err:
            raise InputError(f"{hidden_path} is malformed ({err})") from None
        return cls(image=image, hidden=hidden, path=path)

    def save(self, path: Path) -> None:
        write_new(path, self.image.to_file())
        if self.hidden:
            text = json.dumps({name: key.hex() for name, key in self.hidden.items()})
            write_new(path.with_name(HIDDEN_KEYS_FILE), text.encode(), 0o600)

    def commit(self) -> None:
        """``esp_efuse_batch_write_commit``: what was burned becomes permanent (saved to the
        file this came from; nothing to do for eFuses in memory)."""
        if self.path is not None:
            self.save(self.path)
