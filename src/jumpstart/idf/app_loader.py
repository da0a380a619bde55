"""Run the Python code an app image carries, isolated per boot.

Each boot imports the app's modules under a fresh top-level name, so two devices (or two boots
of one device after an OTA) never share module state, and unloading removes every trace from
``sys.modules``. Relative imports inside the app work as in any package.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import sys
import uuid
from collections.abc import Callable, Sequence
from types import CodeType, ModuleType
from typing import Any

from jumpstart.errors import InputError
from jumpstart.formats.app_package import AppPackage

__all__ = ["LoadedApp"]


@functools.lru_cache(maxsize=1024)
def _compiled(source: str, filename: str) -> CodeType:
    """A module's code, compiled once for every boot of the same source: code objects are
    immutable, so devices share them; each boot still runs it into module state of its own."""
    return compile(source, filename, "exec")


PREFIX = "_jumpstart_app_"  # every boot's top-level package name starts so


class _AppFinder(importlib.abc.MetaPathFinder, importlib.abc.InspectLoader):
    """Finds and loads the modules of one app, all under ``prefix``."""

    def __init__(self, prefix: str, package: AppPackage) -> None:
        self.prefix = prefix
        self.package = package
        self._packages = package.packages
        self.loaded: list[str] = []

    def _relative(self, fullname: str) -> str | None:
        if fullname == self.prefix:
            return ""
        if fullname.startswith(self.prefix + "."):
            return fullname[len(self.prefix) + 1 :]
        return None

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        name = self._relative(fullname)
        if name is None:
            return None
        is_package = name == "" or name in self._packages
        if not is_package and name not in self.package.modules:
            return None
        spec = importlib.machinery.ModuleSpec(fullname, self, is_package=is_package)
        spec.has_location = False
        return spec

    def is_package(self, fullname: str) -> bool:
        name = self._relative(fullname)
        return name == "" or name in self._packages

    def get_source(self, fullname: str) -> str:
        name = self._relative(fullname) or ""
        key = name + ".__init__" if self.is_package(fullname) else name
        return self.package.modules.get(key, b"").decode("utf-8")

    def get_code(self, fullname: str) -> Any:
        name = self._relative(fullname) or "__init__"
        return _compiled(self.get_source(fullname), f"<{self.package.name}>/{name}.py")

    def exec_module(self, module: ModuleType) -> None:
        self.loaded.append(module.__name__)
        exec(self.get_code(module.__name__), module.__dict__)


class _AppImporter(importlib.abc.MetaPathFinder):
    """The one meta path entry for every loaded app: it hands an import to the app whose
    prefix it names. One finder per boot on ``sys.meta_path`` would make every import in the
    process walk all of them (quadratic in a fleet of thousands)."""

    def __init__(self) -> None:
        self.apps: dict[str, _AppFinder] = {}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(PREFIX):
            return None
        finder = self.apps.get(fullname.partition(".")[0])
        return None if finder is None else finder.find_spec(fullname, path, target)

    def add(self, finder: _AppFinder) -> None:
        if self not in sys.meta_path:
            # First, so the path finders never search sys.path for a boot's package.
            sys.meta_path.insert(0, self)
        self.apps[finder.prefix] = finder

    def remove(self, finder: _AppFinder) -> None:
        self.apps.pop(finder.prefix, None)


# The import system is one per process; this entry only routes by name, each boot's modules
# stay its own.
_IMPORTER = _AppImporter()


class LoadedApp:
    """An app package imported for one boot; ``unload()`` when the boot ends."""

    def __init__(self, package: AppPackage) -> None:
        self.package = package
        self.prefix = f"{PREFIX}{uuid.uuid4().hex[:12]}"
        self._finder = _AppFinder(self.prefix, package)
        _IMPORTER.add(self._finder)
        try:
            self.module = importlib.import_module(f"{self.prefix}.{package.entry}")
        except SyntaxError as err:
            self.unload()
            raise InputError(f"app {package.name!r} does not compile: {err}") from None
        except BaseException:
            self.unload()
            raise
        main = getattr(self.module, "app_main", None)
        if not callable(main):
            self.unload()
            raise InputError(f"app {package.name!r}: module {package.entry!r} has no app_main")
        self.app_main: Callable[..., Any] = main

    def unload(self) -> None:
        _IMPORTER.remove(self._finder)
        for name in self._finder.loaded:
            sys.modules.pop(name, None)
        self._finder.loaded.clear()
