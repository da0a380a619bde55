"""Host tools for app images: build, inspect (like ``esptool image-info``), sign and verify."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jumpstart.errors import InputError
from jumpstart.formats.app_image import (
    ESP32_FLASH_FREQS,
    FLASH_SIZES,
    AppDescription,
    AppImage,
    ChipId,
    FlashMode,
    ImageHeader,
)
from jumpstart.formats.bootloader_image import BootloaderDescription, build_bootloader
from jumpstart.formats.secure_boot import (
    SECTOR_SIZE,
    PrivateKey,
    PublicKey,
    SignatureError,
    key_digest,
    sign_image,
    split_signed,
    verify_signed,
)
from jumpstart.targets import ESP32, ChipProfile

__all__ = [
    "SignedImage",
    "bootloader_build",
    "build_date_time",
    "image_build",
    "image_info",
    "image_sign",
    "image_verify",
    "load_private_key",
    "load_public_key",
    "signed_image_of",
]

DEFAULT_IDF_VERSION = "v5.5"
BOOTLOADER_VERSION = 1  # CONFIG_BOOTLOADER_PROJECT_VER


def build_date_time(when: dt.datetime) -> tuple[str, str]:
    """``__DATE__`` and ``__TIME__`` as a C compiler writes them ("Jan  1 2026", "12:00:00")."""
    return f"{when:%b} {when.day:2d} {when.year}", f"{when:%H:%M:%S}"


def bootloader_build(
    *,
    when: dt.datetime | None = None,
    idf_ver: str | None = None,
    secure_version: int = 0,
    sign_key: PrivateKey | None = None,
    chip: ChipProfile = ESP32,
) -> bytes:
    """``idf.py bootloader``: the second-stage bootloader image for the chip's bootloader
    offset (0x1000 on ESP32, 0x0 on ESP8266), signed with ``sign_key`` (Secure Boot V2: a
    signature sector after the image padded to 4 KiB)."""
    if sign_key is not None:
        chip.require_secure_boot()
    date, time = build_date_time(when or dt.datetime.now(dt.UTC))
    description = BootloaderDescription(
        version=BOOTLOADER_VERSION,
        idf_ver=idf_ver or chip.sdk_version,
        date_time=f"{date} {time}",
        secure_version=secure_version,
    )
    image = build_bootloader(
        description,
        header=chip.image_header(2, chip.bootloader_entry_addr),
        dram_addr=chip.bootloader_dram_addr,
        iram_addr=chip.bootloader_iram_addr,
    )
    return sign_image(image, [sign_key]) if sign_key is not None else image


def image_build(
    project: str,
    version: str,
    payload: bytes,
    *,
    when: dt.datetime,
    idf_ver: str | None = None,
    secure_version: int = 0,
    chip: ChipProfile = ESP32,
) -> bytes:
    """An app image: first segment = ``esp_app_desc_t`` + payload, checksum and SHA-256, in
    the chip's image format (ESP8266: the 8-byte header of ``elf2image --version 3``)."""
    date, time = build_date_time(when)
    try:
        desc = AppDescription(
            project_name=project,
            version=version,
            time=time,
            date=date,
            idf_ver=idf_ver or chip.sdk_version,
            secure_version=secure_version,
        )
        header = chip.image_header(1, chip.app_entry_addr)
        return AppImage.build_app(
            desc, payload, header=header, load_addr=chip.app_load_addr
        ).to_bytes()
    except ValueError as err:
        raise InputError(str(err)) from None


def load_private_key(pem: bytes) -> PrivateKey:
    """An RSA-3072 or ECDSA (P-192/256/384) signing key from PEM."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as err:
        raise InputError(f"not a PEM private key without password: {err}") from None
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072:
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in (
        "secp192r1",
        "secp256r1",
        "secp384r1",
    ):
        return key
    raise InputError(
        "Secure Boot V2 signs with RSA-3072 or ECDSA P-192/P-256/P-384 keys; "
        "generate one with 'espsecure generate-signing-key --version 2 --scheme ecdsa256 KEY.pem'"
    )


def load_public_key(pem: bytes) -> PublicKey:
    """A verification key from a PEM public key, or the public half of a private key."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        return load_private_key(pem).public_key()
    if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return key
    raise InputError("the key is neither RSA nor ECDSA")


def image_sign(data: bytes, key: PrivateKey) -> bytes:
    """Sign an app image (refused if it is not a valid image)."""
    image = AppImage.parse(data)
    image.verify(chip_id=image.header.chip_id, require_app=False)
    return sign_image(data[: image.length], [key])


@dataclass(frozen=True, slots=True)
class SignedImage:
    """Where an image's signature sector would be, and the bytes it covers."""

    image: AppImage
    signed_length: int

    @property
    def sector_offset(self) -> int:
        return self.signed_length - SECTOR_SIZE


def signed_image_of(data: bytes) -> SignedImage | None:
    """The image and its signed span, or None when no signature sector follows the image."""
    image = AppImage.parse(data)
    sector = image.length + (-image.length % SECTOR_SIZE)
    if len(data) < sector + SECTOR_SIZE or data[sector : sector + SECTOR_SIZE] == (
        b"\xff" * SECTOR_SIZE
    ):
        return None
    return SignedImage(image, sector + SECTOR_SIZE)


