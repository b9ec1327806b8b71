"""Where the grid's cell jobs run. Whatever the executor, every cell is a child run of the invocation in one store.

local: this process, one task × backbone × seed after another (references once per seed, in memory).
ray:   one Ray task per reference and one per cell, on a local Ray instance started for the run or on a cluster
       joined with --ray-address. A task reserves the cores it runs torch threads on (--threads, default 1) and
       one GPU when the run's device is CUDA. A cell is independent of the others: a worker that crashes loses its cell only,
       recorded FAILED by the driver. References come from the shared cache, whose per-key lock lets one worker
       train each while the others wait and then load it; a cell task starts only once its references are cached.
With --attack lira, each seed's K shadow models (mubench.shadows) are trained before its cells: locally in the
seed's group, on Ray one task per shadow, cached like the references; every cell of the seed is scored against them.
"""
from __future__ import annotations

import logging
import traceback
from dataclasses import replace

import mlflow

from mubench.cache import ModelCache
from mubench.cell import cell_run_name, cell_tags, run_logged_cell
from mubench.data import Splits
from mubench.errors import MubenchError
from mubench.identity import reference_fields
from mubench.plan import CellFailure, CellJob, RunPlan, RunSummary
from mubench.references import (REFERENCE_ROLES, References, load_task, train_reference_role,
                                train_references)
from mubench.tracking import EXPERIMENT, TAG, open_store
from mubench.training import Recipe

EXECUTORS = ("local", "ray")

log = logging.getLogger(__name__)


def make_executor(name: str, ray_address: str | None = None):
    if name == "local":
        if ray_address:
            raise MubenchError(f"--ray-address {ray_address!r} needs --executor ray; the local executor runs "
                               f"in this process.")
        return LocalExecutor()
    if name == "ray":
        _import_ray()  # fail before anything runs
        return RayExecutor(ray_address)
    raise MubenchError(f"--executor {name!r} is not one of {', '.join(EXECUTORS)}.")


def _groups(jobs: list[CellJob]) -> dict[tuple, list[CellJob]]:
    groups: dict[tuple, list[CellJob]] = {}
    for job in jobs:
        groups.setdefault(job.group, []).append(job)
    return groups


class LocalExecutor:
    def run(self, plan: RunPlan, jobs: list[CellJob], tasks: dict, summary: RunSummary) -> None:
        import torch
        from threadpoolctl import threadpool_limits
        default_threads = torch.get_num_threads()
        torch.set_num_threads(plan.threads or default_threads)
        try:
            with threadpool_limits(plan.threads or None):
                for (task, scenario, _, _), group in _groups(jobs).items():
                    run_seed(plan, *tasks[(task, scenario)], group, summary)
        finally:
            torch.set_num_threads(default_threads)


def run_seed(plan: RunPlan, splits: Splits, recipe: Recipe, jobs: list[CellJob], summary: RunSummary) -> None:
    """The cells of one task × backbone × seed in this process: references once, each cell, the seed's figures."""
    backbone, seed = jobs[0].backbone, jobs[0].seed
    refs = train_references(plan, splits, recipe, backbone, seed, summary)
    attack = seed_attack(plan, splits, recipe, backbone, seed)
    seed_plots = seed_plots_for(plan, splits, backbone, seed, refs)
    for job in jobs:
        run_logged_cell(plan, job.spec, job.key, splits, recipe, backbone, seed, refs, summary, seed_plots, attack)
    if seed_plots is not None:
        seed_plots.finish()


def seed_attack(plan: RunPlan, splits: Splits, recipe: Recipe, backbone: str, seed: int):
    """The run's opt-in attack on the cells of one seed, None without --attack: a callable (unlearned model, the
    cell's MethodSpec) -> scores. LiRA against the seed's shadows (from the cache or trained now); under ulira also
    U-LiRA, which unlearns each shadow with the cell's method."""
    if not plan.attack:
        return None
    from mubench.lira import lira_scores
    from mubench.shadows import shadow_set
    shadows = shadow_set(plan, splits, recipe, backbone, seed, plan.shadows)

    def attack(model, spec) -> dict[str, float]:
        scores = lira_scores(model, splits, shadows, plan.device)
        if plan.attack == "ulira":
            from mubench.ulira import ulira_scores
            scores.update(ulira_scores(model, spec, plan, splits, recipe, backbone, seed, shadows))
        return scores
    return attack


