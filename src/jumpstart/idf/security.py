"""The bootloader's security configuration and its Secure Boot V2 and anti-rollback steps.

``SecurityConfig`` is what ESP-IDF compiles into a bootloader through sdkconfig
(``CONFIG_SECURE_BOOT_V2_ENABLED``, ``CONFIG_SECURE_FLASH_ENC_ENABLED`` with its mode,
``CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK``). The steps follow
``bootloader_support/src/secure_boot_v2/secure_boot.c`` and ``esp32/secure_boot_secure_features.c``
(ESP32 v3: one key digest in BLOCK2, ``ABS_DONE_1``), and ``esp_efuse_read_secure_version``
(ESP32: the number of bits set in ``SECURE_VERSION``, BLOCK3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jumpstart.errors import InputError
from jumpstart.formats.secure_boot import SECTOR_SIZE as SIG_SECTOR_SIZE
from jumpstart.formats.secure_boot import SignatureBlock, split_signed
from jumpstart.idf.bootloader_support import ESP32_SIGNATURE_VERSIONS
from jumpstart.idf.efuse import SECURE_BOOT_BLOCK, VirtualEfuse
from jumpstart.idf.flash_encrypt import FlashEncryptionMode, get_flash_encryption_mode
from jumpstart.idf.log import EspLog
from jumpstart.idf.partition import EspPartition

__all__ = [
    "SECURE_VERSION_BITS",
    "SecureBootError",
    "SecurityConfig",
    "log_app_security",
    "read_secure_version",
    "secure_boot_enabled",
    "secure_boot_v2_permanently_enable",
    "update_secure_version",
]

TAG = "secure_boot_v2"
SECURE_VERSION_BITS = 32  # SECURE_VERSION in BLOCK3: the version is how many bits are set


@dataclass(frozen=True)
class SecurityConfig:
    """The security options of a device's bootloader (its sdkconfig)."""

    secure_boot: bool = False
    flash_encryption: FlashEncryptionMode = FlashEncryptionMode.DISABLED
    anti_rollback: bool = True
    """``CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK``: apps below the eFuse secure version do not
    boot, and a confirmed app raises it to its own."""


class SecureBootError(InputError):
    """Secure boot cannot be enabled with what the flash holds."""


def secure_boot_enabled(efuse: VirtualEfuse) -> bool:
    """``esp_secure_boot_enabled`` on ESP32: ``ABS_DONE_1``."""
    return efuse.read_field_bit("ABS_DONE_1")


def secure_boot_v2_permanently_enable(
    efuse: VirtualEfuse,
    bootloader_blocks: Sequence[SignatureBlock],
    signed_app: EspPartition,
    app_length: int,
    log: EspLog,
) -> None:
    """``esp_secure_boot_v2_permanently_enable``: burn the digest of the key that signed the
    bootloader (unless a digest is burned already: it is then used as it is), check that the
    app is signed with that key, then burn ``ABS_DONE_1`` and the JTAG and ROM BASIC fuses,
    in one batch (nothing is burned when a check fails)."""
    log.i(TAG, "enabling secure boot v2...")
    if secure_boot_enabled(efuse):
        log.i(TAG, "secure boot v2 is already enabled, continuing..")
        return
    present = bool(efuse.secure_boot_key_digests)
    log.i(TAG, f"Secure boot digests {'already present' if present else 'absent, generating..'}")
    if present:
        if efuse.image.read_protected(SECURE_BOOT_BLOCK):
            log.e(TAG, "Key digest (BLK2) read protected, aborting...")
            raise SecureBootError("BLOCK2 is read-protected: the bootloader cannot check keys")
        log.w(TAG, "Using pre-loaded public key digest in eFuse")
        digests = list(efuse.secure_boot_key_digests)
    else:
        if not bootloader_blocks:
            log.e(TAG, "No valid bootloader signature blocks found.")
            raise SecureBootError(
                "secure boot needs a signed bootloader: jumpstart idf bootloader --sign KEY.pem"
            )
        log.i(TAG, f"{len(bootloader_blocks)} signature block(s) found appended to the bootloader.")
        rsa = [b for b in bootloader_blocks if b.version in ESP32_SIGNATURE_VERSIONS]
        if not rsa:
            log.e(TAG, "Bootloader signature block is invalid")
            raise SecureBootError("ESP32 Secure Boot V2 takes RSA-3072 signatures only")
        digests = [rsa[0].key_digest()]
    padded = app_length + (-app_length % SIG_SECTOR_SIZE)
    try:
        _, app_blocks = split_signed(
            signed_app.read(0, min(signed_app.size, padded + SIG_SECTOR_SIZE))
        )
    except InputError:
        app_blocks = []
    if not app_blocks:
        log.e(TAG, "No valid applications signature blocks found.")
        raise SecureBootError("secure boot needs a signed app: jumpstart image-sign --key KEY.pem")
    log.i(TAG, f"{len(app_blocks)} signature block(s) found appended to the app.")
    if not any(block.key_digest() in digests for block in app_blocks):
        log.e(TAG, "No application key digest matches the bootloader key digest.")
        raise SecureBootError("the app is not signed with the bootloader's key")
    if not present:
        log.i(TAG, "Burning public key hash to eFuse")
        efuse.burn_secure_boot_digest(digests[0])
    log.i(TAG, "blowing secure boot efuse...")
    efuse.write_field_bit("ABS_DONE_1")
    log.i(TAG, "Disable JTAG...")
    efuse.write_field_bit("JTAG_DISABLE")
    log.i(TAG, "Disable ROM BASIC interpreter fallback...")
    efuse.write_field_bit("CONSOLE_DEBUG_DISABLE")
    log.w(TAG, "UART ROM Download mode kept enabled - SECURITY COMPROMISED")
    efuse.commit()
    log.i(TAG, "Secure boot permanently enabled")


def read_secure_version(efuse: VirtualEfuse) -> int:
    """``esp_efuse_read_secure_version``."""
    return efuse.read_field_cnt("SECURE_VERSION").bit_count()


def update_secure_version(efuse: VirtualEfuse, version: int) -> None:
    """``esp_efuse_update_secure_version``: raise the eFuse secure version (never lower)."""
    current = read_secure_version(efuse)
    if version > current:
        if version > SECURE_VERSION_BITS:
            raise SecureBootError(f"secure_version {version} exceeds {SECURE_VERSION_BITS}")
        efuse.write_field_cnt("SECURE_VERSION", version - current)
        efuse.commit()


def log_app_security(efuse: VirtualEfuse, log: EspLog) -> None:
    """What the app's startup says of flash encryption (``esp_flash_encryption_init_checks``)
    and secure boot."""
    mode = get_flash_encryption_mode(efuse)
    if mode is FlashEncryptionMode.DEVELOPMENT:
        log.w("flash_encrypt", "Flash encryption mode is DEVELOPMENT (not secure)")
    elif mode is FlashEncryptionMode.RELEASE:
        log.i("flash_encrypt", "Flash encryption mode is RELEASE")
    if secure_boot_enabled(efuse):
        log.i("secure_boot", "secure boot v2 enabled")
