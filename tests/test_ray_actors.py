"""The Ray executor's long-lived actors: the driver's queue and dispatch (against a stand-in for Ray that runs each
call at once, in this process), then real Ray runs: many cells per worker process, the local board, a dead actor."""
from __future__ import annotations

import os
import re
import sqlite3

import pytest

from mubench.run import executors
from mubench.run.executors import Dispatcher, WorkQueue, ray_slots
from mubench.harness.plan import CellJob, MethodSpec, RunPlan, RunSummary, SeedKey
from test_grid import BOARD, SMOKE, TIME_COLUMNS, cell_statuses, environment, failing_plugin, mubench  # noqa: F401


def job(method: str, seed: int = 0, task: str = "digits") -> CellJob:
    """A queue's job for a made-up method (the queue never resolves its config)."""
    return CellJob(MethodSpec(method), None, f"{method}-{task}-{seed}", SeedKey(task, "random", "resnet18", seed))


def grid(methods: list[str], seeds: list[int]) -> dict[tuple, list[CellJob]]:
    groups: dict[tuple, list[CellJob]] = {}
    for seed in seeds:
        for method in methods:
            cell = job(method, seed)
            groups.setdefault(cell.group, []).append(cell)
    return groups


# The queue -------------------------------------------------------------------------------------------------------

def test_a_seeds_cells_wait_until_every_part_of_its_preparation_has_ended():
    groups = grid(["original", "finetune"], [0])
    [group] = groups
    queue = WorkQueue(groups, shadows=2)
    assert [queue.take(group) for _ in range(4)] == ["original", "retrain", 0, 1]
    assert not queue.has_work(group)  # four parts out, cells held back
    for ended in range(4):
        assert not queue.has_work(group)
        queue.part_ended(group)
    assert queue.has_work(group)
    assert [queue.take(group).spec.name for _ in range(2)] == ["original", "finetune"]
    assert not queue.has_work(group) and queue.left() == []


def test_an_idle_actor_keeps_to_its_seed_then_takes_the_least_served_one():
    groups = grid(["finetune"], [0, 1, 2])
    first, second, third = groups
    queue = WorkQueue(groups, shadows=0)
    assert queue.pick(None, {}) == first  # the grid's order among equals
    assert queue.pick(first, {first: 1}) == first
    assert queue.pick(None, {first: 1}) == second
    assert queue.pick(None, {first: 1, second: 1}) == third
    for _ in range(2):
        queue.take(first)  # both references of seed 0 handed out: its cell waits
    assert queue.pick(first, {first: 2, second: 0, third: 1}) == second
    for group in (second, third):
        for _ in range(2):
            queue.take(group)
    assert queue.pick(first, {first: 1}) is None  # nothing can be handed out until a part ends


def test_slots_count_whole_workers_on_each_live_node():
    nodes = [{"Alive": True, "Resources": {"CPU": 5.0, "GPU": 1.0}},
             {"Alive": True, "Resources": {"CPU": 3.0}},
             {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}},
             {"Alive": True, "Resources": {}}]  # a head node that takes no work
    assert ray_slots(nodes, threads=1, gpus=0) == 8
    assert ray_slots(nodes, threads=2, gpus=0) == 3  # 2 + 1: a third of a node's cores idle, never shared
    assert ray_slots(nodes, threads=1, gpus=1) == 1


# The dispatch, on a stand-in for Ray -----------------------------------------------------------------------------

class ActorDied(Exception):
    pass


class CallFailed(Exception):
    cause = None


class InstantRay:
    """The few Ray calls the dispatcher makes, each run when it is made: `wait` answers the oldest call in flight.
    A cell of method "dies" ends its actor's process; an actor that is not `startable` dies in its __init__."""

    class exceptions:
        RayError = Exception
        RayActorError = ActorDied

    def __init__(self, startable: bool = True, room: int = 99):
        self.startable, self.room, self.actors, self.log, self.killed = startable, room, [], [], []

    def put(self, value):
        return ("object", value)

    def wait(self, calls, num_returns):
        answered = [call for call in calls if call.outcome != "never"]
        assert answered, "the dispatcher waits for an actor that the cluster has no room for"
        return answered[:1], [call for call in calls if call is not answered[0]]

    def get(self, call):
        if isinstance(call.outcome, Exception):
            raise call.outcome
        return call.outcome

    def kill(self, actor):
        self.killed.append(actor)

    def remote(self, plan, parent_run_id, threads):  # the actor class
        actor = FakeActor(self, len(self.actors), self.startable)
        self.actors.append(actor)
        return actor


