"""The grid: for each task × backbone × seed, references from the cache, then every method as a cell."""
from __future__ import annotations

import copy
import fcntl
import hashlib
import inspect
import logging
import math
import random
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import torch
from torch import nn

from mubench import metrics
from mubench.api import METHODS, MonitorReading, UnlearnContext, UnlearnData, Unlearner
from mubench.backbones import build_backbone
from mubench.cache import ModelCache
from mubench.config import param_text, stable_hash
from mubench.data import Split, Splits
from mubench.errors import MubenchError
from mubench.tasks import SMOKE_CAPS, TASKS, Task
from mubench.tracking import TAG, finished_cell_keys, open_experiment, provenance_tags
from mubench.training import Recipe, train_reference

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MethodSpec:
    name: str  # registered name
    overrides: tuple[tuple[str, object], ...] = ()  # typed Config fields from --set and the ablation variant
    label: str = ""  # leaderboard row name; the method name unless a variant says otherwise

    @property
    def row(self) -> str:
        return self.label or self.name

    def config_for(self, task: str) -> Unlearner.Config:
        """The method's Config on `task`: class defaults, then the task's named defaults, then overrides."""
        cls = METHODS.get(self.name)
        return cls.Config(**{**cls.task_defaults.get(task, {}), **dict(self.overrides)})


@dataclass
class RunPlan:
    methods: list[MethodSpec]
    tasks: list[str]
    backbones: list[str]
    seeds: list[int]
    out: Path
    tracking_uri: str
    cache_dir: Path
    preset: str = "default"
    device: torch.device = torch.device("cpu")
    data_root: Path | None = None
    head: str = "linear"
    pretrained: Path | None = None
    quiet: bool = False
    force: bool = False  # rerun cells already FINISHED in the store
    plots: bool = True  # loss histograms per cell and a t-SNE per seed (mubench.plots); --no-plots turns them off
    command: str = ""
    executor: str = "local"  # where the cells run: mubench.executors.EXECUTORS
    ray_address: str | None = None  # an existing Ray cluster to join; None starts a local one for the run
    threads: int = 0  # torch threads per cell; 0: torch's default (all cores) locally, 1 per Ray task


@dataclass
class CellFailure:
    label: str
    task: str
    backbone: str
    seed: int
    error: str


@dataclass
class RunSummary:
    parent_run_id: str
    boards: list[tuple[str, str, str]] = field(default_factory=list)  # (task, backbone, preset)
    failures: list[CellFailure] = field(default_factory=list)
    cells: int = 0
    skipped: int = 0
    cache_hits: int = 0
    cache_misses: int = 0

    def merge(self, other: "RunSummary") -> None:
        """Add the counts and failures of part of the grid run elsewhere (an executor's worker)."""
        self.failures += other.failures
        self.cells += other.cells
        self.cache_hits += other.cache_hits
        self.cache_misses += other.cache_misses


@dataclass(frozen=True)
class CellJob:
    """One cell of the grid not yet FINISHED in the store: what an executor runs."""
    spec: MethodSpec
    key: str  # cell_key(): what makes a FINISHED run of this cell skippable
    task: str
    backbone: str
    seed: int

    @property
    def group(self) -> tuple[str, str, int]:
        """The cells sharing data and references."""
        return self.task, self.backbone, self.seed


@dataclass
class References:
    original: nn.Module
    retrained: nn.Module
    original_record: dict
    retrain_record: dict


def load_task(name: str, preset: str, data_root: Path | None) -> tuple[Task, Splits, Recipe]:
    task = TASKS.get(name)()
    splits = task.load(data_root)
    recipe = task.recipe
    if preset == "smoke":
        splits, recipe = splits.shrunk(SMOKE_CAPS), recipe.smoke()
    return task, splits, recipe


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


REFERENCE_ROLES = ("original", "retrain")
# The backbone is initialised right after seeding, so a reference's weights do not depend on what its process ran
# before (an earlier seed's cells, another worker's task). Part of every reference and cell key: entries trained
# before the seeding are neither loaded nor counted as finished.
REFERENCE_INIT = "seeded-init"


