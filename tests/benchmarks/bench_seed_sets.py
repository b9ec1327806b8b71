"""Do a board's verdicts survive a change of seeds? One board of a store rendered on two disjoint seed sets: Kendall τ
between the two orders of the rows both rank, how many rows each separates from its leader under the tie rule with
Holm's correction and under the old rule (each row tested alone at 95 %), and each half's own stability estimate
(the expected τ it predicts for two independent boards of its size) to hold against the τ actually seen.

Run: .venv/bin/python tests/benchmarks/bench_seed_sets.py --store runs/boards --seeds 0,1,2 --against 3,4,5
     [--task digits --backbone resnet18 --preset default --scenario random]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from mubench.boards.leaderboard import (CLASS_WISE_GAP, GAP_METRICS, board_order, latest_cells, paired_p_value,
                                        paired_separated, rank_labels, ranked_per_seed, resolution, summarise,
                                        tied_with_leader)
from mubench.boards.stability import Stability
from mubench.core.store import BoardKey
from mubench.core.tracking import default_tracking_uri


def old_rule_separated(per_seed: list[dict[int, float]]) -> int:
    """Rows the old rule separates from the leader: each tested alone, the paired 95 % interval excluding 0."""
    return sum(bool(paired_separated(per_seed[0], row)) for row in per_seed[1:])


def half(cells, seeds: set[int], class_wise: bool) -> dict:
    """The board's ranked rows on these seeds (as `mubench leaderboard` orders them), its separated counts and its
    stability estimate."""
    subset = cells[cells["seed"].astype(int).isin(seeds)]
    summary = summarise(subset, gap_metrics=CLASS_WISE_GAP if class_wise else GAP_METRICS, by_gap=class_wise)
    _, floor = resolution(subset, class_wise)
    _, kept, *_ = board_order(summary[summary["variant"] == ""], floor, class_wise)
    scores = ranked_per_seed(kept, class_wise)
    ties = tied_with_leader(scores)[1:]
    separated = sum(not tied and paired_p_value(scores[0], row) is not None for tied, row in zip(ties, scores[1:]))
    estimate = Stability(scores)
    return {"rows": list(zip(rank_labels(scores), kept["label"])),
            "means": dict(zip(kept["label"], kept["gap" if class_wise else "nomus"])), "separated": separated,
            "old": old_rule_separated(scores), "tau": estimate.tau(estimate.seeds), "needed": estimate.seeds_for()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--seeds", required=True)
    parser.add_argument("--against", required=True)
    parser.add_argument("--task", default="digits")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--scenario", default="random")
    args = parser.parse_args()
    cells = latest_cells(default_tracking_uri(args.store))
    chosen = cells[(cells["task"] == args.task) & (cells["backbone"] == args.backbone)
                   & (cells["preset"] == args.preset) & (cells["scenario"] == args.scenario)]
    if chosen.empty:
        sys.exit(f"No cells of {args.task} × {args.backbone} ({args.preset}, {args.scenario}) in {args.store}.")
    class_wise = BoardKey(*chosen.iloc[0][list(BoardKey._fields)]).class_wise
    sets = [{int(s) for s in text.split(",")} for text in (args.seeds, args.against)]
    halves = [half(chosen, seeds, class_wise) for seeds in sets]
    for seeds, result in zip(sets, halves):
        print(f"seeds {sorted(seeds)}: {len(result['rows'])} ranked rows; separated from the leader: "
              f"{result['separated']} with Holm over all pairs, {result['old']} with each row tested alone; "
              f"stability estimate τ {result['tau']:.2f} (τ ≥ 0.8 at {result['needed'] or '> 100'} seeds)")
        print("  order: " + ", ".join(f"{rank} {label}" for rank, label in result["rows"]))
    common = sorted(set(halves[0]["means"]) & set(halves[1]["means"]))
    tau = stats.kendalltau([halves[0]["means"][c] for c in common], [halves[1]["means"][c] for c in common])[0]
    print(f"Kendall τ between the two orders of their {len(common)} common ranked rows: {tau:.2f}")
    predicted = np.mean([h["tau"] for h in halves])
    print(f"predicted by the halves' own estimates: {predicted:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
