"""What a run shows while it works. On a terminal: progress bars (tqdm) that vanish when done. Anywhere else (a CI
log, a Ray worker, output redirected to a file): no bar frames, one line per finished reference, cell and board.
`quiet` silences both; the run's closing summary is the CLI's and is always printed.

Bars and lines go to stderr, so stdout keeps only what a command outputs (the leaderboards).
"""
from __future__ import annotations

import sys
from typing import Iterable


def on_terminal() -> bool:
    """Whether stderr, where progress goes, is a terminal (asked at each call: a test or a worker may swap it)."""
    stream = sys.stderr
    return stream is not None and hasattr(stream, "isatty") and stream.isatty()


def bar(iterable: Iterable, desc: str, total: int | None = None, quiet: bool = False) -> Iterable:
    """`iterable` behind a progress bar on a terminal; `iterable` itself when quiet or not on a terminal."""
    if quiet or not on_terminal():
        return iterable
    from tqdm.auto import tqdm
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)


def line(text: str, quiet: bool = False) -> None:
    """One line for a finished step, printed where no bar shows progress: not on a terminal, and not quiet."""
    if not quiet and not on_terminal():
        print(text, file=sys.stderr, flush=True)


def announce(text: str, quiet: bool = False) -> None:
    """A line that shows on a terminal too (no bar stands for it): what a run is about to do."""
    if not quiet:
        print(text, file=sys.stderr, flush=True)


SLOWER_THAN_ESTIMATE = 2.0  # a reference this many times slower than the run's estimate is said to be slow


def slow_note(seconds: float, estimate: float) -> str:
    """A note for a reference much slower than its estimate, or ""."""
    if not estimate or seconds < SLOWER_THAN_ESTIMATE * estimate:
        return ""
    return (f" ({seconds / estimate:.1f}× the {estimate:.0f} s estimated: other processes may be using the cores; "
            f"give each run --threads 1 and fewer --workers)")


def where(task: str, scenario: str, backbone: str, seed: int) -> str:
    """`digits/resnet18 seed 0`, with the scenario when it is not the task's own random split."""
    scenario = "" if scenario == "random" else f"[{scenario}]"
    return f"{task}{scenario}/{backbone} seed {seed}"


def reference_done(role: str, splits, backbone: str, seed: int, record: dict, trained: bool,
                   quiet: bool = False, note: str = "") -> None:
    outcome = f"trained in {record['train_seconds']:.1f} s{note}" if trained else "from cache"
    line(f"reference {role} {where(splits.task, splits.scenario, backbone, seed)}: {outcome}", quiet)


def cell_done(label: str, splits, backbone: str, seed: int, scores: dict | None = None, error: str | None = None,
              quiet: bool = False) -> None:
    """A finished cell's scores (test accuracy, FS, NoMUS, the seconds charged to the method), or FAILED and why."""
    if error is not None:
        outcome = f"FAILED: {error.strip().splitlines()[0] if error.strip() else 'no reason given'}"
    else:
        fs, nomus = (f"{scores[k]:.4f}" if k in scores else "n/a" for k in ("fs", "nomus"))
        outcome = f"test acc {scores['test_acc']:.4f}, FS {fs}, NoMUS {nomus}, {scores['unlearn_seconds']:.1f} s"
    line(f"cell {label} {where(splits.task, splits.scenario, backbone, seed)}: {outcome}", quiet)
