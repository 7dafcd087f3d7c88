"""The package's folders are layers: each imports only from the layers listed before it."""

import ast
from pathlib import Path

import probssl

LAYERS = [
    "config",
    "data",
    "augment",
    "distributions",
    "models",
    "losses",
    "methods",
    "train",
    "evaluation",
    "report",
    "cli",
]
ROOT = Path(probssl.__file__).parent


def _layer_of(path: Path) -> str | None:
    rel = path.relative_to(ROOT)
    name = rel.parts[0].removesuffix(".py")
    return name if name in LAYERS else None


def _probssl_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("probssl."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("probssl."))
    return found


def test_every_layer_imports_only_earlier_layers():
    violations = []
    for path in ROOT.rglob("*.py"):
        layer = _layer_of(path)
        if layer is None:
            continue
        allowed = set(LAYERS[: LAYERS.index(layer) + 1])
        for imported in _probssl_imports(path) - allowed:
            violations.append(f"{path.relative_to(ROOT)} imports probssl.{imported}")
    assert not violations, "\n".join(violations)


def test_nothing_imports_the_cli():
    users = [
        p
        for p in ROOT.rglob("*.py")
        if "cli" in _probssl_imports(p) and _layer_of(p) != "cli" and p.name != "__main__.py"
    ]
    assert not users


def test_no_torchvision_import():
    """torchvision (and what requires it) breaks on CPU torch here; probssl writes its own image ops."""

    def imports(path):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                yield from (a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                yield node.module.split(".")[0]

    banned = {"torchvision", "timm", "lightly", "lightning", "torchmetrics"}
    assert not [p for p in ROOT.rglob("*.py") if banned & set(imports(p))]


def test_timm_and_torchvision_are_only_reached_on_request():
    """The one bridge to them (model.backbone: timm/NAME | torchvision/NAME) imports them lazily, by name."""
    users = [
        p.relative_to(ROOT)
        for p in ROOT.rglob("*.py")
        if 'import_module("timm")' in p.read_text() or 'import_module("torchvision")' in p.read_text()
    ]
    assert [str(p) for p in users] == ["models/registry.py"]


def _long_functions(folder: Path, limit: int) -> list[str]:
    found = []
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_functions_are_short():
    """No function over 80 lines in probssl/, none over 60 in evaluation/ and report/ (split by meaning)."""
    assert not _long_functions(ROOT, 80)
    assert not _long_functions(ROOT / "evaluation", 60) + _long_functions(ROOT / "report", 60)
