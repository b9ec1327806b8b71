"""Does the default board measure forgetting? On the embedded default (digits, the task's own recipe and scenario,
what `mubench run` runs with no options) the Original and Retrain references on seeds 0, 1, 2: the Original's paper FS
must lie above the board's no-signal FS on every seed, Retrain's under it, and the paired test must separate them.

Prints the board's resolution lines and the per-seed FS of both references (and the scale-free attacks beside the
paper's), then PASS or FAIL; exits 1 on FAIL. A check of the task's recipe and sizes, not of speed.

Run: .venv/bin/python tests/benchmarks/bench_default_board.py [--out DIR] [--threads 1]
(with --out, a second run reads the references from the cache and the cells from the store.)
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from mubench.boards.leaderboard import latest_cells, paired_separated, resolution
from mubench.core.tracking import default_tracking_uri
from mubench.scores.metrics import forgetting_score

SEEDS = (0, 1, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--threads", default="1")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="mubench-default-board-"))
    command = [str(Path(sys.executable).parent / "mubench"), "run", "--methods", "original", "--seeds",
               ",".join(map(str, SEEDS)), "--out", str(out), "--threads", args.threads, "--no-plots", "--quiet"]
    print("$ mubench " + " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)
    cells = latest_cells(default_tracking_uri(out))
    cells = cells[(cells["task"] == "digits") & (cells["scenario"] == "random") & (cells["status"] == "FINISHED")]
    lines, floor = resolution(cells)
    cells = cells[cells["label"].isin(("original", "retrain"))]
    print("\n".join(line for line in lines if line))
    fs = {label: {int(r.seed): float(r.fs) for r in cells[cells["label"] == label].itertuples()}
          for label in ("original", "retrain")}
    for r in cells.sort_values(["label", "seed"]).itertuples():
        print(f"  {r.label:9s} seed {r.seed}: FS {r.fs:.3f}  scale-free FS {forgetting_score(r.mia_logloss):.3f}  "
              f"MIA AUC {r.mia_auc:.3f}  test acc {r.test_acc:.3f}")
    checks = {f"Original's FS above {floor:.3f} on seeds {SEEDS}": all(fs["original"].get(s, 0) > floor for s in SEEDS),
              f"Retrain's FS under {floor:.3f} on seeds {SEEDS}": all(fs["retrain"].get(s, 1) < floor for s in SEEDS),
              "Original and Retrain separated by the paired test": paired_separated(fs["original"], fs["retrain"])}
    for what, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
    print("PASS" if all(checks.values()) else "FAIL")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
