"""The default run sequential (`--workers 1`) against parallel (`--workers N`, default: this machine's cores), one
after the other in one invocation, each into a fresh --out (so each trains its own references): the wall time of each
whole `mubench run`, their ratio parallel/sequential, the time to the run's first line, and whether the boards are
the same apart from the time columns. Both run one torch thread per cell on the CPU.

Run: .venv/bin/python tests/benchmarks/bench_workers.py [--workers N] [-- extra mubench run options]
(default grid: `mubench run` with no options, the README's first command; figures are drawn unless --no-plots is
passed through.)
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests folder, for the board comparison

from test_ray_actors import board_without_times  # noqa: E402

MUBENCH = Path(sys.executable).parent / "mubench"


def timed_run(extra: list[str], workers: int, out: Path) -> tuple[float, float]:
    """(wall seconds, seconds to the first line on stderr) of one `mubench run`."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "MUBENCH_CACHE", "MUBENCH_DATA", "MUBENCH_WORKERS")}
    command = [str(MUBENCH), "run", *extra, "--workers", str(workers), "--out", str(out)]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = process.stderr.readline()
    first_seconds = time.perf_counter() - started
    rest = process.stderr.read()
    process.wait()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {process.returncode}:\n{(first + rest)[-3000:]}")
    print(f"  --workers {workers}: {seconds:7.1f} s, first line after {first_seconds:.1f} s: {first.strip()[:160]}",
          flush=True)
    return seconds, first_seconds


def boards(out: Path) -> dict[str, list[str]]:
    return {path.name: board_without_times(path.read_text()) for path in sorted((out / "leaderboards").glob("*.md"))
            if path.name != "README.md"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("extra", nargs="*", help="options passed to both runs (after --)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    print(f"mubench run {' '.join(args.extra)}  (folders under {root})", flush=True)
    sequential, _ = timed_run(args.extra, 1, root / "sequential")
    parallel, _ = timed_run(args.extra, args.workers, root / "parallel")
    one, many = boards(root / "sequential"), boards(root / "parallel")
    same = bool(one) and one == many
    print(f"  parallel/sequential wall time: {parallel / sequential:.2f} ({args.workers} workers); boards identical "
          f"apart from time columns: {'yes' if same else 'NO'} ({len(one)} board(s))")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
