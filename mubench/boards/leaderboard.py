"""Leaderboards rendered from the MLflow store (never from a run's memory), one per task × backbone × preset."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from tabulate import tabulate

from mubench.attacks.base import ATTACKS, CLASS_WISE, EVERY_CELL
from mubench.boards.stability import MAX_SEEDS, TARGET_TAU, Stability
from mubench.core.tracking import cell_runs
from mubench.scores.metrics import NO_SIGNAL_DRAWS, at_chance, forgetting_score, no_signal_fs
from mubench.core.store import REFERENCES, TAG, BoardKey, board_name, selected

KEY = BoardKey._fields  # the columns of a cell that name its board


def mean_ci(values) -> tuple[float, float]:
    """Mean and the half-width of its 95 % Student-t interval (nan for fewer than two values)."""
    values = np.asarray([v for v in values if v is not None and not math.isnan(v)], float)
    if len(values) == 0:
        return math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), math.nan
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(half)


def _tag(runs: pd.DataFrame, name: str, default=None) -> pd.Series:
    column = f"tags.{TAG}{name}"
    if column in runs:
        return runs[column].fillna(default) if default is not None else runs[column]
    return pd.Series([default] * len(runs), index=runs.index, dtype=object)


def tuned_row(method: str, label: str, variant: str) -> tuple[str, str, str]:
    """(row, base row, settings) of a cell run from a `mubench tune` preset: `scrub tuned` (`scrub tuned[variant]`
    for an ablation of it) and its settings at three significant digits, `lr=0.00846, epochs=4`, for the board's
    tuned line. The full-precision values stay in the cell's label tag and params."""
    inner = label[len(method) + 1:-1] if label.startswith(f"{method}[") and label.endswith("]") else ""
    parts = [part.partition("=") for part in inner.split(",") if part and part != variant]
    settings = ", ".join(f"{key}={_significant(value)}" for key, _, value in parts)
    base = f"{method} tuned"
    return (f"{base}[{variant}]" if variant else base), base, settings


def _significant(text: str) -> str:
    try:
        number = float(text)
    except ValueError:
        return text
    return text if number.is_integer() and "." not in text else f"{number:.3g}"


def latest_cells(tracking_uri: str) -> pd.DataFrame:
    """The cells a board shows: FINISHED or FAILED runs (not RUNNING or KILLED), and per row label only the runs
    of the label's latest configuration, the latest run per seed. Cells run from a tune's preset are one row per
    method, `<method> tuned`: a later preset's configuration replaces an earlier one's."""
    runs = cell_runs(tracking_uri)
    if runs is None or runs.empty:
        return pd.DataFrame()
    runs = runs[runs["status"].isin(["FINISHED", "FAILED"])].copy()
    for name in ("task", "backbone", "preset", "label", "method", "seed", "command", "split_hash", "error",
                 "config_hash", "tuned", "attacks"):
        runs[name] = _tag(runs, name)
    runs["head"] = _tag(runs, "head", "linear")
    runs["pretrained"] = _tag(runs, "pretrained", "none")
    runs["scenario"] = _tag(runs, "scenario", "random")
    runs["threads"] = _tag(runs, "threads").fillna(runs.get("params.threads", pd.Series(index=runs.index)))
    runs["variant"] = _tag(runs, "variant", "")
    runs["base"] = _tag(runs, "base").fillna(runs["label"])
    runs["settings"] = None
    tuned = runs["tuned"].notna()
    if tuned.any():
        rows = [tuned_row(*row) for row in runs.loc[tuned, ["method", "label", "variant"]].itertuples(index=False)]
        runs.loc[tuned, ["label", "base", "settings"]] = rows
    prefix = f"tags.{TAG}unavailable."
    flagged = [c for c in runs.columns if c.startswith(prefix)]
    runs["unavailable"] = [{name[len(prefix):]: why for name, why in row.items() if isinstance(why, str)}
                           for row in runs[flagged].to_dict("records")] if flagged else [{}] * len(runs)
    runs = runs.sort_values("start_time")
    place = [*KEY[:-1], "label"]
    latest_config = runs.groupby(place)["config_hash"].transform("last")
    runs = runs[runs["config_hash"].fillna("") == latest_config.fillna("")]
    threads_per_board = runs.groupby(list(KEY[:-1]))["threads"].transform("nunique")
    runs["board_threads"] = np.where(threads_per_board > 1, runs["threads"].fillna("?"), "")
    runs = runs.drop_duplicates([*KEY, "label", "seed"], keep="last")
    return runs.rename(columns=lambda c: c[len("metrics."):] if c.startswith("metrics.") else c)


