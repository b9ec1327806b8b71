"""Seams of the harness that the end-to-end tests reach only in slow runs or not at all: `--set` values of optional
fields, the record of a cell whose worker was lost, and what a Ray actor prepares for which seed (driven here
without Ray)."""
from __future__ import annotations

import dataclasses

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from mubench import executors
from mubench.config import build_config
from mubench.errors import MubenchError
from mubench.plan import CellJob, MethodSpec, RunPlan, RunSummary
from mubench.testing import TOY_RECIPE, toy_splits
from mubench.tracking import EXPERIMENT, TAG, open_store


@dataclasses.dataclass(frozen=True)
class OptionalConfig:
    limit: int | None = 3  # a plugin's optional field
    rate: float = 0.1


def test_none_clears_an_optional_field_and_is_refused_elsewhere():
    assert build_config(OptionalConfig, "plugin", {"limit": "none"}).limit is None
    assert build_config(OptionalConfig, "plugin", {"limit": "NULL"}).limit is None
    assert build_config(OptionalConfig, "plugin", {"limit": "5"}).limit == 5
    with pytest.raises(MubenchError, match="rate"):
        build_config(OptionalConfig, "plugin", {"rate": "none"})


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    open_store(uri, tmp_path)
    return RunPlan(methods=[], tasks=["digits"], backbones=["toy"], seeds=[0], out=tmp_path, tracking_uri=uri,
                   cache_dir=tmp_path, quiet=True)


def digits_like():
    return dataclasses.replace(toy_splits(), task="digits")


def cell_runs(status=None):
    experiment = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
    where = f" and attributes.status = '{status}'" if status else ""
    return MlflowClient().search_runs([experiment], f"tags.`{TAG}kind` = 'cell'{where}")


def test_a_lost_cell_ends_its_own_running_run_failed_and_no_other(store):
    job = CellJob(MethodSpec("finetune"), "key-lost", "digits", "toy", 0)
    with mlflow.start_run() as parent:
        summary = RunSummary(parent.info.run_id)
        client = MlflowClient()
        experiment = parent.info.experiment_id
        mine = client.create_run(experiment, tags={f"{TAG}kind": "cell", f"{TAG}cell_key": "key-lost",
                                                   "mlflow.parentRunId": parent.info.run_id}).info.run_id
        other_key = client.create_run(experiment, tags={f"{TAG}kind": "cell", f"{TAG}cell_key": "key-other",
                                                        "mlflow.parentRunId": parent.info.run_id}).info.run_id
        other_parent = client.create_run(experiment, tags={f"{TAG}kind": "cell", f"{TAG}cell_key": "key-lost",
                                                           "mlflow.parentRunId": "another-invocation"}).info.run_id
        executors.record_lost_cell(store, job, digits_like(), TOY_RECIPE, "ActorDiedError: worker lost", summary)
    assert client.get_run(mine).info.status == "FAILED"
    assert client.get_run(mine).data.tags[f"{TAG}error"] == "ActorDiedError: worker lost"
    assert client.get_run(other_key).info.status == client.get_run(other_parent).info.status == "RUNNING"
    assert len(cell_runs()) == 3  # nothing created
    assert summary.cells == 1 and [f.label for f in summary.failures] == ["finetune"]


def test_a_cell_lost_before_its_run_opened_gets_a_failed_run_a_board_and_a_rerun_can_read(store):
    job = CellJob(MethodSpec("finetune", (("lr", 0.5),)), "key-never-opened", "digits", "toy", 1)
    with mlflow.start_run() as parent:
        summary = RunSummary(parent.info.run_id)
        executors.record_lost_cell(store, job, digits_like(), TOY_RECIPE, "worker lost", summary)
    (run,) = cell_runs("FAILED")
    tags = run.data.tags
    assert tags[f"{TAG}cell_key"] == "key-never-opened" and tags["mlflow.parentRunId"] == parent.info.run_id
    assert tags[f"{TAG}label"] == "finetune[lr=0.5]" and tags[f"{TAG}seed"] == "1"
    assert tags[f"{TAG}error"] == "worker lost"
    assert run.info.run_name == "finetune[lr=0.5]/digits/toy/s1"


def test_an_actor_prepares_the_reference_and_the_shadow_of_the_seed_it_is_handed(store, monkeypatch):
    import mubench.shadows
    monkeypatch.setattr(executors, "_limit_threads", lambda threads: None)  # keep this process's thread count
    prepared = []
    monkeypatch.setattr(executors, "train_reference_role",
                        lambda plan, splits, recipe, backbone, seed, role, summary:
                        prepared.append(("reference", backbone, seed, role)))
    monkeypatch.setattr(mubench.shadows, "shadow_set",
                        lambda plan, splits, recipe, backbone, seed, count, indices=None:
                        prepared.append(("shadow", backbone, seed, count, indices)))
    worker = executors.CellWorker(dataclasses.replace(store, shadows=8), "parent", 1)
    group = ("digits", "random", "resnet18", 4)
    worker.tasks[group[:2]] = (digits_like(), TOY_RECIPE)  # what Ray's object store would hand over
    worker.prepare(group, [None], "retrain")
    worker.prepare(group, [None], 5)
    assert prepared == [("reference", "resnet18", 4, "retrain"), ("shadow", "resnet18", 4, 8, [5])]


def test_an_actor_keeps_the_references_of_its_last_seeds_and_runs_each_cell_on_its_own_seeds(store, monkeypatch):
    monkeypatch.setattr(executors, "_limit_threads", lambda threads: None)
    trained, ran = [], []
    monkeypatch.setattr(executors, "train_references",
                        lambda plan, splits, recipe, backbone, seed, summary: trained.append((backbone, seed))
                        or f"refs-{backbone}-{seed}")
    monkeypatch.setattr(executors, "seed_attack", lambda *args: None)
    monkeypatch.setattr(executors, "seed_plots_for", lambda *args: None)
    monkeypatch.setattr(executors, "run_logged_cell",
                        lambda plan, spec, key, splits, recipe, backbone, seed, refs, summary, plots, attack:
                        ran.append((spec.name, backbone, seed, refs)))
    worker = executors.CellWorker(store, "parent", 1)
    worker.tasks[("digits", "random")] = (digits_like(), TOY_RECIPE)
    for seed in (0, 1, 0, 2, 0, 1):
        worker.run(CellJob(MethodSpec("finetune"), f"k{seed}", "digits", "resnet18", seed), [None])
    assert ran == [("finetune", "resnet18", s, f"refs-resnet18-{s}") for s in (0, 1, 0, 2, 0, 1)]
    # two seeds kept (the last served): seed 1 was dropped when seed 2 came, and trained again at the end
    assert trained == [("resnet18", 0), ("resnet18", 1), ("resnet18", 2), ("resnet18", 1)]
