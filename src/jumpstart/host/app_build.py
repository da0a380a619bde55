"""``jumpstart idf build``: an app folder -> an ESP app image carrying its code.

The folder holds ``app.toml``::

    [app]
    name = "drivers"            # esp_app_desc_t.project_name
    version = "1.0.0"           # esp_app_desc_t.version
    package = "drivers"         # the Python package folder next to app.toml
    entry = "drivers.main"      # the module that defines app_main(ctx)
    embed_txtfiles = ["server.crt"]   # like COMPONENT_EMBED_TXTFILES (optional)
    components = ["../components/app_driver"]   # shared packages, like EXTRA_COMPONENT_DIRS
    [config]                    # build-time settings the app reads (its sdkconfig)
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

from jumpstart.errors import InputError
from jumpstart.formats.app_package import AppPackage
from jumpstart.host.image_tools import image_build
from jumpstart.targets import ESP32, ChipProfile

__all__ = ["build_app_image", "load_app_package"]

MANIFEST = "app.toml"


def _text(table: dict[str, Any], key: str, where: Path) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise InputError(f"{where}: [app] needs a text value for {key!r}")
    return value


def _modules(package: Path) -> dict[str, bytes]:
    """Dotted name -> source of every module in the package folder ``package``."""
    return {
        ".".join(path.relative_to(package.parent).with_suffix("").parts): path.read_bytes()
        for path in sorted(package.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def load_app_package(
    folder: Path,
    overrides: dict[str, Any] | None = None,
    embedded: dict[str, bytes] | None = None,
) -> AppPackage:
    """Read an app folder into a package; errors name the file and what to fix.

    ``overrides`` replace [config] values (as a saved menuconfig replaces sdkconfig defaults);
    an unknown key is refused, so a typo cannot silently build the default. ``embedded``
    supplies files the manifest embeds (by file name) from elsewhere than the app folder, such
    as per-device credentials; a name the manifest does not embed is refused."""
    manifest = folder / MANIFEST
    try:
        data = tomllib.loads(manifest.read_text())
    except FileNotFoundError:
        raise InputError(f"{folder} is not an app folder: it has no {MANIFEST}") from None
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{manifest}: {err}") from None
    app = data.get("app")
    if not isinstance(app, dict):
        raise InputError(f"{manifest}: missing the [app] table")
    package = _text(app, "package", manifest)
    root = folder / package
    if not root.is_dir():
        raise InputError(f"{manifest}: package folder {root} does not exist")
    modules = _modules(root)
    for component in app.get("components", []):
        where = (folder / component).resolve()
        if not (where / "__init__.py").is_file():
            raise InputError(f"{manifest}: component {component!r} is not a Python package")
        modules.update(_modules(where))
    files: dict[str, bytes] = {}
    supplied = dict(embedded or {})
    for name in [*app.get("embed_txtfiles", []), *app.get("embed_files", [])]:
        key = Path(name).name
        if key in supplied:
            files[key] = supplied.pop(key)
            continue
        try:
            files[key] = (folder / name).read_bytes()
        except OSError as err:
            raise InputError(f"{manifest}: cannot embed {name!r}: {err.strerror}") from None
    if supplied:
        raise InputError(f"{manifest}: embeds no file named {', '.join(sorted(supplied))}")
    config = data.get("config", {})
    if not isinstance(config, dict):
        raise InputError(f"{manifest}: [config] must be a table")
    for key, value in (overrides or {}).items():
        if key not in config:
            known = ", ".join(sorted(config)) or "none"
            raise InputError(f"{manifest}: no config option {key!r} (known: {known})")
        config[key] = value
    return AppPackage(
        name=_text(app, "name", manifest),
        version=_text(app, "version", manifest),
        entry=_text(app, "entry", manifest),
        modules=modules,
        embedded=files,
        config=config,
    )


def build_app_image(
    folder: Path,
    *,
    when: dt.datetime | None = None,
    overrides: dict[str, Any] | None = None,
    embedded: dict[str, bytes] | None = None,
    chip: ChipProfile = ESP32,
) -> bytes:
    """The app image for ``folder``: esp_app_desc_t + the package, checksum and SHA-256, in
    the chip's image format."""
    package = load_app_package(folder, overrides, embedded)
    return image_build(
        package.name,
        package.version,
        package.to_bytes(),
        when=when or dt.datetime.now(dt.UTC),
        chip=chip,
    )