METRICS = ("test_acc", "forget_acc", "retain_acc", "mia", "fs", "mia_logloss", "mia_auc", "unlearn_seconds",
           "time_ratio", "nomus", "forgotten_test_acc", "chance_acc", "test_count", "mia_efficacy")


def board_attacks(cells: pd.DataFrame) -> tuple[list, list[str]]:
    """The registered attacks (mubench.attacks.base) that scored the board's cells, in the order the runs named them, and
    the names of those that cannot be shown here (a plugin not installed where the board is rendered)."""
    from mubench.attacks.base import installed
    names: list[str] = []
    for value in cells["attacks"].dropna() if "attacks" in cells else ():
        names += [name for name in value.split(",") if name and name not in names]
    shown = [installed(name) for name in names]
    return [a for a in shown if a is not None], [n for n, a in zip(names, shown) if a is None]


GAP_METRICS = ("forget_acc", "retain_acc", "test_acc", "mia")  # SalUn's average gap to Retrain
# Class-wise, as SalUn reports it: UA (1 − forget acc), RA, TA (remaining classes) and MIA-efficacy.
CLASS_WISE_GAP = ("forget_acc", "retain_acc", "test_acc", "mia_efficacy")


def summarise(cells: pd.DataFrame, extra_metrics: tuple[str, ...] = (), gap_metrics: tuple[str, ...] = GAP_METRICS,
              by_gap: bool = False) -> pd.DataFrame:
    """Per row label: means (and intervals) over seeds of the finished cells (METRICS and `extra_metrics`, e.g. an
    attack's columns), the per-seed NoMUS and gap to Retrain, and the paired comparisons with Retrain on the seeds
    both have; ranked by NoMUS, or with `by_gap` by the gap (lower first)."""
    done = cells[cells["status"] == "FINISHED"].copy()
    done["seed"] = done["seed"].astype(int)
    if "nomus" not in done:  # no cell of the board had the paper's FS to compute it from
        done["nomus"] = math.nan
    retrain = done[done["label"] == "retrain"].set_index("seed")
    original_acc = done.loc[done["label"] == "original"].set_index("seed")[["test_acc"]] if "test_acc" in done \
        else pd.DataFrame(columns=["test_acc"])
    rows = []
    for label, group in done.groupby("label"):
        row = {"label": label, "method": group["method"].iloc[0], "seeds": len(group),
               "base": group["base"].iloc[0] if "base" in group else label,
               "variant": group["variant"].iloc[0] if "variant" in group else "",
               "per_seed": dict(zip(group["seed"], group["nomus"].astype(float)))}
        for metric in (*METRICS, *extra_metrics):
            row[metric], row[f"{metric}_ci"] = mean_ci(group[metric]) if metric in group else (math.nan, math.nan)
        paired = group.set_index("seed").join(retrain, rsuffix="_retrain", how="inner")
        row["delta_nomus"], row["delta_nomus_ci"] = mean_ci(paired["nomus"] - paired["nomus_retrain"])
        kept = group.set_index("seed")[["test_acc"]].join(original_acc, rsuffix="_original", how="inner") \
            if "test_acc" in group else pd.DataFrame(columns=["test_acc", "test_acc_original"])
        row["delta_test_acc"], row["delta_test_acc_ci"] = mean_ci(kept["test_acc"] - kept["test_acc_original"])
        gaps = [(paired[m] - paired[f"{m}_retrain"]).abs() for m in gap_metrics if m in paired]
        gap = sum(gaps) / len(gaps) if gaps and len(paired) else pd.Series(dtype=float)
        row["gap"], row["gap_ci"] = mean_ci(gap)
        row["per_seed_gap"] = {seed: value for seed, value in gap.items() if not math.isnan(value)}
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    if by_gap:
        return table.sort_values(["gap", "label"], na_position="last").reset_index(drop=True)
    return table.sort_values(["nomus", "label"], ascending=[False, True]).reset_index(drop=True)


ALPHA = 0.05