class FakeActor:
    def __init__(self, ray: InstantRay, number: int, alive: bool):
        self.ray, self.number, self.alive = ray, number, alive
        self.ready, self.prepare, self.run = (Method(self, name) for name in ("ready", "prepare", "run"))


class Call:
    """A call made: what `get` returns or raises."""

    def __init__(self, outcome):
        self.outcome = outcome


class Method:
    def __init__(self, actor: FakeActor, name: str):
        self.actor, self.name = actor, name

    def remote(self, *args):
        return Call(self.outcome(*args))

    def outcome(self, *args):
        actor = self.actor
        if not actor.alive:
            return ActorDied("the actor died")
        if self.name == "ready":
            return "never" if actor.number >= actor.ray.room else None
        if self.name == "prepare":
            group, task, part = args
            actor.ray.log.append((actor.number, "prepare", group[3], part))
            return RunSummary("", cache_misses=1)
        cell, task = args
        assert task == [("object", ("splits", "recipe"))]
        actor.ray.log.append((actor.number, "run", cell.seed, cell.spec.name))
        if cell.spec.name == "dies":
            actor.alive = False
            return ActorDied("the actor died")
        if cell.spec.name == "raises":
            return CallFailed("raised in the actor")
        return RunSummary("", cells=1)


def dispatch(groups, slots, monkeypatch, ray=None, shadows=0):
    """Run `groups` through the dispatcher on `slots` stand-in actors; (ray, summary, lost cells as (method, seed,
    error))."""
    lost = []
    monkeypatch.setattr(executors, "record_lost_cell", lambda setup, cell, error, summary:
                        lost.append((cell.spec.name, cell.seed, error)))
    ray = ray or InstantRay()
    summary = RunSummary("parent")
    tasks = {("digits", "random"): ("splits", "recipe")}
    plan = RunPlan([], ["digits"], ["resnet18"], [0], out=None, tracking_uri="", cache_dir=None)
    Dispatcher(ray, ray, plan, tasks, WorkQueue(groups, shadows), 1, summary).run(slots)
    return ray, summary, lost


def test_each_actor_serves_its_own_seed_when_there_are_enough(monkeypatch):
    ray, summary, lost = dispatch(grid(["original", "retrain", "finetune", "neggrad"], [0, 1]), 2, monkeypatch)
    assert not lost and summary.cells == 8 and summary.cache_misses == 4
    runs = [(actor, seed) for actor, kind, seed, _ in ray.log if kind == "run"]
    assert sorted(runs) == [(0, 0)] * 4 + [(1, 1)] * 4
    assert sorted(ray.killed, key=lambda a: a.number) == ray.actors  # none left behind


def test_two_actors_on_one_seed_both_run_cells_after_both_references(monkeypatch):
    ray, summary, lost = dispatch(grid([f"m{i}" for i in range(8)], [0]), 2, monkeypatch, shadows=2)
    assert not lost and summary.cells == 8
    kinds = [kind for _, kind, _, _ in ray.log]
    assert kinds == ["prepare"] * 4 + ["run"] * 8  # both references and both shadows before any cell
    assert {part for _, kind, _, part in ray.log if kind == "prepare"} == {"original", "retrain", 0, 1}
    assert {actor for actor, kind, _, _ in ray.log if kind == "run"} == {0, 1}


def test_a_dead_actor_loses_the_cell_it_ran_and_a_fresh_one_runs_the_rest(monkeypatch):
    groups = grid(["original", "dies", "finetune", "neggrad", "raises"], [0])
    ray, summary, lost = dispatch(groups, 1, monkeypatch)
    assert lost == [("dies", 0, "ActorDied: the actor died"), ("raises", 0, "CallFailed: raised in the actor")]
    assert summary.cells == 3 and len(ray.actors) == 2
    ran = [(actor, method) for actor, kind, _, method in ray.log if kind == "run"]
    assert ran == [(0, "original"), (0, "dies"), (1, "finetune"), (1, "neggrad"), (1, "raises")]


