"""A grid killed with SIGKILL leaves RUNNING runs; the next `mubench run` on the store marks them KILLED."""
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from mlflow.tracking import MlflowClient

from mubench.core.tracking import open_experiment, process_tags
from mubench.core.store import TAG

HOLD_A_RUN = textwrap.dedent("""
    import sys, time, mlflow
    from mubench.core.tracking import TAG, open_store, process_tags
    open_store(sys.argv[1], sys.argv[2])
    mlflow.start_run(run_name="held", tags={f"{TAG}kind": "cell", **process_tags()})
    print("ready", flush=True)
    time.sleep(600)
""")


def statuses(uri: str) -> dict[str, str]:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("mubench").experiment_id
    return {r.info.run_name: r.info.status for r in client.search_runs([experiment], max_results=1000)}


def test_runs_of_a_killed_process_are_marked_killed_and_live_ones_are_left(smoke_run, tmp_path, cli):
    out = Path(shutil.copytree(smoke_run[0], tmp_path / "copy"))
    uri = f"sqlite:///{out / 'mlflow.db'}"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_A_RUN, uri, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    experiment = open_experiment(uri)
    live = MlflowClient(uri).create_run(experiment, run_name="live", tags={f"{TAG}kind": "cell", **process_tags()})
    elsewhere = MlflowClient(uri).create_run(experiment, run_name="elsewhere", tags={
        f"{TAG}kind": "cell", f"{TAG}host": "another-host", f"{TAG}pid": "1", f"{TAG}pid_start": "1"})
    assert statuses(uri)["held"] == "RUNNING"

    result = cli("run", "--preset", "smoke", "--methods", "finetune", "--out", str(out), "--quiet", "--no-plots")
    assert result.exit_code == 0
    assert "marked 1 run(s) KILLED whose process is gone: held" in result.stderr
    assert "0 cells run, 3 already finished" in result.stderr
    after = statuses(uri)
    assert (after["held"], after["live"], after["elsewhere"]) == ("KILLED", "RUNNING", "RUNNING")
    assert "ended while the run was RUNNING" in MlflowClient(uri).search_runs(
        [experiment], filter_string="attributes.run_name = 'held'")[0].data.tags[f"{TAG}error"]
    for run in (live, elsewhere):
        MlflowClient(uri).set_terminated(run.info.run_id)
