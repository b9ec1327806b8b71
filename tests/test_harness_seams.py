"""Seams of the harness that the end-to-end tests reach only in slow runs or not at all: `--set` values of optional
fields, the record of a cell whose worker was lost, and what a Ray actor prepares for which seed (driven here
without Ray)."""
from __future__ import annotations

import dataclasses
import os

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from mubench.run import executors
from mubench.core.config import build_config
from mubench.core.errors import MubenchError
from mubench.harness.plan import CellJob, MethodSpec, RunPlan, RunSummary, SeedKey, SeedSetup
from mubench.kits.method_kit import TOY_RECIPE, toy_splits
from mubench.core.tracking import open_store
from mubench.core.store import EXPERIMENT, TAG


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
    with pytest.raises(MubenchError, match=r"^--set plugin.limit='abc': expected an integer.$"):
        build_config(OptionalConfig, "plugin", {"limit": "abc"})


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
    job = CellJob.of(MethodSpec("finetune"), "key-lost", "digits", "toy", 0)
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
        executors.record_lost_cell(SeedSetup(store, digits_like(), TOY_RECIPE, job.backbone, job.seed), job,
                                   "ActorDiedError: worker lost", summary)
    assert client.get_run(mine).info.status == "FAILED"
    assert client.get_run(mine).data.tags[f"{TAG}error"] == "ActorDiedError: worker lost"
    assert client.get_run(other_key).info.status == client.get_run(other_parent).info.status == "RUNNING"
    assert len(cell_runs()) == 3  # nothing created
    assert summary.cells == 1 and [f.label for f in summary.failures] == ["finetune"]


def test_a_cell_lost_before_its_run_opened_gets_a_failed_run_a_board_and_a_rerun_can_read(store):
    job = CellJob.of(MethodSpec("finetune", (("lr", 0.5),)), "key-never-opened", "digits", "toy", 1)
    with mlflow.start_run() as parent:
        summary = RunSummary(parent.info.run_id)
        executors.record_lost_cell(SeedSetup(store, digits_like(), TOY_RECIPE, job.backbone, job.seed), job,
                                   "worker lost", summary)
    (run,) = cell_runs("FAILED")
    tags = run.data.tags
    assert tags[f"{TAG}cell_key"] == "key-never-opened" and tags["mlflow.parentRunId"] == parent.info.run_id
    assert tags[f"{TAG}label"] == "finetune[lr=0.5]" and tags[f"{TAG}seed"] == "1"
    assert tags[f"{TAG}error"] == "worker lost"
    assert run.info.run_name == "finetune[lr=0.5]/digits/toy/s1"


def test_an_actor_prepares_the_reference_and_the_shadow_of_the_seed_it_is_handed(store, monkeypatch):
    import mubench.attacks.shadows
    monkeypatch.setattr(executors, "_limit_threads", lambda threads: None)  # keep this process's thread count
    prepared = []
    monkeypatch.setattr(executors, "train_reference_role",
                        lambda plan, splits, recipe, backbone, seed, role, summary:
                        prepared.append(("reference", backbone, seed, role)))
    monkeypatch.setattr(mubench.attacks.shadows, "shadow_set",
                        lambda plan, splits, recipe, backbone, seed, count, indices=None:
                        prepared.append(("shadow", backbone, seed, count, indices)))
    worker = executors.CellWorker(dataclasses.replace(store, shadows=8), "parent", 1)
    group = SeedKey("digits", "random", "resnet18", 4)
    worker.tasks[group.data] = (digits_like(), TOY_RECIPE)  # what Ray's object store would hand over
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
                        lambda setup, refs, job, summary, plots, attack:
                        ran.append((job.spec.name, setup.backbone, setup.seed, refs)))
    worker = executors.CellWorker(store, "parent", 1)
    worker.tasks[("digits", "random")] = (digits_like(), TOY_RECIPE)
    for seed in (0, 1, 0, 2, 0, 1):
        worker.run(CellJob.of(MethodSpec("finetune"), f"k{seed}", "digits", "resnet18", seed), [None])
    assert ran == [("finetune", "resnet18", s, f"refs-resnet18-{s}") for s in (0, 1, 0, 2, 0, 1)]
    # two seeds kept (the last served): seed 1 was dropped when seed 2 came, and trained again at the end
    assert trained == [("resnet18", 0), ("resnet18", 1), ("resnet18", 2), ("resnet18", 1)]


# Registries: a built-in is listed where it is registered ------------------------------------------------------------

