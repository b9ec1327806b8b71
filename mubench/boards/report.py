"""`mubench report`: one markdown page per task × backbone: the leaderboard, the ablation table where a method was
ablated, and the figures of mubench.run.cell_figures next to the page, linked relatively: each cell's losses figure copied from
the MLflow store, and per seed a t-SNE drawn here from the penultimate features the board's cells left in it."""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.artifacts import download_artifacts
from mlflow.tracking import MlflowClient

from mubench.attacks.base import installed
from mubench.boards.scatter import board_png, draw_board
from mubench.core.store import (ATTACK_PNG, ATTACK_SCORES, REFERENCES, TSNE_PNG, BoardKey, board_name, features_npz,
                                file_stem, losses_png, plots_stem)
from mubench.boards.leaderboard import KEY, latest_cells, mean_ci, render_board
from mubench.boards.figures import (REFERENCE_TITLES, draw_attack_scores, draw_probe_accuracy, draw_recovery,
                                    draw_tsne)

def write_reports(tracking_uri: str, out_dir: Path) -> list[Path]:
    """Write `<out>/<board>.md` with its figures under `<out>/<board>/s<seed>/`; return the pages written."""
    cells = latest_cells(tracking_uri)
    if cells.empty:
        return []
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    client = MlflowClient(tracking_uri)
    pages = []
    for key, group in cells.groupby(list(KEY)):
        key = BoardKey(*key)
        stem = board_name(key)[:-len(".md")]
        shutil.rmtree(out_dir / stem, ignore_errors=True)  # figures of an earlier report must not linger unlinked
        sections = [_seed_section(client, tracking_uri, group, stem, plots_stem(key.task, key.backbone, key.preset,
                                                                                key.scenario), int(seed),
                                  out_dir)
                    for seed in sorted({int(s) for s in group["seed"].dropna()})]
        page = out_dir / f"{stem}.md"
        scatter = draw_board(key, group, out_dir / stem / board_png(key))
        picture = [f"![{stem}: accuracy against forgetting, NoMUS against time]({stem}/{board_png(key)})", ""] \
            if scatter else []
        probe = _probe_section(group, Path(stem), out_dir, f"{plots_stem(key.task, key.backbone, key.preset, key.scenario)}"
                                                           f" · linear probe")
        page.write_text(render_board(key, group) + "\n" + "\n".join(picture + probe + sections))
        pages.append(page)
    return pages


def _seed_section(client: MlflowClient, uri: str, cells: pd.DataFrame, stem: str, figures_stem: str, seed: int,
                  out_dir: Path) -> str:
    """The figures of one seed under `<out>/<stem>/s<seed>/`: its t-SNE, and the losses figure of each cell."""
    cells = cells[(cells["seed"].astype(int) == seed) & (cells["status"] == "FINISHED")].sort_values("label")
    folder = Path(stem) / f"s{seed}"
    lines = [f"## Figures, seed {seed}", ""]
    drawn = _draw_tsne(client, uri, cells, out_dir / folder / TSNE_PNG,
                       f"{figures_stem} · penultimate features · seed {seed}")
    if drawn:
        missing = sorted(set(cells["label"]) - set(drawn))
        gap = f"; no features saved for {', '.join(missing)}" if missing else ""
        lines += ["t-SNE of penultimate features on a fixed subsample of retain, forget and test, one panel per "
                  f"model (the DLFD paper's Figures 2 and 4){gap}:", "",
                  f"![t-SNE, seed {seed}]({folder.as_posix()}/{TSNE_PNG})", ""]
    losses = []
    for cell in cells[~cells["label"].isin(list(REFERENCES))].itertuples():  # each figure shows both references
        name = losses_png(cell.label)
        if _fetch(client, uri, cell.run_id, f"plots/{name}", out_dir / folder):
            losses += [f"### {cell.label}", "",
                       f"![{file_stem(cell.label)} losses, seed {seed}]({folder.as_posix()}/{name})", ""]
    if losses:
        lines += ["Per-sample losses on forget (members) and test (non-members) of Original, Retrain and each method "
                  "(the DLFD paper's Figure 5): a method that forgets shows forget losses like Retrain's.", "",
                  *losses]
    recovery = _draw_recovery(client, cells, out_dir / folder / RECOVERY_PNG, f"{figures_stem} · relearning · "
                                                                             f"seed {seed}")
    if recovery:
        lines += ["Relearning: accuracy on the forget images the attacker did not train on, after each of its "
                  "fine-tuning steps on the rest (Original dashed, Retrain dotted): a method whose curve rises "
                  "faster than Retrain's hid the forget set rather than removed it.", "",
                  f"![relearning, seed {seed}]({folder.as_posix()}/{RECOVERY_PNG})", ""]
    attacks = _draw_attack_scores(client, uri, cells, out_dir / folder, f"{figures_stem} · seed {seed}")
    for prefix, png in attacks.items():
        attack = installed(prefix)
        title = attack.title if attack else prefix
        what = f" ({attack.example_scores})" if attack and attack.example_scores else ""
        lines += [f"Per-example {title} scores{what} of each model on its forget examples (members) and the "
                  f"held-out non-members: a model that forgot shows the two on top of each other, as Retrain does.",
                  "", f"![{title} scores, seed {seed}]({folder.as_posix()}/{png})", ""]
    if not drawn and not losses and not attacks and not recovery:
        lines += ["No figures in the store for this seed (the runs used `--no-plots`, or drawing failed: see the "
                  "runs' `mubench.plot_error` tag). `mubench run --force` redraws them.", ""]
    return "\n".join(lines)


