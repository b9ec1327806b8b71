"""`mubench run | ls | leaderboard | report`: the command line. User errors print one sentence, exit 2."""
from __future__ import annotations

import functools
import logging
import os
import shlex
import sys
import tempfile
from pathlib import Path

import click

from mubench.core.errors import MubenchError

PRESETS = ("default", "smoke")


def _user_errors(command):
    """Run a command; print a MubenchError as one line on stderr and exit 2, with no traceback."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except MubenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted: the cell or trial that was running is recorded KILLED (reason: interrupted) "
                       "and finished ones are kept; the same command resumes.", err=True)
            sys.exit(130)
    return wrapper


class _OneLineErrors(click.Group):
    """Click's own errors (a bad choice, a number out of an option's range) as one line too, instead of usage text."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `mubench`: the help, as click shows it
                exc.show()
                sys.exit(exc.exit_code)
            where = f" ({exc.ctx.command_path} --help lists the options)" if getattr(exc, "ctx", None) else ""
            click.echo(f"error: {exc.format_message().rstrip('.')}{where}.", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_OneLineErrors)
@click.version_option(package_name="mubench")
def main() -> None:
    """mubench: a benchmark suite for machine unlearning on image classifiers."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")


def _names(text: str | None, registry, option: str) -> list[str]:
    if text is None:
        return registry.names()
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise MubenchError(f"{option} {text!r} names nothing; give a comma-separated list.")
    return [registry.resolve(n) for n in names]


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise MubenchError(f"--seeds {text!r} is not a comma-separated list of integers (e.g. 0,1,2).") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise MubenchError(f"--seeds {text!r} must be distinct non-negative integers (e.g. 0,1,2).")
    return seeds


def _scenarios(given: tuple[str, ...]) -> list[str]:
    """The --scenario values in order, each checked for its form (a task's own limits are checked when it loads)."""
    from mubench.data.scenarios import parse_scenario
    texts = [parse_scenario(part).text for item in given for part in item.split(",") if part.strip()] or ["random"]
    if len(set(texts)) != len(texts):
        raise MubenchError(f"--scenario names {sorted({t for t in texts if texts.count(t) > 1})[0]!r} twice; "
                           f"give each scenario once.")
    return texts


def _writable(out: Path, option: str = "--out") -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".mubench-write-check-"):
            pass  # a name of its own: two runs sharing --out must not delete each other's probe
    except OSError as exc:
        raise MubenchError(f"{option} {str(out)!r} is not writable ({exc.strerror or exc}); choose a folder you can "
                           f"write to.") from None
    return out


def _device(name: str):
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MubenchError("--device cuda was asked for but no CUDA device is available; use --device cpu or auto.")
    return torch.device(name)


WHERE_OPTIONS = (  # the options `run` and `tune` read alike: where the store, data and cache are, and the models
    click.option("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or "
                                        "sqlite:///<out>/mlflow.db)."),
    click.option("--data-root", type=click.Path(path_type=Path), envvar="MUBENCH_DATA",
                 help="Root of the task's data (or $MUBENCH_DATA); the digits task needs none."),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
    click.option("--head", type=click.Choice(["linear", "mlp"]), default="linear", show_default=True,
                 help="Classifier head; mlp is the DLFD authors' 512→256→128→C head."),
    click.option("--pretrained", type=click.Path(path_type=Path, exists=True, dir_okay=False),
                 help="Local state dict to initialise the backbone trunk (nothing is downloaded)."),
    click.option("--cache-dir", type=click.Path(path_type=Path),
                 help="Where trained references are cached (default: $MUBENCH_CACHE/models or <out>/cache)."),
)


def _where_options(command):
    for option in reversed(WHERE_OPTIONS):
        command = option(command)
    return command


@main.command()
@click.option("--methods", help="Comma-separated method names (default: every registered method).")
@click.option("--tasks", default="digits", show_default=True, help="Comma-separated task names.")
@click.option("--backbones", default="resnet18", show_default=True, help="Comma-separated backbone names.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds, e.g. 0,1,2.")
@click.option("--scenario", "scenarios", multiple=True, metavar="SCENARIO",
              help="What is forgotten: random (default, the task's own split), class:<label> (every training image "
                   "of one class), identity (every image of a seeded set of people); repeatable or comma-separated.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("mubench-out"), show_default=True,
              help="Folder for the MLflow store, model cache and leaderboards.")