def test_the_run_ends_without_the_actors_the_cluster_has_no_room_for(monkeypatch):
    ray, summary, lost = dispatch(grid(["original", "finetune"], [0, 1]), 3, monkeypatch, InstantRay(room=1))
    assert not lost and summary.cells == 4
    assert {actor for actor, _, _, _ in ray.log} == {0} and len(ray.killed) == 3


def test_actors_that_cannot_start_fail_every_cell_instead_of_waiting(monkeypatch):
    ray, summary, lost = dispatch(grid(["original", "finetune"], [0, 1]), 2, monkeypatch, InstantRay(False))
    assert len(ray.actors) == 2 and not ray.log  # not replaced, nothing handed out
    assert [(method, seed) for method, seed, _ in lost] == [("original", 0), ("finetune", 0), ("original", 1),
                                                             ("finetune", 1)]
    assert all(error == "no Ray worker could start: ActorDied: the actor died" for _, _, error in lost)


# Real Ray --------------------------------------------------------------------------------------------------------

def board_without_times(text: str) -> list[str]:
    """A board's lines to compare across executors: the table cells without the wall-time columns (found by their
    header, whatever other columns the board has), and the notes without the shadows' training time; the command
    lines (they name --out and --executor) and the rule under the header (its widths follow the times) are left
    out."""
    lines, drop = [], set()
    for line in text.splitlines():
        if line.startswith("    mubench ") or (line.startswith("|") and set(line) <= set("|-: ")):
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] == "#":
                drop = {i for i, c in enumerate(cells) if c in TIME_COLUMNS}
            line = " | ".join(c for i, c in enumerate(cells) if i not in drop)
        lines.append(re.sub(r"Training the shadows took [^×]*×", "Training the shadows took …×", line))
    return lines


def cell_pids(db) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [pid for (pid,) in conn.execute(
            "select p.value from tags p join tags k on k.run_uuid = p.run_uuid "
            "where p.key = 'mubench.pid' and k.key = 'mubench.kind' and k.value = 'cell'")]


@pytest.mark.slow
def test_ray_workers_run_many_cells_each_and_give_the_local_board_with_lira(tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'mubench[ray]'")
    grid_args = ("--methods", "finetune,neggrad", "--seeds", "0,1", "--attack", "lira", "--shadows", "2",
                 "--threads", "1")
    boards = {}
    for executor in ("local", "ray"):
        result = mubench(*SMOKE, *grid_args, "--executor", executor, "--out", str(tmp_path / executor))
        assert result.returncode == 0, result.stderr[-3000:]
        assert "8 cells run" in result.stderr and "trained: 4;" in result.stderr  # each reference once
        boards[executor] = (tmp_path / executor / BOARD).read_text()
    assert board_without_times(boards["ray"]) == board_without_times(boards["local"])
    assert "LiRA" in boards["ray"]
    pids = cell_pids(tmp_path / "ray" / "mlflow.db")
    assert len(pids) == 8 and len(set(pids)) <= min(os.cpu_count(), 8) and len(set(pids)) < 8


@pytest.mark.slow
def test_a_dead_actor_loses_only_its_cell_and_the_grid_goes_on(failing_plugin, tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'mubench[ray]'")
    result = mubench(*SMOKE, "--methods", "demo-kills-worker,finetune,neggrad", "--seeds", "0,1",
                     "--executor", "ray", "--out", str(tmp_path), env=environment(PYTHONPATH=str(failing_plugin)))
    assert result.returncode == 1, result.stderr[-3000:]
    assert "10 cells run" in result.stderr and "2 failed" in result.stderr
    for seed in (0, 1):
        assert f"failed: demo-kills-worker on digits/resnet18 seed {seed}: ActorDiedError" in result.stderr
    statuses = sorted(status for _, status in cell_statuses(tmp_path / "mlflow.db"))
    assert statuses == ["FAILED"] * 2 + ["FINISHED"] * 8
    board = (tmp_path / BOARD).read_text()
    assert all(f"| {row}" in board for row in ("original (reference)", "retrain (reference)", "finetune", "neggrad"))
