"""Leaderboards rendered from the MLflow store (never from a run's memory), one per task × backbone × preset."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from tabulate import tabulate

from mubench.tracking import TAG, cell_runs

REFERENCES = ("original", "retrain")
KEY = ("task", "backbone", "preset")


def mean_ci(values) -> tuple[float, float]:
    """Mean and the half-width of its 95 % Student-t interval (nan for fewer than two values)."""
    values = np.asarray([v for v in values if v is not None and not math.isnan(v)], float)
    if len(values) == 0:
        return math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), math.nan
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(half)


def latest_cells(tracking_uri: str) -> pd.DataFrame:
    """One row per (task, backbone, preset, label, seed): its latest run that did not die mid-way."""
    runs = cell_runs(tracking_uri)
    if runs is None or runs.empty:
        return pd.DataFrame()
    runs = runs[runs["status"].isin(["FINISHED", "FAILED"])].copy()
    for name in (*KEY, "label", "method", "seed", "command", "split_hash", "error"):
        column = f"tags.{TAG}{name}"
        runs[name] = runs[column] if column in runs else None
    runs = runs.sort_values("start_time").drop_duplicates([*KEY, "label", "seed"], keep="last")
    return runs.rename(columns=lambda c: c[len("metrics."):] if c.startswith("metrics.") else c)


def summarise(cells: pd.DataFrame) -> pd.DataFrame:
    """Per row label: means (and NoMUS interval) over seeds of the finished cells, ranked by NoMUS."""
    done = cells[cells["status"] == "FINISHED"]
    rows = []
    for label, group in done.groupby("label"):
        row = {"label": label, "method": group["method"].iloc[0], "seeds": len(group)}
        for metric in ("test_acc", "forget_acc", "retain_acc", "mia", "fs", "mia_logloss", "mia_auc",
                       "unlearn_seconds", "time_ratio", "nomus"):
            row[metric], row[f"{metric}_ci"] = mean_ci(group[metric]) if metric in group else (math.nan, math.nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    retrain = table.loc[table["label"] == "retrain"]
    base_nomus = retrain["nomus"].iloc[0] if len(retrain) else math.nan
    base_acc = retrain["test_acc"].iloc[0] if len(retrain) else math.nan
    table["delta_nomus"] = table["nomus"] - base_nomus
    table["acc_gap"] = (table["test_acc"] - base_acc).abs()
    return table.sort_values(["nomus", "label"], ascending=[False, True]).reset_index(drop=True)


def tied_with_leader(nomus: list[float], halves: list[float]) -> list[bool]:
    """For rows ranked by NoMUS (leader first): does the row's 95 % interval overlap the leader's? The leader is tied
    when another row is. A row without an interval (one seed) ties nothing."""
    if not len(nomus):
        return []
    lead, lead_half = nomus[0], halves[0]
    overlaps = [i > 0 and math.isfinite(lead_half) and math.isfinite(half) and abs(mean - lead) <= half + lead_half
                for i, (mean, half) in enumerate(zip(nomus, halves))]
    return [any(overlaps)] + overlaps[1:]


def rank_labels(nomus: list[float], halves: list[float]) -> list[str]:
    """`1=` for the leader and every row tied with it, the position otherwise."""
    return ["1=" if tied else str(rank)
            for rank, tied in enumerate(tied_with_leader(nomus, halves), start=1)]


TIE_NOTE = ("1= marks the leader and every row whose NoMUS interval overlaps the leader's: these seeds do not "
            "separate them (with one seed there is no interval, so no tie is marked).")


def _fmt(value: float, half: float = math.nan, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = f"{value:.{digits}f}"
    return text if math.isnan(half) else f"{text} ± {half:.{digits}f}"


def is_variant(label: str) -> bool:
    return "[" in label


def render_ablation(table: pd.DataFrame, method: str) -> str:
    """The paper's Table 3 shape: the full method and each variant with one component changed."""
    rows = table[(table["label"] == method) | table["label"].str.startswith(f"{method}[")]
    body = [[row.label, _fmt(row.test_acc, row.test_acc_ci), _fmt(row.fs, row.fs_ci), _fmt(row.nomus, row.nomus_ci),
             _fmt(row.unlearn_seconds, digits=1), row.seeds] for row in rows.itertuples()]
    return tabulate(body, ["variant", "test acc", "FS (2·|MIA−0.5|)", "NoMUS", "unlearn s", "seeds"],
                    tablefmt="github")