@click.option("--set", "assignments", multiple=True, metavar="METHOD.FIELD=VALUE",
              help="Override a method's Config field; repeatable.")
@click.option("--task-set", "task_assignments", multiple=True, metavar="TASK.OPTION=VALUE",
              help="Set a task's option (e.g. imagefolder.size=48); repeatable. Part of the split hash.")
@click.option("--preset", type=click.Choice(PRESETS), default="default", show_default=True,
              help="smoke: a few hundred samples and one training epoch, to check a method quickly.")
@click.option("--ablate", is_flag=True, help="Also run each method's ablation variants (e.g. DLFD's components).")
@click.option("--force", is_flag=True, help="Rerun cells already finished in the store (default: skip them).")
@click.option("--quiet", is_flag=True, help="No progress (bars on a terminal; elsewhere a line per finished "
                                            "reference, cell and leaderboard) and no leaderboard echo.")
@click.option("--no-plots", is_flag=True, help="Skip the loss histograms and the features the report's t-SNE is drawn from "
                                               "(<out>/plots/).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: --workers processes of this machine; ray: long-lived Ray actors, one per slot of "
                   "--threads cores, each running many cells (needs mubench[ray]).")
@click.option("--ray-address", help="Join this Ray cluster (e.g. ray://head:10001 or auto) instead of starting a "
                                    "local Ray instance for the run.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Torch threads per cell. CPU results depend on it: compare runs made with the same value (the "
                   "committed boards use 1).")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, envvar="MUBENCH_WORKERS",
              help="Local executor: processes running cells side by side, each on --threads torch threads (0: as "
                   "many as this machine's cores hold, one on a GPU). 1: the cells one after another in this "
                   "process. The numbers do not depend on it.")
@click.option("--attack", default="none", show_default=True, metavar="NAMES",
              help="Registered attacks beside the two that score every cell (the paper's MIA and the scale-free "
                   "ones), comma-separated (`mubench ls attacks`; not in NoMUS). "
                   "lira: LiRA, a per-example membership attack calibrated by shadow models (AUC, TPR at 1 % and 5 % "
                   "FPR), costing --shadows trainings per seed. ulira: U-LiRA beside LiRA, whose IN shadows are "
                   "unlearned with each cell's method (costs --shadows unlearning runs per cell more).")
@click.option("--shadows", type=click.IntRange(min=2), default=16, show_default=True,
              help="Shadow models per task × backbone × seed for the attacks that need them (cached, shared by every "
                   "method).")
@click.option("--preset-from", type=click.Path(path_type=Path), metavar="FILE",
              help="Apply the configurations `mubench tune` wrote (tuned-preset.json) as --set overrides of the "
                   "methods run; an explicit --set of the same field wins. Their cells and board say they were tuned.")
@click.option("--yes", "unusual_ok", is_flag=True,
              help="Accept values far above their usual bound (epochs, steps, learning rates, shadows, trials) that "
                   "are otherwise refused as likely typos.")