def tied_with_leader(per_seed: list[dict[int, float]]) -> list[bool]:
    """For rows ranked by their score (leader first), each a {seed: score} map: is the row not separated from the
    leader?

    Seeds are paired (the same split and the same Original for every method), so each row is compared with the leader
    by a paired t-test on the per-seed differences. The leader is picked by the data, so the comparisons are a family
    of every pair of rows: Holm's step-down over the K·(K−1)/2 pairs of the K rows compared (leader included) at
    family-wise 5 %: the i-th smallest p-value separates its row when it is below 0.05 / (pairs − i + 1) and every
    smaller one separated. Rows with fewer than two seeds in common with the leader are not compared (no tie). The
    leader is tied when another row is."""
    if not per_seed:
        return []
    p_values = [paired_p_value(per_seed[0], row) for row in per_seed[1:]]
    compared = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    pairs = (len(compared) + 1) * len(compared) // 2
    separated = set()
    for step, (p, i) in enumerate(compared):
        if not p < ALPHA / (pairs - step):
            break
        separated.add(i)
    ties = [p is not None and i not in separated for i, p in enumerate(p_values)]
    return [any(ties)] + ties


def paired_p_value(a: dict[int, float], b: dict[int, float]) -> float | None:
    """Two-sided p-value of the paired Student t-test on the per-seed differences a − b over their common seeds; None
    with fewer than two common seeds where both are known (nothing is decided)."""
    common = sorted(s for s in set(a) & set(b) if not (math.isnan(a[s]) or math.isnan(b[s])))
    differences = np.array([a[s] - b[s] for s in common], float)
    if len(differences) < 2:
        return None
    spread = differences.std(ddof=1)
    if spread < 1e-12:
        return 1.0 if np.all(np.abs(differences) < 1e-12) else 0.0
    t = differences.mean() / (spread / math.sqrt(len(differences)))
    return float(2 * stats.t.sf(abs(t), len(differences) - 1))


def paired_separated(a: dict[int, float], b: dict[int, float]) -> bool | None:
    """Whether one pre-specified paired test (not a family) separates a from b at 5 %: the 95 % Student-t interval of
    the per-seed differences excludes 0; None with fewer than two common seeds."""
    p = paired_p_value(a, b)
    return None if p is None else p < ALPHA


def class_wise_resolution(done: pd.DataFrame) -> str:
    """Whether the class-wise board's own attack, MIA-efficacy, tells the Original from Retrain (the paper's FS does
    not rank such a board)."""
    efficacy = {label: {int(r.seed): float(r.mia_efficacy) for r in done[done["label"] == label].itertuples()
                        if not math.isnan(r.mia_efficacy)} if "mia_efficacy" in done else {} for label in REFERENCES}
    separated = paired_separated(efficacy["original"], efficacy["retrain"])
    verdict = {None: "fewer than two seeds with both, so the paired test cannot tell whether it sees forgetting",
               True: "the paired test separates Original and Retrain on it: the board can see forgetting",
               False: "**the paired test does not separate Original and Retrain on it: this board cannot rank "
                      "forgetting on this task**"}[separated]
    return ("The paper's FS does not rank this class-wise board (its non-members are the forgotten class's held-out "
            f"images, so it does not compare the model with one that never saw the class); MIA-efficacy does, and "
            f"{verdict}.")


def resolution(cells: pd.DataFrame, class_wise: bool = False) -> tuple[list[str], float]:
    """The board's resolution lines and its no-signal FS quantile (nan where the cells do not say their sizes):
    how large an FS no signal reaches at the board's member and non-member counts, and whether the paired test
    separates Original from Retrain on FS at all (where it does not, the board cannot rank forgetting). A class-wise
    board says instead whether MIA-efficacy, the attack that ranks it, separates them."""
    done = cells[cells["status"] == "FINISHED"]
    verdict = [class_wise_resolution(done), ""] if class_wise else []
    if not {"mia_members", "mia_nonmembers"} <= set(done.columns):
        return verdict, math.nan
    sizes = done[["mia_members", "mia_nonmembers"]].dropna()
    if sizes.empty:
        return verdict, math.nan
    members, nonmembers = (int(sizes[column].mode().iloc[0]) for column in sizes.columns)
    floor = no_signal_fs(members, nonmembers)
    lines = [f"Resolution: with no signal, the paper's FS at this board's sizes ({members} members, {nonmembers} "
             f"non-members) stays under {floor:.3f} in 95 % of {NO_SIGNAL_DRAWS} draws; an FS under it (marked °) "
             f"cannot be told from no signal."]
    if class_wise:
        return lines + verdict, floor
    fs = {label: {int(r.seed): float(r.fs) for r in done[done["label"] == label].itertuples()
                  if "fs" in done and not math.isnan(r.fs)} for label in REFERENCES}
    separated = paired_separated(fs["original"], fs["retrain"])
    if separated is None:
        lines.append("Original vs Retrain: fewer than two seeds with both, so the paired test cannot tell whether this "
                     "board sees forgetting.")
    elif not separated:
        lines.append("**Original and Retrain are not separated by the paired test on FS: this board cannot rank "
                     "forgetting on this task**; its FS and NoMUS differences between rows are noise.")
    elif np.mean(list(fs["original"].values())) < floor:
        lines.append(f"Original and Retrain are separated by the paired test on FS, but the Original's mean FS "
                     f"({np.mean(list(fs['original'].values())):.3f}) is under the no-signal FS: the paper's attack "
                     f"barely sees what there is to forget on this task, so FS differences between rows are within "
                     f"noise.")
    else:
        lines.append("Original and Retrain are separated by the paired test on FS, and the Original's FS is above "
                     "the no-signal FS: the board can see forgetting.")
    return lines + [""], floor


