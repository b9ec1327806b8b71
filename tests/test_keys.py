"""A finished cell is reused only when the code that made it is the code that would run now."""
import importlib
import shutil
import sys
from pathlib import Path

import pytest

from mubench.harness import keys
from mubench.run import cell_keys


@pytest.fixture
def fresh_versions():
    keys.code_version.cache_clear()
    yield
    keys.code_version.cache_clear()


def write_package(root: Path, c_body: str = "VALUE = 1\n") -> None:
    package = root / "keytestpkg"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("import json\n\ndef run():\n    from keytestpkg import b  # lazy\n    return b\n")
    (package / "b.py").write_text("from .c import VALUE\nimport numpy\n")
    (package / "c.py").write_text(c_body)
    (package / "unused.py").write_text("X = 0\n")
    importlib.invalidate_caches()


def test_the_closure_follows_lazy_and_relative_imports_and_stops_at_other_packages(tmp_path, monkeypatch,
                                                                                    fresh_versions):
    write_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    closure = keys.source_closure(("keytestpkg.a",), ("keytestpkg",))
    assert set(closure) == {"keytestpkg", "keytestpkg.a", "keytestpkg.b", "keytestpkg.c"}
    before = keys.code_version(("keytestpkg.a",))
    write_package(tmp_path, c_body="VALUE = 2\n")
    keys.code_version.cache_clear()
    assert keys.code_version(("keytestpkg.a",)) != before
    (tmp_path / "keytestpkg" / "unused.py").write_text("X = 1\n")
    after = keys.code_version(("keytestpkg.a",))
    keys.code_version.cache_clear()
    assert keys.code_version(("keytestpkg.a",)) == after  # a module nothing imports changes nothing
    sys.modules.pop("keytestpkg", None)


def test_a_relative_import_two_levels_up_resolves_to_the_grandparent_package(tmp_path, monkeypatch):
    for folder in ("relpkg", "relpkg/sub"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "relpkg" / "sub" / "mod.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    source = b"from ..shared import helper\nfrom . import sibling\n"
    assert keys._imported_names("relpkg.sub.mod", source) == {
        "relpkg.shared", "relpkg.shared.helper", "relpkg.sub", "relpkg.sub.sibling"}
    sys.modules.pop("relpkg", None)
    sys.modules.pop("relpkg.sub", None)


def test_a_cell_covers_the_harness_and_the_helpers_its_method_imports():
    closure = keys.source_closure((cell_keys.CELL_ENTRY, keys.REFERENCE_ENTRY,
                                       keys.method_module("eu-k"), keys.task_module("digits")), ("mubench",))
    for executed in ("mubench.unlearn.loop", "mubench.train.training", "mubench.scores.metrics", "mubench.data.splits", "mubench.train.backbones",
                     "mubench.methods.eu_k", "mubench.datasets.digits", "mubench.core.losses"):
        assert executed in closure
    for not_executed in ("mubench.boards.leaderboard", "mubench.cli.main", "mubench.boards.report", "mubench.methods.scrub"):
        assert not_executed not in closure


def test_the_libraries_versions_are_part_of_the_key(monkeypatch, fresh_versions):
    entries = (cell_keys.CELL_ENTRY,)
    before = keys.code_version(entries)
    monkeypatch.setattr(keys, "library_versions", lambda: {"torch": "0.0-other"})
    keys.code_version.cache_clear()
    assert keys.code_version(entries) != before


def edited(module: str):
    """keys.module_source as if `module`'s file had been edited."""
    real = keys.module_source

    def source(name):
        text = real(name)
        return text + b"\n# edited\n" if name == module else text
    return source


def test_a_harness_edit_reruns_the_cells_that_execute_it_and_skips_the_rest(smoke_run, tmp_path, cli, monkeypatch,
                                                                            fresh_versions):
    out = Path(shutil.copytree(smoke_run[0], tmp_path / "copy"))
    command = ("run", "--preset", "smoke", "--methods", "finetune", "--out", str(out), "--quiet", "--no-plots")
    assert "0 cells run, 3 already finished" in cli(*command).stderr
    monkeypatch.setattr(keys, "module_source", edited("mubench.unlearn.loop"))  # finetune's loop, not the references'
    keys.code_version.cache_clear()
    result = cli(*command)
    assert "1 cells run, 2 already finished" in result.stderr
    assert "references from cache: 2, trained: 0" in result.stderr
    monkeypatch.setattr(keys, "module_source", edited("mubench.scores.metrics"))  # every cell scores with it
    keys.code_version.cache_clear()
    assert "3 cells run, 0 already finished" in cli(*command).stderr