def seed_plots_for(plan: RunPlan, splits: Splits, backbone: str, seed: int, refs: References):
    if not plan.plots:
        return None
    from mubench.plots import SeedPlots  # matplotlib and t-SNE load only when plots are drawn
    return SeedPlots(plan.out, splits, backbone, plan.preset, seed, refs, plan.device)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise MubenchError("--executor ray needs Ray, which is not installed; install mubench[ray] "
                           "(pip install 'mubench[ray]') or use --executor local.") from None
    return ray


def _limit_threads(threads: int) -> None:
    import torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(threads)
    threadpool_limits(threads)  # BLAS/OpenMP pools of numpy and scikit-learn (the MIA's regression)


def _reference_task(plan: RunPlan, task: str, scenario: str, backbone: str, seed: int, role: str,
                    threads: int) -> RunSummary:
    _limit_threads(threads)
    splits, recipe = load_task(task, plan.preset, plan.data_root, scenario, plan.task_options.get(task))[1:]
    summary = RunSummary("")
    train_reference_role(plan, splits, recipe, backbone, seed, role, summary)
    return summary


def _shadow_task(plan: RunPlan, task: str, scenario: str, backbone: str, seed: int, index: int,
                 threads: int) -> RunSummary:
    _limit_threads(threads)
    from mubench.shadows import shadow_set
    splits, recipe = load_task(task, plan.preset, plan.data_root, scenario, plan.task_options.get(task))[1:]
    shadow_set(plan, splits, recipe, backbone, seed, plan.shadows, indices=[index])
    return RunSummary("")


def _cell_task(plan: RunPlan, job: CellJob, parent_run_id: str, threads: int, *references_ready) -> RunSummary:
    _limit_threads(threads)
    return run_job_alone(plan, job, parent_run_id)


class RayExecutor:
    def __init__(self, address: str | None = None):
        self.address = address

    def run(self, plan: RunPlan, jobs: list[CellJob], tasks: dict, summary: RunSummary) -> None:
        if not jobs:
            return
        ray = _import_ray()
        ray.init(address=self.address, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=not plan.quiet)
        try:
            self._run(ray, replace(plan, quiet=True), jobs, tasks, summary)
        finally:
            ray.shutdown()  # stops the instance started here, or only disconnects from a joined cluster

    def _run(self, ray, plan, jobs, tasks, summary) -> None:
        gpus = 1 if plan.device.type == "cuda" else 0
        if gpus and not ray.cluster_resources().get("GPU"):
            raise MubenchError(f"the Ray cluster at {self.address or 'this machine'} has no GPU for --device "
                               f"{plan.device.type}; use --device cpu or a cluster with GPUs.")
        threads = plan.threads or 1
        largest_node = int(max(node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]))
        if threads > largest_node:
            raise MubenchError(f"--threads {threads} is more than the {largest_node} cores of the Ray cluster's "
                               f"largest node; choose at most {largest_node}.")
        # A task reserves as many cores as it runs torch threads, so workers never oversubscribe a machine. The count
        # is fixed, not fitted to the cluster: CPU results depend on it, and a board must not depend on the cluster.
        remote = {"num_cpus": threads, "num_gpus": gpus, "max_retries": 0}
        reference, cell = ray.remote(**remote)(_reference_task), ray.remote(**remote)(_cell_task)
        shadow = ray.remote(**remote)(_shadow_task)
        groups = _groups(jobs)
        references = {group: [reference.remote(plan, *group, role, threads) for role in REFERENCE_ROLES]
                      + [shadow.remote(plan, *group, index, threads)
                         for index in range(plan.shadows if plan.attack else 0)]
                      for group in groups}
        cells = {cell.remote(plan, job, summary.parent_run_id, threads, *references[job.group]): job for job in jobs}
        for pending in references.values():
            for done in pending:
                try:
                    summary.merge(ray.get(done))
                except ray.exceptions.RayError:
                    pass  # reported by each of its cells
        for done, job in cells.items():
            try:
                summary.merge(ray.get(done))
            except ray.exceptions.RayError as exc:
                log.debug("cell %s lost:\n%s", job, traceback.format_exc())
                record_lost_cell(plan, job, *tasks[(job.task, job.scenario)], _lost_reason(exc), summary)
        for task, scenario, backbone, seed in groups:
            finish_seed_plots(plan, *tasks[(task, scenario)], backbone, seed)


