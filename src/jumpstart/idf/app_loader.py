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


class _AppFinder(importlib.abc.MetaPathFinder, importlib.abc.InspectLoader):
    """Finds and loads the modules of one app, all under ``prefix``."""

    def __init__(self, prefix: str, package: AppPackage) -> None:
        self.prefix = prefix
        self.package = package
        self._packages = package.packages

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
        exec(self.get_code(module.__name__), module.__dict__)


class LoadedApp:
    """An app package imported for one boot; ``unload()`` when the boot ends."""

    def __init__(self, package: AppPackage) -> None:
        self.package = package
        self.prefix = f"_jumpstart_app_{uuid.uuid4().hex[:12]}"
        self._finder = _AppFinder(self.prefix, package)
        sys.meta_path.append(self._finder)
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
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        for name in [n for n in sys.modules if n == self.prefix or n.startswith(self.prefix + ".")]:
            del sys.modules[name]
