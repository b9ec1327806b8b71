"""Where the grid's cell jobs run. Whatever the executor, every cell is a child run of the invocation in one store.

local: with one worker (--workers 1), this process, one task × backbone × seed after another (references once per
       seed, in memory); with several (the default: as many as the cores hold at --threads each), worker processes
       of this machine (mubench.run.local_actors) scheduled exactly as the Ray actors are.
ray:   long-lived Ray actors, one per slot of a local Ray instance started for the run or of a cluster joined with
       --ray-address. An actor reserves the cores it runs torch threads on (--threads, default 1) and one GPU when
       the run's device is CUDA; the cluster holds cores // threads of them (at most one per GPU). Each receives a
       task's decoded splits once through Ray's object store and keeps the references (and attack) of the seeds it
       serves in memory. The driver hands out one piece of work at a time: first the parts of a seed's preparation
       (each reference role, each shadow), then, once all have ended, the seed's cells; an actor keeps to the seed it
       served last while that has work, and an idle one takes work from another seed. Only the cell an actor is
       running is lost when its process dies (recorded FAILED by the driver); a fresh actor takes its slot and the
       cells not yet started. The cache's per-key lock keeps each reference trained once.
With an attack that needs shadow models (--attack lira, ulira: mubench.attacks.base), each seed's K shadows
(mubench.attacks.shadows) are trained before its cells: locally in the seed's group, on Ray one part of the preparation per
shadow, cached like the references; every cell of the seed is scored against them.
"""
from __future__ import annotations

import dataclasses
import logging
import socket
from collections import Counter, OrderedDict

import mlflow

from mubench.attacks.base import ATTACKS, AttackedCell, SeedContext, scores_or_reason, shadow_need
from mubench.train.cache import ModelCache
from mubench.run.cell import cell_run_name, cell_tags, record_unavailable, run_logged_cell
from mubench.data.splits import Splits
from mubench.core.errors import MubenchError
from mubench.core.faults import is_disk_full
from mubench.harness.keys import reference_fields
from mubench.harness.plan import CellFailure, CellJob, RunPlan, RunSummary, SeedKey, SeedSetup, TaskKey
from mubench.harness.references import References, train_reference_role, train_references
from mubench.core.tracking import open_store
from mubench.core.store import EXPERIMENT, REFERENCES, TAG
from mubench.data.tasks import Recipe

EXECUTORS = ("local", "ray")

log = logging.getLogger(__name__)


def make_executor(name: str, ray_address: str | None = None):
    if name == "local":
        if ray_address:
            raise MubenchError(f"--ray-address {ray_address!r} needs --executor ray; the local executor runs "
                               f"on this machine.")
        return LocalExecutor()
    if name == "ray":
        _import_ray()  # fail before anything runs
        check_ray_address(ray_address)
        return RayExecutor(ray_address)
    raise MubenchError(f"--executor {name!r} is not one of {', '.join(EXECUTORS)}.")


RAY_CONNECT_SECONDS = 5.0


def check_ray_address(address: str | None, timeout: float = RAY_CONNECT_SECONDS) -> None:
    """Refuse, in one sentence and before any work, a cluster address where nothing answers (ray.init would retry for
    minutes). `auto` and no address are left to Ray: they find or start a cluster on this machine."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise MubenchError(f"--ray-address {address!r} is not host:port (e.g. 10.0.0.5:6379, or ray://host:10001 for "
                           f"Ray Client), nor auto.")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise MubenchError(f"--ray-address {address!r}: nothing answered at {host}:{port} within {timeout:g} s "
                           f"({exc.strerror or exc}); start the cluster there (`ray start --head`) or leave "
                           f"--ray-address out to run a local Ray instance.") from None


def _groups(jobs: list[CellJob]) -> dict[SeedKey, list[CellJob]]:
    groups: dict[SeedKey, list[CellJob]] = {}
    for job in jobs:
        groups.setdefault(job.group, []).append(job)
    return groups


class LocalExecutor:
    def run(self, plan: RunPlan, jobs: list[CellJob], tasks: dict, summary: RunSummary) -> None:
        if plan.workers > 1 and jobs:
            from mubench.run.local_actors import LocalActors
            actors = LocalActors()
            dispatch(actors, actors.remote(CellWorker), plan, jobs, tasks, summary, plan.workers, plan.threads or 1)
            return
        import torch
        from threadpoolctl import threadpool_limits
        default_threads = torch.get_num_threads()
        torch.set_num_threads(plan.threads or default_threads)
        try:
            with threadpool_limits(plan.threads or None):
                for key, group in _groups(jobs).items():
                    run_seed(SeedSetup(plan, *tasks[key.data], key.backbone, key.seed), group, summary)
        finally:
            torch.set_num_threads(default_threads)


def run_seed(setup: SeedSetup, jobs: list[CellJob], summary: RunSummary) -> None:
    """The cells of one task × backbone × seed in this process: references once, each cell, the seed's figures."""
    refs = train_references(*setup, summary)
    attack = seed_attack(setup, refs)
    seed_plots = seed_plots_for(setup, refs)
    busy = [job for job in jobs if not run_logged_cell(setup, refs, job, summary, seed_plots, attack, wait=False)]
    for job in busy:  # cells another run was computing: by now most are finished and are skipped
        run_logged_cell(setup, refs, job, summary, seed_plots, attack)
    if seed_plots is not None:
        seed_plots.finish()