def reference_fields(plan: RunPlan, splits: Splits, recipe: Recipe, backbone: str, seed: int, role: str) -> dict:
    """Everything that determines a reference's weights: its cache key."""
    return {"task": splits.task, "split_hash": splits.split_hash, "backbone": backbone, "head": plan.head,
            "pretrained": pretrained_digest(plan.pretrained), "recipe": param_text(recipe), "seed": seed, "role": role,
            "init": REFERENCE_INIT}


def train_reference_role(plan: RunPlan, splits: Splits, recipe: Recipe, backbone: str, seed: int, role: str,
                         summary: RunSummary) -> tuple[nn.Module, dict]:
    """One reference from the cache, or trained and cached (a process waiting on another's training loads it)."""
    if role == "original":
        data = Split(torch.cat([splits.retain.images, splits.forget.images]),
                     torch.cat([splits.retain.labels, splits.forget.labels]), splits.retain.ids + splits.forget.ids)
    else:
        data = splits.retain
    seed_everything(seed)
    model = build_backbone(backbone, splits.num_outputs, plan.head, plan.pretrained)
    progress = None if plan.quiet else _progress
    record, hit = ModelCache(plan.cache_dir).get_or_train(
        reference_fields(plan, splits, recipe, backbone, seed, role), model, lambda m: train_reference(
            m, data, splits.kind, splits.preprocess, recipe, plan.device, seed, progress, f"{role} {backbone}"))
    summary.cache_hits += hit
    summary.cache_misses += not hit
    return model.to(plan.device).eval(), record


def train_references(plan: RunPlan, splits: Splits, recipe: Recipe, backbone: str, seed: int,
                     summary: RunSummary) -> References:
    (original, original_record), (retrained, retrain_record) = (
        train_reference_role(plan, splits, recipe, backbone, seed, role, summary) for role in REFERENCE_ROLES)
    return References(original, retrained, original_record, retrain_record)


def pretrained_digest(path: Path | None) -> str | None:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None


def method_version(name: str) -> str:
    """Hash of the method's source file: editing a method invalidates its finished cells."""
    return hashlib.sha256(Path(inspect.getfile(METHODS.get(name))).read_bytes()).hexdigest()[:16]


def cell_key(plan: RunPlan, spec: MethodSpec, splits: Splits, recipe: Recipe, backbone: str, seed: int) -> str:
    """Everything that determines a cell's result; a FINISHED run with this key is not run again."""
    return stable_hash({"method": spec.name, "label": spec.row, "config": param_text(spec.config_for(splits.task)),
                        "version": method_version(spec.name), "task": splits.task, "split": splits.split_hash,
                        "backbone": backbone, "head": plan.head, "pretrained": pretrained_digest(plan.pretrained),
                        "recipe": param_text(recipe), "seed": seed, "preset": plan.preset,
                        "references": REFERENCE_INIT}, length=32)


def _progress(iterable, desc, total=None):
    from tqdm.auto import tqdm
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)


def make_monitor(forget: Split, val: Split, kind, preprocess, device: torch.device):
    """ctx.monitor(): the paper's MIA on forget (members) vs val (non-members), and val accuracy.

    Closes over forget and val only, so `test` stays out of a method's reach.
    """
    def monitor(model: nn.Module) -> MonitorReading:
        forget_losses, _ = metrics.losses_and_accuracy(model, forget, kind, preprocess, device)
        val_losses, val_acc = metrics.losses_and_accuracy(model, val, kind, preprocess, device)
        attack = metrics.mia_scores(forget_losses, val_losses)
        return MonitorReading(metrics.forgetting_score(attack.mia), attack.mia, val_acc)
    return monitor