def _draw_tsne(client: MlflowClient, uri: str, cells: pd.DataFrame, path: Path, title: str) -> list[str]:
    """Draw the t-SNE of every cell that saved its features (references first) into `path`; return their labels."""
    features = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cell in sorted(cells.itertuples(), key=lambda c: (c.label not in REFERENCE_TITLES, c.label)):
            name = features_npz(cell.label)
            if _fetch(client, uri, cell.run_id, f"plots/{name}", Path(tmp)):
                with np.load(Path(tmp) / name) as saved:
                    labels = [saved["labels"]] if "labels" in saved.files else []  # runs before labels were saved
                    features[cell.label] = saved["features"], saved["roles"], *labels
    if features:
        path.parent.mkdir(parents=True, exist_ok=True)
        draw_tsne({REFERENCE_TITLES.get(label, label): panel for label, panel in features.items()}, path, title)
    return list(features)


RECOVERY_PNG = "relearn.png"
PROBE_PNG = "probe.png"


def _draw_recovery(client: MlflowClient, cells: pd.DataFrame, path: Path, title: str) -> bool:
    """The recovery curve each cell logged (`relearn_curve`), references first, in one figure at `path`."""
    curves = {}
    for cell in sorted(cells.itertuples(), key=lambda c: (c.label not in REFERENCE_TITLES, c.label)):
        history = sorted(client.get_metric_history(cell.run_id, "relearn_curve"), key=lambda m: m.step)
        if history:
            curves[REFERENCE_TITLES.get(cell.label, cell.label)] = [m.value for m in history]
    if curves:
        path.parent.mkdir(parents=True, exist_ok=True)
        draw_recovery(curves, path, title)
    return bool(curves)


def _probe_section(cells: pd.DataFrame, folder: Path, out_dir: Path, title: str) -> list[str]:
    """A bar chart of linear-probe test accuracy per row over the board's seeds, when the probe scored its cells."""
    if "probe_acc" not in cells:
        return []
    rows = {}
    finished = cells[cells["status"] == "FINISHED"]
    for label, group in sorted(finished.groupby("label"), key=lambda item: (item[0] not in REFERENCE_TITLES, item[0])):
        mean, half = mean_ci(group["probe_acc"].dropna().to_numpy(float))
        if not math.isnan(mean):
            rows[REFERENCE_TITLES.get(label, label)] = (mean, half)
    if not rows:
        return []
    (out_dir / folder).mkdir(parents=True, exist_ok=True)
    draw_probe_accuracy(rows, out_dir / folder / PROBE_PNG, title)
    return ["Linear-probe test accuracy of each model's penultimate features (a logistic regression fit on retain "
            "features), mean over seeds with 95 % intervals: what correlation collapse destroys.", "",
            f"![linear-probe accuracy]({folder.as_posix()}/{PROBE_PNG})", ""]


def _draw_attack_scores(client: MlflowClient, uri: str, cells: pd.DataFrame, folder: Path,
                        title: str) -> dict[str, str]:
    """Per attack the cells logged per-example scores of (e.g. LiRA, U-LiRA): a histogram figure in `folder`;
    {attack: file name}."""
    panels: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cell in sorted(cells.itertuples(), key=lambda c: (c.label not in REFERENCE_TITLES, c.label)):
            if not _fetch(client, uri, cell.run_id, ATTACK_SCORES, Path(tmp) / cell.run_id):
                continue
            with np.load(Path(tmp) / cell.run_id / ATTACK_SCORES) as saved:
                for prefix in sorted(k[:-len("_members")] for k in saved.files if k.endswith("_members")):
                    panels.setdefault(prefix, {})[REFERENCE_TITLES.get(cell.label, cell.label)] = {
                        "members": saved[f"{prefix}_members"], "nonmembers": saved[f"{prefix}_nonmembers"]}
    drawn = {}
    for prefix, panel in panels.items():
        if panel:
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{prefix}-{ATTACK_PNG}"
            draw_attack_scores(panel, folder / name, f"{getattr(installed(prefix), 'title', prefix)} · {title}")
            drawn[prefix] = name
    return drawn


def _fetch(client: MlflowClient, uri: str, run_id: str, artifact: str, folder: Path) -> bool:
    """Copy one artifact of a run into `folder`; False when the run has no such artifact."""
    parent, _, name = artifact.rpartition("/")
    if name not in {Path(a.path).name for a in client.list_artifacts(run_id, parent)}:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        local = download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=tmp, tracking_uri=uri)
        shutil.copyfile(local, folder / name)
    return True


