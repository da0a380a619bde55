"""Regenerate the committed protobuf modules from the ``.proto`` files (``make protos``).

protoc writes ``import constants_pb2`` for an import of ``constants.proto``; the modules live in
packages, so those lines are rewritten to absolute imports. Needs ``grpcio-tools``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent / "src"
PROTO_DIRS = {
    "jumpstart.idf.protocomm.proto": ROOT / "jumpstart/idf/protocomm/proto",
    "jumpstart.idf.wifi_prov.proto": ROOT / "jumpstart/idf/wifi_prov/proto",
}
IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)
PYI_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)


def _package_of(module: str) -> str:
    for package, folder in PROTO_DIRS.items():
        if (folder / f"{module.removesuffix('_pb2')}.proto").exists():
            return package
    raise SystemExit(f"no .proto file for generated import {module}")


def main() -> int:
    includes = [f"-I{folder}" for folder in PROTO_DIRS.values()]
    for folder in PROTO_DIRS.values():
        protos = sorted(str(p.name) for p in folder.glob("*.proto"))
        args = ["protoc", *includes, f"--python_out={folder}", f"--pyi_out={folder}", *protos]
        if protoc.main(args) != 0:
            return 1
        for generated in [*folder.glob("*_pb2.py"), *folder.glob("*_pb2.pyi")]:
            text = IMPORT.sub(
                lambda m: f"from {_package_of(m[1])} import {m[1]} as {m[2]}",
                generated.read_text(),
            )
            generated.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
