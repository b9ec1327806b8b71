"""Third-party methods: real distributions installed beside mubench, found through their entry points."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).parent / "plugins"
MUBENCH = Path(sys.executable).parent / "mubench"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    """Both plugin distributions pip-installed into a target folder put on PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    for name in ("good", "broken"):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(PLUGINS / name)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def mubench(env, *args):
    return subprocess.run([str(MUBENCH), *args], env=env, capture_output=True, text=True, timeout=600)


def test_ls_lists_plugin_and_names_the_broken_distribution(plugin_env):
    result = mubench(plugin_env, "ls", "methods")
    listed = [line.split()[0] for line in result.stdout.splitlines()]
    assert "demo-retain-sgd" in listed and "finetune" in listed
    assert "demo-broken" not in listed
    assert "mubench-broken-plugin" in result.stderr and "Traceback" not in result.stderr
    assert result.returncode != 0


def test_plugin_runs_end_to_end(plugin_env, tmp_path):
    result = mubench(plugin_env, "run", "--methods", "demo-retain-sgd", "--preset", "smoke",
                     "--out", str(tmp_path), "--quiet")
    assert result.returncode == 0, result.stderr
    board = (tmp_path / "leaderboards" / "digits-resnet18-smoke.md").read_text()
    assert "| demo-retain-sgd " in board


def test_broken_plugin_fails_before_anything_runs(plugin_env, tmp_path):
    result = mubench(plugin_env, "run", "--methods", "demo-broken", "--preset", "smoke", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "'mubench-broken-plugin' failed to import" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_plugin_returning_a_non_module_is_a_failed_cell(plugin_env, tmp_path):
    result = mubench(plugin_env, "run", "--methods", "original,demo-returns-none", "--preset", "smoke",
                     "--out", str(tmp_path), "--quiet")
    assert result.returncode == 1
    assert "method 'demo-returns-none' returned a NoneType from unlearn(); it must return a torch.nn.Module" \
        in result.stderr
    assert "Traceback" not in result.stderr
    board = (tmp_path / "leaderboards" / "digits-resnet18-smoke.md").read_text()
    assert "| original (reference)" in board
    assert "| demo-returns-none " not in board
    assert "- demo-returns-none (seed 0): method 'demo-returns-none' returned a NoneType" in board


def test_a_plugin_attack_is_listed_run_by_name_and_given_its_columns_and_note(plugin_env, tmp_path):
    listed = [line.split()[0] for line in mubench(plugin_env, "ls", "attacks").stdout.splitlines()]
    assert {"lira", "ulira", "demo-confidence"} <= set(listed)
    result = mubench(plugin_env, "run", "--methods", "finetune", "--preset", "smoke", "--attack", "demo-confidence",
                     "--out", str(tmp_path), "--quiet", "--no-plots")
    assert result.returncode == 0, result.stderr
    board = (tmp_path / "leaderboards" / "digits-resnet18-smoke.md").read_text()
    table = [[c.strip() for c in line.strip("|").split("|")] for line in board.splitlines() if line.startswith("| ")]
    header, rows = table[0], {row[1].split()[0]: row for row in table[1:]}  # a smoke row may be marked collapsed
    assert "confidence AUC" in header and not any("LiRA" in h for h in header)
    assert "Confidence AUC (demo plugin)" in board
    assert 0.0 <= float(rows["finetune"][header.index("confidence AUC")]) <= 1.0
    kit = subprocess.run([sys.executable, "-c", "from mubench.kits.attack_kit import check_attack; "
                          "check_attack('demo-confidence')"], env=plugin_env, capture_output=True, text=True)
    assert kit.returncode == 0, kit.stderr
