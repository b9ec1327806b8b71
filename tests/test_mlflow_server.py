"""A real `mlflow server` as the tracking URI: a smoke grid logs through it, and the leaderboard and the report are
rendered from what the server hands back."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from conftest import SMOKE_METHODS

STARTUP_SECONDS = 90


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def mlflow_server(tmp_path):
    """The URL of a fresh server on a free port; the server's whole process group is stopped afterwards."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 's.db'}",
             "--default-artifact-root", str(tmp_path / "art"), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--uvicorn-opts", "--timeout-graceful-shutdown 2"],  # keep-alive clients hold it
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # own group: its workers stop with it
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not come up on {url}:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        _stop(server)


def _stop(server: subprocess.Popen, grace: float = 10) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.mark.slow  # about a minute on a loaded 2-core box: the server takes 10-25 s to start, the grid 30 s over http
def test_grid_logs_through_a_tracking_server_and_renders_from_it(mlflow_server, smoke_run, tmp_path, cli):
    cache = smoke_run[0] / "cache"  # the session's references: this test trains nothing
    out = tmp_path / "out"
    result = cli("run", "--preset", "smoke", "--methods", SMOKE_METHODS, "--tracking-uri", mlflow_server,
                 "--out", str(out), "--cache-dir", str(cache), "--quiet")
    assert result.exit_code == 0, result.output + result.stderr
    assert not (out / "mlflow.db").exists()

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("mubench")
    runs = client.search_runs([experiment.experiment_id])
    cells = [r for r in runs if r.data.tags.get("mubench.kind") == "cell"]
    assert sorted(r.data.tags["mubench.label"] for r in cells) == ["finetune", "original", "retrain"]
    assert all(r.info.status == "FINISHED" and "nomus" in r.data.metrics for r in cells)
    finetune = next(r for r in cells if r.data.tags["mubench.label"] == "finetune")
    assert sorted(a.path for a in client.list_artifacts(finetune.info.run_id, "plots")) == [
        "plots/finetune-features.npz", "plots/finetune-losses.png"]

    result = cli("leaderboard", "--tracking-uri", mlflow_server, "--out", str(tmp_path / "boards"))
    assert result.exit_code == 0, result.output + result.stderr
    board = (tmp_path / "boards" / "digits-resnet18-smoke.md").read_text()
    for row in ("original (reference)", "retrain (reference)", "finetune"):
        assert f"| {row}" in board

    result = cli("report", "--tracking-uri", mlflow_server, "--out", str(tmp_path / "report"))
    assert result.exit_code == 0, result.output + result.stderr
    assert (tmp_path / "report" / "digits-resnet18-smoke" / "s0" / "tsne.png").stat().st_size > 0
