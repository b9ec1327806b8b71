"""Figures of a smoke run on disk and in the store (losses and features per cell; no t-SNE inside the run), a
figure that fails without failing its cell, and a report that draws the t-SNE from the cells' features and whose
links all resolve."""
import re
import sqlite3
from pathlib import Path

import numpy as np
from matplotlib.image import imread
from mlflow.tracking import MlflowClient

import mubench.boards.figures
import mubench.boards.report
from mubench.run.cell_figures import TSNE_SAMPLES
from mubench.data.tasks import SMOKE_CAPS

LABELS = ("original", "retrain", "finetune")


def _is_drawn(path: Path) -> bool:
    pixels = imread(path)
    return pixels.ndim == 3 and min(pixels.shape[:2]) > 100 and float(pixels.std()) > 0.01


def test_smoke_run_draws_a_losses_figure_and_saves_features_per_cell_and_leaves_the_tsne_to_the_report(smoke_run):
    out, _ = smoke_run
    folder = out / "plots" / "digits-resnet18-smoke" / "s0"
    counts = {role: min(n, SMOKE_CAPS[role]) for role, n in TSNE_SAMPLES.items()}
    for label in LABELS:
        assert _is_drawn(folder / f"{label}-losses.png"), label
        with np.load(folder / f"{label}-features.npz") as saved:
            assert saved["features"].shape == (sum(counts.values()), 512) and np.isfinite(saved["features"]).all()
            assert {role: int((saved["roles"] == role).sum()) for role in counts} == counts
            assert saved["labels"].shape == saved["roles"].shape and set(saved["labels"].tolist()) <= set(range(10))
    assert not list((out / "plots").rglob("*tsne*"))


def test_figures_are_artifacts_of_their_runs(smoke_run):
    out, _ = smoke_run
    uri = f"sqlite:///{out / 'mlflow.db'}"
    with sqlite3.connect(out / "mlflow.db") as db:
        first = db.execute("select run_uuid from runs join tags using (run_uuid) where key = 'mubench.kind' and "
                           "value = 'invocation' order by start_time limit 1").fetchone()[0]
        labels = dict(db.execute("select run_uuid, value from tags where key = 'mubench.label'").fetchall())
    client = MlflowClient(uri)
    for run_id, label in labels.items():
        assert sorted(a.path for a in client.list_artifacts(run_id, "plots")) == [
            f"plots/{label}-features.npz", f"plots/{label}-losses.png"]
    assert [a.path for a in client.list_artifacts(first, "plots")] == ["plots/digits-resnet18-smoke-scatter.png"]


def test_a_failing_figure_warns_and_tags_but_the_cell_finishes(smoke_run, tmp_path, cli, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no ink")
    monkeypatch.setattr(mubench.boards.figures, "draw_losses", broken)
    result = cli("run", "--preset", "smoke", "--methods", "original", "--out", str(tmp_path),
                 "--cache-dir", str(smoke_run[0] / "cache"), "--quiet")
    assert result.exit_code == 0, result.stderr
    assert "2 cells run" in result.stderr and "0 failed" in result.stderr  # original, and retrain with it
    assert any("no ink" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        tags = db.execute("select value from tags where key = 'mubench.plot_error'").fetchall()
    assert len(tags) == 2 and all("RuntimeError: no ink" in tag for tag, in tags)
    folder = tmp_path / "plots" / "digits-resnet18-smoke" / "s0"
    assert sorted(p.name for p in folder.iterdir()) == ["original-features.npz", "retrain-features.npz"]  # the rest


def test_no_plots_draws_nothing(smoke_run, tmp_path, cli):
    result = cli("run", "--preset", "smoke", "--methods", "original", "--out", str(tmp_path),
                 "--cache-dir", str(smoke_run[0] / "cache"), "--quiet", "--no-plots")
    assert result.exit_code == 0, result.stderr
    assert not (tmp_path / "plots").exists()


def test_report_draws_the_tsne_of_every_cell_and_links_only_files_that_exist(smoke_run, tmp_path, cli, monkeypatch):
    out, _ = smoke_run
    drawn = []

    def spy(features, path, title):
        drawn.append({name: (points.shape, sorted(set(roles))) for name, (points, roles, *_) in features.items()})
        draw_tsne(features, path, title)
    draw_tsne = mubench.boards.report.draw_tsne
    monkeypatch.setattr(mubench.boards.report, "draw_tsne", spy)
    result = cli("report", "--store", str(out), "--out", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    points = sum(min(n, SMOKE_CAPS[role]) for role, n in TSNE_SAMPLES.items())
    assert drawn == [{name: ((points, 512), sorted(TSNE_SAMPLES)) for name in ("Original", "Retrain", "finetune")}]
    page = tmp_path / "digits-resnet18-smoke.md"
    text = page.read_text()
    assert "# Leaderboard: digits × resnet18" in text and "| finetune" in text
    assert "no features saved" not in text
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)
    assert "digits-resnet18-smoke/s0/tsne.png" in images and _is_drawn(tmp_path / "digits-resnet18-smoke/s0/tsne.png")
    assert "digits-resnet18-smoke/s0/finetune-losses.png" in images
    for link in links:
        assert not Path(link).is_absolute() and (page.parent / link).is_file(), link


def test_report_names_the_cells_without_features_and_draws_the_others(smoke_run, tmp_path, cli, monkeypatch):
    fetch = mubench.boards.report._fetch

    def without_finetune_features(client, uri, run_id, artifact, folder):  # as a cell made with --no-plots
        return not artifact.endswith("finetune-features.npz") and fetch(client, uri, run_id, artifact, folder)
    monkeypatch.setattr(mubench.boards.report, "_fetch", without_finetune_features)
    result = cli("report", "--store", str(smoke_run[0]), "--out", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    text = (tmp_path / "digits-resnet18-smoke.md").read_text()
    assert "one panel per model (the DLFD paper's Figures 2 and 4); no features saved for finetune:" in text
    assert _is_drawn(tmp_path / "digits-resnet18-smoke" / "s0" / "tsne.png")
    assert (tmp_path / "digits-resnet18-smoke" / "s0" / "finetune-losses.png").is_file()


def test_report_needs_a_store(tmp_path, cli):
    result = cli("report", "--store", str(tmp_path / "nothing"), "--out", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "no MLflow store" in result.stderr