def run_cell(plan: RunPlan, spec: MethodSpec, splits: Splits, recipe: Recipe, backbone: str, seed: int,
             refs: References, plots=None) -> dict[str, float]:
    """Unlearn one copy of the original, time it, score it. Raises on any failure of the method."""
    cls = METHODS.get(spec.name)
    if splits.kind.value == "multilabel" and not cls.supports_multilabel:
        raise MubenchError(f"method {spec.name!r} is defined for single-label classification only; "
                           f"task {splits.task!r} is multi-label.")
    unlearner = cls(spec.config_for(splits.task))
    data = UnlearnData(splits.retain, splits.forget, splits.val, splits.kind, splits.num_outputs,
                       splits.preprocess, recipe.batch_size, plan.device)
    logged: list[mlflow.entities.Metric] = []
    ctx = UnlearnContext(
        device=plan.device, seed=seed, quiet=plan.quiet,
        _monitor=make_monitor(splits.forget, splits.val, splits.kind, splits.preprocess, plan.device),
        _retrained=lambda: (copy.deepcopy(refs.retrained), refs.retrain_record["train_seconds"]),
        _log_metric=lambda k, v, step: logged.append(mlflow.entities.Metric(k, v, int(time.time() * 1000), step)))
    model = copy.deepcopy(refs.original)
    seed_everything(seed)
    started = time.perf_counter()
    result = unlearner.unlearn(model, data, ctx)
    if plan.device.type == "cuda":
        torch.cuda.synchronize(plan.device)
    seconds = time.perf_counter() - started + ctx.borrowed_seconds
    if not isinstance(result, nn.Module):
        raise MubenchError(f"method {spec.name!r} returned a {type(result).__name__} from unlearn(); "
                           f"it must return a torch.nn.Module.")
    result.eval()
    _refuse_non_finite(spec.name, result, logged)
    losses = {}
    scores = metrics.score_model(result, splits, plan.device, losses)
    bad = [k for k, v in scores.items() if not math.isfinite(v)]
    if bad:
        raise MubenchError(f"method {spec.name!r} produced non-finite {', '.join(bad)}.")
    retrain_seconds = refs.retrain_record["train_seconds"]
    scores.update(unlearn_seconds=seconds, retrain_seconds=retrain_seconds,
                  time_ratio=metrics.time_ratio(seconds, retrain_seconds))
    run_id = mlflow.active_run().info.run_id
    for start in range(0, len(logged), 1000):  # MLflow accepts at most 1000 metrics per batch
        mlflow.MlflowClient().log_batch(run_id, metrics=logged[start:start + 1000])
    if plots is not None:
        plots.cell(spec.row, result, losses)
    return scores


def _refuse_non_finite(name: str, model: nn.Module, logged: list) -> None:
    """NaN or inf weights (buffers included) or logged losses fail the cell before anything is scored."""
    weights = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if weights:
        more = f" and {len(weights) - 3} more" if len(weights) > 3 else ""
        raise MubenchError(f"method {name!r} returned a model with non-finite weights in "
                           f"{', '.join(weights[:3])}{more}.")
    values = sorted({m.key for m in logged if not math.isfinite(m.value)})
    if values:
        raise MubenchError(f"method {name!r} logged non-finite values of {', '.join(values)}.")


def open_store(plan: RunPlan) -> str:
    """Open (and on first use create) the store, one process at a time: MLflow's schema migration of a fresh SQLite
    file fails when two processes run it at once. Later writes are safe; MLflow waits on SQLite's own lock."""
    if not plan.tracking_uri.startswith("sqlite:///"):
        return open_experiment(plan.tracking_uri, plan.out / "mlartifacts")
    db = Path(plan.tracking_uri[len("sqlite:///"):])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            return open_experiment(plan.tracking_uri, plan.out / "mlartifacts")
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run(plan: RunPlan) -> RunSummary:
    from mubench.executors import make_executor  # the executors import this module
    executor = make_executor(plan.executor, plan.ray_address)
    # Every data root is validated before a run is opened: bad data leaves nothing in the store.
    tasks = {name: load_task(name, plan.preset, plan.data_root)[1:] for name in plan.tasks}
    experiment_id = open_store(plan)
    done = set() if plan.force else finished_cell_keys(plan.tracking_uri, experiment_id)
    parent_tags = {f"{TAG}kind": "invocation", f"{TAG}command": plan.command, f"{TAG}preset": plan.preset,
                   f"{TAG}executor": plan.executor, **provenance_tags()}
    with mlflow.start_run(run_name="mubench run", tags=parent_tags) as parent:
        summary = RunSummary(parent.info.run_id)
        jobs = grid_jobs(plan, tasks, done, summary)
        executor.run(plan, jobs, tasks, summary)
        if summary.failures:
            mlflow.set_tag(f"{TAG}failed_cells", str(len(summary.failures)))
            mlflow.end_run(status="FAILED")
    return summary