def seed_attack(setup: SeedSetup, refs: References):
    """The run's registered attacks (mubench.attacks.base) on the cells of one seed, None without --attack: a callable
    (unlearned model, the cell's MethodSpec, its Config) -> scores. The seed's shadows come from the cache or are
    trained now, once, for every attack that needs them."""
    plan = setup.plan
    if not plan.attacks:
        return None
    shadows = None
    if shadow_need(plan.attacks):
        from mubench.attacks.shadows import shadow_set
        shadows = shadow_set(*setup, plan.shadows)
    context = SeedContext(*setup, shadows, refs.retrain_record["train_seconds"], refs.original, refs.retrained)
    attacks = [ATTACKS.get(name)(context) for name in plan.attacks]

    def attack(model, spec, config) -> dict[str, float]:
        cell = AttackedCell(model, spec, config)
        scores: dict[str, float] = {}
        unavailable: dict[str, str] = {}
        for each in attacks:
            scores.update(scores_or_reason(each, cell, unavailable))
        record_unavailable(unavailable)
        if cell.examples:
            log_attack_examples(cell.examples)
        return scores
    return attack


def log_attack_examples(examples: dict) -> None:
    """The cell's per-example attack scores (members, non-members) as an artifact of its active run."""
    import tempfile
    from pathlib import Path

    import numpy as np

    from mubench.core.store import ATTACK_SCORES
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ATTACK_SCORES
        np.savez_compressed(path, **examples)
        mlflow.log_artifact(str(path))


def seed_plots_for(setup: SeedSetup, refs: References):
    plan = setup.plan
    if not plan.plots:
        return None
    from mubench.run.cell_figures import SeedPlots  # matplotlib loads only when plots are drawn
    return SeedPlots(plan.out, setup.splits, setup.backbone, plan.preset, setup.seed, refs, plan.device)


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


SEEDS_KEPT = 2  # seeds whose references, attack and figures an actor keeps in memory: the ones it served last


class CellWorker:
    """One slot of the Ray cluster, as a Ray actor: it prepares seeds (one reference or one shadow at a time) and
    runs cells, many of them, keeping each task's splits and the references, attack and figures of the seeds it
    served last in memory, so that a cell costs only its own work."""

    def __init__(self, plan: RunPlan, parent_run_id: str, threads: int):
        _limit_threads(threads)
        self.fetch = _ray_get  # a task's data from where the driver put it (a local worker is handed its own)
        open_store(plan.tracking_uri, plan.out)
        self.plan, self.parent_run_id = plan, parent_run_id
        self.tasks: dict[TaskKey, tuple[Splits, Recipe]] = {}
        self.seeds: OrderedDict[SeedKey, tuple] = OrderedDict()

    def ready(self) -> None:
        """Answers once the actor is placed and started: only then does the driver hand it work."""

    def prepare(self, group: SeedKey, task: list, part: str | int) -> RunSummary:
        """One part of a seed's preparation, cached for its cells: a reference role, or a shadow's index."""
        setup = self._setup(group, task)
        summary = RunSummary(self.parent_run_id)
        if isinstance(part, str):
            train_reference_role(*setup, part, summary)
        else:
            from mubench.attacks.shadows import shadow_set
            shadow_set(*setup, self.plan.shadows, indices=[part])
        return summary

    def run(self, job: CellJob, task: list) -> RunSummary:
        """One cell as a child run of the invocation (the seed's t-SNE is drawn by `mubench report`)."""
        setup = self._setup(job.group, task)
        refs, attack, seed_plots = self._seed(setup)
        summary = RunSummary(self.parent_run_id)
        run_logged_cell(setup, refs, job, summary, seed_plots, attack)
        return summary

    def _setup(self, group: SeedKey, task: list) -> SeedSetup:
        """The group's setup, its splits and recipe fetched from Ray's object store on first use. `task` wraps the
        object's reference in a list so that Ray hands over the reference, not a fresh copy of the data, at every
        call."""
        if group.data not in self.tasks:
            self.tasks[group.data] = self.fetch(task[0])
        return SeedSetup(self.plan, *self.tasks[group.data], group.backbone, group.seed)

    def _seed(self, setup: SeedSetup) -> tuple:
        group = SeedKey(setup.splits.task, setup.splits.scenario, setup.backbone, setup.seed)
        if group in self.seeds:
            self.seeds.move_to_end(group)
        else:
            # already announced when its preparation trained or loaded them: a worker loading them is not news
            refs = train_references(dataclasses.replace(setup.plan, quiet=True), *setup[1:],
                                    RunSummary(self.parent_run_id))
            self.seeds[group] = (refs, seed_attack(setup, refs), seed_plots_for(setup, refs))
            while len(self.seeds) > SEEDS_KEPT:
                self.seeds.popitem(last=False)
        return self.seeds[group]


