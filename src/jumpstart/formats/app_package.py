"""The payload of a jumpstart app image: the application's Python code and embedded files.

An ESP-IDF app image carries machine code; ours carries a Python package in the same place, the
first DROM segment after ``esp_app_desc_t``, so that flashing, OTA, checksums, SHA-256 and
secure-boot signatures all apply to the code that really runs. The payload is a ZIP archive
(stored deterministically: fixed timestamps, sorted names) holding::

    jumpstart-app.json      manifest: format, name, version, entry module, config
    code/<package>/...py    the application's modules
    embed/<name>            files embedded like COMPONENT_EMBED_TXTFILES / EMBED_FILES
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

from jumpstart.errors import InputError

__all__ = ["APP_PACKAGE_FORMAT", "AppPackage"]

APP_PACKAGE_FORMAT = 1
MANIFEST_NAME = "jumpstart-app.json"
CODE_PREFIX = "code/"
EMBED_PREFIX = "embed/"
# ZIP's earliest representable time: the archive bytes do not depend on when it was built.
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class AppPackage:
    """An application: ``modules`` maps dotted module names to source, ``entry`` holds
    ``app_main``."""

    name: str
    version: str
    entry: str
    modules: dict[str, bytes]
    embedded: dict[str, bytes] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.entry not in self.modules:
            raise InputError(f"app {self.name!r}: entry module {self.entry!r} is not in the app")

    @property
    def packages(self) -> set[str]:
        """Dotted names that are packages (have an ``__init__``) or parents of modules."""
        found: set[str] = set()
        for module in self.modules:
            parts = module.split(".")
            found.update(".".join(parts[:n]) for n in range(1, len(parts)))
        return found

    def to_bytes(self) -> bytes:
        manifest = {
            "format": APP_PACKAGE_FORMAT,
            "name": self.name,
            "version": self.version,
            "entry": self.entry,
            "config": self.config,
        }
        files = {MANIFEST_NAME: json.dumps(manifest, sort_keys=True, indent=1).encode()}
        for module, source in self.modules.items():
            files[CODE_PREFIX + module.replace(".", "/") + ".py"] = source
        for name, data in self.embedded.items():
            files[EMBED_PREFIX + name] = data
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(files):
                info = zipfile.ZipInfo(name, _FIXED_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, files[name])
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> AppPackage:
        """Read a payload; anything that is not a well-formed app package is an InputError."""
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                files = {info.filename: archive.read(info) for info in archive.infolist()}
        except (zipfile.BadZipFile, EOFError, ValueError, OSError) as err:
            raise InputError(f"the image does not carry an app package ({err})") from None
        try:
            manifest = json.loads(files[MANIFEST_NAME])
        except KeyError:
            raise InputError(f"the app package has no {MANIFEST_NAME}") from None
        except ValueError as err:
            raise InputError(f"{MANIFEST_NAME} is not valid JSON ({err})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != APP_PACKAGE_FORMAT:
            raise InputError(f"unsupported app package format {manifest!r:.60}")
        modules: dict[str, bytes] = {}
        embedded: dict[str, bytes] = {}
        for name, content in files.items():
            if name.startswith(CODE_PREFIX) and name.endswith(".py"):
                dotted = name[len(CODE_PREFIX) : -3].replace("/", ".")
                modules[dotted] = content
            elif name.startswith(EMBED_PREFIX):
                embedded[name[len(EMBED_PREFIX) :]] = content
        try:
            return cls(
                name=str(manifest["name"]),
                version=str(manifest["version"]),
                entry=str(manifest["entry"]),
                modules=modules,
                embedded=embedded,
                config=dict(manifest.get("config") or {}),
            )
        except KeyError as err:
            raise InputError(f"{MANIFEST_NAME} lacks {err}") from None