def image_verify(data: bytes, key: PublicKey | None = None) -> str:
    """Verify image and signature; return a one-line summary or raise InputError."""
    image = AppImage.parse(data)
    image.verify(chip_id=image.header.chip_id, require_app=False)
    signed = signed_image_of(data)
    if signed is None:
        if key is not None:
            raise SignatureError("the image is not signed (no signature sector after it)")
        return "image valid (not signed)"
    trusted = [key_digest(key)] if key is not None else None
    index, block = verify_signed(data[: signed.signed_length], trusted_key_digests=trusted)
    who = "the given key" if key is not None else "its embedded key"
    return f"image valid; signature block {index} ({block.scheme}) verified with {who}"


# esptool's flash size codes (the header's high nibble of byte 3), as image-info prints them.
ESP8266_FLASH_SIZES = {
    0x0: "512KB",
    0x1: "256KB",
    0x2: "1MB",
    0x3: "2MB",
    0x4: "4MB",
    0x5: "2MB-c1",
    0x6: "4MB-c1",
    0x8: "8MB",
    0x9: "16MB",
}


def _chip_name(chip_id: int) -> str:
    try:
        name = ChipId(chip_id).name
    except ValueError:
        return f"unknown chip 0x{chip_id:04x}"
    return name if name in ("ESP32", "ESP8266") else f"ESP32-{name[5:]}"


def _rev(full: int) -> str:
    return f"v{full // 100}.{full % 100}"


def _header_lines(head: ImageHeader) -> list[str]:
    try:
        mode = FlashMode(head.flash_mode).name
    except ValueError:
        mode = f"unknown (0x{head.flash_mode:x})"
    esp32_sizes = {code: f"{size // 0x100000}MB" for code, size in FLASH_SIZES.items()}
    size = (esp32_sizes if head.extended else ESP8266_FLASH_SIZES).get(head.flash_size)
    return [
        f"Entry point: 0x{head.entry_addr:08x}",
        f"Segments: {head.segment_count}",
        f"Flash size: {size}" if size else f"Flash size: unknown (0x{head.flash_size:x})",
        f"Flash freq: {ESP32_FLASH_FREQS.get(head.flash_speed, hex(head.flash_speed))}",
        f"Flash mode: {mode}",
    ]


def image_info(data: bytes, chip: ChipProfile = ESP32) -> str:
    """A report in the shape of ``esptool image-info``, plus the signature blocks."""
    image = AppImage.parse(data, extended_header=chip.extended_header)
    head = image.header
    lines = [f"Image size: {len(data)} bytes", f"Detected image type: {_chip_name(head.chip_id)}"]

    def section(title: str) -> None:
        lines.extend(["", title, "=" * len(title)])

    section(f"{_chip_name(head.chip_id)} Image Header")
    lines += _header_lines(head)
    if head.extended:
        section(f"{_chip_name(head.chip_id)} Extended Image Header")
        wp = "disabled" if head.wp_pin == 0xEE else "enabled"
        lines += [
            f"WP pin: 0x{head.wp_pin:02x} ({wp})",
            f"Chip ID: {head.chip_id} ({_chip_name(head.chip_id)})",
            f"Minimal chip revision: {_rev(head.min_chip_rev_full)}, "
            f"(legacy min_rev = {head.min_chip_rev})",
            f"Maximal chip revision: {_rev(head.max_chip_rev_full)}",
        ]
    section("Segments Information")
    lines.append("Segment   Length   Load addr   File offs  Memory types")
    lines.append("-------  -------  ----------  ----------  ------------")
    for index, (segment, offset) in enumerate(
        zip(image.segments, image.segment_offsets, strict=True)
    ):
        lines.append(
            f"{index:7d}  0x{len(segment.data):05x}  0x{segment.load_addr:08x}  0x{offset:08x}  "
            + ", ".join(segment.memory_types)
        )
    section(f"{_chip_name(head.chip_id)} Image Footer")
    if image.checksum_valid:
        lines.append(f"Checksum: 0x{image.checksum:02x} (valid)")
    else:
        lines.append(
            f"Checksum: 0x{image.checksum:02x} "
            f"(invalid - calculated 0x{image.calculated_checksum:02x})"
        )
    if image.digest is not None:
        state = "valid" if image.digest_valid else "invalid"
        lines.append(f"Validation hash: {image.digest.hex()} ({state})")
    desc = image.app_description
    if desc is not None:
        section("Application Information")
        lines += [
            f"Project name: {desc.project_name}",
            f"App version: {desc.version}",
            f"Compile time: {desc.date} {desc.time}",
            f"ELF file SHA256: {desc.app_elf_sha256.hex()}",
            f"ESP-IDF: {desc.idf_ver}",
            f"Minimal eFuse block revision: {_rev(desc.min_efuse_blk_rev_full)[1:]}",
            f"Maximal eFuse block revision: {_rev(desc.max_efuse_blk_rev_full)[1:]}",
            f"MMU page size: {(1 << desc.mmu_page_size_log2) // 1024} KB"
            if desc.mmu_page_size_log2
            else "MMU page size: default",
            f"Secure version: {desc.secure_version}",
        ]
    section("Secure Boot V2 Signature")
    signed = signed_image_of(data)
    if signed is None:
        lines.append("Not signed (no signature sector after the image)")
    else:
        lines.append(f"Signature sector at 0x{signed.sector_offset:x}")
        try:
            content, blocks = split_signed(data[: signed.signed_length])
        except SignatureError as err:
            lines.append(f"Signature sector invalid: {err}")
        else:
            for index, block in enumerate(blocks):
                try:
                    block.verify_signature(block.digest_of(content), index)
                    verdict = "valid"
                except SignatureError as err:
                    verdict = f"invalid - {err}"
                lines.append(
                    f"Signature block {index}: {block.scheme}, key digest "
                    f"{block.key_digest().hex()} ({verdict})"
                )
    return "\n".join(lines) + "\n"