class WorkQueue:
    """The grid's work not yet handed out, per group (task × scenario × backbone × seed): the parts of its
    preparation (reference roles, then shadow indices) first, then its cells, once every part has ended."""

    def __init__(self, groups: dict[tuple, list[CellJob]], shadows: int):
        self.parts = {group: [*REFERENCES, *range(shadows)] for group in groups}
        self.cells = {group: list(jobs) for group, jobs in groups.items()}
        self.preparing = dict.fromkeys(groups, 0)  # parts handed out that have not ended yet

    def has_work(self, group: tuple) -> bool:
        return bool(self.parts[group]) or (not self.preparing[group] and bool(self.cells[group]))

    def pick(self, home: tuple | None, homes: dict[tuple, int]) -> tuple | None:
        """The group an idle actor serves next: its home (the group it served last) while that has work, else the
        group with work that the fewest actors call home (the first in the grid's order among equals); None when
        no group has work to hand out now."""
        if home is not None and self.has_work(home):
            return home
        return min((group for group in self.parts if self.has_work(group)), key=lambda g: homes.get(g, 0), default=None)

    def take(self, group: tuple) -> str | int | CellJob:
        if self.parts[group]:
            self.preparing[group] += 1
            return self.parts[group].pop(0)
        return self.cells[group].pop(0)

    def part_ended(self, group: tuple) -> None:
        self.preparing[group] -= 1

    def empty(self) -> bool:
        return not any(self.parts.values()) and not any(self.cells.values())

    def left(self) -> list[CellJob]:
        return [job for jobs in self.cells.values() for job in jobs]


def _ray_get(reference):
    import ray
    return ray.get(reference)


def dispatch(system, worker, plan: RunPlan, jobs: list[CellJob], tasks: dict, summary: RunSummary, slots: int,
             threads: int) -> None:
    """The grid's work on `slots` workers of `system` (Ray, or mubench.run.local_actors), each a `worker` actor."""
    groups = _groups(jobs)
    queue = WorkQueue(groups, plan.shadows if shadow_need(plan.attacks) else 0)
    parts = sum(map(len, queue.parts.values()))
    slots = max(1, min(slots, max(len(jobs), parts)))
    Dispatcher(system, worker, plan, tasks, queue, threads, summary).run(slots)


def ray_slots(nodes: list[dict], threads: int, gpus: int) -> int:
    """How many actors the cluster holds at once: on each live node, its cores // threads (at most its GPUs when
    each actor takes one)."""
    slots = 0
    for node in nodes:
        if node["Alive"]:
            cores = int(node["Resources"].get("CPU", 0)) // threads
            slots += min(cores, int(node["Resources"].get("GPU", 0))) if gpus else cores
    return slots


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
            self._run(ray, plan, jobs, tasks, summary)
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
        # An actor reserves as many cores as it runs torch threads, so workers never oversubscribe a machine. The
        # count is fixed, not fitted to the cluster: CPU results depend on it, and a board must not depend on the
        # cluster.
        worker = ray.remote(num_cpus=threads, num_gpus=gpus, max_restarts=0)(CellWorker)
        dispatch(ray, worker, plan, jobs, tasks, summary, ray_slots(ray.nodes(), threads, gpus), threads)