def grid_jobs(plan: RunPlan, tasks: dict, done: set[str], summary: RunSummary) -> list[CellJob]:
    """Every cell not FINISHED in the store, grouped by task, backbone and seed in the grid's order."""
    jobs = []
    for task_name, (splits, recipe) in tasks.items():
        for backbone in plan.backbones:
            summary.boards.append((task_name, backbone, plan.preset))
            for seed in plan.seeds:
                for spec in plan.methods:
                    key = cell_key(plan, spec, splits, recipe, backbone, seed)
                    if key in done:
                        summary.skipped += 1
                    else:
                        jobs.append(CellJob(spec, key, task_name, backbone, seed))
    return jobs


def run_seed(plan: RunPlan, splits: Splits, recipe: Recipe, jobs: list[CellJob], summary: RunSummary) -> None:
    """The cells of one task × backbone × seed in this process: references once, each cell, the seed's figures."""
    backbone, seed = jobs[0].backbone, jobs[0].seed
    refs = train_references(plan, splits, recipe, backbone, seed, summary)
    seed_plots = seed_plots_for(plan, splits, backbone, seed, refs)
    for job in jobs:
        run_logged_cell(plan, job.spec, job.key, splits, recipe, backbone, seed, refs, summary, seed_plots)
    if seed_plots is not None:
        seed_plots.finish()


def seed_plots_for(plan: RunPlan, splits: Splits, backbone: str, seed: int, refs: References):
    if not plan.plots:
        return None
    from mubench.plots import SeedPlots  # matplotlib and t-SNE load only when plots are drawn
    return SeedPlots(plan.out, splits, backbone, plan.preset, seed, refs, plan.device)


def cell_tags(plan, spec, key, splits, recipe, backbone, seed, original_key) -> dict[str, str]:
    return {f"{TAG}kind": "cell", f"{TAG}cell_key": key, f"{TAG}method": spec.name, f"{TAG}label": spec.row,
            f"{TAG}task": splits.task, f"{TAG}backbone": backbone, f"{TAG}head": plan.head, f"{TAG}seed": str(seed),
            f"{TAG}preset": plan.preset, f"{TAG}split_hash": splits.split_hash,
            f"{TAG}config_hash": stable_hash(param_text(spec.config_for(splits.task))),
            f"{TAG}recipe_hash": stable_hash(param_text(recipe)), f"{TAG}command": plan.command,
            f"{TAG}original_cache": original_key, **provenance_tags()}


def cell_run_name(spec, splits, backbone, seed) -> str:
    return f"{spec.row}/{splits.task}/{backbone}/s{seed}"


def run_logged_cell(plan, spec, key, splits, recipe, backbone, seed, refs, summary, seed_plots=None) -> None:
    config = spec.config_for(splits.task)
    tags = cell_tags(plan, spec, key, splits, recipe, backbone, seed, refs.original_record["key"])
    params = {**{f"cfg.{k}": v for k, v in param_text(config).items()},
              **{f"recipe.{k}": v for k, v in param_text(recipe).items()},
              "task": splits.task, "backbone": backbone, "seed": seed, "split_hash": splits.split_hash,
              "preset": plan.preset, "device": plan.device.type, "threads": torch.get_num_threads()}
    summary.cells += 1
    # Named parent: in a worker of another process the parent run is not the active one.
    with mlflow.start_run(run_name=cell_run_name(spec, splits, backbone, seed), nested=True,
                          parent_run_id=summary.parent_run_id, tags=tags) as run:
        mlflow.log_params(params)
        try:
            scores = run_cell(plan, spec, splits, recipe, backbone, seed, refs, seed_plots)
        except Exception as exc:  # one broken method must not cost the rest of the grid
            message = str(exc) if isinstance(exc, MubenchError) else f"{type(exc).__name__}: {exc}"
            log.debug("cell %s failed:\n%s", run.info.run_name, traceback.format_exc())
            mlflow.set_tag(f"{TAG}error", message[:5000])
            mlflow.end_run(status="FAILED")
            summary.failures.append(CellFailure(spec.row, splits.task, backbone, seed, message))
            return
        mlflow.log_metrics(scores)
