import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mubench.cli.main import main

# Cells in the test's own process (spies and test-only methods live there), for session fixtures too; the tests of
# the parallel local executor pass --workers.
os.environ["MUBENCH_WORKERS"] = "1"

SMOKE_METHODS = "finetune"  # the Original and Retrain rows come with every run


def invoke(*args: str):
    """Run the CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def cli():
    return invoke


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> tuple[Path, object]:
    """One `mubench run --preset smoke` on digits × resnet18, shared by the end-to-end tests."""
    out = tmp_path_factory.mktemp("smoke")
    result = invoke("run", "--preset", "smoke", "--methods", SMOKE_METHODS, "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output + result.stderr
    return out, result


@pytest.fixture(autouse=True)
def _no_ambient_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MUBENCH_CACHE", raising=False)
    monkeypatch.delenv("MUBENCH_DATA", raising=False)
    monkeypatch.setenv("MUBENCH_WORKERS", "1")
