"""Chip profiles: what differs between the chips a device can be, as constants.

Like esptool's ``targets/`` (one module a chip, one class of constants each), not forks of the
code: the device, the image tools and the CLI ask the profile. ``CHIPS`` holds every profile
by name; :func:`chip` looks one up with an error that lists them.
"""

from __future__ import annotations

from jumpstart.errors import InputError
from jumpstart.formats.app_image import AppImage, ImageError
from jumpstart.targets.base import ChipProfile
from jumpstart.targets.esp32 import ESP32
from jumpstart.targets.esp8266 import ESP8266

__all__ = ["CHIPS", "ESP32", "ESP8266", "ChipProfile", "chip", "verified_app_image"]

CHIPS: dict[str, ChipProfile] = {profile.name: profile for profile in (ESP32, ESP8266)}


def verified_app_image(data: bytes) -> tuple[ChipProfile, AppImage]:
    """Which chip an app image is for, and the image, verified as that chip's bootloader
    would (the header bytes alone cannot tell ESP32's from ESP8266's)."""
    errors = []
    for profile in CHIPS.values():
        try:
            image = AppImage.parse(data, extended_header=profile.extended_header)
            image.verify(chip_id=profile.chip_id)
        except ImageError as err:
            errors.append(f"{profile.display_name}: {err}")
            continue
        return profile, image
    raise ImageError("; ".join(errors))


def chip(name: str) -> ChipProfile:
    """The profile called ``name`` (esp32, esp8266)."""
    profile = CHIPS.get(name.lower())
    if profile is None:
        raise InputError(f"unknown chip {name!r}: use {', '.join(CHIPS)}")
    return profile
