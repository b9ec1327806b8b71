"""`mubench submissions check | try | install`: the methods submitted in leaderboards/submissions.toml."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from mubench.boards import submissions as subs
from mubench.cli.main import PRESETS, _seeds, _user_errors


@click.group()
def submissions() -> None:
    """Check, try and install the methods submitted in leaderboards/submissions.toml."""


def _check(file: Path, allow_local: bool) -> tuple[list[subs.Submission], list[str]]:
    from mubench.run.tune import read_preset
    return subs.read(file, read_preset, allow_local)


def _read(file: Path, allow_local: bool) -> list[subs.Submission]:
    """The file's submissions; every bad entry's sentence and exit 2 when any is bad."""
    good, problems = _check(file, allow_local)
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        sys.exit(2)
    return good


LOCAL = click.option("--allow-local", is_flag=True,
                     help="Accept `name @ path` requirements (a local folder or file, relative to FILE) to try a "
                          "plugin before it is published; CI never passes it.")


@submissions.command()
@click.argument("file", type=click.Path(path_type=Path), default=subs.DEFAULT)
@LOCAL
@_user_errors
def check(file, allow_local) -> None:
    """Validate FILE (default leaderboards/submissions.toml): one line per good entry, one error per bad one (exit 2)."""
    good, problems = _check(file, allow_local)
    for entry in good:
        preset = f", preset {entry.preset.name}" if entry.preset else ""
        click.echo(f"ok: {entry.label}: {entry.requirement} provides {', '.join(entry.methods)}{preset}; "
                   f"contact {entry.contact}")
    if not good and not problems:
        click.echo(f"{file} lists no submission.")
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        sys.exit(2)


@submissions.command(name="try")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder for the stores (stores/<dist>/), the shared reference cache and the boards of the "
                   "submissions that passed (leaderboards/<dist>/).")
@click.option("--preset", type=click.Choice(PRESETS), default="smoke", show_default=True,
              help="The run after the smoke run on the first seed (skipped when it is that smoke run).")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds of that run.")
@click.option("--only-changed-from", type=click.Path(path_type=Path), metavar="BASE_FILE",
              help="Try only the entries new or changed with respect to BASE_FILE (the base branch's file).")
@LOCAL
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="As `mubench run`.")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, help="As `mubench run`.")
@_user_errors
def try_(file, out, preset, seeds, only_changed_from, allow_local, threads, workers) -> None:
    """The PR workflow's steps for each submission of FILE, each in a fresh venv: install (no dependencies), the
    conformance kit on each listed method, a smoke run, the run asked for, then its boards. A submission that fails
    a step is reported with its reasons and left off the boards; exit 1 if any failed."""
    entries, seed_list = _read(file, allow_local), _seeds(seeds)
    if only_changed_from is not None:
        entries = subs.changed(entries, subs.load_tables(file), subs.load_tables(only_changed_from))
    if not entries:
        click.echo(f"nothing to try: {file} lists no{' new or changed' if only_changed_from else ''} submission.")
        return
    failed = 0
    for entry in entries:
        click.echo(f"trying {entry.label}: {entry.requirement} ({', '.join(entry.methods)})", err=True)
        failures = subs.try_submission(entry, out, preset, seed_list,
                                       ["--threads", str(threads), "--workers", str(workers)])
        for reason in failures:
            click.echo(f"failed: {entry.label}: {reason}", err=True)
        if not failures:
            click.echo(f"passed: {entry.label}: boards in {out / 'leaderboards' / entry.dist}")
        failed += bool(failures)
    if failed:
        click.echo(f"{failed} of {len(entries)} submission(s) failed and are left off the boards.", err=True)
        sys.exit(1)


@submissions.command(name="install")
@click.argument("file", type=click.Path(path_type=Path), default=subs.DEFAULT)
@click.option("--methods-out", type=click.Path(path_type=Path), required=True,
              help="Write the methods for the grid's --methods: the built-ins and the installed submissions' methods "
                   "that have no preset, comma-separated.")
@click.option("--tuned-out", type=click.Path(path_type=Path), required=True,
              help="Write one line per installed submission with a preset: its methods, a tab, the preset's path "
                   "(run each with --preset-from).")
@LOCAL
@_user_errors
def install_(file, methods_out, tuned_out, allow_local) -> None:
    """Install each submission of FILE into this environment (no dependencies) and run the kit on its methods; one
    whose install or kit fails is uninstalled and left off, with its reasons."""
    entries, methods, tuned = _read(file, allow_local), subs.builtin_methods(), []
    for entry in entries:
        failures = subs.install_here(entry)
        for reason in failures:
            click.echo(f"left off: {entry.label}: {reason}", err=True)
        if failures:
            continue
        click.echo(f"installed: {entry.label}: {entry.requirement} ({', '.join(entry.methods)})")
        if entry.preset:
            tuned.append(f"{','.join(entry.methods)}\t{entry.preset}\n")
        else:
            methods += entry.methods
    methods_out.parent.mkdir(parents=True, exist_ok=True)
    methods_out.write_text(",".join(methods) + "\n")
    tuned_out.parent.mkdir(parents=True, exist_ok=True)
    tuned_out.write_text("".join(tuned))
