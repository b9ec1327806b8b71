"""The task kit (mubench.kits.task_kit) on every registered task, each on a fixture in its release's layout, and on
wrong variants it must refuse."""
import dataclasses
from pathlib import Path

import pytest
import torch

import fixtures_faces as ff
from mubench.core.errors import MubenchError
from mubench.data.tasks import TASKS, Recipe
from mubench.datasets.digits import Digits
from mubench.kits.task_kit import TaskCheckError, check_task

SHARED_FER = Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013" / "sample"
ROOTS = {"digits": None, "mufac": ff.make_mufac, "rafdb": ff.make_rafdb, "mucac-gender": ff.make_celeba,
         "mucac-multi": ff.make_celeba, "imagefolder": ff.make_imagefolder, "fer2013": SHARED_FER,
         "fer2013-mini": SHARED_FER}


@pytest.fixture(autouse=True)
def decode_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MUBENCH_CACHE", str(tmp_path / "cache"))


def test_every_registered_task_has_a_root_here():
    assert set(TASKS.names()) == set(ROOTS)


@pytest.mark.parametrize("task", sorted(ROOTS))
def test_every_task_conforms(task, tmp_path):
    root = ROOTS[task]
    if isinstance(root, Path) and not root.is_dir():
        pytest.skip("no FER-2013 sample beside the repository")
    check_task(task, root(tmp_path / "data") if callable(root) else root)


def wrong_digits(load=None, **declared):
    """A digits task with one thing wrong: a declaration or what its load returns."""
    attributes = {"__doc__": "Digits, wrongly.", "registered_name": "digits", **declared}
    if load is not None:
        attributes["load"] = lambda self, data_root=None: load(Digits().load(data_root))
    return type("WrongDigits", (Digits,), attributes)


def swap_labels(split, labels):
    return dataclasses.replace(split, labels=labels)


def test_the_kit_passes_the_right_variant():
    check_task(wrong_digits())  # the scaffolding alone changes nothing


@pytest.mark.parametrize("variant, says", [
    (wrong_digits(num_outputs=1), "num_outputs 1"),
    (wrong_digits(recipe=Recipe(epochs=20, batch_size=64, lr=0.02, schedule="cosin")), "schedule one of"),
    (wrong_digits(recipe=Recipe(epochs=20, batch_size=64, lr=0.02, schedule="step")), "without milestones"),
    (wrong_digits(kind="multiclass"), "expected a TaskKind"),
    (wrong_digits(load=lambda s: dataclasses.replace(s, forget=s.retain.concat(s.forget))), "roles must be disjoint"),
    (wrong_digits(load=lambda s: dataclasses.replace(s, test=swap_labels(s.test, s.test.labels + 1))), "0 to 9"),
    (wrong_digits(load=lambda s: dataclasses.replace(s, val=s.val.subset(torch.arange(0)))), "empty val"),
    (wrong_digits(load=lambda s: dataclasses.replace(s, task="digit")), "named 'digit'"),
    (wrong_digits(load=lambda s: dataclasses.replace(s, retain=s.retain.subset(torch.randperm(len(s.retain))[:-1]))),
     "different splits"),
])
def test_the_kit_refuses_a_wrong_task(variant, says):
    with pytest.raises(TaskCheckError, match=says):
        check_task(variant)


def test_the_kit_refuses_a_task_that_answers_a_bad_root_with_a_traceback():
    def load(self, data_root=None):
        return open(Path(data_root or "/nowhere") / "labels.csv").read()
    task = type("Careless", (Digits,), {"__doc__": "Reads a file.", "registered_name": "careless",
                                       "needs_data_root": True, "load": load})
    with pytest.raises(TaskCheckError, match="expected a MubenchError"):
        check_task(task)


def contributing_example(heading: str) -> str:
    text = (Path(__file__).resolve().parents[1] / "CONTRIBUTING.md").read_text()
    section = text[text.index(heading):]
    return section[section.index("```python\n") + len("```python\n"):section.index("```\n")]


def test_the_contributing_task_example_conforms(tmp_path, monkeypatch):
    """The worked example in CONTRIBUTING's task section, on a fixture of its layout, passes the kit."""
    from mubench.data import tasks
    from fixtures_faces import write_image
    root = tmp_path / "release"
    rows, roles = ["file,label"], {role: [] for role in ("retain", "forget", "val", "test")}
    for i in range(40):
        name = f"img_{i:02d}.png"
        write_image(root / "images" / name, i % 5, size=64, seed=i)
        rows.append(f"{name},{i % 5}")
        roles[("retain", "retain", "forget", "val", "test")[i % 5]].append(name)
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setattr(tasks, "manifest_path", lambda task: tmp_path / f"{task}.json")
    tasks.write_manifest("my-task", roles, tmp_path / "my-task.json")
    monkeypatch.setattr(TASKS, "_entries", dict(TASKS._entries))  # the example's registration ends with the test
    namespace = {"__name__": "my_task_example"}
    exec(compile(contributing_example("## Add a task"), "CONTRIBUTING.md", "exec"), namespace)
    check_task("my-task", data_root=root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MubenchError, match="labels.csv"):
        namespace["MyTask"]().load(tmp_path / "empty")