class Dispatcher:
    """The driver's side of the actors: starts them, hands each idle one its next piece of work from the queue, and
    settles what comes back (summaries merged, lost cells recorded FAILED, dead actors replaced)."""

    def __init__(self, ray, worker, plan: RunPlan, tasks: dict, queue: WorkQueue, threads: int, summary: RunSummary):
        self.ray, self.worker, self.plan, self.tasks, self.queue = ray, worker, plan, tasks, queue
        self.threads, self.summary = threads, summary
        self.task_data = {key: [ray.put(tasks[key])] for key in {group.data for group in queue.parts}}
        self.calls: dict = {}  # a call in flight -> (actor, group, work); group None for the actor's `ready`
        self.homes: dict = {}  # live actor -> the group it served last
        self.actors, self.idle = [], []
        self.start_error = "no actor started"

    def run(self, slots: int) -> None:
        try:
            for _ in range(slots):
                self._start()
            while self._waiting():
                [done], _ = self.ray.wait(list(self.calls), num_returns=1)
                actor, group, work = self.calls.pop(done)
                try:
                    result, error = self.ray.get(done), None
                except self.ray.exceptions.RayError as exc:
                    result, error = None, exc
                self._settle(actor, group, work, result, error)
                self._hand_out()
            for job in self.queue.left():  # only when every actor died before it could start
                self._lose(job, f"no Ray worker could start: {self.start_error}")
        finally:
            for actor in self.actors:
                self.ray.kill(actor)

    def _waiting(self) -> bool:
        """Whether there is anything to wait for: work in flight, or work left and an actor that may still start
        (one the cluster has no room for never answers, and is not waited for once the work is done)."""
        working = any(group is not None for _, group, _ in self.calls.values())
        return working or (bool(self.calls) and not self.queue.empty())

    def _start(self) -> None:
        actor = self.worker.remote(self.plan, self.summary.parent_run_id, self.threads)
        self.actors.append(actor)
        self.calls[actor.ready.remote()] = (actor, None, None)

    def _hand_out(self) -> None:
        while self.idle:
            group = self.queue.pick(self.homes.get(self.idle[0]), Counter(self.homes.values()))
            if group is None:
                return
            actor, work = self.idle.pop(0), self.queue.take(group)
            self.homes[actor] = group
            data = self.task_data[group.data]
            call = actor.run.remote(work, data) if isinstance(work, CellJob) else actor.prepare.remote(
                group, data, work)
            self.calls[call] = (actor, group, work)

    def _settle(self, actor, group: tuple | None, work, result: RunSummary | None, error) -> None:
        if is_disk_full(error):  # every later write would fail alike: the grid stops and says so
            raise error
        died = isinstance(error, self.ray.exceptions.RayActorError)
        if group is None and died:  # it never started (its __init__ failed): not replaced
            self.start_error = _lost_reason(error)
            return
        if isinstance(work, CellJob):
            if error is None:
                self.summary.merge(result)
            else:
                log.debug("cell %s lost: %s", work, error)
                self._lose(work, _lost_reason(error))
        elif group is not None:
            self.queue.part_ended(group)
            if error is None:  # a part that failed is reported by each of its cells
                self.summary.merge(result)
        if died:  # its process is gone, and with it only the cell or part it ran: a fresh actor takes the slot
            self.homes.pop(actor, None)
            self._start()
        else:
            self.idle.append(actor)

    def _lose(self, job: CellJob, error: str) -> None:
        record_lost_cell(SeedSetup(self.plan, *self.tasks[job.group.data], job.backbone, job.seed), job, error,
                         self.summary)


def record_lost_cell(setup: SeedSetup, job: CellJob, error: str, summary: RunSummary) -> None:
    """A cell whose worker died or failed outside the cell's scoring: its run (still RUNNING, or created now if the
    worker never opened one) is ended FAILED with the error, so the board lists it and a rerun retries it."""
    plan = setup.plan
    client = mlflow.MlflowClient(plan.tracking_uri)
    experiment_id = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
    open_runs = client.search_runs([experiment_id], filter_string=(
        f"tags.`mlflow.parentRunId` = '{summary.parent_run_id}' and tags.`{TAG}cell_key` = '{job.key}' "
        f"and attributes.status = 'RUNNING'"))
    if open_runs:
        run_id = open_runs[0].info.run_id
    else:
        original_key = ModelCache(plan.cache_dir).key(reference_fields(*setup, "original"))
        tags = cell_tags(setup, job, original_key, plan.threads or 1)
        run_id = client.create_run(experiment_id, run_name=cell_run_name(job.spec, setup.splits, job.backbone,
                                                                         job.seed),
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