def render_board(key: tuple[str, str, str], cells: pd.DataFrame) -> str:
    task, backbone, preset = key
    full = summarise(cells)
    table = full[~full["label"].map(is_variant)] if len(full) else full
    headers = ["#", "method", "test acc", "forget acc", "MIA", "FS (2·|MIA−0.5|)", "NoMUS",
               "Δ NoMUS vs retrain", "MIA log-loss", "MIA AUC", "unlearn s", "× retrain", "seeds"]
    body = []
    ranks = rank_labels(list(table["nomus"]), list(table["nomus_ci"])) if len(table) else []
    for rank, row in zip(ranks, table.itertuples()):
        name = f"{row.label} (reference)" if row.label in REFERENCES else row.label
        body.append([rank, name, _fmt(row.test_acc, row.test_acc_ci), _fmt(row.forget_acc), _fmt(row.mia),
                     _fmt(row.fs, row.fs_ci),
                     _fmt(row.nomus, row.nomus_ci), _fmt(row.delta_nomus, digits=3), _fmt(row.mia_logloss),
                     _fmt(row.mia_auc), _fmt(row.unlearn_seconds, digits=1), _fmt(row.time_ratio, digits=3),
                     row.seeds])
    commands = sorted({c for c in cells["command"].dropna() if c})
    hashes = sorted({h[:12] for h in cells["split_hash"].dropna()})
    seeds = sorted({int(s) for s in cells.loc[cells["status"] == "FINISHED", "seed"].dropna()})
    lines = [f"# Leaderboard: {task} × {backbone}" + ("" if preset == "default" else f" (preset {preset})"), "",
             "Produced by:", "", *[f"    {c}" for c in commands], "",
             f"Rendered from the MLflow store by `mubench leaderboard`. Split manifest SHA-256: "
             f"{', '.join(h + '…' for h in hashes)}. Seeds: {', '.join(map(str, seeds)) or '—'}.", "",
             tabulate(body, headers, tablefmt="github"), "",
             "Ranked by NoMUS = ½·(test acc + 1 − FS). Values are means over seeds; test acc, FS and NoMUS show "
             "± the half-width of their 95 % Student-t interval when there are several seeds. "
             "FS = 2·|MIA − 0.5| is the paper's scale (the MUFAC notebooks print half of it). "
             "MIA: logistic regression on per-sample losses, forget (members) vs test (non-members), 10-fold "
             "stratified shuffle split. MIA log-loss and MIA AUC are scale-free attacks beside it (not in NoMUS). "
             "× retrain: unlearn seconds over the seconds it took to train the Retrain reference. " + TIE_NOTE]
    ablated = sorted({label.split("[")[0] for label in full.get("label", []) if is_variant(label)})
    for method in ablated:
        lines += ["", f"## Ablation: {method}", "", render_ablation(full, method)]
    failed = cells[cells["status"] == "FAILED"]
    if len(failed):
        lines += ["", "Failed or refused cells:", ""]
        lines += [f"- {r.label} (seed {r.seed}): {r.error}" for r in failed.itertuples()]
    return "\n".join(lines) + "\n"


def board_name(key: tuple[str, str, str]) -> str:
    task, backbone, preset = key
    return f"{task}-{backbone}" + ("" if preset == "default" else f"-{preset}") + ".md"


def render_all(tracking_uri: str, out_dir: Path, only: list[tuple[str, str, str]] | None = None) -> dict:
    """Write one markdown board per key into `out_dir`; return {key: (path, text)}."""
    cells = latest_cells(tracking_uri)
    written = {}
    if cells.empty:
        return written
    out_dir.mkdir(parents=True, exist_ok=True)
    for key, group in cells.groupby(list(KEY)):
        if only is not None and key not in only:
            continue
        text = render_board(key, group)
        path = out_dir / board_name(key)
        path.write_text(text)
        written[key] = (path, text)
    write_index(out_dir)
    return written


INDEX = "README.md"


def render_index(folder: Path) -> str:
    """The index of the boards in `folder`: what each ranks, on which seeds, and the commands that produced it."""
    rows = []
    for path in sorted(p for p in Path(folder).glob("*.md") if p.name != INDEX):
        lines = path.read_text().splitlines()
        title = lines[0].removeprefix("# Leaderboard: ") if lines else path.stem
        commands = [line.strip() for line in lines if line.startswith("    mubench ")]
        seeds = next((line.split("Seeds: ")[1].split(".")[0] for line in lines if "Seeds: " in line), "—")
        produced = "<br>".join(f"`{c}`".replace("|", "\\|") for c in commands) or "—"
        rows.append([f"[{path.name}]({path.name})", title, seeds, produced])
    table = tabulate(rows, ["board", "task × backbone", "seeds", "produced by"], tablefmt="github",
                                disable_numparse=True) if rows \
        else "No boards yet: `mubench leaderboard --store <run folder> --out leaderboards/` writes them here."
    return "\n".join([
        "# Leaderboards", "",
        "Generated from the MLflow store by `mubench leaderboard`, never edited by hand; this index is rewritten "
        "with the boards. The workflow `.github/workflows/leaderboard.yml` reruns the default grid on seeds 0, 1, 2 "
        "with `--ablate` and commits the boards here. How to read a board: "
        "[Reading the leaderboard](../README.md#reading-the-leaderboard).", "", table, ""])


def write_index(folder: Path) -> Path:
    path = Path(folder) / INDEX
    path.write_text(render_index(folder))
    return path