@_where_options
@_user_errors
def run(methods, tasks, backbones, seeds, scenarios, out, tracking_uri, data_root, assignments, task_assignments, preset, device, head,
        pretrained, cache_dir, ablate, force, quiet, no_plots, executor, ray_address, threads, workers, attack,
        shadows, preset_from, unusual_ok) -> None:
    """Run every method × task × backbone × seed cell, log it to MLflow and render the leaderboards."""
    from mubench.run.grid import run as run_grid
    from mubench.harness.plan import RunPlan
    from mubench.boards.leaderboard import render_all
    from mubench.harness.plan import method_specs
    from mubench.core.progress import line as progress_line
    from mubench.core.tracking import default_tracking_uri
    from mubench.train.backbones import BACKBONES, check_pretrained
    from mubench.data.tasks import TASKS, task_options

    task_names = _names(tasks, TASKS, "--tasks")
    tuned = None
    if preset_from is not None:
        from mubench.run.tune import preset_assignments, read_preset
        tuned = read_preset(preset_from)
        assignments = (*assignments, *preset_assignments(tuned, _names(methods, _methods_registry(), "--methods"),
                                                         assignments))
    from mubench.attacks.base import resolve_attacks, shadow_need
    attacks = resolve_attacks(attack)
    if not shadow_need(attacks) and click.get_current_context().get_parameter_source("shadows") == \
            click.core.ParameterSource.COMMANDLINE:
        without = f"--attack {attack} trains none" if attacks else "without an attack no shadow model is trained"
        raise MubenchError(f"--shadows {shadows} needs an attack that trains shadow models (e.g. --attack lira); "
                           f"{without}.")
    _usual("--shadows", shadows, USUAL_SHADOWS, unusual_ok)
    backbone_names = _names(backbones, BACKBONES, "--backbones")
    if pretrained is not None:
        check_pretrained(pretrained, backbone_names, head)
    plan = RunPlan(
        methods=method_specs(_names(methods, _methods_registry(), "--methods"), assignments, ablate,
                             unusual_ok=unusual_ok),
        tasks=task_names, backbones=backbone_names,
        seeds=_seeds(seeds), out=_writable(out), tracking_uri=tracking_uri or default_tracking_uri(out),
        preset=preset, device=_device(device), data_root=data_root, head=head, pretrained=pretrained,
        cache_dir=cache_dir or _default_cache(out), quiet=quiet, force=force, plots=not no_plots,
        command=_command_line(click.get_current_context()), executor=executor, ray_address=ray_address,
        threads=threads, workers=_workers(workers, threads, device, executor, ray_address),
        scenarios=_scenarios(scenarios), task_options=task_options(task_names, task_assignments),
        attacks=attacks, shadows=shadows)
    summary = run_grid(plan)
    if tuned is not None:
        from mubench.run.tune import tag_tuned_cells
        tag_tuned_cells(plan.tracking_uri, summary.parent_run_id, tuned,
                        [s.row for s in plan.methods if s.name in tuned["methods"]],
                        {(task, scenario) for task in plan.tasks for scenario in plan.scenarios})
    if summary.killed:
        more = f" and {len(summary.killed) - 5} more" if len(summary.killed) > 5 else ""
        click.echo(f"marked {len(summary.killed)} run(s) KILLED whose process is gone: "
                   f"{', '.join(summary.killed[:5])}{more}", err=True)
    boards = render_all(plan.tracking_uri, out / "leaderboards", only=summary.boards)
    for path, _ in boards.values():
        progress_line(f"leaderboard written: {path}", quiet)
    if plan.plots:
        from mubench.boards.scatter import draw_run_boards
        draw_run_boards(plan.tracking_uri, out, summary.boards, summary.parent_run_id)
    if not quiet:
        for path, text in boards.values():
            click.echo(text)
    click.echo(f"{summary.cells} cells run, {summary.skipped} already finished in the store (--force reruns them), "
               f"{len(summary.failures)} failed; references from cache: "
               f"{summary.cache_hits}, trained: {summary.cache_misses}; leaderboards in {out / 'leaderboards'}; "
               f"MLflow store: {plan.tracking_uri}", err=True)
    if summary.failures:
        for failure in summary.failures:
            click.echo(f"failed: {failure.label} on {failure.task}/{failure.backbone} seed {failure.seed}: "
                       f"{failure.error}", err=True)
        sys.exit(1)


@main.command()
@click.option("--methods", required=True, help="Comma-separated methods to tune, each over its declared search space.")
@click.option("--tasks", default="digits", show_default=True, help="The task to tune on (one).")
@click.option("--backbones", default="resnet18", show_default=True, help="The backbone to tune on (one).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="The first tuning seed: every trial unlearns the Original of seeds --seed … --seed + "
                   "--trial-seeds − 1 and is scored against each seed's Retrain (evaluate the preset on others).")
@click.option("--trial-seeds", type=click.IntRange(min=2), default=2, show_default=True,
              help="Seeds each trial is evaluated on (its objective is the mean over them); at least 2.")
@click.option("--scenario", default="random", show_default=True, help="What is forgotten (as mubench run).")
@click.option("--trials", type=int, default=20, show_default=True,
              help="Trials per method, the same for every method; trial 0 is the method's defaults.")
@click.option("--sampler-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of Optuna's TPE sampler.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("mubench-out"), show_default=True,
              help="Folder for the MLflow store, the study (tune.db), the model cache and tuned-preset.json.")
@click.option("--task-set", "task_assignments", multiple=True, metavar="TASK.OPTION=VALUE",
              help="Set a task's option, as mubench run; repeatable.")