def rank_labels(per_seed: list[dict[int, float]]) -> list[str]:
    """`1=` for the rows after the leader up to the first one the paired test separates from it, and for the leader
    when there is at least one such row; every row from the first separated one on gets its position, so labels
    never go back to `1=` below a numbered row."""
    ties = tied_with_leader(per_seed)[1:]
    prefix = next((i for i, tied in enumerate(ties) if not tied), len(ties))
    return [("1=" if prefix else "1")] * bool(per_seed) + [
        "1=" if i < prefix else str(i + 2) for i in range(len(ties))]


GAP_NOTE = ("Gap to retrain: SalUn's average gap, the mean absolute difference from Retrain on the same seed over "
            "forget acc, retain acc, test acc and MIA (0: indistinguishable from Retrain). ")
CLASS_WISE_HEADERS = ("UA", "RA", "TA", "forgotten-class acc", "MIA-efficacy", "gap to retrain")
CLASS_WISE_RANKING = ("Ranked by the gap to Retrain, lowest first (SalUn's class-wise protocol, Fan et al., ICLR 2024): "
                      "per seed, the mean absolute difference from Retrain over UA, RA, TA and MIA-efficacy, then its "
                      "mean over seeds (0: indistinguishable from Retrain, which therefore leads). NoMUS is shown "
                      "beside it but does not rank: under class-wise forgetting a model that forgets nothing "
                      "generalises to the forgotten class's held-out images and reads the paper's FS near 0. ")
CLASS_WISE_NOTE = ("Class-wise forgetting: the forget set is every training image of the forgotten class (Retrain never "
                   "saw it). UA is 1 − the accuracy on the forget set, RA the accuracy on the retain set, TA the test "
                   "accuracy on the remaining classes (the test acc of NoMUS), forgotten-class acc the accuracy on the "
                   "test images of the forgotten class (Retrain's is about 0), and the paper's MIA's non-members are "
                   "the held-out images of the forgotten class. ")
COLLAPSED_NOTE = ("A row marked collapsed has test accuracy within noise of chance (at most one-sided 95 % binomial "
                  "noise above what a constant prediction scores on the same test images): its NoMUS rewards FS, not "
                  "kept utility, so it ranks below every row that kept its accuracy and never shares the lead. ")
BLIND_NOTE = ("‡: the paper's attack reads an FS lower than the scale-free log-loss attack's 2·|MIA log-loss − 0.5| "
              "on the same sets by more than the no-signal FS: the paper attack is blind here (its penalised fit on "
              "the raw loss depends on the loss's scale), so this row's low FS is no evidence of forgetting. ")
BLIND_RANK_NOTE = ("Its NoMUS rests on that FS, so a ‡ row ranks below every row without ‡ (above collapsed rows) and "
                   "never shares the lead. ")


def not_a_verdict(main: pd.DataFrame, collapsed: set[str], preset: str) -> list[str]:
    """The banner of a board whose Original reference is at chance (a smoke run's one-epoch references, a broken
    recipe): nothing was learnt to forget or keep, so its rows are listed but not ranked. Empty otherwise."""
    if "original" not in collapsed:
        return []
    original = main.set_index("label").loc["original"]
    smoke = " The smoke preset trains for one epoch: it checks that the pipeline runs." if preset == "smoke" else ""
    return [f"**Not a verdict: the Original reference is at chance (test acc {original.test_acc:.3f}, where a constant "
            f"prediction scores {original.chance_acc:.3f}), so it learnt nothing to forget or keep. The rows are listed "
            f"in the board's order but not ranked.**{smoke}", ""]


def paper_attack_blind(fs: float, mia_logloss: float, floor: float) -> bool:
    """Whether the paper's FS sits below the scale-free attack's by more than noise (the board's no-signal FS)."""
    if any(math.isnan(v) for v in (fs, mia_logloss, floor)):
        return False
    return forgetting_score(mia_logloss) - fs > floor