def registered_in(folder: str, decorator: str) -> dict[str, str]:
    """{name: module:Class-or-function} of each `@decorator("name")` in the files of `folder`."""
    import re
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    package = {"methods": "mubench.methods", "datasets": "mubench.datasets", "mubench/train": "mubench.train"}[folder]
    found = {}
    for path in sorted((root / folder).glob("*.py")):
        text = path.read_text()
        for name, obj in re.findall(rf'@{decorator}\("([^"]+)"\)\s*\n(?:class|def) (\w+)', text):
            found[name] = f"{package}.{path.stem}:{obj}"
    return found


@pytest.mark.parametrize("registry, folder, decorator", [
    ("mubench.unlearn.api:METHODS", "methods", "register_method"), ("mubench.data.tasks:TASKS", "datasets",
                                                                    "register_task"),
    ("mubench.train.backbones:BACKBONES", "mubench/train", r"BACKBONES\.register")])
def test_every_builtin_is_listed_under_the_name_its_decorator_gives(registry, folder, decorator):
    import importlib
    module, attr = registry.split(":")
    listed = getattr(importlib.import_module(module), attr)._builtins
    assert registered_in(folder, decorator) == listed


@pytest.mark.parametrize("registry_of, group", [("mubench.unlearn.api:METHODS", "mubench.methods"),
                                                ("mubench.attacks.base:ATTACKS", "mubench.attacks")])
def test_a_plugin_registry_reads_its_entry_point_group(monkeypatch, registry_of, group):
    import importlib
    from importlib.metadata import EntryPoint

    from mubench.core import registry
    module, attr = registry_of.split(":")
    plugins = getattr(importlib.import_module(module), attr)
    asked = []

    def entry_points(group):
        asked.append(group)
        return [EntryPoint("someones-plugin", "somepkg.plugin:Plugin", group)]
    monkeypatch.setattr(registry, "entry_points", entry_points)
    monkeypatch.setattr(plugins, "_plugins", None)  # read the group again
    assert "someones-plugin" in plugins.names() and asked == [group]


def test_a_methods_loader_is_on_the_cells_device():
    from mubench.unlearn.api import UnlearnData
    splits = toy_splits()
    data = UnlearnData(splits.retain, splits.forget, splits.val, splits.kind, splits.num_outputs, splits.preprocess,
                       16, torch.device("cuda"))  # a loader is only built here, never iterated
    loader = data.loader("forget", shuffle=False, batch_size=8, seed=3)
    assert loader.device == torch.device("cuda") and loader.batch_size == 8 and loader.shuffle is False
    assert data.loader("val").batch_size == 16 and data.loader("val").shuffle is True
    assert data.loader("forget").drop_last is False and data.loader("forget", drop_last=True).drop_last is True
    assert len(data.loader("retain", batch_size=7, drop_last=True)) == len(splits.retain) // 7


def test_the_monitor_leaves_a_model_in_the_mode_it_found_it_in():
    from mubench.kits.method_kit import toy_cell
    cell = toy_cell()
    ctx, model = cell.context(), cell.model()
    for training in (True, False):
        model.train(training)
        ctx.monitor(model)
        assert model.training is training


# A cell's record ---------------------------------------------------------------------------------------------------

def test_a_methods_logged_curve_keeps_its_steps_and_wall_clock_times(store, monkeypatch):
    import time

    from mubench.unlearn.api import METHODS
    from mubench.run.cell import run_logged_cell
    from mubench.harness.references import References
    from mubench.kits.method_kit import toy_cell

    def unlearn(self, model, data, ctx):
        ctx.log_metric("curve", 0.5)
        ctx.log_metric("curve", 0.25, step=3)
        return model
    monkeypatch.setattr(METHODS.get("original"), "unlearn", unlearn)
    cell = toy_cell()
    splits = dataclasses.replace(cell.splits, task="digits")
    refs = References(cell.original, cell.retrained, {"key": "o"}, {"train_seconds": 1.0})
    started = time.time() * 1000
    with mlflow.start_run() as parent:
        summary = RunSummary(parent.info.run_id)
        job = CellJob.of(MethodSpec("original"), "k", splits.task, "toy", 0)
        run_logged_cell(SeedSetup(store, splits, TOY_RECIPE, "toy", 0), refs, job, summary)
    (run,) = cell_runs("FINISHED")
    history = MlflowClient().get_metric_history(run.info.run_id, "curve")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(0, 0.5), (3, 0.25)]
    assert all(started - 1000 <= m.timestamp <= time.time() * 1000 + 1000 for m in history)


