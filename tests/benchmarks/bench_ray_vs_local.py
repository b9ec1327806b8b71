"""`--executor ray` on 2 workers against `--executor local` on one core, on the same grid: the wall time of each
whole `mubench run` (Ray's start and stop included), their ratio ray/local, and whether the boards are the same apart
from the time columns. Both run one torch thread per cell on the CPU, each into a fresh --out (so each trains its
own references), one after the other.

Run: .venv/bin/python tests/benchmarks/bench_ray_vs_local.py [--grid smoke|digits|both] [--workers 2] [--plots]

smoke: the 4-cell smoke grid (Original, Retrain, finetune, neggrad; seed 0). digits: the default preset's digits grid
of 4 methods × 2 seeds (12 cells with the references). The local Ray instance gets --workers cores whatever the
machine has (Ray's RAY_OVERRIDE_RESOURCES), so it runs that many actors. Figures are off unless --plots: the t-SNE is
drawn by the driver after the cells under Ray and would measure the figures, not the executor.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests folder, for the board comparison

from test_ray_actors import board_without_times  # noqa: E402

MUBENCH = Path(sys.executable).parent / "mubench"
GRIDS = {
    "smoke": ("--preset", "smoke", "--methods", "finetune,neggrad"),
    "digits": ("--methods", "finetune,neggrad,scrub,dlfd", "--seeds", "0,1"),
}


def timed_run(grid: tuple[str, ...], executor: str, out: Path, workers: int, plots: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MUBENCH_CACHE", "MUBENCH_DATA")}
    env["RAY_OVERRIDE_RESOURCES"] = json.dumps({"CPU": workers, "GPU": 0})
    command = [str(MUBENCH), "run", *grid, "--device", "cpu", "--threads", "1", "--quiet", "--executor", executor,
               "--out", str(out), *([] if plots else ["--no-plots"])]
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    print(f"  {executor:5} {seconds:7.1f} s  {result.stderr.strip().splitlines()[-1][:110]}")
    return seconds


def boards(out: Path) -> dict[str, list[str]]:
    return {path.name: board_without_times(path.read_text()) for path in sorted((out / "leaderboards").glob("*.md"))
            if path.name != "README.md"}  # the index names each board's command, --out included


def compare(name: str, workers: int, plots: bool) -> bool:
    root = Path(tempfile.mkdtemp(prefix=f"bench-ray-{name}-"))
    print(f"{name}: {' '.join(GRIDS[name])}  (folders under {root})")
    seconds = {executor: timed_run(GRIDS[name], executor, root / executor, workers, plots)
               for executor in ("local", "ray")}
    local, ray = boards(root / "local"), boards(root / "ray")
    same = bool(local) and local == ray
    print(f"  ray/local wall time: {seconds['ray'] / seconds['local']:.2f} ({workers} Ray workers, 1 local core); "
          f"boards identical apart from time columns: {'yes' if same else 'NO'} ({len(local)} board(s))")
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=[*GRIDS, "both"], default="both")
    parser.add_argument("--workers", type=int, default=2, help="cores (so actors) of the local Ray instance")
    parser.add_argument("--plots", action="store_true", help="draw the figures too (default: --no-plots)")
    args = parser.parse_args()
    names = list(GRIDS) if args.grid == "both" else [args.grid]
    results = [compare(name, args.workers, args.plots) for name in names]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
