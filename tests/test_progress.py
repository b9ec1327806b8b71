"""Progress on and off a terminal: bars only on a terminal; elsewhere one line per finished reference, cell and
board and not a single carriage-return frame; --quiet silences both."""
import io
import re
import shutil
import sys
from pathlib import Path

import mubench.harness.references
from mubench.core import progress
from mubench.harness.plan import RunPlan, RunSummary
from mubench.harness.references import train_reference_role
from mubench.data.tasks import load_task


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def on_terminal(monkeypatch) -> Terminal:
    """stderr as a terminal, for the rest of the test (set in the test itself: pytest's capture resets stderr
    between a fixture and the test)."""
    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def test_on_a_terminal_a_bar_draws_frames_and_no_line_is_printed(monkeypatch):
    terminal = on_terminal(monkeypatch)
    assert list(progress.bar(range(50), "steps", 50)) == list(range(50))
    progress.line("cell finetune digits/resnet18 seed 0: FAILED: boom")
    assert "\r" in terminal.getvalue() and "steps" in terminal.getvalue()
    assert "FAILED" not in terminal.getvalue()


def test_quiet_on_a_terminal_draws_nothing(monkeypatch):
    terminal = on_terminal(monkeypatch)
    items = range(50)
    assert progress.bar(items, "steps", 50, quiet=True) is items
    assert terminal.getvalue() == ""


def test_off_a_terminal_no_bar_but_lines_unless_quiet(capsys):
    items = range(50)
    assert progress.bar(items, "steps", 50) is items  # not even a disabled bar around it
    progress.line("leaderboard written: x.md")
    progress.line("reference original digits/resnet18 seed 0: from cache", quiet=True)
    assert capsys.readouterr().err == "leaderboard written: x.md\n"


def test_a_reference_says_trained_and_how_long_then_from_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(mubench.harness.references, "train_reference", lambda *args, **kwargs: 4.25)  # skip the training
    splits, recipe = load_task("digits", "smoke", None, "class:3")[1:]
    plan = RunPlan([], ["digits"], ["resnet18"], [1], tmp_path, "", tmp_path / "cache", preset="smoke")
    for _ in range(2):
        train_reference_role(plan, splits, recipe, "resnet18", 1, "retrain", RunSummary(""))
    assert capsys.readouterr().err.splitlines() == [
        "reference retrain digits[class:3]/resnet18 seed 1: trained in 4.2 s",
        "reference retrain digits[class:3]/resnet18 seed 1: from cache"]


def test_a_run_off_a_terminal_logs_one_line_per_reference_cell_and_board(smoke_run, tmp_path, cli, monkeypatch):
    def broken(self, model, data, ctx):
        raise RuntimeError("no convergence\nsecond line of the reason")
    monkeypatch.setattr("mubench.methods.finetune.Finetune.unlearn", lambda self, model, data, ctx: model)  # fast
    monkeypatch.setattr("mubench.methods.neggrad.NegGrad.unlearn", broken)
    out = Path(shutil.copytree(smoke_run[0], tmp_path / "out"))  # its Original and Retrain cells are finished
    result = cli("run", "--preset", "smoke", "--methods", "finetune,neggrad", "--set", "finetune.epochs=2",
                 "--out", str(out), "--no-plots")
    assert result.exit_code == 1, result.stderr  # the failed cell
    assert "\r" not in result.stderr and "\r" not in result.stdout
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("reference ")] == [
        f"reference {role} digits/resnet18 seed 0: from cache" for role in ("original", "retrain")]
    cells = [line for line in lines if line.startswith("cell ")]
    assert len(cells) == 2
    assert re.fullmatch(r"cell finetune\[epochs=2\] digits/resnet18 seed 0: test acc [01]\.\d{4}, FS [01]\.\d{4}, "
                        r"NoMUS [01]\.\d{4}, \d+\.\d s", cells[0])
    assert cells[1] == "cell neggrad digits/resnet18 seed 0: FAILED: RuntimeError: no convergence"
    boards = [line.removeprefix("leaderboard written: ") for line in lines if line.startswith("leaderboard written")]
    assert boards == [str(out / "leaderboards" / "digits-resnet18-smoke.md")] and Path(boards[0]).is_file()


def test_quiet_prints_no_progress_lines(smoke_run):
    _, result = smoke_run  # run with --quiet
    assert not [line for line in result.stderr.splitlines()
                if line.startswith(("reference ", "cell ", "leaderboard written"))]
    assert "cells run" in result.stderr  # the summary stays


def test_a_quiet_reference_prints_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(mubench.harness.references, "train_reference", lambda *args, **kwargs: 4.25)  # skip the training
    splits, recipe = load_task("digits", "smoke", None, "random")[1:]
    plan = RunPlan([], ["digits"], ["resnet18"], [1], tmp_path, "", tmp_path / "cache", preset="smoke", quiet=True)
    for _ in range(2):
        train_reference_role(plan, splits, recipe, "resnet18", 1, "original", RunSummary(""))
    assert capsys.readouterr().err == ""
