import math
from pathlib import Path
import re
import sqlite3

import pytest



def _rows(board: str) -> dict[str, list[str]]:
    rows = {}
    for line in board.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 5 and (cells[0].rstrip("=").isdigit() or cells[0] == "—"):  # "—": a board that is no verdict
            rows[cells[1].removesuffix(" (collapsed)")] = cells  # smoke references (one epoch) sit at chance
    return rows


def test_a_run_of_one_method_boards_it_with_the_original_and_retrain_rows(smoke_run):
    out, result = smoke_run
    board = (out / "leaderboards" / "digits-resnet18-smoke.md").read_text()
    rows = _rows(board)
    assert set(rows) == {"original (reference)", "retrain (reference)", "finetune"}
    for cells in rows.values():
        test_acc, fs, nomus = float(cells[2]), float(cells[5].split()[0]), float(cells[6].split()[0])
        assert all(math.isfinite(v) for v in (test_acc, fs, nomus))
        assert nomus == pytest.approx(0.5 * (test_acc + 1 - fs), abs=2e-3)
    assert re.search(r"mubench run --methods finetune --out \S+ --preset smoke --quiet", board)


def test_mlflow_store_holds_parent_and_child_runs(smoke_run):
    out, _ = smoke_run
    with sqlite3.connect(out / "mlflow.db") as db:
        runs = db.execute("select run_uuid, status from runs").fetchall()
        kinds = dict(db.execute("select run_uuid, value from tags where key = 'mubench.kind'").fetchall())
        parents = dict(db.execute("select run_uuid, value from tags where key = 'mlflow.parentRunId'").fetchall())
        params = db.execute("select count(*) from params where key = 'split_hash'").fetchone()[0]
    cells = [r for r, status in runs if kinds.get(r) == "cell" and status == "FINISHED"]
    invocations = [r for r, _ in runs if kinds.get(r) == "invocation"]
    assert len(cells) == 3 and len(invocations) == 1
    assert all(parents[c] == invocations[0] for c in cells)
    assert params == 3


def test_leaderboard_command_renders_from_the_store(smoke_run, tmp_path, cli):
    out, _ = smoke_run
    result = cli("leaderboard", "--store", str(out), "--out", str(tmp_path))
    assert result.exit_code == 0
    rendered = (tmp_path / "digits-resnet18-smoke.md").read_text()
    assert _rows(rendered) == _rows((out / "leaderboards" / "digits-resnet18-smoke.md").read_text())


def _copy_of(smoke_run, tmp_path):
    """The shared smoke store copied, so a test that adds runs leaves the others' store as it was."""
    import shutil
    return Path(shutil.copytree(smoke_run[0], tmp_path / "copy"))


def test_run_echoes_the_leaderboard(tmp_path, smoke_run, cli):
    out = _copy_of(smoke_run, tmp_path)
    result = cli("run", "--preset", "smoke", "--methods", "original", "--out", str(out))
    assert result.exit_code == 0
    assert "# Leaderboard: digits × resnet18" in result.stdout


def test_rerun_skips_finished_cells_and_a_changed_config_runs_again_in_a_row_of_its_own(smoke_run, cli, tmp_path):
    out = _copy_of(smoke_run, tmp_path)
    result = cli("run", "--preset", "smoke", "--methods", "original,retrain,finetune", "--out", str(out), "--quiet")
    assert result.exit_code == 0
    assert "0 cells run, 3 already finished" in result.stderr
    assert "references from cache: 0, trained: 0" in result.stderr
    result = cli("run", "--preset", "smoke", "--methods", "finetune", "--set", "finetune.lr=0.01", "--out", str(out),
                 "--quiet")
    assert "1 cells run, 2 already finished" in result.stderr
    board = _rows((out / "leaderboards" / "digits-resnet18-smoke.md").read_text())
    assert set(board) == {"original (reference)", "retrain (reference)", "finetune", "finetune[lr=0.01]"}


def test_ls_lists_builtins(cli):
    result = cli("ls", "methods")
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"original", "retrain", "finetune"} <= set(names)
    assert cli("ls", "backbones").stdout.split()[::1].count("resnet18") == 1


@pytest.mark.parametrize("args, fragment", [
    (["--methods", "scurb"], "unknown method 'scurb'"),
    (["--tasks", "digit"], "unknown task 'digit'"),
    (["--backbones", "resnet19"], "unknown backbone 'resnet19'"),
    (["--seeds", "0,x"], "--seeds '0,x' is not a comma-separated list of integers"),
    (["--seeds", "1,1"], "distinct"),
    (["--methods", "finetune", "--set", "finetune.lrr=0.1"], "finetune has no field 'lrr'"),
    (["--methods", "finetune", "--set", "finetune.lr=fast"], "finetune.lr='fast': expected a number"),
    (["--methods", "finetune", "--set", "finetune.epochs=1.5"], "expected an integer"),
    (["--methods", "finetune", "--set", "finetune.optimizer=rmsprop"], "expected one of sgd, adam"),
    (["--methods", "finetune", "--set", "lr=0.1"], "malformed"),
    (["--methods", "finetune", "--set", "scrub.alpha=0.1"], "not among the methods to run"),
])
def test_bad_input_is_one_sentence_and_nonzero(tmp_path, args, fragment, cli):
    out = tmp_path / "out"
    result = cli("run", "--out", str(out), *args)
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (out / "mlflow.db").exists()


def test_unknown_name_suggests_the_close_one(tmp_path, cli):
    result = cli("run", "--out", str(tmp_path), "--methods", "fintune")
    assert "Did you mean 'finetune'?" in result.stderr
    assert re.search(r"known methods: .*original", result.stderr)


def test_unwritable_out(tmp_path, cli):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = cli("run", "--out", str(blocker / "sub"), "--methods", "original")
    assert result.exit_code == 2
    assert f"--out '{blocker / 'sub'}' is not writable" in result.stderr


def test_a_second_run_in_the_same_process_uses_its_own_store(tmp_path, cli):
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; it must not leak into the next run's default."""
    import os
    first, second = tmp_path / "first", tmp_path / "second"
    assert cli("run", "--preset", "smoke", "--methods", "original", "--out", str(first), "--quiet").exit_code == 0
    assert "MLFLOW_TRACKING_URI" not in os.environ
    result = cli("run", "--preset", "smoke", "--methods", "original", "--out", str(second), "--quiet")
    assert result.exit_code == 0 and f"sqlite:///{second.resolve()}/mlflow.db" in result.stderr


def test_ablate_puts_the_variants_in_a_section_of_their_own(smoke_run, cli, tmp_path):
    out = _copy_of(smoke_run, tmp_path)
    result = cli("run", "--preset", "smoke", "--methods", "neggrad+", "--ablate", "--out", str(out), "--quiet",
                 "--no-plots")
    assert result.exit_code == 0, result.stderr
    board = (out / "leaderboards" / "digits-resnet18-smoke.md").read_text()
    main_table, ablation = board.split("## Ablation: neggrad+")
    assert "neggrad+[beta0.5]" not in _rows(main_table) and "neggrad+" in _rows(main_table)
    ablation_rows = [line.split("|")[1].strip() for line in ablation.splitlines() if line.startswith("| neggrad")]
    assert ablation_rows == ["neggrad+", "neggrad+[beta0.5]"]