TIE_RULE = ("1= marks the leader and the rows ranked after it down to the first row separated from it. Separated: "
            "per seed, the leader's {score} minus the row's (same split, same Original), a paired t-test, with "
            "Holm's step-down over every pair of the board's ranked rows (the leader is picked by the data, so the "
            "family is all K·(K−1)/2 pairs) at a family-wise 5 %: with 14 rows equal to the leader, no row is "
            "separated in at least 95 % of boards. Rows below the first separated row keep their position. With "
            "fewer than two common seeds nothing is separated or tied, and no 1= is marked. ")
TIE_NOTE, GAP_TIE_NOTE = TIE_RULE.format(score="NoMUS"), TIE_RULE.format(score="gap to Retrain")
STABILITY_NOTE = ("Stability: the expected Kendall τ between the orders of the ranked rows (collapsed and ‡ rows "
                  "aside) on two independent seed sets of the board's size, estimated from its per-seed scores: each "
                  "seed's scores centred on their mean over rows (a seed effect moves every row alike), each row's "
                  "noise variance over seeds, the row means shrunk toward their average by the share of their spread "
                  "that exceeds that noise, then two boards simulated from them (2,000 draws). The seed count for "
                  f"τ ≥ {TARGET_TAU} is the fewest seeds whose simulated boards reach it. The estimate is itself "
                  "noisy on few seeds, and leans high (by about 0.1) where the rows differ only by noise.")


def stability_lines(per_seed: list[dict[int, float]]) -> list[str]:
    """The header's stability line: the expected τ between two boards of this size on independent seeds, and the
    seeds τ ≥ TARGET_TAU would need; said plainly when the order is not stable."""
    estimate = Stability(per_seed)
    if not estimate.seeds:
        return ["Stability: fewer than three ranked rows or two seeds common to them, so how far this order would "
                "survive other seeds cannot be estimated.", ""]
    tau, needed = math.floor(100 * estimate.tau(estimate.seeds)) / 100, estimate.seeds_for()  # never rounded up to 0.8
    need = (f"about {needed} seed{'s' * (needed > 1)} would reach τ ≥ {TARGET_TAU}" if needed else
            f"even {MAX_SEEDS} seeds would not reach τ ≥ {TARGET_TAU}: the ranked rows are closer than their noise")
    line = (f"Stability: two boards of this command on independent sets of {estimate.seeds} seeds would order its "
            f"{len(per_seed)} ranked rows with an expected Kendall τ of {tau:.2f}; {need}.")
    if tau < TARGET_TAU:
        line += (f" **At {estimate.seeds} seeds this order is not stable below the rows the paired test separates: "
                 "read neighbouring positions as interchangeable.**")
    return [line, ""]


def _fmt(value: float, half: float = math.nan, digits: int = 3, missing: str = "—") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    text = f"{value:.{digits}f}"
    return text if math.isnan(half) else f"{text} ± {half:.{digits}f}"


def _cell(text: object) -> object:
    """A table cell GitHub renders as one cell: its pipes escaped."""
    return text.replace("|", "\\|") if isinstance(text, str) else text


def table(body: list[list], headers: list[str]) -> str:
    return tabulate([[_cell(c) for c in row] for row in body], [_cell(h) for h in headers], tablefmt="github",
                    disable_numparse=True)


# What a method logs about its own work (ctx.log_metric) that its ablation section shows, as a share in percent,
# where the section's cells have it: metric -> column header.
ABLATION_SHARES = {"ssd_dampened_share": "dampened weights"}