@click.option("--preset", type=click.Choice(PRESETS), default="default", show_default=True)
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="Torch threads (0: all cores). Part of a study's identity: CPU results depend on it.")
@click.option("--quiet", is_flag=True, help="No progress (bars on a terminal, else a line per reference).")
@click.option("--yes", "unusual_ok", is_flag=True,
              help="Accept values far above their usual bound (epochs, steps, learning rates, shadows, trials) that "
                   "are otherwise refused as likely typos.")
@_where_options
@_user_errors
def tune(methods, tasks, backbones, seed, trial_seeds, scenario, trials, sampler_seed, out, tracking_uri, data_root,
         task_assignments, preset, device, head, pretrained, cache_dir, threads, quiet, unusual_ok) -> None:
    """Tune methods with the same number of trials each, scored by their gap to Retrain on retain, forget and val
    (never test) over --trial-seeds seeds, and write the best configurations as a preset for
    `mubench run --preset-from`."""
    from mubench.train.backbones import BACKBONES, check_pretrained
    from mubench.harness.plan import RunPlan
    from mubench.data.tasks import TASKS, task_options
    from mubench.core.tracking import default_tracking_uri
    from mubench.run.tune import check_methods, set_lines, tune as run_tune

    names = _names(methods, _methods_registry(), "--methods")
    check_methods(names, trials)
    task_names, backbone_names = _names(tasks, TASKS, "--tasks"), _names(backbones, BACKBONES, "--backbones")
    if len(task_names) != 1 or len(backbone_names) != 1:
        raise MubenchError("tune runs on one task and one backbone; tune each pair separately (a preset file each).")
    _usual("--trials", trials, USUAL_TRIALS, unusual_ok)
    if pretrained is not None:
        check_pretrained(pretrained, backbone_names, head)
    seeds = list(range(seed, seed + trial_seeds))  # every trial is scored on each of them
    plan = RunPlan(methods=[], tasks=task_names, backbones=backbone_names, seeds=seeds, out=_writable(out),
                   tracking_uri=tracking_uri or default_tracking_uri(out), preset=preset, device=_device(device),
                   data_root=data_root, head=head, pretrained=pretrained, cache_dir=cache_dir or _default_cache(out),
                   quiet=quiet, plots=False,
                   command=_command_line(click.get_current_context()), threads=threads,
                   scenarios=_scenarios((scenario,)), task_options=task_options(task_names, task_assignments))
    result = run_tune(plan, names, trials, sampler_seed)
    click.echo(f"{'method':<16} {'trials':>6} {'failed':>6} {'default':>8} {'best':>8} {'× retrain':>10}")
    for m in result.methods:
        click.echo(f"{m.method:<16} {m.trials:>6} {m.failed:>6} {m.default:>8.4f} {m.best:>8.4f} {m.cost:>10.2f}")
    click.echo(f"objective (val-side, never test): {result.tuning['objective']}; seeds "
               f"{', '.join(map(str, result.tuning['seeds']))} (default: trial 0, the method's own configuration)")
    for line in set_lines(result):
        click.echo(line)
    click.echo(f"{result.trials_run} trials run now; study: {out / 'tune.db'}; preset: {result.preset_path} "
               f"(mubench run --preset-from {result.preset_path}); MLflow store: {plan.tracking_uri}", err=True)


USUAL_SHADOWS = 256  # LiRA's papers use 64 to 256
USUAL_TRIALS = 1000


def _usual(option: str, value: int, usual: int, unusual_ok: bool) -> None:
    if value > usual and not unusual_ok:
        raise MubenchError(f"{option} {value} is far above the usual (≤ {usual}) and would run for days; pass --yes "
                           f"if you mean it.")


def _workers(workers: int, threads: int, device: str, executor: str, ray_address: str | None) -> int:
    """The local executor's worker processes: as given, else as many as the cores hold at `threads` each (one on a
    GPU: the processes would share it)."""
    if executor != "local":
        if workers and click.get_current_context().get_parameter_source("workers") == \
                click.core.ParameterSource.COMMANDLINE:
            raise MubenchError(f"--workers {workers} is for --executor local; the Ray executor runs one actor per "
                               f"--threads cores of its cluster.")
        return 1
    if workers:
        return workers
    if _device(device).type != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // threads)


def _default_cache(out: Path) -> Path:
    shared = os.environ.get("MUBENCH_CACHE")
    return Path(shared) / "models" if shared else out / "cache"


