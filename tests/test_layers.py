"""Each layer imports only the layers below it (design.md, 'Layers')."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "jumpstart"
FORBIDDEN = {
    "formats": {"targets", "idf", "host", "cli", "outlet", "cloud", "fleet"},
    "targets": {"idf", "host", "cli", "outlet", "cloud", "fleet"},
    "idf": {"host", "cli", "outlet", "cloud", "fleet"},
    "host": {"cli"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports(layer: str) -> None:
    files = list((SRC / layer).rglob("*.py"))
    assert files
    for path in files:
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] == "jumpstart" and len(parts) > 1:
                assert parts[1] not in FORBIDDEN[layer], f"{path.name} imports {module}"
