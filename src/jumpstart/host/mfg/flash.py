"""``mfg flash``: a factory line of virtual devices, each with the same firmware and its own
factory partition (``OUTDIR/bin/PREFIX-ID.bin`` from ``mfg generate``).

Each device is created (a new MAC), gets the app image where ``idf.py flash`` puts it (otadata
erased) and its factory image in the ``fctry`` partition, as esptool's ``ADDR FILE`` pairs
would write them. The firmware carries nothing of any device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jumpstart.errors import InputError
from jumpstart.formats.esp_secure_cert import PARTITION_LABEL, PARTITION_TYPE
from jumpstart.formats.partition_table import PartitionType
from jumpstart.host.device_home import JumpstartHome
from jumpstart.host.flashing import flash_app_image
from jumpstart.host.layouts import OUTLET_PARTITIONS_CSV, OUTLET_SECURE_CERT_PARTITIONS_CSV
from jumpstart.host.mfg.credentials import SECURE_CERT_DIR
from jumpstart.idf.partition import PartitionMap

__all__ = ["FACTORY_PARTITION", "FlashedDevice", "flash_factory_line"]

FACTORY_PARTITION = "fctry"
FACTORY_SIZE = 0x6000  # the outlet layouts' fctry partition


@dataclass(frozen=True)
class FlashedDevice:
    name: str
    image: Path
    fctry_offset: int


def _device_name(pattern: str, ident: str) -> str:
    try:
        return pattern.format(n=ident)
    except (KeyError, IndexError, ValueError) as err:
        raise InputError(f"--devices {pattern!r}: use {{n}} for the device's id ({err})") from None


def flash_factory_line(
    home: JumpstartHome,
    outdir: Path,
    pattern: str,
    app_image: bytes,
    progress: Callable[[int, int], None] | None = None,
) -> list[FlashedDevice]:
    """Create and flash one device per factory image in ``outdir/bin``; the names come from
    ``pattern`` with ``{n}`` the image's ID (the part after the last ``-``)."""
    images = sorted((outdir / "bin").glob("*.bin"))
    if not images:
        raise InputError(f"no factory images in {outdir / 'bin'}: run jumpstart mfg generate")
    plan = [(_device_name(pattern, image.stem.rsplit("-", 1)[-1]), image) for image in images]
    names = [name for name, _ in plan]
    if len(set(names)) != len(names):
        raise InputError(f"--devices {pattern!r} gives several images the same device name")
    existing = set(home.device_names())
    taken = [name for name in names if name in existing]
    if taken:
        raise InputError(f"device {taken[0]!r} exists; delete it or choose another --devices")
    # Everything is checked before the first device is made.
    secure_certs = outdir / SECURE_CERT_DIR
    for _, image in plan:
        if image.stat().st_size != FACTORY_SIZE:
            raise InputError(
                f"{image}: {image.stat().st_size} bytes, but the outlet's {FACTORY_PARTITION!r}"
                f" partition holds {FACTORY_SIZE}"
            )
        if secure_certs.is_dir() and not (secure_certs / f"{image.stem}.bin").is_file():
            raise InputError(
                f"no {secure_certs / (image.stem + '.bin')} for {image.name}: generate the"
                " images with --fileid id, so they are named after their things"
            )
    flashed = []
    for n, (name, image) in enumerate(plan):
        data = image.read_bytes()
        secure = secure_certs / f"{image.stem}.bin"
        layout = OUTLET_SECURE_CERT_PARTITIONS_CSV if secure.exists() else OUTLET_PARTITIONS_CSV
        folder = home.create_device(name, partitions_csv=layout)
        with folder.open_flash() as flash:
            partitions = PartitionMap.load(flash)
            found = partitions.find(PartitionType.DATA, label=FACTORY_PARTITION)
            assert found  # the layouts' fctry, whose size was checked above
            flash_app_image(flash, app_image)
            found[0].erase()
            found[0].write(0, data)
            if secure.exists():
                (cert_partition,) = partitions.find(PARTITION_TYPE, None, PARTITION_LABEL)
                cert_partition.erase()
                cert_partition.write(0, secure.read_bytes())
        flashed.append(FlashedDevice(name, image, found[0].address))
        if progress is not None:
            progress(n + 1, len(plan))
    return flashed
