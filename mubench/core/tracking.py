"""MLflow: one parent run per `mubench run`, one child run per cell; the store the leaderboard reads."""
from __future__ import annotations

import fcntl
import logging
import os
import socket
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from mubench.core.errors import MubenchError
from mubench.core.faults import check_tracking_uri, disk_full_error, is_disk_full
from mubench.core.store import EXPERIMENT, TAG

# MLflow logs each SQLAlchemy error at ERROR before raising it; the raised error is said in one sentence instead.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


def default_tracking_uri(out: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(out).resolve() / 'mlflow.db'}"


def point_mlflow_at(tracking_uri: str) -> None:
    """mlflow.set_tracking_uri without its side effect of exporting MLFLOW_TRACKING_URI to this process's
    environment (which would make the next run in the same process default to this store)."""
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


def open_experiment(tracking_uri: str, artifact_root: Path | None = None, name: str = EXPERIMENT) -> str:
    """Point MLflow at the store and return the experiment id, creating it with a local artifact root."""
    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    point_mlflow_at(tracking_uri)
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = Path(artifact_root).resolve().as_uri() if artifact_root and tracking_uri.startswith("sqlite") else None
        client.create_experiment(name, artifact_location=location)
    return mlflow.set_experiment(name).experiment_id


def open_store(tracking_uri: str, out: Path) -> str:
    """Open (and on first use create) the store, one process at a time: MLflow's schema migration of a fresh SQLite
    file fails when two processes run it at once. Later writes are safe; MLflow waits on SQLite's own lock.
    A store that cannot be opened (damaged, unreachable, a full disk) is one sentence."""
    check_tracking_uri(tracking_uri)
    if not tracking_uri.startswith("sqlite:///"):
        return _opened(tracking_uri, out)
    db = Path(tracking_uri[len("sqlite:///"):])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            return _opened(tracking_uri, out)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _opened(tracking_uri: str, out: Path) -> str:
    try:
        return open_experiment(tracking_uri, Path(out) / "mlartifacts")
    except MubenchError:
        raise
    except Exception as exc:  # MLflow and SQLAlchemy raise many types for a store they cannot use
        if is_disk_full(exc):
            raise disk_full_error({"--out": Path(out)}) from None
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise MubenchError(f"the MLflow store {tracking_uri!r} cannot be opened ({reason}); fix --tracking-uri or "
                           f"move the store aside.") from None


def process_start(pid: int) -> str:
    """When process `pid` started (clock ticks since boot, from /proc), so a reused pid is not taken for the
    process that wrote a run; "" where /proc is not available."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_tags() -> dict[str, str]:
    """Which process writes a run: a later `mubench run` marks the run KILLED once that process is gone."""
    pid = os.getpid()
    return {f"{TAG}host": socket.gethostname(), f"{TAG}pid": str(pid), f"{TAG}pid_start": process_start(pid)}


def process_alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not started or process_start(pid) in ("", started)


def mark_dead_runs_killed(tracking_uri: str, experiment_id: str) -> list[str]:
    """End as KILLED every RUNNING run written on this host by a process that is gone (a grid killed with SIGKILL,
    a crashed machine); return their names. Runs of other hosts are left alone: their processes cannot be seen."""
    client = MlflowClient(tracking_uri)
    host = socket.gethostname()
    killed = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=50000):
        tags = run.data.tags
        if tags.get(f"{TAG}host") != host or not tags.get(f"{TAG}pid", "").isdigit():
            continue
        if process_alive(int(tags[f"{TAG}pid"]), tags.get(f"{TAG}pid_start", "")):
            continue
        client.set_tag(run.info.run_id, f"{TAG}error", f"process {tags[f'{TAG}pid']} on {host} ended while the "
                                                       f"run was RUNNING (killed or crashed)")
        client.set_terminated(run.info.run_id, status="KILLED")
        killed.append(run.info.run_name or run.info.run_id)
    return killed


def git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("mubench", "torch", "torchvision", "POT", "scikit-learn", "mlflow", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def provenance_tags() -> dict[str, str]:
    return {f"{TAG}git_sha": git_sha(), **{f"{TAG}version.{k}": v for k, v in package_versions().items()}}


def cell_runs(tracking_uri: str, name: str = EXPERIMENT):
    """Every cell run in the store as a pandas frame (params., metrics., tags. columns), all statuses."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return None
    point_mlflow_at(tracking_uri)
    runs = mlflow.search_runs([experiment.experiment_id], output_format="pandas", max_results=100000)
    column = f"tags.{TAG}kind"
    return runs[runs[column] == "cell"] if column in runs else runs.iloc[0:0]


def finished_cell_keys(tracking_uri: str, experiment_id: str) -> set[str]:
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([experiment_id], filter_string="attributes.status = 'FINISHED'", max_results=50000)
    return {r.data.tags[f"{TAG}cell_key"] for r in runs if f"{TAG}cell_key" in r.data.tags}
