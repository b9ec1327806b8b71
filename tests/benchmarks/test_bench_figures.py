"""Figures' share of a cold default run (a figure, not a gate): `mubench run` on digits into a fresh --out and cache
(so the references are trained too), once with --no-plots and once with the figures, each in a process of its own,
one after the other. Prints (plots − no-plots) / no-plots of the two wall times, and the seconds the plots run spent
in the figure code (its imports included) over the no-plots wall time: the same share, measured inside one run, so
a busy machine blurs it less.

Run: .venv/bin/pytest tests/benchmarks/test_bench_figures.py -m slow -s
     (MUBENCH_BENCH_METHODS=finetune,neggrad,scrub,dlfd for a shorter grid; default: every registered method)
"""
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
TIMING = "timing.json"


def timed(owner, name: str, spent: list[float]) -> None:
    """Replace `owner.name` by a wrapper that adds each call's seconds to `spent`."""
    function = getattr(owner, name)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)
    setattr(owner, name, wrapper)


def one_run(out: Path, options: list[str]) -> None:
    """`mubench run --out <out> <options>` in this process; writes its wall seconds and figure seconds to out."""
    started = time.perf_counter()
    spent: list[float] = []
    if "--no-plots" not in options:
        import mubench.boards.scatter
        import mubench.run.cell_figures  # matplotlib loads here, a cost of the figures
        spent.append(time.perf_counter() - started)
        for name in ("__init__", "cell", "finish"):
            timed(mubench.run.cell_figures.SeedPlots, name, spent)
        timed(mubench.boards.scatter, "draw_run_boards", spent)
    from mubench.cli.main import main
    try:
        main(["run", "--out", str(out), *options], standalone_mode=False)
        code = 0
    except SystemExit as exc:
        code = exc.code
    (out / TIMING).write_text(json.dumps({"wall": time.perf_counter() - started, "figures": sum(spent),
                                          "exit": code}))


def cold_run(out: Path, options: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MUBENCH_CACHE", "MLFLOW_TRACKING_URI")}
    subprocess.run([sys.executable, __file__, str(out), *options], check=True, env=env)
    timing = json.loads((out / TIMING).read_text())
    assert timing["exit"] == 0, f"mubench run {options} exited {timing['exit']}"
    return timing


def test_figures_share_of_a_cold_default_run(tmp_path):
    methods = os.environ.get("MUBENCH_BENCH_METHODS")
    options = ["--quiet", *(["--methods", methods] if methods else [])]
    bare = cold_run(tmp_path / "no-plots", [*options, "--no-plots"])
    drawn = cold_run(tmp_path / "plots", options)
    share = (drawn["wall"] - bare["wall"]) / bare["wall"]
    inside = drawn["figures"] / bare["wall"]
    print(f"\ncold default digits run, methods: {methods or 'all'}: no-plots {bare['wall']:.1f} s, plots "
          f"{drawn['wall']:.1f} s; (plots - no-plots)/no-plots = {share:.3f}; figure code {drawn['figures']:.1f} s "
          f"= {inside:.3f} of the no-plots run")


if __name__ == "__main__":
    one_run(Path(sys.argv[1]), sys.argv[2:])