def test_a_failed_cell_records_its_error_where_the_board_reads_it(store, monkeypatch, caplog, capsys):
    from mubench.unlearn.api import METHODS
    from mubench.run.cell import run_logged_cell
    from mubench.harness.references import References
    from mubench.kits.method_kit import toy_cell

    def unlearn(self, model, data, ctx):
        raise MubenchError("the method gave up on purpose.")
    monkeypatch.setattr(METHODS.get("original"), "unlearn", unlearn)
    cell = toy_cell()
    refs = References(cell.original, cell.retrained, {"key": "o"}, {"train_seconds": 1.0})
    caplog.set_level("DEBUG", logger="mubench")
    with mlflow.start_run() as parent:
        summary = RunSummary(parent.info.run_id)
        run_logged_cell(SeedSetup(store, dataclasses.replace(cell.splits, task="digits"), TOY_RECIPE, "toy", 0), refs,
                        CellJob.of(MethodSpec("original"), "k", dataclasses.replace(cell.splits, task="digits").task,
                                   "toy", 0), summary)
    (run,) = cell_runs("FAILED")
    assert run.data.tags[f"{TAG}error"] == "the method gave up on purpose."
    assert [f.error for f in summary.failures] == ["the method gave up on purpose."] and summary.cells == 1
    assert "fs" not in run.data.metrics
    (traceback,) = [r.getMessage() for r in caplog.records if r.levelname == "DEBUG" and "failed" in r.getMessage()]
    assert "Traceback" in traceback and "gave up on purpose" in traceback  # for whoever turns on DEBUG logging
    assert capsys.readouterr() == ("", "")  # a quiet run prints no line for it either


def test_the_invocation_names_the_code_it_ran(smoke_run):
    out = smoke_run[0]
    from mubench.core.tracking import provenance_tags
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    (parent,) = client.search_runs([experiment], f"tags.`{TAG}kind` = 'invocation'")
    expected = {k: v for k, v in provenance_tags().items() if k != f"{TAG}git_sha"}  # a commit may land meanwhile
    assert f"{TAG}version.torch" in expected and parent.data.tags.get(f"{TAG}git_sha")
    assert {k: parent.data.tags.get(k) for k in expected} == expected


