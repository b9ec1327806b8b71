"""MLflow: one parent run per `mubench run`, one child run per cell; the store the leaderboard reads."""
from __future__ import annotations

import logging
import os
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

EXPERIMENT = "mubench"
TAG = "mubench."  # prefix of every tag the suite writes


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