def run_job_alone(plan: RunPlan, job: CellJob, parent_run_id: str) -> RunSummary:
    """One cell in a process of its own (an executor's worker): its data, its references from the cache, its own
    child run of `parent_run_id` in the same store. The seed's t-SNE is left to `finish_seed_plots`."""
    open_store(plan.tracking_uri, plan.out)
    splits, recipe = load_task(job.task, plan.preset, plan.data_root, job.scenario, plan.task_options.get(job.task))[1:]
    refs = train_references(plan, splits, recipe, job.backbone, job.seed, RunSummary(parent_run_id))
    attack = seed_attack(plan, splits, recipe, job.backbone, job.seed)
    summary = RunSummary(parent_run_id)
    seed_plots = seed_plots_for(plan, splits, job.backbone, job.seed, refs)
    run_logged_cell(plan, job.spec, job.key, splits, recipe, job.backbone, job.seed, refs, summary, seed_plots,
                    attack)
    return summary


def finish_seed_plots(plan: RunPlan, splits: Splits, recipe: Recipe, backbone: str, seed: int) -> None:
    """The t-SNE of a seed whose cells ran elsewhere, from the features they left in its plots folder."""
    if plan.plots:
        refs = train_references(plan, splits, recipe, backbone, seed, RunSummary(""))
        seed_plots_for(plan, splits, backbone, seed, refs).finish()


def record_lost_cell(plan: RunPlan, job: CellJob, splits: Splits, recipe: Recipe, error: str,
                     summary: RunSummary) -> None:
    """A cell whose worker died or failed outside the cell's scoring: its run (still RUNNING, or created now if the
    worker never opened one) is ended FAILED with the error, so the board lists it and a rerun retries it."""
    client = mlflow.MlflowClient(plan.tracking_uri)
    experiment_id = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
    open_runs = client.search_runs([experiment_id], filter_string=(
        f"tags.`mlflow.parentRunId` = '{summary.parent_run_id}' and tags.`{TAG}cell_key` = '{job.key}' "
        f"and attributes.status = 'RUNNING'"))
    if open_runs:
        run_id = open_runs[0].info.run_id
    else:
        original_key = ModelCache(plan.cache_dir).key(
            reference_fields(plan, splits, recipe, job.backbone, job.seed, "original"))
        tags = cell_tags(plan, job.spec, job.key, splits, recipe, job.backbone, job.seed, original_key,
                         plan.threads or 1)
        run_id = client.create_run(experiment_id, run_name=cell_run_name(job.spec, splits, job.backbone, job.seed),
                                   tags={**tags, "mlflow.parentRunId": summary.parent_run_id}).info.run_id
    client.set_tag(run_id, f"{TAG}error", error[:5000])
    client.set_terminated(run_id, status="FAILED")
    summary.cells += 1
    summary.failures.append(CellFailure(job.spec.row, job.task, job.backbone, job.seed, error))


def _lost_reason(exc: Exception) -> str:
    """The worker's own error when it raised, or what Ray says happened to the worker."""
    cause = getattr(exc, "cause", None)
    if cause is not None and not isinstance(cause, type):
        return f"{type(cause).__name__}: {cause}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'worker lost'}"