def test_the_invocation_is_named_and_says_which_executor_and_process_ran_it(smoke_run):
    import os
    import socket
    client = MlflowClient(f"sqlite:///{smoke_run[0] / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    (parent,) = client.search_runs([experiment], f"tags.`{TAG}kind` = 'invocation'")
    tags = parent.data.tags
    assert parent.info.run_name == "mubench run" and tags[f"{TAG}executor"] == "local"
    assert (tags[f"{TAG}host"], tags[f"{TAG}pid"]) == (socket.gethostname(), str(os.getpid()))  # run in-process


# The model cache ---------------------------------------------------------------------------------------------------

def test_a_new_cache_format_misses_every_old_entry(tmp_path, monkeypatch):
    from mubench.train import cache
    fields = {"task": "digits", "seed": 0}
    before = cache.ModelCache(tmp_path).key(fields)
    monkeypatch.setattr(cache, "CACHE_FORMAT", cache.CACHE_FORMAT + 1)
    assert cache.ModelCache(tmp_path).key(fields) != before


def test_an_invocation_with_a_failed_cell_ends_failed_and_counts_it(tmp_path, cli, monkeypatch):
    from mubench.unlearn.api import METHODS

    def unlearn(self, model, data, ctx):
        raise MubenchError("finetune gave up on purpose.")
    monkeypatch.setattr(METHODS.get("finetune"), "unlearn", unlearn)
    result = cli("run", "--preset", "smoke", "--methods", "finetune", "--out", str(tmp_path), "--quiet",
                 "--no-plots")
    assert "finetune gave up on purpose." in result.output + result.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    (parent,) = client.search_runs([experiment], f"tags.`{TAG}kind` = 'invocation'")
    assert parent.info.status == "FAILED" and parent.data.tags[f"{TAG}failed_cells"] == "1"
    statuses = sorted(r.info.status for r in client.search_runs([experiment], f"tags.`{TAG}kind` = 'cell'"))
    assert statuses == ["FAILED", "FINISHED", "FINISHED"]  # the Original and Retrain rows still finish


# Runs of dead processes ------------------------------------------------------------------------------------------

def test_only_running_runs_of_gone_processes_on_this_host_are_marked_killed(store):
    import socket
    import subprocess
    import sys

    from mubench.core.tracking import mark_dead_runs_killed
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = gone.stdout.strip()
    host = socket.gethostname()
    client = MlflowClient()
    experiment = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id

    def run(status, pid, on_host=host):
        run_id = client.create_run(experiment, tags={f"{TAG}host": on_host, f"{TAG}pid": pid}).info.run_id
        if status != "RUNNING":
            client.set_terminated(run_id, status=status)
        return run_id
    dead_running, dead_finished = run("RUNNING", dead_pid), run("FINISHED", dead_pid)
    other_host, alive = run("RUNNING", dead_pid, "another-host"), run("RUNNING", str(__import__("os").getpid()))
    killed = mark_dead_runs_killed(store.tracking_uri, experiment)
    status = {r: client.get_run(r).info.status for r in (dead_running, dead_finished, other_host, alive)}
    assert status == {dead_running: "KILLED", dead_finished: "FINISHED", other_host: "RUNNING", alive: "RUNNING"}
    assert len(killed) == 1 and dead_pid in client.get_run(dead_running).data.tags[f"{TAG}error"]


def test_a_process_this_user_may_not_signal_is_alive_and_a_reused_pid_is_not(monkeypatch):
    import os

    from mubench.core import tracking

    sent = []

    def kill(pid, signal):
        sent.append(signal)
        if pid in (1, 2):
            raise {1: PermissionError, 2: ProcessLookupError}[pid]()
    monkeypatch.setattr(tracking.os, "kill", kill)
    assert tracking.process_alive(1, "") is True  # another user's process: it exists
    assert tracking.process_alive(2, "") is False
    assert tracking.process_alive(3, "") is True
    assert sent == [0, 0, 0]  # signal 0 only asks whether the process exists; it sends nothing
    monkeypatch.undo()
    me, started = os.getpid(), tracking.process_start(os.getpid())
    assert started.isdigit() and tracking.process_alive(me, started) and tracking.process_alive(me, "")
    assert not tracking.process_alive(me, str(int(started) + 1))  # the pid now names a later process


def test_a_process_start_time_holds_while_the_process_grows_and_orders_parent_before_child():
    import subprocess
    import sys

    from mubench.core import tracking
    me = os.getpid()
    before = tracking.process_start(me)
    ballast = bytearray(64 << 20)  # the process's memory (the next /proc field) changes; its start time must not
    assert tracking.process_start(me) == before and len(ballast)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert int(tracking.process_start(child.pid)) >= int(before)
    finally:
        child.kill()
        child.wait()


def test_pointing_mlflow_at_a_store_leaves_the_environments_tracking_uri_as_it_was(tmp_path, monkeypatch):
    from mubench.core import tracking
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    tracking.point_mlflow_at(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///elsewhere.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    tracking.point_mlflow_at(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_only_a_sqlite_store_is_opened_under_a_lock_file(tmp_path, monkeypatch):
    from mubench.core import tracking
    opened = []
    monkeypatch.setattr(tracking, "open_experiment", lambda uri, root=None: opened.append((uri, root)) or "7")
    monkeypatch.setattr(tracking, "check_tracking_uri", lambda uri: None)  # no server listens in the test
    assert tracking.open_store("http://127.0.0.1:5999", tmp_path / "out") == "7"
    assert opened == [("http://127.0.0.1:5999", tmp_path / "out" / "mlartifacts")] and not list(tmp_path.iterdir())
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    assert tracking.open_store(uri, tmp_path / "out") == "7"
    assert (tmp_path / "store" / "mlflow.db.lock").exists() and opened[-1] == (uri, tmp_path / "out" / "mlartifacts")


def test_method_specs_put_the_original_and_retrain_rows_first_unless_told_not_to():
    from mubench.harness.plan import method_specs
    assert [s.row for s in method_specs(["finetune"], [])] == ["original", "retrain", "finetune"]
    assert [s.row for s in method_specs(["finetune"], [], references=False)] == ["finetune"]


def test_a_workers_summary_adds_its_failures_and_counts_to_the_grids():
    from mubench.harness.plan import CellFailure
    grid, worker = RunSummary("p", cells=2, cache_hits=1), RunSummary("p", cells=3, cache_misses=2)
    worker.failures.append(CellFailure("finetune", "digits", "resnet18", 0, "gave up"))
    grid.merge(worker)
    assert (grid.cells, grid.cache_hits, grid.cache_misses) == (5, 1, 2)
    assert [f.error for f in grid.failures] == ["gave up"]


def test_a_stable_hash_ignores_key_order_and_reads_paths_as_their_text():
    from pathlib import Path

    from mubench.core.config import stable_hash
    assert stable_hash({"a": 1, "b": [2, 3]}) == stable_hash({"b": [2, 3], "a": 1})
    assert stable_hash({"pretrained": Path("/w/model.pt")}) == stable_hash({"pretrained": "/w/model.pt"})
    assert len(stable_hash({}, length=32)) == 32
