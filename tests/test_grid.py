"""The grid at scale: executors, resuming after a kill, concurrent writers, failing cells, ties on the board."""
import os
import re
import statistics
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from mubench.train.cache import ModelCache
from mubench.core.errors import MubenchError
from mubench.boards.leaderboard import TIE_NOTE, latest_cells, rank_labels, render_board, tied_with_leader
from mubench.core.tracking import finished_cell_keys

MUBENCH = Path(sys.executable).parent / "mubench"
PLUGINS = Path(__file__).parent / "plugins"
BOARD = Path("leaderboards") / "digits-resnet18-smoke.md"
TIME_COLUMNS = ("unlearn s", "× retrain")
SMOKE = ("run", "--preset", "smoke", "--no-plots", "--quiet")


def board_without_times(text: str) -> list[str]:
    """A board to compare across executors and interrupted runs: every column of the ranking but the wall-time ones
    (unlearn s, × retrain: third and second from the end), and every line but the commands that produced it (they
    name their --out and --executor)."""
    lines = []
    for line in text.splitlines():
        if line.startswith("    mubench "):
            continue
        if line.startswith("| #"):
            assert [c.strip() for c in line.split("|")[-4:-1]] == ["unlearn s", "× retrain", "seeds"], line
        elif line.startswith("|") and not set(line) <= set("|-: "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            line = " | ".join(cells[:-3] + cells[-1:])
        lines.append(line)
    return lines


def environment(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MUBENCH_CACHE", "MUBENCH_DATA")}
    return {**env, **extra}


def mubench(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([str(MUBENCH), *args], env=env or environment(), capture_output=True, text=True,
                          timeout=timeout)


def interruptible(command: list[str]) -> subprocess.Popen:
    """`command` started as a terminal's foreground job, stderr captured, ready for a SIGINT. A job started in the
    background by a shell (`.ci/run &`) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt
    handler: the child gets the default disposition back."""
    def foreground() -> None:  # a runner may also start the tests with SIGINT blocked: a blocked one never lands
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    return subprocess.Popen(command, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=foreground)


def cell_statuses(db: Path) -> list[tuple[str, str]]:
    """(cell key, status) of every cell run in a store, read with plain sqlite while a writer may be running."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            return conn.execute(
                "select k.value, r.status from runs r join tags t on t.run_uuid = r.run_uuid "
                "join tags k on k.run_uuid = r.run_uuid where t.key = 'mubench.kind' and t.value = 'cell' "
                "and k.key = 'mubench.cell_key'").fetchall()
    except sqlite3.OperationalError:  # not created yet, or mid-migration
        return []


# Ties -----------------------------------------------------------------------------------------------------------

LEAD = {0: 0.80, 1: 0.82, 2: 0.78}


@pytest.mark.parametrize("rows, expected", [
    # differences .01, .05, -.03: mean .01, sd .04, t(2) half-width 4.303·.04/√3 = .099 → tied; c: mean .3, sd .01
    ([LEAD, {0: 0.79, 1: 0.77, 2: 0.81}, {0: 0.50, 1: 0.51, 2: 0.49}], ["1=", "1=", "3"]),
    # a constant offset of .01 on every seed separates, although the unpaired intervals overlap widely
    ([{0: 0.9, 1: 0.8, 2: 0.7}, {0: 0.89, 1: 0.79, 2: 0.69}], ["1", "2"]),
    ([LEAD, dict(LEAD)], ["1=", "1="]),  # identical on every seed
    # c is not separated (differences -.1, .3, .2) but stands below the separated b: monotone labels
    ([{0: 0.8, 1: 0.8, 2: 0.8}, {0: 0.7, 1: 0.71, 2: 0.69}, {0: 0.9, 1: 0.5, 2: 0.6}], ["1", "2", "3"]),
    ([{0: 0.9}, {0: 0.5}], ["1", "2"]),  # one seed decides nothing
    ([{0: 0.9}, {0: 0.9}], ["1", "2"]),  # even at equal values
    ([{0: 0.8, 1: 0.8}, {2: 0.7, 3: 0.7}], ["1", "2"]),  # no common seed
    ([LEAD], ["1"]),
    ([], []),
])
def test_tie_known_answers(rows, expected):
    assert rank_labels(rows) == expected


def test_tie_rule_is_the_paired_t_interval():
    lead, row = {0: 0.80, 1: 0.82, 2: 0.78, 3: 0.81}, {0: 0.76, 1: 0.79, 2: 0.75, 3: 0.78}
    differences = [0.04, 0.03, 0.03, 0.03]
    half = 3.182446305284263 * statistics.stdev(differences) / 2  # t(0.975, 3) · sd / √4
    assert tied_with_leader([lead, row]) == [False, False]
    assert abs(statistics.mean(differences)) > half  # separated: the interval excludes 0
    wide = {0: 0.75, 1: 0.90, 2: 0.77, 3: 0.74}  # differences .05, -.08, .01, .07: the interval holds 0
    assert tied_with_leader([lead, wide]) == [True, True]


def test_a_p_value_on_the_threshold_is_a_tie(monkeypatch):
    """Two rows make one pair: separated only when p < 0.05, so p = 0.05 exactly (one-sided tail .025) is a tie."""
    from mubench.boards import leaderboard
    rows = [{0: 2.0, 1: 3.0}, {0: 2.0, 1: 1.0}]
    monkeypatch.setattr(leaderboard.stats.t, "sf", lambda t, df: 0.025)
    assert tied_with_leader(rows) == [True, True]
    monkeypatch.setattr(leaderboard.stats.t, "sf", lambda t, df: 0.0249)
    assert tied_with_leader(rows) == [False, False]


def test_board_marks_ties_and_explains_them():
    rows = []
    for label, values in {"a": (0.80, 0.82, 0.78), "b": (0.79, 0.77, 0.81), "c": (0.50, 0.51, 0.49)}.items():
        for seed, nomus in enumerate(values):
            rows.append({"status": "FINISHED", "label": label, "method": label, "seed": str(seed), "command": "",
                         "split_hash": "0" * 64, "error": None, "nomus": nomus, "test_acc": nomus, "fs": 0.0,
                         "base": label, "variant": "", "threads": "1"})
    board = render_board(("digits", "resnet18", "smoke"), pd.DataFrame(rows))
    ranks = {line.split("|")[2].strip(): line.split("|")[1].strip() for line in board.splitlines()
             if line.startswith("|") and line.split("|")[2].strip() in "abc"}
    assert ranks == {"a": "1=", "b": "1=", "c": "3"}
    assert TIE_NOTE in board


# Reference cache under concurrency ------------------------------------------------------------------------------

def test_a_process_waiting_on_a_reference_loads_it_instead_of_training(tmp_path):
    cache, fields = ModelCache(tmp_path), {"role": "original", "seed": 0}
    training_started, trained = threading.Event(), []

    def slow_train(model):
        training_started.set()
        time.sleep(0.5)
        nn.init.constant_(model.weight, 3.0)
        trained.append(threading.current_thread().name)
        return 1.0

    first = {}
    thread = threading.Thread(target=lambda: first.update(out=cache.get_or_train(fields, nn.Linear(2, 2), slow_train)),
                              name="first")
    thread.start()
    training_started.wait(5)
    waiter = nn.Linear(2, 2)
    record, hit = cache.get_or_train(fields, waiter, slow_train)  # blocks on the lock until `first` has saved
    thread.join()
    assert trained == ["first"] and hit and not first["out"][1]
    assert torch.equal(waiter.weight, torch.full((2, 2), 3.0))
    assert record["train_seconds"] == 1.0


# Executor choice ------------------------------------------------------------------------------------------------

def test_ray_executor_without_ray_names_the_extra(monkeypatch, tmp_path, cli):
    from mubench.run.executors import make_executor
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(MubenchError, match=r"install mubench\[ray\]"):
        make_executor("ray")
    result = cli(*SMOKE, "--methods", "original", "--executor", "ray", "--out", str(tmp_path))
    assert result.exit_code == 2 and "install mubench[ray]" in result.stderr
    assert not (tmp_path / "mlflow.db").exists()



@pytest.mark.parametrize("quiet", [True, False])
def test_the_ray_executor_joins_the_cluster_it_is_given_and_always_lets_go(monkeypatch, tmp_path, quiet):
    from mubench.run import executors
    from mubench.harness.plan import CellJob, MethodSpec, RunPlan, RunSummary
    calls = []

    class FakeRay:
        def init(self, **kwargs):
            calls.append(("init", kwargs["address"], kwargs["log_to_driver"]))

        def shutdown(self):
            calls.append(("shutdown",))

    def broken_run(self, *args):
        raise MubenchError("the cluster went away.")
    monkeypatch.setattr(executors, "_import_ray", FakeRay)
    monkeypatch.setattr(executors.RayExecutor, "_run", broken_run)
    plan = RunPlan(methods=[], tasks=[], backbones=[], seeds=[0], out=tmp_path, tracking_uri="", cache_dir=tmp_path,
                   quiet=quiet)
    with pytest.raises(MubenchError, match="went away"):
        executors.RayExecutor("ray://head:10001").run(plan, [CellJob.of(MethodSpec("original"), "k", "digits", "toy",
                                                                        0)],
                                                      {}, RunSummary(""))
    assert calls == [("init", "ray://head:10001", not quiet), ("shutdown",)]


def test_ray_address_needs_the_ray_executor(tmp_path, cli):
    result = cli(*SMOKE, "--methods", "original", "--ray-address", "auto", "--out", str(tmp_path))
    assert result.exit_code == 2 and "--ray-address 'auto' needs --executor ray" in result.stderr


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_ray_address_where_nothing_answers_is_one_sentence_at_once():
    from mubench.run.executors import check_ray_address
    port = closed_port()
    started = time.perf_counter()
    with pytest.raises(MubenchError, match=rf"^--ray-address '127.0.0.1:{port}': nothing answered at "
                                           rf"127.0.0.1:{port} within 5 s \(.*\); start the cluster there"):
        check_ray_address(f"127.0.0.1:{port}")
    assert time.perf_counter() - started < 5  # refused at once, not Ray's minutes of retries
    with pytest.raises(MubenchError, match="is not host:port"):
        check_ray_address("head-node")
    check_ray_address("auto")  # left to Ray, which finds or starts a cluster here
    check_ray_address(None)


def test_the_cli_refuses_a_dead_ray_address_before_opening_the_store(tmp_path, cli):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'mubench[ray]'")
    address = f"ray://127.0.0.1:{closed_port()}"
    result = cli(*SMOKE, "--methods", "original", "--executor", "ray", "--ray-address", address,
                 "--out", str(tmp_path))
    assert result.exit_code == 2 and f"--ray-address '{address}': nothing answered" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_ray_executor_gives_the_local_executors_board(tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'mubench[ray]'")
    grid = ("--methods", "original,retrain,finetune", "--seeds", "0,1")
    boards = {}
    # CPU results depend on torch's thread count: the same one thread per cell as each Ray task runs.
    for executor in ("local", "ray"):
        out = tmp_path / executor
        result = mubench(*SMOKE, *grid, "--executor", executor, "--threads", "1", "--out", str(out))
        assert result.returncode == 0, result.stderr[-3000:]
        assert "6 cells run, 0 already finished" in result.stderr
        boards[executor] = (out / BOARD).read_text()
    assert board_without_times(boards["ray"]) == board_without_times(boards["local"])
    with sqlite3.connect(tmp_path / "ray" / "mlflow.db") as conn:
        parents = conn.execute("select t.value from tags t join tags k on k.run_uuid = t.run_uuid where t.key = "
                               "'mlflow.parentRunId' and k.key = 'mubench.kind' and k.value = 'cell'").fetchall()
        invocations = conn.execute("select run_uuid from tags where key = 'mubench.executor' and value = 'ray'")
        invocation = invocations.fetchall()
    assert len(parents) == 6 and {p for (p,) in parents} == {invocation[0][0]}


# Crash safety ---------------------------------------------------------------------------------------------------

RESUME_GRID = ("--methods", "original,retrain,finetune,ssd", "--seeds", "0,1")


@pytest.mark.slow
def test_a_killed_grid_resumes_to_the_uninterrupted_board(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    command = [str(MUBENCH), *SMOKE, *RESUME_GRID, "--out", str(killed)]
    process = subprocess.Popen(command, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if any(status == "FINISHED" for _, status in cell_statuses(killed / "mlflow.db")):
            break
        time.sleep(0.2)
    assert process.poll() is None, "the grid ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    statuses = cell_statuses(killed / "mlflow.db")
    finished = {key for key, status in statuses if status == "FINISHED"}
    assert 1 <= len(finished) < 8 and all(status in ("FINISHED", "RUNNING") for _, status in statuses)
    uri = f"sqlite:///{killed / 'mlflow.db'}"
    experiment = MlflowClient(uri).get_experiment_by_name("mubench").experiment_id
    assert finished_cell_keys(uri, experiment) == finished
    assert set(latest_cells(uri)["tags.mubench.cell_key"]) == finished  # a RUNNING cell is not on the board

    resumed = mubench(*SMOKE, *RESUME_GRID, "--out", str(killed))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{8 - len(finished)} cells run, {len(finished)} already finished" in resumed.stderr
    uninterrupted = mubench(*SMOKE, *RESUME_GRID, "--out", str(whole))
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    assert board_without_times((killed / BOARD).read_text()) == board_without_times((whole / BOARD).read_text())
    print(f"\nresume: {len(finished)} cells FINISHED before SIGKILL, "
          f"{sum(s == 'RUNNING' for _, s in statuses)} left RUNNING, {8 - len(finished)} run after")


def test_ctrl_c_records_the_running_cell_killed_as_interrupted_and_the_same_command_resumes(tmp_path):
    """SIGINT (Ctrl-C) while a cell runs: exit 130 with one line and no traceback; the cell and the invocation end
    KILLED with the reason "interrupted" (not FAILED with an empty error, which the board listed as "None"); nothing
    is left RUNNING; the rerun computes only what had not finished."""
    process = interruptible([str(MUBENCH), *SMOKE, *RESUME_GRID, "--workers", "1", "--out", str(tmp_path)])
    deadline = time.monotonic() + 300
    statuses, ready = [], False
    while not ready and time.monotonic() < deadline and process.poll() is None:
        statuses = [status for _, status in cell_statuses(tmp_path / "mlflow.db")]
        ready = "RUNNING" in statuses and 1 <= statuses.count("FINISHED") <= 5  # cells still to come after this one
        time.sleep(0 if ready else 0.05)
    assert ready and process.poll() is None, f"the grid ended before it could be interrupted: {statuses}"
    process.send_signal(signal.SIGINT)
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == 130, f"cells when SIGINT was sent: {statuses}\n{stderr[-3000:]}"
    assert stderr.strip().splitlines()[-1].startswith("interrupted: ") and "Traceback" not in stderr
    with sqlite3.connect(tmp_path / "mlflow.db") as conn:
        runs = conn.execute("select r.status, coalesce(e.value, '') from runs r left join tags e on "
                            "e.run_uuid = r.run_uuid and e.key = 'mubench.error'").fetchall()
    assert "RUNNING" not in {status for status, _ in runs}
    killed = [reason for status, reason in runs if status == "KILLED"]
    assert killed and set(killed) == {"interrupted"} and "FAILED" not in {status for status, _ in runs}
    finished = sum(status == "FINISHED" for status, _ in runs)
    resumed = mubench(*SMOKE, *RESUME_GRID, "--out", str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{8 - finished} cells run, {finished} already finished" in resumed.stderr


def test_two_runs_at_once_share_one_store_and_train_each_reference_once(tmp_path):
    first = subprocess.Popen([str(MUBENCH), *SMOKE, "--methods", "original,finetune", "--out", str(tmp_path)],
                             env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = mubench(*SMOKE, "--methods", "retrain,ssd", "--out", str(tmp_path))
    first_err = first.communicate(timeout=600)[1]
    assert first.returncode == 0, first_err[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    trained = sum(int(err.split("trained: ")[1].split(";")[0]) for err in (first_err, second.stderr))
    assert trained == 2  # Original and Retrain, each by whichever run took its lock first
    with sqlite3.connect(tmp_path / "mlflow.db") as conn:
        assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
    # both runs score both references (they come with every board), each reference cell once: 2 + 1 + 1 cells
    assert sorted(status for _, status in cell_statuses(tmp_path / "mlflow.db")) == ["FINISHED"] * 4
    board = mubench("leaderboard", "--store", str(tmp_path), "--out", str(tmp_path / "boards"))
    assert board.returncode == 0
    text = (tmp_path / "boards" / "digits-resnet18-smoke.md").read_text()
    assert all(f"| {row}" in text for row in ("original (reference)", "retrain (reference)", "finetune", "ssd"))


def test_the_same_grid_started_twice_on_one_store_computes_each_cell_once(tmp_path):
    grid = (*SMOKE, "--methods", "finetune,ssd", "--seeds", "0,1", "--workers", "1", "--out", str(tmp_path))
    first = subprocess.Popen([str(MUBENCH), *grid], env=environment(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    second = mubench(*grid)
    first_err = first.communicate(timeout=600)[1]
    assert first.returncode == 0 and second.returncode == 0, first_err[-3000:] + second.stderr[-3000:]
    cells = cell_statuses(tmp_path / "mlflow.db")
    assert len(cells) == 8 and len({key for key, _ in cells}) == 8 and {s for _, s in cells} == {"FINISHED"}
    counts = [re.search(r"(\d+) cells run, (\d+) already finished", err).groups() for err in (first_err, second.stderr)]
    assert sum(int(run) for run, _ in counts) == 8 and all(int(a) + int(b) == 8 for a, b in counts)


# Failure isolation ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def failing_plugin(tmp_path_factory) -> Path:
    """The failing-methods distribution pip-installed into a folder for PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(PLUGINS / "failing")], check=True, capture_output=True)
    return target


def test_failing_methods_are_failed_cells_and_the_grid_goes_on(failing_plugin, tmp_path):
    target, out = failing_plugin, tmp_path / "out"
    result = mubench(*SMOKE, "--methods", "original,finetune,demo-raises,demo-nan-weights,demo-nan-loss",
                     "--out", str(out), env=environment(PYTHONPATH=str(target)))
    assert result.returncode == 1
    assert "6 cells run, 0 already finished" in result.stderr  # the five named and Retrain, which every board has
    assert "Traceback" not in result.stderr
    expected = {
        "demo-raises": "RuntimeError: deliberate failure inside unlearn",
        "demo-nan-weights": "method 'demo-nan-weights' returned a model with non-finite weights in",
        "demo-nan-loss": "method 'demo-nan-loss' logged non-finite values of loss",
    }
    board = (out / BOARD).read_text()
    for method, error in expected.items():
        assert f"failed: {method} on digits/resnet18 seed 0: {error}" in result.stderr
        assert f"- {method} (seed 0): {error}" in board
        assert f"| {method} " not in board
    assert "| original (reference)" in board and "| finetune " in board
    rerun = mubench(*SMOKE, "--methods", "original,finetune,demo-raises", "--out", str(out),
                    env=environment(PYTHONPATH=str(target)))
    assert rerun.returncode == 1 and "1 cells run, 3 already finished" in rerun.stderr  # failed cells are retried


@pytest.mark.slow
def test_a_dead_ray_worker_loses_its_cell_only(failing_plugin, tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'mubench[ray]'")
    result = mubench(*SMOKE, "--methods", "original,demo-kills-worker,finetune", "--executor", "ray",
                     "--out", str(tmp_path), env=environment(PYTHONPATH=str(failing_plugin)))
    assert result.returncode == 1, result.stderr[-3000:]
    assert "4 cells run, 0 already finished" in result.stderr and "1 failed" in result.stderr  # and retrain
    assert "failed: demo-kills-worker on digits/resnet18 seed 0: ActorDiedError" in result.stderr
    board = (tmp_path / BOARD).read_text()
    assert "| original (reference)" in board and "| finetune " in board and "- demo-kills-worker (seed 0):" in board
    assert sorted(status for _, status in cell_statuses(tmp_path / "mlflow.db")) == [
        "FAILED", "FINISHED", "FINISHED", "FINISHED"]  # original, retrain, finetune


@pytest.mark.parametrize("executor, threads, expected", [("local", 3, 3), ("ray", 0, 1), ("ray", 2, 2)])
def test_a_cells_torch_threads_follow_the_threads_option(tmp_path, executor, threads, expected):
    """--threads 0: every core locally, one per Ray actor (the option's help); a cell key holds the count."""
    from mubench.run.grid import cell_threads
    from mubench.harness.plan import RunPlan
    plan = RunPlan(methods=[], tasks=[], backbones=[], seeds=[0], out=tmp_path, tracking_uri="", cache_dir=tmp_path,
                   executor=executor, threads=threads)
    assert cell_threads(plan) == expected


@pytest.mark.parametrize("threads, limit", [(2, 2), (0, None)])
def test_the_local_executor_holds_torch_and_the_numeric_libraries_to_the_threads_option(tmp_path, monkeypatch,
                                                                                         threads, limit):
    """--threads N caps torch's threads and the BLAS/OpenMP pools sklearn and numpy use (the MIA) for the run, and
    gives torch its own count back after; 0 leaves both as they are."""
    import contextlib

    import threadpoolctl
    from mubench.run import executors
    from mubench.harness.plan import CellJob, MethodSpec, RunPlan, RunSummary
    limits, inside = [], []
    monkeypatch.setattr(threadpoolctl, "threadpool_limits", lambda n: limits.append(n) or contextlib.nullcontext())
    monkeypatch.setattr(executors, "run_seed", lambda *args: inside.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    plan = RunPlan(methods=[], tasks=[], backbones=[], seeds=[0], out=tmp_path, tracking_uri="", cache_dir=tmp_path,
                   threads=threads)
    job = CellJob.of(MethodSpec("original"), "k", "digits", "toy", 0)
    executors.LocalExecutor().run(plan, [job], {("digits", "random"): (None, None)}, RunSummary(""))
    assert limits == [limit] and inside == [threads or before] and torch.get_num_threads() == before