def _percent(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{100 * value:.3g} %"


def render_ablation(summary: pd.DataFrame, base: str) -> str:
    """The paper's Table 3 shape: the full configuration and each variant with one component changed (and the
    method's tuned row, if any); each row's test acc minus the Original's, paired over seeds; a column of each
    ABLATION_SHARES metric (mean over seeds) that some row of the section has, with a line saying which rows keep the
    Original's test accuracy within noise (what such a method's selection promises)."""
    rows = summary[(summary["base"] == base) | (summary["label"] == f"{base} tuned")]
    order = {base: 0, f"{base} tuned": 1}
    rows = rows.sort_values("label", key=lambda labels: labels.map(lambda label: order.get(label, 2)), kind="stable")
    shares = [metric for metric in ABLATION_SHARES if metric in rows and rows[metric].notna().any()]
    body = [[row.label, _fmt(row.test_acc, row.test_acc_ci), _fmt(row.delta_test_acc, row.delta_test_acc_ci),
             _fmt(row.fs, row.fs_ci), _fmt(row.nomus, row.nomus_ci),
             *(_percent(getattr(row, metric)) for metric in shares),
             _fmt(row.unlearn_seconds, digits=1), row.seeds]
            for row in rows.itertuples()]
    text = table(body, ["variant", "test acc", "Δ test acc vs original", "FS", "NoMUS",
                        *(ABLATION_SHARES[m] for m in shares), "unlearn s", "seeds"])
    if not shares:
        return text
    original = summary[summary["label"] == "original"]
    if original.empty:
        return text
    accuracy, count = float(original["test_acc"].iloc[0]), float(original["test_count"].iloc[0])
    if not 0 < accuracy < 1 or not count > 0:  # nan included: no reading to compare with
        return text
    noise = lambda seeds: 1.96 * math.sqrt(2 * accuracy * (1 - accuracy) / count / seeds)
    within = [row.label for row in rows.itertuples() if abs(row.delta_test_acc) <= noise(row.seeds)]
    beyond = [row.label for row in rows.itertuples() if abs(row.delta_test_acc) > noise(row.seeds)]
    return text + (f"\n\nTest accuracy within measurement noise of the Original's (a mean paired change under "
                   f"{noise(int(rows['seeds'].max())):.3f} on {int(rows['seeds'].max())} seeds: 1.96·√(2·p·(1 − p)/n/"
                   f"seeds) at the Original's p = {accuracy:.3f} on n = {count:.0f} test images, what two readings "
                   f"differ by with nothing changed): {', '.join(within) or 'no row'}; beyond it: "
                   f"{', '.join(beyond) or 'no row'}.")


def board_title(key: tuple) -> str:
    task, backbone, preset, head, pretrained, scenario, threads = BoardKey(*key)
    notes = [scenario_words(scenario)] if scenario != "random" else []
    notes += [f"preset {preset}"] if preset != "default" else []
    notes += [f"{head} head"] if head != "linear" else []
    notes += [f"pretrained {pretrained}"] if pretrained != "none" else []
    notes += [f"{threads} torch threads"] if threads else []
    return f"{task} × {backbone}" + (f" ({', '.join(notes)})" if notes else "")


def tuned_lines(main: pd.DataFrame, cells: pd.DataFrame) -> list[str]:
    """Which rows were run from a `mubench tune` preset, and how it was tuned (budget, objective, sampler, seed)."""
    if "tuned" not in cells or not cells["tuned"].notna().any():
        return []
    shown = set(main["label"]) if len(main) else set()
    notes: dict[str, list[str]] = {}
    tuned = cells.loc[cells["tuned"].notna(), ["label", "method", "tuned", "settings", "config_hash"]]
    configs = set(cells.loc[cells["label"] == cells["method"], ["method", "config_hash"]].itertuples(index=False))
    for label, method, note, settings, config in tuned.drop_duplicates(["label", "tuned"]).itertuples(index=False):
        if label in shown:
            same = ", its defaults: trial 0 was the best" if (method, config) in configs else ""
            notes.setdefault(note, []).append(f"{label} ({settings}{same})" if settings else label)
    lines = [f"Tuned with `mubench tune` ({note}): {'; '.join(sorted(rows))}." for note, rows in notes.items()]
    return lines + [""] if lines else []


def board_order(main: pd.DataFrame, floor: float, class_wise: bool):
    """(the rows in board order, the rows ranked by their score, collapsed labels, ‡ labels, labels ranked below the
    readable rows for ‡) from a summary's main rows. Below the rows whose score can be read, never sharing the lead:
    on a NoMUS board the rows whose FS the paper's attack cannot read, then (on any board) the rows at chance."""
    collapsed = {row.label for row in main.itertuples() if at_chance(row.test_acc, row.chance_acc, row.test_count)}
    blind = {row.label for row in main.itertuples() if paper_attack_blind(row.fs, row.mia_logloss, floor)}
    unread = set() if class_wise else blind - collapsed
    if len(main):
        main = pd.concat([main[~main["label"].isin(collapsed | unread)], main[main["label"].isin(unread)],
                          main[main["label"].isin(collapsed)]])
    kept = main[~main["label"].isin(collapsed | unread)] if len(main) else main
    return main, kept, collapsed, blind, unread


def ranked_per_seed(kept: pd.DataFrame, class_wise: bool) -> list[dict[int, float]]:
    """The per-seed scores that rank the kept rows: the gap to Retrain on a class-wise board, NoMUS otherwise."""
    return list(kept["per_seed_gap" if class_wise else "per_seed"]) if len(kept) else []


def plugin_lines(methods) -> list[str]:
    """Which distribution, at which version, gives each plugin method on the board: read at render time from the
    `mubench.methods` entry points installed where the board is rendered."""
    from importlib.metadata import entry_points
    given = {ep.name: ep.dist for ep in entry_points(group="mubench.methods") if ep.dist is not None}
    notes = [f"{name}: {given[name].name} {given[name].version}" for name in sorted(set(methods)) if name in given]
    return [f"Plugin methods (package and version): {'; '.join(notes)}.", ""] if notes else []


def render_board(key: tuple, cells: pd.DataFrame) -> str:
    attacks, missing = board_attacks(cells)
    class_wise = BoardKey(*key).class_wise
    columns = [column for attack in attacks for column in attack.columns if not (
        class_wise and column.metric == "mia_efficacy")]
    full = summarise(cells, (*(column.metric for column in columns), *ABLATION_SHARES),
                     CLASS_WISE_GAP if class_wise else GAP_METRICS, by_gap=class_wise)
    main = full[full["variant"] == ""] if len(full) else full
    headers = ["#", "method", *(CLASS_WISE_HEADERS if class_wise else ("test acc", "forget acc")), "MIA", "FS",
               "NoMUS", "Δ NoMUS vs retrain", *(() if class_wise else ("gap to retrain",)), "MIA log-loss", "MIA AUC",
               *(column.header for column in columns), "unlearn s", "× retrain", "seeds"]
    body = []
    unavailable = unavailable_attacks(cells)
    resolution_text, floor = resolution(cells, class_wise)
    main, kept, collapsed, blind, unread = board_order(main, floor, class_wise)
    ranked_scores = ranked_per_seed(kept, class_wise)
    ranks = rank_labels(ranked_scores) + [
        str(len(kept) + i + 1) for i in range(len(main) - len(kept))]
    verdict = not_a_verdict(main, collapsed, BoardKey(*key).preset)
    if verdict:
        ranks = ["—"] * len(ranks)
    for rank, row in zip(ranks, main.itertuples()):
        below = (" °" if row.fs < floor else "") + (" ‡" if row.label in blind else "")
        name = f"{row.label} (reference)" if row.label in REFERENCES else row.label
        name += " (collapsed)" if row.label in collapsed else ""
        na = "n/a" if any(label == row.label for label, _ in unavailable.get("mia", {})) else "—"
        ranked = not math.isnan(row.gap if class_wise else row.nomus)
        efficacy_na = "n/a" if any(label == row.label for label, _ in unavailable.get("mia-efficacy", {})) else "—"
        accuracies = ([_fmt(1 - row.forget_acc), _fmt(row.retain_acc), _fmt(row.test_acc, row.test_acc_ci),
                       _fmt(row.forgotten_test_acc), _fmt(row.mia_efficacy, missing=efficacy_na),
                       _fmt(row.gap, row.gap_ci)] if class_wise else [_fmt(row.test_acc, row.test_acc_ci),
                                                                      _fmt(row.forget_acc)])
        body.append([rank if ranked else na, name, *accuracies,
                     _fmt(row.mia, missing=na), _fmt(row.fs, row.fs_ci, missing=na) + below,
                     _fmt(row.nomus, row.nomus_ci, missing=na), _fmt(row.delta_nomus, row.delta_nomus_ci, missing=na),
                     *(() if class_wise else (_fmt(row.gap, row.gap_ci),)),
                     _fmt(row.mia_logloss, missing=na), _fmt(row.mia_auc, missing=na),
                     *(_fmt(getattr(row, c.metric), getattr(row, f"{c.metric}_ci"), digits=c.digits)
                       for c in columns),
                     _fmt(row.unlearn_seconds, digits=1),
                     _fmt(row.time_ratio), row.seeds])
    commands = sorted({c for c in cells["command"].dropna() if c})
    hashes = sorted({h[:12] for h in cells["split_hash"].dropna()})
    seeds = sorted({int(s) for s in cells.loc[cells["status"] == "FINISHED", "seed"].dropna()})
    threads = sorted({str(t) for t in cells["threads"].dropna()}) if "threads" in cells else []
    lines = [f"# Leaderboard: {board_title(key)}", "",
             "Produced by:", "", *[f"    {c}" for c in commands], "",
             f"Rendered from the MLflow store by `mubench leaderboard`. Split manifest SHA-256: "
             f"{', '.join(h + '…' for h in hashes)}. Seeds: {', '.join(map(str, seeds)) or '—'}. "
             f"Torch threads per cell: {', '.join(threads) or '—'}.", "",
             *verdict, *tuned_lines(main, cells), *resolution_text, *stability_lines(ranked_scores),
             table(body, headers), "", *plugin_lines(main["method"] if len(main) else []),
             (CLASS_WISE_RANKING if class_wise else "Ranked by NoMUS = ½·(test acc + 1 − FS). ") +
             "Values are means over seeds; test acc, FS and NoMUS show "
             "± the half-width of their 95 % Student-t interval when there are several seeds. "
             + "".join(ATTACKS.get(name).note(cells) for name in EVERY_CELL + (CLASS_WISE if class_wise else ())) +
             "× retrain: unlearn seconds over the seconds it took to train the Retrain reference. "
             "A row is one method with one configuration: --set overrides and ablation variants show in its name. "
             "Δ NoMUS vs retrain: the mean over seeds of the row's NoMUS minus Retrain's on the same seed, ± its 95 % "
             "interval. "
             + (CLASS_WISE_NOTE if class_wise else GAP_NOTE) + (COLLAPSED_NOTE if collapsed else "")
             + (BLIND_NOTE if blind else "") + (BLIND_RANK_NOTE if unread else "")
             + "".join(attack.note(cells) for attack in attacks
                       if not (class_wise and getattr(attack, "registered_name", "") in CLASS_WISE))
             + "".join(f"Attack {name!r} scored these cells, but it is not installed here, so its columns are not "
                       f"shown. " for name in missing) + (GAP_TIE_NOTE if class_wise else TIE_NOTE)
             + STABILITY_NOTE]
    for base in sorted({row.base for row in full.itertuples() if row.variant}) if len(full) else []:
        lines += ["", f"## Ablation: {base}", "", render_ablation(full, base)]
    if unavailable:
        lines += ["", "Not available (the cells are scored without these attacks' columns):", ""]
        lines += [f"- {name}: {', '.join(f'{label} (seed {seed})' for label, seed in sorted(where))}: {reason}."
                  for name, reasons in unavailable.items() for reason, where in _by_reason(reasons).items()]
    failed = cells[cells["status"] == "FAILED"]
    if len(failed):
        lines += ["", "Failed or refused cells:", ""]
        lines += [f"- {r.label} (seed {r.seed}): {r.error}" for r in failed.itertuples()]
    return "\n".join(lines) + "\n"


def unavailable_attacks(cells: pd.DataFrame) -> dict[str, dict[tuple[str, int], str]]:
    """{attack: {(label, seed): why}} for the finished cells some attack could not score."""
    found: dict[str, dict[tuple[str, int], str]] = {}
    if "unavailable" not in cells:
        return found
    for row in cells[cells["status"] == "FINISHED"].itertuples():
        for name, reason in (row.unavailable or {}).items():
            found.setdefault(name, {})[(row.label, int(row.seed))] = reason
    return found


def _by_reason(reasons: dict[tuple[str, int], str]) -> dict[str, list[tuple[str, int]]]:
    grouped: dict[str, list[tuple[str, int]]] = {}
    for where, reason in reasons.items():
        grouped.setdefault(reason, []).append(where)
    return grouped


def scenario_words(scenario: str) -> str:
    kind, _, label = scenario.partition(":")
    return f"class {label} forgotten" if kind == "class" else f"{scenario} forgetting"


def render_all(tracking_uri: str, out_dir: Path, only: list[tuple] | None = None) -> dict:
    """Write one markdown board per key into `out_dir` (with `only`, the boards whose key starts with one of those
    tuples); return {key: (path, text)}."""
    cells = latest_cells(tracking_uri)
    written = {}
    if cells.empty:
        return written
    out_dir.mkdir(parents=True, exist_ok=True)
    for key, group in cells.groupby(list(KEY)):
        key = BoardKey(*key)
        if not selected(key, only):
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
        "with the boards. The workflow `.github/workflows/leaderboard.yml` reruns the default grid on seeds 0 to 5 "
        "with `--ablate`, then each method tuned with the preset in `presets/` tuned for that board (on other "
        "seeds, never on test), and commits the boards here. How to read a board: "
        "[Reading the leaderboard](../README.md#reading-the-leaderboard).", "", table, ""])


def write_index(folder: Path) -> Path:
    path = Path(folder) / INDEX
    path.write_text(render_index(folder))
    return path