def _command_line(ctx: click.Context) -> str:
    """The invocation as a reproducible command: the explicitly given options, in declaration order."""
    words = ["mubench", ctx.info_name]
    for param in ctx.command.params:
        if ctx.get_parameter_source(param.name) != click.core.ParameterSource.COMMANDLINE:
            continue
        flag = param.opts[-1] if param.opts[-1].startswith("--") else param.opts[0]
        value = ctx.params[param.name]
        if param.is_flag:
            words.append(flag)
        else:
            for item in value if param.multiple else [value]:
                words += [flag, str(item)]
    return shlex.join(words)


def _methods_registry():
    from mubench.unlearn.api import METHODS
    return METHODS


@main.command(name="ls")
@click.argument("what", type=click.Choice(["methods", "tasks", "backbones", "attacks"]))
@_user_errors
def ls(what) -> None:
    """List the registered methods, tasks, backbones or attacks."""
    from mubench.attacks.base import ATTACKS
    from mubench.train.backbones import BACKBONES
    from mubench.core.registry import RegistryError
    from mubench.data.tasks import TASKS
    registry = {"methods": _methods_registry(), "tasks": TASKS, "backbones": BACKBONES, "attacks": ATTACKS}[what]
    broken = 0
    for name in registry.names():
        try:
            obj = registry.get(name)
        except RegistryError as exc:
            click.echo(f"error: {exc}", err=True)
            broken += 1
            continue
        doc = (obj.__doc__ or sys.modules[obj.__module__].__doc__ or "").strip().splitlines()  # class, else module
        click.echo(f"{name:<16} {doc[0] if doc else ''}")
    if broken:
        sys.exit(1)


def _store_options(command):
    """--tracking-uri and --store: where `leaderboard` and `report` read the runs from."""
    command = click.option("--store", type=click.Path(path_type=Path), default=Path("mubench-out"), show_default=True,
                           help="The --out folder of the runs, when no tracking URI is given.")(command)
    return click.option("--tracking-uri", help="MLflow tracking URI to read (default: $MLFLOW_TRACKING_URI or "
                                               "sqlite:///<store>/mlflow.db).")(command)


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("leaderboards"), show_default=True,
              help="Folder to write the markdown boards into.")
@click.option("--html", "site", type=click.Path(path_type=Path),
              help="Also write the boards as a static site into this folder: a page per board (tables sortable by "
                   "column, the board's picture, each row's source) and index.html.")
@_store_options
@_user_errors
def leaderboard(out, site, tracking_uri, store) -> None:
    """Render leaderboards from the MLflow store into markdown files (and with --html, a static site)."""
    from mubench.boards.leaderboard import render_all

    def write(uri: str, folder: Path) -> list[Path]:
        if site is not None:
            _writable(site, "--html")  # before any board is written
        boards = [path for path, _ in render_all(uri, folder).values()]
        if site is None:
            return boards
        from mubench.boards.site import write_site
        return boards + write_site(uri, site)
    _write_from_store(write, tracking_uri, store, out)


def _write_from_store(write, tracking_uri: str | None, store: Path, out: Path) -> None:
    """Run `write(uri, folder) -> paths` on the runs in the store and print the paths it wrote."""
    uri = _store_uri(tracking_uri, store)
    paths = write(uri, _writable(out))
    if not paths:
        raise MubenchError(f"the MLflow store {uri!r} holds no mubench cells; run `mubench run` first.")
    for path in paths:
        click.echo(str(path))


def _store_uri(tracking_uri: str | None, store: Path) -> str:
    from mubench.core.tracking import default_tracking_uri
    uri = tracking_uri or default_tracking_uri(store)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        raise MubenchError(f"no MLflow store at {uri[len('sqlite:///'):]!r}; run `mubench run` first or pass "
                           f"--tracking-uri.")
    from mubench.core.faults import check_tracking_uri
    check_tracking_uri(uri)
    return uri


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("report"), show_default=True,
              help="Folder for one markdown page per task × backbone and its figures.")
@_store_options
@_user_errors
def report(out, tracking_uri, store) -> None:
    """Write a markdown report per task × backbone: leaderboard, ablations and the runs' figures."""
    from mubench.boards.report import write_reports
    _write_from_store(write_reports, tracking_uri, store, out)

from mubench.cli.data import data  # noqa: E402  (the `mubench data` group lives in its own module)
main.add_command(data)
from mubench.cli.submissions import submissions; main.add_command(submissions)  # noqa: E402,E702


if __name__ == "__main__":
    main()
