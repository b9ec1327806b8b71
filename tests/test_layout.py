"""The package layout reads as the data flow: subpackages in layers, and imports only run downwards."""
import ast
from pathlib import Path

import pytest

import mubench

PACKAGE = Path(mubench.__file__).parent
# Lowest first: a module may import from its own subpackage or from any subpackage listed before it.
LAYERS = ("core", "data", "train", "scores", "unlearn", "harness", "attacks", "boards", "run", "kits", "cli")


def imported_modules(source: str) -> set[str]:
    """Every first-party module a source imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "mubench":
                found.update(f"mubench.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "mubench"}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def upward_imports(root: Path = PACKAGE) -> list[str]:
    """'importer -> imported' for each import that reaches a higher layer or a plugin folder (methods, datasets)."""
    wrong = []
    for layer in LAYERS:
        for path in sorted((root / layer).glob("*.py")):
            importer = f"mubench.{layer}.{path.stem}"
            for module in imported_modules(path.read_text()):
                target = layer_of(module)
                plugin = module.split(".")[1] in ("methods", "datasets") if "." in module else False
                if plugin or (target is not None and LAYERS.index(target) > LAYERS.index(layer)):
                    wrong.append(f"{importer} -> {module}")
    return sorted(wrong)


def test_every_module_lives_in_a_layer():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert loose == []
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists() and p.name not in
                     ("methods", "datasets"))
    assert folders == sorted(LAYERS)


def test_imports_only_run_downwards():
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path):
    for layer in LAYERS:
        (tmp_path / layer).mkdir()
    (tmp_path / "data" / "splits.py").write_text("from mubench.core.errors import MubenchError\n")
    (tmp_path / "train" / "fit.py").write_text("def f():\n    from mubench.run.cell import run_cell\n")
    (tmp_path / "scores" / "m.py").write_text("from mubench import boards\nimport mubench.methods.dlfd\n")
    assert upward_imports(tmp_path) == ["mubench.scores.m -> mubench.boards", "mubench.scores.m -> mubench.methods.dlfd",
                                        "mubench.train.fit -> mubench.run.cell"]


@pytest.mark.parametrize("layer", LAYERS)
def test_each_subpackage_says_what_it_holds(layer):
    assert ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
