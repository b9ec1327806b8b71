"""The grid: every method × task × backbone × seed cell not yet FINISHED in the store, handed to an executor."""
from __future__ import annotations

import dataclasses
import logging
import os

import mlflow
import torch

from mubench.attacks.population import population_unavailable
from mubench.run.executors import make_executor
from mubench.run.outlook import announce_run
from mubench.harness.keys import pretrained_digest
from mubench.core.faults import disk_full_error, is_disk_full
from mubench.run.cell import end_interrupted
from mubench.run.cell_keys import cell_key
from mubench.harness.plan import CellJob, RunPlan, RunSummary, SeedKey, SeedSetup, TaskKey
from mubench.data.tasks import load_task
from mubench.data.scenarios import check_scenario, parse_scenario
from mubench.data.tasks import TASKS
from mubench.core.store import TAG, BoardKey
from mubench.core.tracking import finished_cell_keys, mark_dead_runs_killed, open_store, process_tags, provenance_tags

log = logging.getLogger(__name__)


def cell_threads(plan: RunPlan) -> int:
    """The torch threads each cell will run on (CPU results depend on it, so it is part of a cell's key)."""
    return plan.threads or (1 if plan.executor == "ray" else torch.get_num_threads())


def run(plan: RunPlan) -> RunSummary:
    executor = make_executor(plan.executor, plan.ray_address)
    for name in plan.tasks:  # a scenario a task cannot have stops the run before any data is read
        task = TASKS.get(name)
        for scenario in map(parse_scenario, plan.scenarios):
            if task.num_outputs:  # tasks that count their classes only when loaded are checked then
                check_scenario(scenario, name, task.kind, task.num_outputs, task.has_identities,
                               task.label_names)
    # Every data root is validated before a run is opened: bad data leaves nothing in the store.
    tasks = {TaskKey(name, scenario): load_task(name, plan.preset, plan.data_root, scenario,
                                                plan.task_options.get(name))[1:]
             for name in plan.tasks for scenario in plan.scenarios}
    for (name, scenario), (splits, _) in tasks.items():
        reason = population_unavailable(splits)
        if reason:
            log.warning("%s [%s]: %s; every cell of it is scored without the paper's MIA and the scale-free attacks "
                        "(FS and NoMUS n/a on its board).", name, scenario, reason)
    experiment_id = open_store(plan.tracking_uri, plan.out)
    killed = mark_dead_runs_killed(plan.tracking_uri, experiment_id)
    done = set() if plan.force else finished_cell_keys(plan.tracking_uri, experiment_id)
    parent_tags = {f"{TAG}kind": "invocation", f"{TAG}command": plan.command, f"{TAG}preset": plan.preset,
                   f"{TAG}executor": plan.executor, **provenance_tags(), **process_tags()}
    with mlflow.start_run(run_name="mubench run", tags=parent_tags) as parent:
        summary = RunSummary(parent.info.run_id, killed=killed)
        jobs = grid_jobs(plan, tasks, done, summary)
        if not plan.quiet:
            workers = plan.workers if plan.executor == "local" else max(1, (os.cpu_count() or 1) // cell_threads(plan))
            plan = dataclasses.replace(plan, reference_estimates=announce_run(plan, jobs, tasks, workers))
        try:
            executor.run(plan, jobs, tasks, summary)
        except KeyboardInterrupt:
            end_interrupted(parent.info.run_id)
            raise
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            raise disk_full_error({"--out": plan.out, "--cache-dir": plan.cache_dir}) from None
        if summary.failures:
            mlflow.set_tag(f"{TAG}failed_cells", str(len(summary.failures)))
            mlflow.end_run(status="FAILED")
    return summary


def grid_jobs(plan: RunPlan, tasks: dict, done: set[str], summary: RunSummary) -> list[CellJob]:
    """Every cell not FINISHED in the store, grouped by task, backbone and seed in the grid's order."""
    jobs = []
    threads = cell_threads(plan)
    for (task_name, scenario), (splits, recipe) in tasks.items():
        for backbone in plan.backbones:  # the board of the scenario as resolved: class:happy is class:3's board
            summary.boards.append(BoardKey(task_name, backbone, plan.preset, plan.head,
                                           (pretrained_digest(plan.pretrained) or "none")[:12], splits.scenario))
            for seed in plan.seeds:
                setup = SeedSetup(plan, splits, recipe, backbone, seed)
                for spec in plan.methods:
                    config = spec.config_for(task_name)
                    key = cell_key(setup, spec, config, threads)
                    if key in done:
                        summary.skipped += 1
                    else:
                        jobs.append(CellJob(spec, config, key, SeedKey(task_name, scenario, backbone, seed)))
    return jobs
