"""The local executor's worker processes: the actor layer they run on (calls in order, data sent once, a raising
call and a dying worker told apart), and whole runs: the parallel board equals the sequential one, a dead worker
loses only its cell, and `--workers 1` is the old path in this process."""
from __future__ import annotations

import pytest

from mubench.run import executors
from mubench.run.local_actors import ActorDied, CallFailed, LocalActors, WorkerLost
from worker_stub import Counter
from test_grid import BOARD, SMOKE, cell_statuses, environment, failing_plugin, mubench  # noqa: F401 (a fixture)
from test_ray_actors import board_without_times


@pytest.fixture
def actors():
    system = LocalActors()
    yield system
    for actor in system.actors:
        system.kill(actor)


def test_calls_are_answered_in_order_with_the_workers_state_and_data_put_once(actors):
    actor = actors.remote(Counter).remote(10)
    calls = [actor.add.remote(1), actor.add.remote(2)]
    assert [actors.get(actors.wait([call])[0][0]) for call in calls] == [11, 13]
    data = [actors.put(list(range(5)))]
    first, second = actor.length.remote(data), actor.length.remote(data)
    assert actors.get(actors.wait([first])[0][0]) == 5 and actors.get(actors.wait([second])[0][0]) == 5
    assert actor.sent == {data[0].number}  # sent with the first call only


def test_a_raising_call_keeps_its_worker_and_a_dying_one_fails_what_it_was_asked(actors):
    actor = actors.remote(Counter).remote(0)
    failed = actor.fail.remote()
    [done], _ = actors.wait([failed])
    with pytest.raises(CallFailed) as raised:
        actors.get(done)
    assert not isinstance(raised.value, ActorDied) and isinstance(raised.value.cause, ValueError)
    assert actors.get(actors.wait([actor.add.remote(4)])[0][0]) == 4  # the worker lives on
    dying, after = actor.die.remote(), actor.add.remote(1)
    actors.wait([dying, after], num_returns=2)
    for call in (dying, after):
        with pytest.raises(actors.exceptions.RayActorError) as raised:
            actors.get(call)
        assert isinstance(raised.value.cause, WorkerLost) and "exit code 3" in str(raised.value.cause)


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from mubench.run.local_actors import LocalActors
from worker_stub import Counter
system = LocalActors()
actor = system.remote(Counter).remote(0)
print(system.get(system.wait([actor.pid.remote()])[0][0]), flush=True)
system.wait([actor.sleep.remote(600)])
"""


def test_a_worker_ends_soon_after_its_driver_is_killed_instead_of_finishing_its_call_alone():
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path
    driver = subprocess.Popen([sys.executable, "-c", DRIVER.format(tests=str(Path(__file__).parent))],
                              stdout=subprocess.PIPE, text=True)
    worker = int(driver.stdout.readline())
    time.sleep(3)  # the worker has its 600 s call by now (killed sooner, it would end on the closed pipe alone)
    driver.send_signal(signal.SIGKILL)  # no exit handler runs: the daemon flag alone would leave the worker
    driver.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
            if Path(f"/proc/{worker}/stat").read_text().split(") ")[1].startswith("Z"):
                return  # ended, not yet reaped by an init that does not reap
        except (ProcessLookupError, FileNotFoundError):
            return
        time.sleep(0.2)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the worker was still running 15 s after its driver was killed")


def test_one_worker_is_the_sequential_path_in_this_process(monkeypatch, tmp_path):
    from mubench.harness.plan import CellJob, MethodSpec, RunPlan, RunSummary, SeedKey
    seen = []
    monkeypatch.setattr(executors, "run_seed", lambda *args: seen.append("in process"))
    monkeypatch.setattr(executors, "dispatch", lambda *args: seen.append("workers"))
    job = CellJob(MethodSpec("finetune"), None, "k", SeedKey("digits", "random", "resnet18", 0))
    for workers in (1, 2):
        plan = RunPlan(methods=[], tasks=[], backbones=[], seeds=[0], out=tmp_path, tracking_uri="",
                       cache_dir=tmp_path, threads=1, workers=workers)
        executors.LocalExecutor().run(plan, [job], {job.group.data: (None, None)}, RunSummary("p"))
    assert seen == ["in process", "workers"]


def test_parallel_workers_give_the_sequential_board(tmp_path):
    boards = {}
    for workers in ("1", "2"):
        result = mubench(*SMOKE, "--methods", "finetune", "--workers", workers, "--out", str(tmp_path / workers))
        assert result.returncode == 0, result.stderr[-3000:]
        assert "3 cells run" in result.stderr and "trained: 2;" in result.stderr
        boards[workers] = (tmp_path / workers / BOARD).read_text()
    assert board_without_times(boards["2"]) == board_without_times(boards["1"])


@pytest.mark.slow
def test_a_dead_worker_loses_only_its_cell_and_the_grid_goes_on(failing_plugin, tmp_path):  # noqa: F811
    result = mubench(*SMOKE, "--methods", "demo-kills-worker,finetune", "--workers", "2", "--out", str(tmp_path),
                     env=environment(PYTHONPATH=str(failing_plugin)))
    assert result.returncode == 1, result.stderr[-3000:]
    assert "4 cells run" in result.stderr and "1 failed" in result.stderr
    assert "failed: demo-kills-worker on digits/resnet18 seed 0: WorkerLost: the worker process ended" \
        in result.stderr
    assert sorted(status for _, status in cell_statuses(tmp_path / "mlflow.db")) == ["FAILED"] + ["FINISHED"] * 3


def test_the_first_line_says_what_will_run_before_any_training(cli, tmp_path):
    result = cli("run", "--preset", "smoke", "--methods", "finetune", "--no-plots", "--out", str(tmp_path))
    lines = result.stderr.splitlines()
    assert lines[0].startswith("mubench run: 3 cell(s) over 1 task × backbone × seed group(s); 2 reference(s) to "
                               "train, 0 from the cache; 1 worker(s) × 1 torch thread(s). Estimate: about ")
    assert lines[1].startswith("reference original digits/resnet18 seed 0: trained in")
    again = cli("run", "--preset", "smoke", "--methods", "finetune,ssd", "--no-plots", "--out", str(tmp_path))
    assert again.stderr.splitlines()[0].startswith("mubench run: 1 cell(s) over 1 task × backbone × seed group(s); 0 "
                                                   "reference(s) to train, 2 from the cache")


def test_a_reference_much_slower_than_its_estimate_says_why():
    from mubench.core.progress import slow_note
    assert slow_note(30.0, 20.0) == ""
    assert slow_note(50.0, 20.0).startswith(" (2.5× the 20 s estimated: other processes may be using the cores")
